// The operators' live host dashboard: htmx swaps the figures every few seconds. The chart shows each
// host's own CPU use (libvirt's node counters: everything on the host, not only its desktops) from
// live.js (operators topic) once readings arrive; until then, allocated vCPUs. Each row's "Host use"
// cell shows the host's CPU, memory and disk from the same readings.
import "./i18n.js"; // gettext() even where no catalogue loaded
import { liveLines } from "./charts.js";

const title = document.getElementById("chart-title");
const element = document.getElementById("host-chart");
let chart = null;
let hosts = []; // host names, in chart order
let liveMode = false;
const latestCpu = new Map(); // host id -> cpu %
const latestUse = new Map(); // host id -> the last reading's host figures

const percent = (part, whole) => (whole ? Math.round((100 * part) / whole) : null);

function bar(label, value, detail) {
  if (value == null) return "";
  const tone = value > 90 ? " full" : value > 70 ? " warn" : "";
  return `<div class="ops-use-row"><span>${label}</span><div class="ops-bar${tone}"><i style="width:${value}%"></i></div><b>${value}%</b></div>${detail ? `<small>${detail}</small>` : ""}`;
}

function showUse() {
  for (const cell of document.querySelectorAll("[data-node-cell]")) {
    const use = latestUse.get(cell.dataset.nodeCell);
    if (!use) continue;
    const gib = (bytes) => (bytes / 2 ** 30).toFixed(0);
    const memory = percent(use.node_memory_used_mib, use.memory_mib);
    const disk = percent(use.node_disk_used_bytes, use.node_disk_total_bytes);
    cell.innerHTML =
      bar("CPU", use.node_cpu_percent == null ? null : Math.round(use.node_cpu_percent)) +
      bar("RAM", memory) +
      bar(
        gettext("Disk"),
        disk,
        use.node_disk_total_bytes
          ? interpolate(
              gettext("%(used)s of %(total)s GiB"),
              { used: gib(use.node_disk_used_bytes), total: gib(use.node_disk_total_bytes) },
              true,
            )
          : "",
      );
  }
}

function rows() {
  return [...document.querySelectorAll("#fleet tr[data-host]")];
}

function ensureChart() {
  const names = rows().map((row) => row.dataset.host);
  if (chart && names.join() === hosts.join()) return;
  hosts = names;
  element.innerHTML = "";
  chart = liveLines(element, hosts, { height: 220, points: 120 });
}

// One point per refresh of the figures, while no live readings come.
function sampleAllocation() {
  if (liveMode) return;
  ensureChart();
  chart?.push(rows().map((row) => Number(row.dataset.vcpuPercent)));
}

function pushCpu(at) {
  ensureChart();
  chart?.push(rows().map((row) => latestCpu.get(row.dataset.hostId) ?? null), at);
}

async function startLive() {
  let live;
  try {
    live = await import("./live.js");
  } catch (error) {
    return;
  }
  live.subscribe({ operators: true }, (message) => {
    if (message.type !== "host") return;
    if (!liveMode) {
      liveMode = true;
      title.textContent = gettext("Host CPU in use (%), live");
      hosts = [];
    }
    // The host's own CPU when its node counters are known; else the desktops' share of it.
    latestCpu.set(String(message.host), message.node_cpu_percent ?? message.cpu_percent);
    latestUse.set(String(message.host), message);
    showUse();
    pushCpu(message.at);
  });
}

sampleAllocation();
document.body.addEventListener("htmx:afterSettle", () => {
  sampleAllocation();
  showUse(); // the refresh replaced the cells: fill them from the last readings at once
});
startLive();
