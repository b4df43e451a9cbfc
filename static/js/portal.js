// The member portal: launch with live progress, act on desktops (confirming what can lose data),
// keep cards current, and draw CPU/RAM sparklines from live metrics when static/js/live.js is there.
import "./i18n.js"; // gettext() even where no catalogue loaded
import { api, confirmAction, follow } from "./ui.js";

// --- launching ---------------------------------------------------------------------------------

const STAGES = ["queued", "placing", "cloning", "booting", "ready"];
const STAGE_OF_STEP = {
  placing: "placing",
  "cloning disk": "cloning",
  "writing seed": "cloning",
  defining: "cloning",
  booting: "booting",
  ready: "ready",
};

// The furthest stage an operation has reached, from every step it recorded.
function reachedStage(operation) {
  let index = 0;
  for (const entry of operation.steps || []) {
    const stage = STAGE_OF_STEP[entry.step];
    if (stage) index = Math.max(index, STAGES.indexOf(stage));
  }
  if (operation.status === "succeeded") index = STAGES.length - 1;
  return index;
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Poll the desktop's readiness until its guest is ready for input (or it stopped running).
async function untilReady(desktopId, onBooting) {
  for (;;) {
    const status = await api("GET", `/api/v1/desktops/${desktopId}/readiness/`);
    if (status.ready || status.state !== "running") return status;
    onBooting(status);
    await pause(status.interval_ms || 1000);
  }
}

function showStage(panel, index, failed = false) {
  panel.querySelectorAll("[data-step]").forEach((li) => {
    const at = STAGES.indexOf(li.dataset.step);
    li.className = at < index ? "done" : at === index ? (failed ? "failed" : "active") : "";
  });
}

// --- sizes ---------------------------------------------------------------------------------------

// The custom numbers of a size picker (RAM typed in GiB, sent in MiB); `changedOnly`: those the person changed.
function customNumbers(root, changedOnly = false) {
  const body = {};
  root.querySelectorAll("[data-size-field]").forEach((input) => {
    if (input.disabled || input.value === "") return;
    if (changedOnly && input.value === input.defaultValue) return;
    const number = Number(input.value);
    body[input.dataset.sizeField] = input.dataset.unit === "gib" ? Math.round(number * 1024) : number;
  });
  return body;
}

// What a picker's choice asks for: nothing (the default at launch), a named size, or the custom numbers.
function chosenSize(root, { resize = false } = {}) {
  const option = root.querySelector("[data-size-root] input[type=radio]:checked");
  if (!option) return {};
  if ("custom" in option.dataset) return customNumbers(root, resize);
  if ("default" in option.dataset) {
    if (!resize) return {};
    const { vcpus, memory, disk } = option.dataset;
    return { vcpus: Number(vcpus), memory_mib: Number(memory), disk_gib: Number(disk) };
  }
  return { size: option.value };
}

// A choice shows its vCPUs, RAM and disk (or the custom numbers), and the card's summary names it.
document.addEventListener("change", (event) => {
  const option = event.target.closest("[data-size-root] input[type=radio]");
  if (!option) return;
  const root = option.closest("[data-size-root]");
  const custom = "custom" in option.dataset;
  const fields = root.querySelector("[data-size-custom]");
  if (fields) fields.hidden = !custom;
  const shape = root.querySelector("[data-size-shape]");
  shape.hidden = custom;
  if (!custom) shape.textContent = option.dataset.shape;
  const summary = root.closest("details")?.querySelector("[data-size-summary]");
  if (summary) summary.textContent = "default" in option.dataset ? "default" : option.value || "custom";
});

async function launch(button) {
  const card = button.closest("[data-template-card]");
  const panel = card.querySelector(".launch-panel");
  const label = card.querySelector(".launch-step");
  const problem = card.querySelector(".launch-error");
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  problem.hidden = true;
  panel.hidden = false;
  showStage(panel, 0);
  label.textContent = gettext("Asking for a desktop…");
  try {
    const result = await api("POST", "/api/desktop/start", {
      template: Number(button.dataset.template),
      ...chosenSize(card),
    });
    let done = result.operation;
    if (done) {
      done = await follow(done, (operation) => {
        const index = reachedStage(operation);
        showStage(panel, index);
        label.textContent =
          operation.status === "queued" ? gettext("Waiting for a worker…") : `${operation.step || operation.status}…`;
      });
      if (done.status === "failed") throw new Error(done.error || gettext("The launch failed."));
    }
    // Running is not ready: wait until the guest says it takes input (the console would hold keys until then).
    showStage(panel, STAGES.indexOf("booting"));
    await untilReady(result.desktop.id, (status) => {
      label.textContent = status.booting_s == null
          ? gettext("Booting…")
          : interpolate(gettext("Booting… %s s"), [Math.round(status.booting_s)]);
    });
    showStage(panel, STAGES.length - 1);
    panel.querySelector("[data-step=ready]").className = "done";
    label.textContent = gettext("Ready: opening your desktop…");
    window.location.href = `/desktops/${result.desktop.id}/console/`;
  } catch (error) {
    showStage(panel, -1);
    panel.hidden = true;
    problem.textContent = error.message;
    problem.hidden = false;
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

// --- desktop cards -----------------------------------------------------------------------------

// The card of a desktop as the page shows it now: a live event or a poll may have replaced the element a caller
// holds (a detached card can be replaced all day and the page would not change).
function cardOf(desktopId) {
  return document.querySelector(`[data-desktop="${desktopId}"]`);
}

// Operations a card follows now, by URL: one follower each, whoever noticed the operation first.
const following = new Set();

async function refreshCard(card) {
  const id = card.dataset.desktop;
  const response = await fetch(card.dataset.cardUrl, { credentials: "same-origin" });
  const current = cardOf(id);
  if (response.status === 404) {
    current?.remove(); // deleted
    return null;
  }
  if (!response.ok || !current) return current;
  const holder = document.createElement("div");
  holder.innerHTML = (await response.text()).trim();
  const fresh = holder.firstElementChild;
  current.replaceWith(fresh);
  setupCard(fresh);
  // An operation under way (started by a policy, another tab, or this one before its answer came) is followed.
  if (fresh.dataset.operation) followCard(fresh, { url: fresh.dataset.operation, status: "running" });
  return fresh;
}

async function followCard(card, operation) {
  if (following.has(operation.url)) return;
  following.add(operation.url);
  const id = card.dataset.desktop;
  let problem = "";
  try {
    const done = await follow(operation, (current) => {
      const text = current.step || current.status;
      const shown = cardOf(id);
      const badge = shown?.querySelector(".badge");
      if (badge) badge.textContent = `${text}…`;
      const step = shown?.querySelector(".op-step");
      if (step) step.textContent = text;
    });
    if (done?.status === "failed") problem = done.error || interpolate(gettext("%s failed"), [done.kind]);
  } catch (error) {
    problem = error.message;
  } finally {
    following.delete(operation.url);
  }
  const fresh = await refreshCard(cardOf(id) || card);
  // After the refresh, which would otherwise replace the note with the card as the server sees it.
  if (fresh && problem) flash(fresh, problem);
}

function flash(card, text) {
  let note = card.querySelector(".card-error");
  if (!note) {
    note = document.createElement("p");
    note.className = "card-error";
    note.setAttribute("role", "alert");
    card.querySelector(".desktop-body")?.append(note);
  }
  note.textContent = text;
}

async function act(button) {
  const card = button.closest("[data-desktop]");
  button.closest("details")?.removeAttribute("open");
  if (button.dataset.confirm && !(await confirmAction(button.dataset.confirm, button.textContent.trim()))) return;
  const id = card.dataset.desktop;
  const action = button.dataset.action;
  card.querySelectorAll("button").forEach((b) => (b.disabled = true));
  try {
    const body = button.dataset.snapshot ? { snapshot: button.dataset.snapshot } : {};
    const result =
      action === "delete"
        ? await api("DELETE", `/api/v1/desktops/${id}/`)
        : await api("POST", `/api/v1/desktops/${id}/${action}/`, body);
    if (result.operation) {
      card.dataset.state = "busy";
      await followCard(card, result.operation);
    } else {
      await refreshCard(card);
    }
  } catch (error) {
    card.querySelectorAll("button").forEach((b) => (b.disabled = false));
    flash(card, error.message);
  }
}

// --- sparklines (live metrics through static/js/live.js) ----------------------------------------

const POINTS = 60;
const sparks = new Map(); // desktop id -> { box, cpu: {plot, data}, memory: {plot, data} }
const history = new Map(); // desktop id -> { cpu: [...], memory: [...] }: survives card refreshes

function sparkPlot(element, colour, values) {
  if (typeof uPlot === "undefined" || !element) return null;
  const data = [Array.from({ length: POINTS }, (_, i) => i), values];
  const plot = new uPlot(
    {
      width: Math.max(60, element.clientWidth || 120),
      height: 28,
      cursor: { show: false },
      legend: { show: false },
      select: { show: false },
      axes: [{ show: false }, { show: false }],
      scales: { x: { time: false }, y: { range: [0, 100] } },
      series: [{}, { stroke: colour, fill: `${colour}22`, width: 1.5, points: { show: false } }],
    },
    data,
    element,
  );
  return { plot, data };
}

function seriesOf(id) {
  if (!history.has(id)) history.set(id, { cpu: Array(POINTS).fill(null), memory: Array(POINTS).fill(null) });
  return history.get(id);
}

function showValues(id) {
  const entry = sparks.get(id);
  if (!entry) return;
  const past = seriesOf(id);
  for (const key of ["cpu", "memory"]) {
    const latest = [...past[key]].reverse().find((v) => v != null);
    if (latest == null) continue;
    entry.box.querySelector(`[data-value=${key}]`).textContent = `${Math.round(latest)}%`;
    entry.box.dataset.live = "on";
    if (entry[key]) {
      entry[key].data[1] = past[key];
      entry[key].plot.setData(entry[key].data);
    }
  }
}

function setupCard(card) {
  const box = card.querySelector("[data-spark]");
  if (!box) {
    sparks.delete(card.dataset.desktop); // not running any more: no sparkline to feed
    return;
  }
  const id = box.dataset.spark;
  const past = seriesOf(id);
  sparks.set(id, {
    box,
    cpu: sparkPlot(box.querySelector("[data-series=cpu]"), "#0f8a6a", past.cpu),
    memory: sparkPlot(box.querySelector("[data-series=memory]"), "#3f6ad8", past.memory),
  });
  showValues(id);
  live?.watch(id, Number(box.dataset.memoryMib) || 0);
}

// Samples for a desktop, oldest first: cpu and memory in percent (null where unknown).
export function pushSamples(desktopId, samples) {
  const id = String(desktopId);
  const past = seriesOf(id);
  for (const sample of samples) {
    past.cpu = [...past.cpu.slice(1), sample.cpu ?? null];
    past.memory = [...past.memory.slice(1), sample.memory ?? null];
  }
  showValues(id);
}

// A live event says the desktop changed: show its card as the server now sees it.
function changed(desktopId) {
  const card = document.querySelector(`[data-desktop="${desktopId}"]`);
  if (card && card.dataset.state !== "busy" && !card.dataset.operation) refreshCard(card);
}

// Live metrics are optional: without live.js (or its socket) the portal works the same.
let live = null;
async function startLive() {
  try {
    const module = await import("./portal_live.js");
    live = module.connect({ onSamples: pushSamples, onChange: changed });
    for (const [id, entry] of sparks) live.watch(id, Number(entry.box.dataset.memoryMib) || 0);
  } catch (error) {
    live = null;
  }
}

// --- polling for changes made elsewhere (idle policy, another tab, an admin) ---------------------

async function poll() {
  try {
    const listing = await api("GET", "/api/v1/desktops/?page_size=200");
    const states = new Map((listing.results || listing).map((d) => [String(d.id), d.state]));
    for (const card of document.querySelectorAll("[data-desktop]")) {
      if (card.dataset.state === "busy" || card.dataset.operation) continue;
      const now = states.get(card.dataset.desktop);
      if (now !== card.dataset.state) await refreshCard(card);
    }
  } catch (error) {
    // A failed poll (network, sign-out) is retried at the next tick.
  }
}

// --- wiring ------------------------------------------------------------------------------------

// Revert to or delete one snapshot (the desktop page), then show the page again.
async function snapshotAction(button) {
  const id = button.closest("[data-desktop-ref]").dataset.desktopRef;
  if (button.dataset.confirm && !(await confirmAction(button.dataset.confirm, button.textContent.trim()))) return;
  button.disabled = true;
  try {
    const result = await api("POST", `/api/v1/desktops/${id}/${button.dataset.snapshotAction}/`, {
      snapshot: button.dataset.snapshot,
    });
    const card = document.querySelector(`[data-desktop="${id}"]`);
    if (result.operation && card) await followCard(card, result.operation);
  } catch (error) {
    window.alert(error.message);
  }
  window.location.reload();
}

// Resize from the desktop page: follow the operation in the form, then show the page at the new size.
async function resize(form) {
  const id = form.dataset.desktopRef;
  const problem = form.querySelector("[role=alert]");
  const status = form.querySelector("[role=status]");
  const button = form.querySelector("button[type=submit]");
  const body = chosenSize(form, { resize: true });
  problem.hidden = true;
  if (!Object.keys(body).length) {
    problem.textContent = gettext("Pick another size or change a number first.");
    problem.hidden = false;
    return;
  }
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  status.textContent = gettext("Asking for the resize…");
  try {
    const result = await api("POST", `/api/v1/desktops/${id}/resize/`, body);
    if (result.operation) {
      const done = await follow(result.operation, (operation) => {
        const step = operation.step || operation.status;
        status.textContent = operation.status === "queued" ? gettext("Waiting for a worker…") : `${step}…`;
      });
      if (done.status === "failed") throw new Error(done.error || gettext("The resize failed."));
    }
    status.textContent = gettext("Resized.");
    window.location.reload();
  } catch (error) {
    status.textContent = "";
    problem.textContent = error.message;
    problem.hidden = false;
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form.resize-form");
  if (!form) return;
  event.preventDefault();
  resize(form);
});

document.addEventListener("click", (event) => {
  const launchButton = event.target.closest("button.launch");
  if (launchButton) return launch(launchButton);
  const snapshotButton = event.target.closest("button[data-snapshot-action]");
  if (snapshotButton) return snapshotAction(snapshotButton);
  const actionButton = event.target.closest("button[data-action]");
  if (actionButton) return act(actionButton);
});

document.querySelectorAll("[data-desktop]").forEach((card) => {
  setupCard(card);
  // A reload in the middle of an operation picks the progress up again.
  if (card.dataset.operation) followCard(card, { url: card.dataset.operation, status: "running" });
});
startLive();
if (document.querySelector("[data-testid=my-desktops]")) setInterval(poll, 10000);
