// The console page: noVNC in the whole window through Quetzal's WebSocket proxy, with a fresh
// one-time ticket for every connection, reconnection when the desktop restarts, clipboard,
// special keys and an on-screen keyboard for phones.
// noVNC as one bundled, minified module (make vendor): a single request, and one place that can fail.
import "./i18n.js"; // gettext() even where no catalogue loaded
import { getKeycode, getKeysym, KeyTable, keysyms, RFB } from "../vendor/novnc.min.js";

const app = document.getElementById("console-app");
const desktopId = app.dataset.desktop;
const screen = document.getElementById("qc-screen");
const statusLabel = document.getElementById("qc-status");
const overlay = document.getElementById("qc-overlay");
const clipText = document.getElementById("qc-clip-text");
const osk = document.getElementById("qc-osk");

// Close codes the proxy uses (desktops/console/errors.py).
const CLOSE = { signedOut: 4401, forbidden: 4403, notFound: 4404, endedElsewhere: 4408, notRunning: 4409, ticket: 4410, tooMany: 4429, unavailable: 4503 };
const BUSY_STATES = ["requested", "provisioning", "starting", "stopping", "deleting"];
const STOPPED_STATES = ["stopped", "hibernated", "error"];

const state = {
  rfb: null,
  closeCode: null,
  retries: 0,
  ticketRetries: 0,
  timer: null,
  // The person's Settings choice, unless they flipped Fit/1:1 on this device since.
  scale: (localStorage.getItem("quetzal.console.scale") || (app.dataset.scaling === "actual" ? "1:1" : "fit")) !== "1:1",
  modifiers: new Set(),
  // While the guest boots (VNC answers long before it takes input) keys wait here, then replay in order.
  booting: false,
  held: [],
  readyTimer: null,
  zoom: null, // the pinch zoom's screen pixels per desktop pixel, between fit and MAX_ZOOM; null when not zoomed
  // Zoomed by two fingers (dragged by one), not by the 1:1 button: what `zoom` says, read by the tests too.
  get pinched() {
    return this.zoom !== null;
  },
  centre: null, // the desktop's point in the middle of the zoomed screen, kept there when the window changes
};
const MAX_HELD_KEYS = 2000;
// A VNC handshake that has not finished by then is a failure to report, not "Connecting…" for ever.
const CONNECT_TIMEOUT_MS = 20000;
// Tests and support staff can look at the live connection from the browser console.
window.quetzalConsole = state;

const csrf = () => document.cookie.split("; ").find((c) => c.startsWith("csrftoken="))?.split("=")[1] ?? "";

class ApiError extends Error {
  constructor(status, body) {
    super(body.detail || interpolate(gettext("Request failed (%s)"), [status]));
    this.status = status;
    this.code = body.code || "error";
  }
}

async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
    body: body ? JSON.stringify(body) : undefined,
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function setStatus(kind, text) {
  app.dataset.state = kind;
  statusLabel.textContent = text;
}

function showOverlay(title, text, actions = []) {
  document.getElementById("qc-overlay-title").textContent = title;
  document.getElementById("qc-overlay-text").textContent = text;
  overlay.querySelectorAll("[data-cmd]").forEach((el) => (el.hidden = !actions.includes(el.dataset.cmd)));
  overlay.hidden = false;
}

function hideOverlay() {
  overlay.hidden = true;
}

function later(fn, ms) {
  clearTimeout(state.timer);
  state.timer = setTimeout(fn, ms);
}

// ---------------------------------------------------------------------------------- connection

async function connect() {
  clearTimeout(state.timer);
  hideOverlay();
  setStatus(state.retries ? "reconnecting" : "connecting", state.retries ? gettext("Reconnecting…") : gettext("Connecting…"));
  let ticket;
  try {
    ticket = await api("POST", `/api/v1/desktops/${desktopId}/console-ticket/`);
  } catch (error) {
    return refused(error.code, error.message, error.status);
  }
  // The origin as "wss://host" (not a template with "}//", which xgettext reads as a comment and then misses strings).
  const origin = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
  const socket = new WebSocket(origin + ticket.websocket, ticket.protocols);
  socket.binaryType = "arraybuffer";
  state.closeCode = null;
  // Registered before noVNC's own handler, so the code is known when noVNC reports the disconnect.
  socket.addEventListener("close", (event) => (state.closeCode = event.code));
  let rfb;
  try {
    rfb = new RFB(screen, socket, { shared: true });
  } catch (error) {
    socket.close();
    return failed(interpolate(gettext("The console could not start: %s"), [error.message]));
  }
  later(() => {
    if (state.rfb === rfb && app.dataset.state !== "connected" && app.dataset.state !== "booting") {
      rfb.disconnect();
      failed(gettext("The desktop's console did not answer in time."));
    }
  }, CONNECT_TIMEOUT_MS);
  rfb.background = "#111";
  rfb.resizeSession = app.dataset.scaling === "remote";
  if (app.dataset.quality) rfb.qualityLevel = Number(app.dataset.quality);
  if (app.dataset.compression) rfb.compressionLevel = Number(app.dataset.compression);
  rfb.focusOnClick = true;
  keepZoomOnRelayout(rfb);
  applyScale(rfb);
  rfb.addEventListener("connect", () => {
    clearTimeout(state.timer);
    state.retries = 0;
    state.ticketRetries = 0;
    hideOverlay();
    rfb.focus({ preventScroll: true });
    waitUntilReady(rfb);
    startAudio(`${origin}/ws/desktops/${desktopId}/audio/`, ticket.protocols);
  });
  rfb.addEventListener("disconnect", () => onDisconnect(rfb));
  rfb.addEventListener("clipboard", (event) => fromDesktopClipboard(event.detail.text));
  rfb.addEventListener("credentialsrequired", () => {
    // Quetzal's VNC servers need no password behind the proxy; asking means a misconfigured host.
    rfb.disconnect();
    showOverlay(
      gettext("Console unavailable"),
      gettext("The desktop's console asked for a password. Contact your administrator."),
    );
  });
  state.rfb = rfb;
}

// ----------------------------------------------------------------------------------- readiness

// "Ready" only when the guest says so (desktops.services.readiness); until then the screen shows, input waits.
async function waitUntilReady(rfb) {
  clearTimeout(state.readyTimer);
  if (state.rfb !== rfb) return;
  let status;
  try {
    status = await api("GET", `/api/v1/desktops/${desktopId}/readiness/`);
  } catch (error) {
    status = { ready: false, booting_s: null, interval_ms: 2000 };
  }
  if (state.rfb !== rfb) return;
  if (status.ready) {
    state.booting = false;
    rfb.viewOnly = false;
    setStatus("connected", gettext("Ready"));
    replayHeldKeys(rfb);
    return;
  }
  state.booting = true;
  rfb.viewOnly = true;
  const booting =
    status.booting_s == null
      ? gettext("Booting…")
      : interpolate(gettext("Booting… %s s"), [Math.round(status.booting_s)]);
  const waiting = state.held.length
    ? ` · ${interpolate(ngettext("%s key waiting", "%s keys waiting", keyCount()), [keyCount()])}`
    : "";
  setStatus("booting", `${booting}${waiting}`);
  state.readyTimer = setTimeout(() => waitUntilReady(rfb), status.interval_ms || 1000);
}

const keyCount = () => state.held.filter((k) => k.down).length;

function holdKey(keysym, code, down) {
  if (state.held.length < MAX_HELD_KEYS) state.held.push({ keysym, code, down });
}

function replayHeldKeys(rfb) {
  const keys = state.held.splice(0);
  for (const { keysym, code, down } of keys) rfb.sendKey(keysym, code, down);
}

// Every key the console sends goes through here, so nothing typed while booting is lost.
function sendKey(keysym, code, down) {
  if (state.booting) return holdKey(keysym, code, down);
  state.rfb?.sendKey(keysym, code, down);
}

// noVNC drops keys in view-only mode; catch them first (capture phase) while the guest boots.
for (const kind of ["keydown", "keyup"]) {
  screen.addEventListener(
    kind,
    (event) => {
      if (!state.booting || !state.rfb) return;
      const keysym = getKeysym(event);
      if (keysym) holdKey(keysym, getKeycode(event), kind === "keydown");
      event.preventDefault();
      event.stopPropagation();
    },
    true,
  );
}

// --------------------------------------------------------------------------------------- sound

// The proxy sends Opus packets (20 ms each) when this browser can decode them (WebCodecs), else raw PCM (S16LE,
// stereo, 48 kHz); its first, text frame says which. Either way the samples are scheduled back to back on
// WebAudio. The last second of sound (both channels mixed) is kept so the page (and its tests) can see what
// arrives before a click allows playback.
const SAMPLE_RATE = 48000;
const OPUS_CONFIG = { codec: "opus", sampleRate: SAMPLE_RATE, numberOfChannels: 2 };
const sound = {
  socket: null,
  context: null,
  decoder: null,
  codec: null,
  nextTime: 0,
  muted: localStorage.getItem("quetzal.console.muted") === "1",
  frames: 0,
  bytes: 0,
  samples: 0,
  recent: new Float32Array(SAMPLE_RATE),
  recentAt: 0,
};
state.sound = sound;

async function opusDecodable() {
  if (!window.AudioDecoder || !window.EncodedAudioChunk) return false;
  try {
    return (await AudioDecoder.isConfigSupported(OPUS_CONFIG)).supported === true;
  } catch {
    return false;
  }
}

async function startAudio(url, protocols) {
  if (app.dataset.sound !== "on") return;
  const opus = await opusDecodable();
  stopAudio(); // after the await: a reconnect meanwhile must not leave two sockets playing
  const socket = new WebSocket(opus ? `${url}?codec=opus` : url, protocols);
  socket.binaryType = "arraybuffer";
  socket.addEventListener("message", (event) => receiveSound(event.data));
  sound.socket = socket;
}

function stopAudio() {
  sound.socket?.close();
  sound.socket = null;
  if (sound.decoder && sound.decoder.state !== "closed") sound.decoder.close();
  sound.decoder = null;
}

function audioContext() {
  if (!sound.context && window.AudioContext) sound.context = new AudioContext({ sampleRate: SAMPLE_RATE });
  return sound.context;
}

function receiveSound(data) {
  if (typeof data === "string") {
    sound.codec = JSON.parse(data).codec;
    if (sound.codec === "opus") sound.decoder = opusDecoder();
    return;
  }
  sound.frames += 1;
  sound.bytes += data.byteLength;
  if (sound.codec === "opus") {
    // Every Opus packet decodes on its own; timestamps only order them (20 ms apart).
    const timestamp = sound.frames * 20000;
    sound.decoder?.decode(new EncodedAudioChunk({ type: "key", timestamp, data }));
  } else {
    const samples = new Int16Array(data);
    const frames = samples.length >> 1;
    const left = new Float32Array(frames);
    const right = new Float32Array(frames);
    for (let i = 0; i < frames; i++) {
      left[i] = samples[2 * i] / 32768;
      right[i] = samples[2 * i + 1] / 32768;
    }
    play(left, right);
  }
}

function opusDecoder() {
  const decoder = new AudioDecoder({
    output: (audio) => {
      const frames = audio.numberOfFrames;
      const planes = [new Float32Array(frames), new Float32Array(frames)];
      for (let channel = 0; channel < 2; channel++) {
        audio.copyTo(planes[channel], { planeIndex: channel, format: "f32-planar" });
      }
      audio.close();
      play(planes[0], planes[1]);
    },
    error: () => {
      sound.decoder = null;
    },
  });
  decoder.configure(OPUS_CONFIG);
  return decoder;
}

function play(left, right) {
  const frames = left.length;
  sound.samples += frames;
  for (let i = 0; i < frames; i++) {
    // Both channels mixed: what was heard, whichever speaker played it.
    sound.recent[sound.recentAt] = (left[i] + right[i]) / 2;
    sound.recentAt = (sound.recentAt + 1) % sound.recent.length;
  }
  const context = sound.context;
  if (sound.muted || !context || context.state !== "running" || !frames) return;
  const chunk = context.createBuffer(2, frames, SAMPLE_RATE);
  chunk.copyToChannel(left, 0);
  chunk.copyToChannel(right, 1);
  const source = context.createBufferSource();
  source.buffer = chunk;
  source.connect(context.destination);
  // A little headroom absorbs network jitter; fall back to "now" after a gap instead of drifting behind.
  const at = Math.max(context.currentTime + 0.06, sound.nextTime);
  source.start(at);
  sound.nextTime = at + chunk.duration;
}

// Browsers start audio only after a gesture: the first click or key in the page allows it.
for (const kind of ["pointerdown", "keydown"]) {
  document.addEventListener(kind, () => app.dataset.sound === "on" && audioContext()?.resume(), { capture: true });
}

function showMute() {
  const button = app.querySelector('[data-cmd="mute"]');
  if (!button) return;
  button.setAttribute("aria-pressed", String(sound.muted));
  button.title = sound.muted ? gettext("Unmute the desktop's sound") : gettext("Mute the desktop's sound");
}
showMute();

function onDisconnect(rfb) {
  if (state.rfb !== rfb) return;
  state.rfb = null;
  stopAudio();
  state.booting = false;
  clearTimeout(state.readyTimer);
  const code = state.closeCode;
  switch (code) {
    case CLOSE.signedOut:
      return refused("not_authenticated", gettext("Your session has ended. Sign in again to reach your desktop."), 401);
    case CLOSE.forbidden:
      return refused("console_forbidden", gettext("You may not open this console."), 403);
    case CLOSE.notFound:
      return refused("not_found", gettext("This desktop does not exist any more."), 404);
    case CLOSE.endedElsewhere:
      setStatus("refused", gettext("Disconnected"));
      return showOverlay(gettext("Disconnected"), gettext("This console session was ended elsewhere."), ["reconnect"]);
    case CLOSE.ticket:
      return refused("ticket_invalid", gettext("The console link expired before it was used."), 403);
    case CLOSE.tooMany:
      return refused(
        "too_many_consoles",
        gettext("You have as many consoles open as your organisation allows at once. Close one in another tab or device, then reconnect."),
        429,
      );
    default:
      // The desktop stopped, restarted or the network dropped: find out which, then act.
      return followDesktop();
  }
}

function refused(code, message, status) {
  if (code === "desktop_not_running") return followDesktop();
  if (code === "ticket_invalid" || code.startsWith("ticket_")) {
    // A ticket lives for seconds; one fresh try covers a slow network, a second failure is reported.
    if (state.ticketRetries++ === 0) return connect(); // not "++ <": xgettext reads that as XML
    setStatus("expired", gettext("Link expired"));
    return showOverlay(
      gettext("Console link expired"),
      interpolate(gettext("%s Reconnect to get a new one."), [message]),
      ["reconnect"],
    );
  }
  if (status === 429 || code === "too_many_consoles" || code === "tenant_consoles_full") {
    setStatus("refused", gettext("Too many consoles"));
    return showOverlay(gettext("Too many consoles open"), message, ["reconnect"]);
  }
  if (status === 401 || code === "not_authenticated") {
    setStatus("refused", gettext("Signed out"));
    return showOverlay(gettext("Signed out"), message, ["login"]);
  }
  if (status === 503 || status >= 500 || code === "console_unavailable") {
    return retrySoon(gettext("The desktop's console is not reachable yet."));
  }
  setStatus("refused", gettext("Not allowed"));
  return showOverlay(gettext("Console not available"), message);
}

// Something broke that retrying by itself will not fix soon: say so, and offer to try again.
function failed(message) {
  state.rfb = null;
  setStatus("refused", gettext("Failed"));
  showOverlay(gettext("Console failed"), message, ["reconnect"]);
}

function retrySoon(message) {
  state.retries += 1;
  const delay = Math.min(10000, 500 * 2 ** Math.min(state.retries, 5));
  setStatus("reconnecting", interpolate(gettext("Reconnecting in %s s…"), [Math.round(delay / 1000)]));
  if (message) showOverlay(gettext("Reconnecting"), message, ["reconnect"]);
  later(connect, delay);
}

async function followDesktop() {
  let desktop;
  try {
    desktop = await api("GET", `/api/v1/desktops/${desktopId}/`);
  } catch (error) {
    if (error.status === 404) return refused("not_found", gettext("This desktop does not exist any more."), 404);
    if (error.status === 401 || error.status === 403) return refused("not_authenticated", error.message, 401);
    return retrySoon(gettext("Lost contact with Quetzal; trying again."));
  }
  if (desktop.state === "running") {
    state.retries += 1;
    if (state.retries > 1) setStatus("reconnecting", gettext("Reconnecting…"));
    return later(connect, state.retries > 1 ? Math.min(10000, 400 * 2 ** Math.min(state.retries, 5)) : 300);
  }
  if (BUSY_STATES.includes(desktop.state)) {
    setStatus("waiting", interpolate(gettext("Desktop is %s…"), [desktop.state]));
    showOverlay(
      gettext("Please wait"),
      interpolate(
        gettext("%(name)s is %(state)s. The console comes back by itself."),
        { name: desktop.name, state: desktop.state },
        true,
      ),
    );
    return later(followDesktop, 1500);
  }
  setStatus("stopped", desktop.state === "suspended" ? gettext("Paused") : gettext("Stopped"));
  if (desktop.state === "suspended") {
    return showOverlay(gettext("Desktop paused"), interpolate(gettext("%s is paused."), [desktop.name]), ["resume"]);
  }
  const reason = desktop.status_reason ? ` (${desktop.status_reason})` : "";
  const actions = STOPPED_STATES.includes(desktop.state) ? ["start"] : [];
  return showOverlay(
    gettext("Desktop is not running"),
    interpolate(gettext("%(name)s is %(state)s%(reason)s."), { name: desktop.name, state: desktop.state, reason }, true),
    actions,
  );
}

async function powerOn(action) {
  showOverlay(gettext("Starting"), gettext("Asking for your desktop…"));
  setStatus("waiting", gettext("Starting…"));
  try {
    const result = await api("POST", `/api/v1/desktops/${desktopId}/${action}/`);
    let operation = result.operation;
    while (operation && !["succeeded", "failed"].includes(operation.status)) {
      setStatus("waiting", operation.step || operation.status);
      await sleep(500);
      operation = await api("GET", operation.url);
    }
    if (operation && operation.status === "failed") throw new Error(operation.error || gettext("The desktop did not start."));
    state.retries = 0;
    connect();
  } catch (error) {
    setStatus("stopped", gettext("Stopped"));
    showOverlay(gettext("Could not start"), error.message, [action]);
  }
}

// ------------------------------------------------------------------------------ view and keys

// Pinch zoom drives noVNC's own Display, its scale and its clipped viewport, never a CSS transform over the canvas:
// noVNC maps a finger or the mouse to the desktop through that scale and viewport (Display.absX/absY), so a tap on
// a zoomed screen clicks the desktop's pixel under the finger. Display and its fields are noVNC 1.7.0's (vendored).
const MAX_ZOOM = 3; // the largest pinch: three screen pixels for each of the desktop's
// Fingers that come this little closer or apart are resting on the glass, not pinching.
const PINCH_SLOP_PX = 16;
// A second tap this soon and this near the first, on a zoomed screen, fits the desktop again (noVNC's own double
// tap allows 1 s and 50 px to help a double click; a fit needs a quicker, deliberate one).
const DOUBLE_TAP_MS = 400;
const DOUBLE_TAP_PX = 30;
// The scale button shows a pinch zoom as a percentage of 1:1, written as the page's language writes one.
const percent = new Intl.NumberFormat(document.documentElement.lang || undefined, {
  style: "percent",
  maximumFractionDigits: 0,
});

function showScale() {
  const button = app.querySelector('[data-cmd="scale"]');
  button.textContent = state.zoom !== null ? percent.format(state.zoom) : state.scale ? gettext("Fit") : "1:1";
  button.setAttribute("aria-pressed", String(state.scale));
}

function applyScale(rfb = state.rfb) {
  showScale();
  if (!rfb) return;
  // noVNC's own modes: fit (its autoscale), or 1:1 in the page's scrolling (the button). A pinch zoom clips the
  // desktop to the screen at a scale of ours instead (zoomTo); one finger then pans it (onGesture), not noVNC's
  // dragViewport, which moves a clipped view by screen pixels as if the scale were 1.
  rfb.dragViewport = false;
  rfb.scaleViewport = state.scale && state.zoom === null;
  rfb.clipViewport = state.zoom !== null;
  relayoutZoom(rfb);
}

// noVNC re-lays its screen out after a window resize or rotation (the key bar showing, too) and after the desktop
// changes its size, each time ending in _updateScale, which sets a clipped view back to 1:1: the zoom is laid out
// again right after it, so it survives all of them.
function keepZoomOnRelayout(rfb) {
  const updateScale = rfb._updateScale.bind(rfb);
  rfb._updateScale = () => {
    updateScale();
    relayoutZoom(rfb);
  };
}

// The scale noVNC's fit gives this screen (Display.autoscale): the whole desktop, as large as it fits.
function fitScale(rfb) {
  const display = rfb._display;
  const box = rfb._screen.getBoundingClientRect();
  if (!display.width || !display.height || !box.width || !box.height) return 1;
  return Math.min(box.width / display.width, box.height / display.height);
}

const maxZoom = (fit) => Math.max(MAX_ZOOM, fit);

// The desktop's point under a point of the window, as noVNC maps a finger there (its canvas, scale and viewport).
function desktopPointAt(rfb, x, y) {
  const display = rfb._display;
  const canvas = rfb._canvas.getBoundingClientRect();
  const scale = display.scale || 1;
  const view = display._viewportLoc;
  return { x: (x - canvas.left) / scale + view.x, y: (y - canvas.top) / scale + view.y };
}

function screenCentre(rfb) {
  const box = rfb._screen.getBoundingClientRect();
  return { x: box.left + box.width / 2, y: box.top + box.height / 2 };
}

// The desktop at `zoom` screen pixels per desktop pixel, its point `at` under the window's point `under`.
function zoomTo(rfb, zoom, at, under) {
  const display = rfb._display;
  const box = rfb._screen.getBoundingClientRect();
  // The viewport is what of the desktop fills the screen at this scale (noVNC keeps it inside the desktop).
  display.viewportChangeSize(box.width / zoom, box.height / zoom);
  display.scale = zoom;
  // Where the canvas sits now: noVNC centres it while it is narrower or lower than the screen.
  const canvas = rfb._canvas.getBoundingClientRect();
  const view = display._viewportLoc;
  const x = Math.round(at.x - (under.x - canvas.left) / zoom);
  const y = Math.round(at.y - (under.y - canvas.top) / zoom);
  display.viewportChangePos(x - view.x, y - view.y);
  state.zoom = zoom;
  keepCentre(rfb);
}

function keepCentre(rfb) {
  const centre = screenCentre(rfb);
  state.centre = desktopPointAt(rfb, centre.x, centre.y);
}

// After noVNC laid the screen out anew: the same zoom (within what this screen allows), the same point in its middle.
function relayoutZoom(rfb) {
  // Not before noVNC clips (applyScale turns that on last) nor before the desktop's first screen.
  if (state.zoom === null || !rfb._display.clipViewport || !rfb._display.width) return;
  const fit = fitScale(rfb);
  if (state.zoom <= fit) return fitAgain(rfb);
  zoomTo(rfb, Math.min(state.zoom, maxZoom(fit)), state.centre, screenCentre(rfb));
}

function zoomIn(zoom, at, under) {
  const rfb = state.rfb;
  if (state.zoom === null) {
    state.scale = false;
    state.zoom = zoom;
    state.centre = at;
    applyScale(rfb);
  }
  zoomTo(rfb, zoom, at, under);
  showScale();
}

function fitAgain(rfb = state.rfb) {
  if (state.zoom === null && state.scale) return;
  state.zoom = null;
  state.scale = true;
  applyScale(rfb);
}

// Two fingers zoom the desktop continuously between fit and MAX_ZOOM, the desktop's point first between them staying
// between them (so moving both pans too) wherever the zoomed desktop is larger than the screen; along a side it
// fits, noVNC centres it. Two fingers' moves stop here: noVNC would turn them into a zoom inside the desktop
// (Ctrl + wheel) or a scroll. It still sees them touch and lift, or its gesture handler loses count of the fingers
// (a lift it never saw start throws, and it then ignores the next tap); what it makes of them is dropped (onGesture).
let pinch = null; // while two fingers are down: their first distance, the scale then and the point between them
let afterPinch = false; // until every finger is up: what noVNC makes of a pinch's fingers is no tap, drag nor press
const spread = (touches) =>
  Math.hypot(touches[0].clientX - touches[1].clientX, touches[0].clientY - touches[1].clientY);
const middle = (touches) => ({
  x: (touches[0].clientX + touches[1].clientX) / 2,
  y: (touches[0].clientY + touches[1].clientY) / 2,
});

screen.addEventListener(
  "touchstart",
  (event) => {
    if (event.touches.length !== 2) return;
    afterPinch = true;
    pinch = null;
    const rfb = state.rfb;
    if (!rfb || !rfb._display.width) return; // nothing on the screen to zoom yet
    const at = middle(event.touches);
    pinch = {
      distance: spread(event.touches) || 1,
      from: rfb._display.scale,
      at: desktopPointAt(rfb, at.x, at.y),
      moving: false,
    };
  },
  { capture: true },
);
screen.addEventListener(
  "touchmove",
  (event) => {
    if (event.touches.length !== 2) return;
    event.stopPropagation();
    event.preventDefault();
    if (pinch === null || !state.rfb) return;
    const distance = spread(event.touches);
    if (!pinch.moving && Math.abs(distance - pinch.distance) < PINCH_SLOP_PX) return;
    pinch.moving = true;
    const fit = fitScale(state.rfb);
    const zoom = Math.min(maxZoom(fit), (pinch.from * distance) / pinch.distance);
    // Pinching in past fit stops at fit: a smaller desktop than the screen helps nobody.
    if (zoom <= fit) fitAgain();
    else zoomIn(zoom, pinch.at, middle(event.touches));
  },
  { capture: true, passive: false },
);
const fingersUp = (event) => {
  if (event.touches.length < 2) pinch = null;
  // noVNC reads this touchend after us, in the same dispatch: its gestures from it are still the pinch's.
  if (event.touches.length === 0 && afterPinch) setTimeout(() => (afterPinch = false), 0);
};
screen.addEventListener("touchend", fingersUp, { capture: true });
screen.addEventListener("touchcancel", fingersUp, { capture: true });

// noVNC's gestures from one finger (core/input/gesturehandler.js), seen before its canvas: on a zoomed screen a
// drag pans the view under the finger, a quick double tap fits; a tap (and a long press) still reach the desktop.
let pan = null;
let lastTap = null;

function onGesture(event) {
  const { type, clientX, clientY } = event.detail;
  if (afterPinch && event.type === "gesturestart") return event.stopPropagation();
  const rfb = state.rfb;
  if (state.zoom === null || !rfb) return;
  if (type === "onetap" && event.type === "gesturestart") {
    const now = Date.now();
    const near = lastTap && Math.hypot(clientX - lastTap.x, clientY - lastTap.y) < DOUBLE_TAP_PX;
    if (near && now - lastTap.at < DOUBLE_TAP_MS) {
      // The first tap clicked already; this one only fits (it would make a double click of a "back to fit").
      lastTap = null;
      event.stopPropagation();
      return fitAgain();
    }
    lastTap = { at: now, x: clientX, y: clientY };
    return;
  }
  if (type !== "drag") return;
  event.stopPropagation();
  const display = rfb._display;
  const view = display._viewportLoc;
  if (event.type === "gesturestart") pan = { x: clientX, y: clientY, left: view.x, top: view.y };
  else if (pan && event.type === "gesturemove") {
    // Screen pixels to desktop pixels: the desktop moves with the finger at any zoom.
    const x = Math.round(pan.left + (pan.x - clientX) / state.zoom);
    const y = Math.round(pan.top + (pan.y - clientY) / state.zoom);
    display.viewportChangePos(x - view.x, y - view.y);
    keepCentre(rfb);
  } else pan = null;
}
for (const kind of ["gesturestart", "gesturemove", "gestureend"]) {
  screen.addEventListener(kind, onGesture, { capture: true });
}

// US layout: the physical key (for QEMU's scancode path) and whether Shift is needed.
const PUNCTUATION = {
  " ": ["Space", false], "-": ["Minus", false], "_": ["Minus", true], "=": ["Equal", false], "+": ["Equal", true],
  "[": ["BracketLeft", false], "{": ["BracketLeft", true], "]": ["BracketRight", false], "}": ["BracketRight", true],
  "\\": ["Backslash", false], "|": ["Backslash", true], ";": ["Semicolon", false], ":": ["Semicolon", true],
  "'": ["Quote", false], '"': ["Quote", true], ",": ["Comma", false], "<": ["Comma", true], ".": ["Period", false],
  ">": ["Period", true], "/": ["Slash", false], "?": ["Slash", true], "\u0060": ["Backquote", false], "~": ["Backquote", true],
  "\n": ["Enter", false], "\t": ["Tab", false],
};
const SHIFTED_DIGITS = ")!@#$%^&*(";

function physicalKey(ch) {
  if (/^[a-z]$/.test(ch)) return [`Key${ch.toUpperCase()}`, false];
  if (/^[A-Z]$/.test(ch)) return [`Key${ch}`, true];
  if (/^[0-9]$/.test(ch)) return [`Digit${ch}`, false];
  const digit = SHIFTED_DIGITS.indexOf(ch);
  if (digit >= 0) return [`Digit${digit}`, true];
  return PUNCTUATION[ch] || [null, false];
}

const NAMED = {
  Escape: [KeyTable.XK_Escape, "Escape"], Tab: [KeyTable.XK_Tab, "Tab"], Enter: [KeyTable.XK_Return, "Enter"],
  Backspace: [KeyTable.XK_BackSpace, "Backspace"], Delete: [KeyTable.XK_Delete, "Delete"],
  ArrowLeft: [KeyTable.XK_Left, "ArrowLeft"], ArrowRight: [KeyTable.XK_Right, "ArrowRight"],
  ArrowUp: [KeyTable.XK_Up, "ArrowUp"], ArrowDown: [KeyTable.XK_Down, "ArrowDown"],
  Home: [KeyTable.XK_Home, "Home"], End: [KeyTable.XK_End, "End"],
  Control: [KeyTable.XK_Control_L, "ControlLeft"], Alt: [KeyTable.XK_Alt_L, "AltLeft"],
  Shift: [KeyTable.XK_Shift_L, "ShiftLeft"], Super: [KeyTable.XK_Super_L, "MetaLeft"],
  Print: [KeyTable.XK_Print, "PrintScreen"],
};
for (let n = 1; n <= 12; n++) NAMED[`F${n}`] = [KeyTable[`XK_F${n}`], `F${n}`];

const COMBOS = {
  "ctrl-alt-del": ["Control", "Alt", "Delete"], "ctrl-alt-backspace": ["Control", "Alt", "Backspace"],
  "alt-tab": ["Alt", "Tab"], super: ["Super"], escape: ["Escape"], print: ["Print"],
};
for (let n = 1; n <= 12; n++) {
  COMBOS[`f${n}`] = [`F${n}`];
  COMBOS[`ctrl-alt-f${n}`] = ["Control", "Alt", `F${n}`];
}

// Press keys in order and release them in reverse, as fingers would.
function chord(names) {
  if (!state.rfb) return;
  const keys = names.map((name) => NAMED[name]);
  keys.forEach(([keysym, code]) => sendKey(keysym, code, true));
  keys.reverse().forEach(([keysym, code]) => sendKey(keysym, code, false));
}

// The sticky Ctrl/Alt of the key bar apply to the next key, then let go.
function withModifiers(names) {
  const held = [...state.modifiers];
  chord([...held, ...names]);
  if (held.length) {
    state.modifiers.clear();
    app.querySelectorAll("[data-mod]").forEach((b) => b.setAttribute("aria-pressed", "false"));
  }
}

function typeChar(ch) {
  if (!state.rfb) return;
  const [code, shifted] = physicalKey(ch);
  const keysym = ch === "\n" ? KeyTable.XK_Return : ch === "\t" ? KeyTable.XK_Tab : keysyms.lookup(ch.codePointAt(0));
  const held = [...state.modifiers].map((name) => NAMED[name]);
  // A synthetic shifted character arrives without Shift unless Shift is pressed around it.
  if (shifted) held.push(NAMED.Shift);
  held.forEach(([sym, c]) => sendKey(sym, c, true));
  sendKey(keysym, code, true);
  sendKey(keysym, code, false);
  held.reverse().forEach(([sym, c]) => sendKey(sym, c, false));
  if (state.modifiers.size) withModifiers([]);
}

function typeText(text) {
  for (const ch of text.replace(/\r\n?/g, "\n")) typeChar(ch);
}

// ---------------------------------------------------------------------------------- clipboard

function fromDesktopClipboard(text) {
  clipText.value = text;
  // Browsers allow this only in secure contexts while the page has focus; the panel always works.
  navigator.clipboard?.writeText(text).catch(() => {});
}

function toggle(panel, button) {
  panel.hidden = !panel.hidden;
  button.setAttribute("aria-expanded", String(!panel.hidden));
  if (!panel.hidden && panel.querySelector("textarea")) panel.querySelector("textarea").focus();
}

// --------------------------------------------------------------------------- on-screen keyboard

const coarse = window.matchMedia("(pointer: coarse)").matches;
app.dataset.keybar = coarse ? "on" : "off";
app.querySelector('[data-cmd="keyboard"]').setAttribute("aria-pressed", String(coarse));

osk.addEventListener("beforeinput", (event) => {
  const kind = event.inputType;
  if (kind === "insertText" || kind === "insertReplacementText") typeText(event.data || "");
  else if (kind === "insertLineBreak" || kind === "insertParagraph") withModifiers(["Enter"]);
  else if (kind === "deleteContentBackward") withModifiers(["Backspace"]);
  else if (kind === "deleteContentForward") withModifiers(["Delete"]);
  else if (kind.startsWith("insertComposition")) return; // finished in compositionend
  event.preventDefault();
});
osk.addEventListener("compositionend", (event) => {
  typeText(event.data || "");
  osk.value = "";
});
osk.addEventListener("keydown", (event) => {
  // Hardware keyboards on tablets: keys that produce no text still have to reach the desktop.
  const named = ["Escape", "Tab", "ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "Delete"];
  if (named.includes(event.key)) {
    withModifiers([event.key]);
    event.preventDefault();
  }
});

// Tapping a key-bar button must not take the focus (and with it the phone's keyboard) away.
document.getElementById("qc-keybar").addEventListener("mousedown", (event) => {
  if (event.target.closest("button") && document.activeElement === osk) event.preventDefault();
});

// ------------------------------------------------------------------------------------ wiring

document.addEventListener("click", (event) => {
  const button = event.target.closest("button, a[data-cmd]");
  if (!button || !app.contains(button)) return;
  const cmd = button.dataset.cmd;
  if (button.dataset.combo) {
    chord(COMBOS[button.dataset.combo]);
    button.closest("details")?.removeAttribute("open");
    state.rfb?.focus({ preventScroll: true });
    return;
  }
  if (button.dataset.key) return withModifiers([button.dataset.key]);
  if (button.dataset.mod) {
    const mod = button.dataset.mod;
    if (state.modifiers.has(mod)) state.modifiers.delete(mod);
    else state.modifiers.add(mod);
    button.setAttribute("aria-pressed", String(state.modifiers.has(mod)));
    return;
  }
  switch (cmd) {
    case "scale":
      state.scale = !state.scale;
      state.zoom = null; // the button resets a pinch zoom: Fit, or the plain 1:1 view
      localStorage.setItem("quetzal.console.scale", state.scale ? "fit" : "1:1");
      return applyScale();
    case "fullscreen":
      if (document.fullscreenElement) return document.exitFullscreen();
      return app.requestFullscreen?.().catch(() => {});
    case "clipboard":
      return toggle(document.getElementById("qc-clipboard"), button);
    case "keyboard": {
      const on = app.dataset.keybar !== "on";
      app.dataset.keybar = on ? "on" : "off";
      button.setAttribute("aria-pressed", String(on));
      if (on) osk.focus();
      return;
    }
    case "osk":
      return osk.focus();
    case "clip-send":
      return state.rfb?.clipboardPasteFrom(clipText.value);
    case "clip-type":
      return typeText(clipText.value);
    case "clip-paste":
      return navigator.clipboard
        ?.readText()
        .then((text) => {
          clipText.value = text;
          state.rfb?.clipboardPasteFrom(text);
        })
        .catch(() => {});
    case "mute":
      sound.muted = !sound.muted;
      localStorage.setItem("quetzal.console.muted", sound.muted ? "1" : "0");
      if (!sound.muted) audioContext()?.resume();
      return showMute();
    case "reconnect":
      state.retries = 0;
      state.ticketRetries = 0;
      return connect();
    case "start":
      return powerOn("start");
    case "resume":
      return powerOn("resume");
    default:
      return undefined;
  }
});

if (!document.fullscreenEnabled) app.querySelector('[data-cmd="fullscreen"]').hidden = true;
window.addEventListener("pagehide", () => state.rfb?.disconnect());

connect();
