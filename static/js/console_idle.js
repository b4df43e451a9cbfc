// The console's "Still working?" banner: the idle deadline comes from the API (input through this console
// moves it on the server), the banner shows a few minutes before it, and "Keep it running" counts as input.
import { tick } from "./idle_watch.js";

const banner = document.getElementById("qc-idle");
const countdown = banner.querySelector("[data-countdown]");
const clock = banner.querySelector("[data-clock]");
const warnMs = Number(banner.dataset.warnSeconds) * 1000;
const csrf = () => document.cookie.split("; ").find((c) => c.startsWith("csrftoken="))?.split("=")[1] ?? "";
let timer = null;

// A new deadline (ISO text, or null when the desktop is not running): hidden until its warning moment.
function follow(deadline) {
  banner.hidden = true;
  if (!deadline) {
    banner.dataset.warnAt = "";
    return;
  }
  const at = Date.parse(deadline);
  countdown.dataset.countdown = deadline;
  clock.textContent = ` (${new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })})`;
  banner.dataset.warnAt = new Date(at - warnMs).toISOString();
  tick(banner.parentElement);
}

async function request(method, url) {
  const response = await fetch(url, { method, headers: { "X-CSRFToken": csrf() }, credentials: "same-origin" });
  if (!response.ok) throw new Error(`${method} ${url}: ${response.status}`);
  return response.json();
}

async function refresh() {
  clearTimeout(timer);
  try {
    const desktop = await request("GET", banner.dataset.desktopUrl);
    follow(desktop.state === "running" ? desktop.idle_action_at : null);
  } catch {
    // Signed out or offline: the console's own overlay says so; try again later.
  }
  // Closer checks while the banner shows, so typing in the console hides it soon after.
  timer = setTimeout(refresh, banner.hidden ? 30000 : 10000);
}

banner.querySelector('[data-cmd="keep-running"]').addEventListener("click", async (event) => {
  event.stopPropagation();
  const button = event.currentTarget;
  button.disabled = true;
  try {
    follow((await request("POST", banner.dataset.keepUrl)).idle_action_at);
  } catch {
    refresh();
  } finally {
    button.disabled = false;
    // Back to the desktop: the keyboard belongs to it, not to the banner.
    document.querySelector("#qc-screen canvas")?.focus({ preventScroll: true });
  }
});

// The banner appears on time between refreshes, and its countdown stays current.
setInterval(() => tick(banner.parentElement), 5000);
refresh();
