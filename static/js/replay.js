// Replays a recorded console session: the recording (desktops/console/recordfile.py) is streamed
// over HTTP, parsed as it arrives, and fed to noVNC at the recorded pace through a stand-in socket.
// The frames stay in memory once loaded: seeking back replays them from the start into a fresh noVNC
// without the recorded pauses (a VNC stream has no key frames to jump to), seeking on just skips ahead.
import { RFB } from "../vendor/novnc.min.js";

const app = document.getElementById("replay-app");
const screen = document.getElementById("replay-screen");
const statusLabel = document.getElementById("replay-status");
const clock = document.getElementById("replay-clock");
const speedSelect = document.getElementById("replay-speed");
const seekBar = document.getElementById("replay-seek");
const timeline = document.getElementById("replay-timeline");
// Marks on the activity timeline: enough to tell bursts apart on a wide screen, few enough to stay cheap.
const TIMELINE_BUCKETS = 160;

const MAGIC = new TextEncoder().encode("QZREC01\n");
const HEADER_SIZE = 12;
const durationMs = Number(app.dataset.duration || 0);

// What noVNC needs of a WebSocket. It receives the recorded server bytes; what noVNC sends back
// (its half of the handshake, update requests) is dropped, as the recording already answers it.
class ReplayChannel {
  constructor() {
    this.binaryType = "arraybuffer";
    this.protocol = "";
    this.readyState = "connecting";
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    this.onerror = null;
  }

  send() {}

  open() {
    this.readyState = "open";
    this.onopen?.();
  }

  deliver(bytes) {
    if (this.readyState === "open") this.onmessage?.({ data: bytes.slice().buffer });
  }

  close() {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    // Later, as a WebSocket does: noVNC arms its disconnect timeout after asking to close, and a close
    // reported within that call would leave the timeout armed ("Disconnection timed out.").
    setTimeout(() => this.onclose?.({ code: 1000, reason: "", wasClean: true }), 0);
  }
}

const player = {
  run: 0,
  rfb: null,
  channel: null,
  frames: [],
  index: 0,
  lastAt: 0,
  loaded: false,
  paused: false,
  speed: 1,
  anchorPosition: 0,
  anchorWall: 0,
  wake: null,
  scale: true,
  scrubbing: false,
  seekTo,
};
window.quetzalReplay = player;

function setStatus(kind, text) {
  app.dataset.state = kind;
  statusLabel.textContent = text;
}

// The length the seek bar spans: the recorded duration, or while it is unknown, what has loaded so far.
function span() {
  const last = player.frames.length ? player.frames[player.frames.length - 1].at : 0;
  return Math.max(durationMs, last);
}

function position() {
  if (player.speed === Infinity) return player.lastAt;
  if (player.paused) return player.anchorPosition;
  return player.anchorPosition + (performance.now() - player.anchorWall) * player.speed;
}

function reanchor() {
  player.anchorPosition = position();
  player.anchorWall = performance.now();
}

function wakeUp() {
  const wake = player.wake;
  player.wake = null;
  wake?.();
}

function nap(ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    player.wake = () => {
      clearTimeout(timer);
      resolve();
    };
  });
}

const clockText = (ms) => `${Math.floor(ms / 60000)}:${String(Math.floor(ms / 1000) % 60).padStart(2, "0")}`;

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

let timelineQueued = false;

// One mark per stretch of the recording that carries screen updates, taller where more bytes arrived.
function drawTimeline() {
  timelineQueued = false;
  const total = span();
  if (!total || !player.frames.length) return;
  const bytes = new Array(TIMELINE_BUCKETS).fill(0);
  for (const frame of player.frames) {
    bytes[Math.min(TIMELINE_BUCKETS - 1, Math.floor((frame.at / total) * TIMELINE_BUCKETS))] += frame.data.length;
  }
  const most = Math.log1p(Math.max(...bytes));
  const marks = [];
  bytes.forEach((count, bucket) => {
    if (!count) return;
    const mark = document.createElement("i");
    mark.style.left = `${(bucket / TIMELINE_BUCKETS) * 100}%`;
    mark.style.width = `${100 / TIMELINE_BUCKETS}%`;
    mark.style.height = `${Math.max(20, (Math.log1p(count) / most) * 100)}%`;
    mark.dataset.at = String(Math.round((bucket / TIMELINE_BUCKETS) * total));
    marks.push(mark);
  });
  timeline.replaceChildren(...marks);
}

// Redrawn at most twice a second while the recording streams in: each draw walks every loaded frame.
function queueTimeline() {
  if (timelineQueued) return;
  timelineQueued = true;
  setTimeout(() => requestAnimationFrame(drawTimeline), 500);
}

async function load(run) {
  const response = await fetch(app.dataset.src, { credentials: "same-origin" });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.detail || `The recording could not be loaded (${response.status}).`);
  }
  const reader = response.body.getReader();
  let buffer = new Uint8Array(0);
  let started = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (run !== player.loading) return reader.cancel();
    if (done) break;
    buffer = concat(buffer, value);
    let offset = 0;
    if (!started) {
      if (buffer.length < MAGIC.length) continue;
      if (!MAGIC.every((byte, i) => buffer[i] === byte)) throw new Error("This file is not a console recording.");
      offset = MAGIC.length;
      started = true;
    }
    while (buffer.length - offset >= HEADER_SIZE) {
      const view = new DataView(buffer.buffer, buffer.byteOffset + offset, HEADER_SIZE);
      const at = view.getUint32(0);
      const length = view.getUint32(4);
      if (buffer.length - offset - HEADER_SIZE < length) break;
      player.frames.push({ at, data: buffer.slice(offset + HEADER_SIZE, offset + HEADER_SIZE + length) });
      offset += HEADER_SIZE + length;
    }
    buffer = buffer.slice(offset);
    queueTimeline();
    wakeUp();
  }
  player.loaded = true;
  seekBar.max = String(span());
  queueTimeline();
  wakeUp();
}

// How long until a frame is due: at once when its moment has passed (a seek ahead lands here too).
function dueIn(frame) {
  if (player.paused) return frame.at <= player.anchorPosition ? 0 : Infinity;
  if (player.speed === Infinity) return 0;
  return (frame.at - position()) / player.speed;
}

async function play(run) {
  let delivered = 0;
  while (run === player.run) {
    if (player.index < player.frames.length) {
      const frame = player.frames[player.index];
      const due = dueIn(frame);
      if (due <= 0) {
        player.channel.deliver(frame.data);
        player.lastAt = frame.at;
        player.index += 1;
        // Let the page breathe while catching up (instant speed, a seek): long sessions are many frames.
        if (++delivered % 200 === 0) await nap(0);
        continue;
      }
      await nap(Math.min(250, due));
    } else if (player.loaded) {
      setStatus("finished", "Finished");
      showPosition();
      return;
    } else {
      await nap(250);
    }
  }
}

function applyScale() {
  const button = app.querySelector('[data-cmd="scale"]');
  button.textContent = player.scale ? "Fit" : "1:1";
  button.setAttribute("aria-pressed", String(player.scale));
  if (player.rfb) player.rfb.scaleViewport = player.scale;
}

// A fresh noVNC fed from the first loaded frame: the only way back in a stream of screen updates.
function newViewer() {
  player.run += 1;
  const run = player.run;
  player.rfb?.disconnect();
  player.index = 0;
  player.lastAt = 0;
  const channel = new ReplayChannel();
  const rfb = new RFB(screen, channel, { shared: true });
  rfb.viewOnly = true;
  rfb.background = "#111";
  player.channel = channel;
  player.rfb = rfb;
  applyScale();
  channel.open();
  setStatus(player.paused ? "paused" : "playing", player.paused ? "Paused" : "Playing");
  play(run);
}

function start() {
  player.loading = (player.loading || 0) + 1;
  const loading = player.loading;
  player.frames = [];
  player.loaded = false;
  player.anchorPosition = 0;
  player.anchorWall = performance.now();
  timeline.replaceChildren();
  newViewer();
  load(loading).catch((error) => {
    if (loading !== player.loading) return;
    player.run += 1;
    setStatus("failed", error.message);
  });
}

function seekTo(ms) {
  const target = Math.max(0, Math.min(span(), Number(ms) || 0));
  // Instant speed plays everything at once; a seek holds the replay at the target, at the normal pace.
  if (player.speed === Infinity) setSpeed("1");
  // Already shown past the target (or finished): replay from the start up to it, without the recorded pauses.
  const back = (player.index > 0 && player.lastAt > target) || app.dataset.state === "finished";
  player.anchorPosition = target;
  player.anchorWall = performance.now();
  if (back) newViewer();
  wakeUp();
  showPosition();
}

function setSpeed(value) {
  reanchor();
  player.speed = value === "max" ? Infinity : Math.min(16, Math.max(0.5, Number(value) || 1));
  speedSelect.value = value === "max" ? "max" : String(player.speed);
  wakeUp();
}

function showPosition() {
  const total = span();
  let shown = app.dataset.state === "finished" ? total : Math.min(total, position());
  if (player.scrubbing) shown = Number(seekBar.value);
  clock.textContent = `${clockText(shown)} / ${clockText(total)}`;
  if (!player.scrubbing) {
    seekBar.max = String(total);
    seekBar.value = String(Math.round(shown));
  }
}

speedSelect.addEventListener("change", () => setSpeed(speedSelect.value));
seekBar.addEventListener("input", () => {
  player.scrubbing = true;
  showPosition();
});
seekBar.addEventListener("change", () => {
  player.scrubbing = false;
  seekTo(seekBar.value);
});
app.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-cmd]");
  if (!button) return;
  if (button.dataset.cmd === "pause") {
    reanchor();
    player.paused = !player.paused;
    player.anchorWall = performance.now();
    button.setAttribute("aria-pressed", String(player.paused));
    button.textContent = player.paused ? "Play" : "Pause";
    if (app.dataset.state !== "finished") setStatus(player.paused ? "paused" : "playing", player.paused ? "Paused" : "Playing");
    wakeUp();
  } else if (button.dataset.cmd === "restart") {
    if (app.dataset.state === "failed") start();
    else seekTo(0);
  } else if (button.dataset.cmd === "scale") {
    player.scale = !player.scale;
    applyScale();
  }
});

setInterval(() => {
  if (app.dataset.state === "playing" || app.dataset.state === "paused") showPosition();
}, 250);

const initial = new URLSearchParams(location.search).get("speed");
if (initial) setSpeed(initial);
start();
