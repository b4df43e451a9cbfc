// The console's "a script is driving" banner: shown while the desktop's last automation input is recent
// (the API's automation_at), checked every few seconds; the server already rendered its first state.
const banner = document.getElementById("qc-automation");
const drivenForMs = Number(banner.dataset.drivenFor) * 1000;

async function refresh() {
  try {
    const response = await fetch(banner.dataset.desktopUrl, { credentials: "same-origin" });
    if (response.ok) {
      const at = (await response.json()).automation_at;
      banner.hidden = !at || Date.now() - Date.parse(at) > drivenForMs;
    }
  } catch {
    // Offline or signed out: the console's own overlay says so.
  }
  setTimeout(refresh, 5000);
}

setTimeout(refresh, 5000);
