// The operators' live host dashboard: htmx swaps the figures every few seconds. The chart shows each
// host's CPU from live.js (operators topic) once readings arrive; until then, allocated vCPUs.
import { liveLines } from "./charts.js";

const title = document.getElementById("chart-title");
const element = document.getElementById("host-chart");
let chart = null;
let hosts = []; // host names, in chart order
let liveMode = false;
const latestCpu = new Map(); // host id -> cpu %

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
      title.textContent = "Host CPU in use (%), live";
      hosts = [];
    }
    latestCpu.set(String(message.host), message.cpu_percent);
    pushCpu(message.at);
  });
}

sampleAllocation();
document.body.addEventListener("htmx:afterSettle", sampleAllocation);
startLive();
