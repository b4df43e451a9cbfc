// The launcher agrees with its desktop cards at every moment: portal.js re-renders or removes a card
// when a live event, a poll or an action says it changed; this keeps the rest of the page in step
// ("1 of 2 running", each template's Open / Resume / Launch, the "Your desktops" section and its
// empty note) without a reload and without a request of its own.
const HELD = { running: "open", stopped: "resume", hibernated: "resume", suspended: "resume" };

export function sync() {
  const cards = [...document.querySelectorAll("[data-testid=my-desktops] [data-desktop]")];
  const count = document.querySelector("[data-running-count]");
  if (count) count.textContent = String(cards.filter((card) => card.dataset.state === "running").length);
  const section = document.querySelector("[data-mine]");
  if (section) section.hidden = cards.length === 0;
  const empty = document.querySelector("[data-testid=my-desktops-empty]");
  if (empty) empty.hidden = cards.length > 0;
  for (const button of document.querySelectorAll("button.launch[data-template]")) {
    const label = button.querySelector("[data-launch-label]");
    if (!label || button.disabled) continue; // a launch in progress owns its button
    const mine = cards.filter((card) => card.dataset.template === button.dataset.template);
    if (mine.some((card) => card.dataset.state === "busy")) continue; // wait for the operation's end
    const held = mine.map((card) => HELD[card.dataset.state]).filter(Boolean);
    const which = held.includes("open") ? "open" : held[0] || "launch";
    // The words come from the template, in the page's language.
    label.textContent = button.dataset[`label${which[0].toUpperCase()}${which.slice(1)}`] || which;
  }
}

const grid = document.querySelector("[data-testid=my-desktops]");
if (grid) {
  new MutationObserver(sync).observe(grid, { childList: true, subtree: true, attributes: true, attributeFilter: ["data-state"] });
  sync();
}
