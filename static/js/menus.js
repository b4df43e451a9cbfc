// Every dropdown menu of the layout: one open at a time, Escape closes it, and it stays on screen
// (aligned to its button's right edge when it would run off the right, to the left when off the left).
const menus = () => document.querySelectorAll("details.dropdown");

function keepOnScreen(menu) {
  const list = menu.querySelector(":scope > summary + ul");
  if (!list) return;
  list.classList.remove("end", "start");
  const box = list.getBoundingClientRect();
  if (box.right > window.innerWidth) list.classList.add("end");
  else if (box.left < 0) list.classList.add("start");
}

document.addEventListener(
  "toggle",
  (event) => {
    const menu = event.target;
    if (!(menu instanceof HTMLDetailsElement) || !menu.classList.contains("dropdown") || !menu.open) return;
    for (const other of menus()) if (other !== menu && other.open) other.open = false;
    keepOnScreen(menu);
  },
  true,
);

document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  for (const menu of menus()) {
    if (!menu.open) continue;
    menu.open = false;
    menu.querySelector("summary")?.focus();
  }
});
