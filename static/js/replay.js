// Replays a recorded console session: the recording (desktops/console/recordfile.py) is streamed
// over HTTP, parsed as it arrives, and fed to noVNC at the recorded pace through a stand-in socket.
import { RFB } from "../vendor/novnc.min.js";

const app = document.getElementById("replay-app");
const screen = document.getElementById("replay-screen");
const statusLabel = document.getElementById("replay-status");
const clock = document.getElementById("replay-clock");
const speedSelect = document.getElementById("replay-speed");

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
    this.onclose?.({ code: 1000, reason: "", wasClean: true });
  }
}

const player = {
  run: 0,
  rfb: null,
  channel: null,
  frames: [],
  index: 0,
  loaded: false,
  paused: false,
  speed: 1,
  anchorPosition: 0,
  anchorWall: 0,
  wake: null,
  scale: true,
};
window.quetzalReplay = player;

function setStatus(kind, text) {
  app.dataset.state = kind;
  statusLabel.textContent = text;
}

function position() {
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
    if (run !== player.run) return reader.cancel();
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
      player.frames.push({ at, data: buffer.subarray(offset + HEADER_SIZE, offset + HEADER_SIZE + length) });
      offset += HEADER_SIZE + length;
    }
    buffer = buffer.slice(offset);
    wakeUp();
  }
  player.loaded = true;
  wakeUp();
}

async function play(run) {
  let delivered = 0;
  while (run === player.run) {
    if (player.index < player.frames.length) {
      const frame = player.frames[player.index];
      const due = player.speed === Infinity ? 0 : frame.at - position();
      if (!player.paused && due <= 0) {
        player.channel.deliver(frame.data);
        player.frames[player.index] = null;
        player.index += 1;
        // Let the page breathe during instant replays of long sessions.
        if (++delivered % 200 === 0) await nap(0);
        continue;
      }
      await nap(player.paused ? 250 : Math.min(250, due / player.speed));
    } else if (player.loaded) {
      setStatus("finished", "Finished");
      clock.textContent = `${clockText(durationMs)} / ${clockText(durationMs)}`;
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

function start() {
  player.run += 1;
  const run = player.run;
  player.rfb?.disconnect();
  player.frames = [];
  player.index = 0;
  player.loaded = false;
  player.anchorPosition = 0;
  player.anchorWall = performance.now();
  const channel = new ReplayChannel();
  const rfb = new RFB(screen, channel, { shared: true });
  rfb.viewOnly = true;
  rfb.background = "#111";
  player.channel = channel;
  player.rfb = rfb;
  applyScale();
  channel.open();
  setStatus("playing", "Playing");
  load(run).catch((error) => {
    if (run !== player.run) return;
    player.run += 1;
    setStatus("failed", error.message);
  });
  play(run);
}

function setSpeed(value) {
  reanchor();
  player.speed = value === "max" ? Infinity : Number(value) || 1;
  speedSelect.value = value;
  wakeUp();
}

speedSelect.addEventListener("change", () => setSpeed(speedSelect.value));
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
    start();
  } else if (button.dataset.cmd === "scale") {
    player.scale = !player.scale;
    applyScale();
  }
});

setInterval(() => {
  if (app.dataset.state === "playing" || app.dataset.state === "paused") {
    const shown = player.speed === Infinity ? durationMs : Math.min(durationMs, position());
    clock.textContent = `${clockText(shown)} / ${clockText(durationMs)}`;
  }
}, 250);

const initial = new URLSearchParams(location.search).get("speed");
if (initial) setSpeed(initial);
start();
