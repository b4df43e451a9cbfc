// The console's ramp-down notice ("stopped at 18:30 for the evening; save your work"), in the idle banner's
// style and with its countdown: the server pushes it on the desktop's live topic the moment the plan decides,
// the API says it again whenever the live socket (re)opens, and "Keep working" puts it off where the plan allows.
import { onStatus, subscribe } from "./live.js";
import { tick } from "./idle_watch.js";

const banner = document.getElementById("qc-stop");
const clock = banner.querySelector("[data-clock]");
const countdown = banner.querySelector("[data-countdown]");
const defer = banner.querySelector('[data-cmd="defer-stop"]');
const csrf = () => document.cookie.split("; ").find((c) => c.startsWith("csrftoken="))?.split("=")[1] ?? "";

// A notice as the API or a push gives it: due_at as ISO text or seconds since the epoch, the tenant's clock.
function show(notice) {
  const due = notice && (notice.due_at ?? (notice.at ? new Date(notice.at * 1000).toISOString() : null));
  banner.hidden = !due;
  if (!due) return;
  clock.textContent = notice.clock;
  countdown.dataset.countdown = due;
  defer.hidden = !notice.deferrable;
  tick(banner);
}

async function request(method, url) {
  const response = await fetch(url, { method, headers: { "X-CSRFToken": csrf() }, credentials: "same-origin" });
  if (!response.ok) throw new Error(`${method} ${url}: ${response.status}`);
  return response.json();
}

async function refresh() {
  try {
    show(await request("GET", banner.dataset.noticeUrl));
  } catch {
    // Signed out or offline: the console's own overlay says so.
  }
}

subscribe({ desktop: Number(banner.dataset.desktop) }, (message) => {
  if (message.type === "stop_notice") show(message);
});
// Pushes sent while the socket was down are not replayed: read the current notice once it is open again.
onStatus((status) => {
  if (status === "open") refresh();
});

defer.addEventListener("click", async (event) => {
  event.stopPropagation();
  defer.disabled = true;
  try {
    show(await request("POST", banner.dataset.deferUrl));
  } catch {
    refresh();
  } finally {
    defer.disabled = false;
    document.querySelector("#qc-screen canvas")?.focus({ preventScroll: true });
  }
});

setInterval(() => tick(banner), 5000);
// A slow read as well: where live pushes are switched off (METRICS_PUSH) the notice still arrives in time.
setInterval(refresh, 60000);
refresh();
