// Live figures and events for Quetzal pages: one shared WebSocket per page (/ws/live/), topics the
// server authorises for the signed-in person, reconnection with re-subscription, and chart series.
//
// API (an ES module; also on window.quetzalLive for inline scripts):
//
//   import { subscribe, onStatus, series } from "/static/js/live.js";
//
//   const stop = subscribe({ desktop: 12 }, (msg) => { ... }, { onError: (err) => { ... } });
//   subscribe({ tenant: true }, onMessage);      // tenant admins: every desktop of the active tenant
//   subscribe({ operators: true }, onMessage);   // staff: host totals
//   stop();                                      // unsubscribe (the socket closes with the last topic)
//
//   onStatus((status) => { ... });  // "connecting" | "open" | "closed" (retrying) | "signed_out"
//   const data = await series({ desktop: 12 }, "1h");  // or { tenant: true } / { host: 3 }
//   // ranges: 15m, 1h (raw, every few seconds), 6h, 24h (per minute), 7d, 30d, 90d (per hour)
//   // data = { range, resolution, step_s, start, end, t: [...], cpu_percent: [...], ... } where `t`
//   // holds seconds since the epoch and the other lists line up with it (uPlot takes [t, ...] as is).
//
// Messages (every one has `type` and `topic`: "desktop:<id>", "tenant" or "operators"; times `at`
// are seconds since the epoch):
//   type "metrics", desktop topic: { desktop, at, cpu_percent, vcpus, memory_used_mib,
//       memory_total_mib, disk_read_bps, disk_write_bps, net_rx_bps, net_tx_bps }  (null = unknown yet)
//   type "metrics", tenant topic: { at, desktops: [{ desktop, cpu_percent, vcpus, memory_used_mib,
//       memory_total_mib }] }  (one message per host collection: keep the latest entry per desktop)
//   type "host", operators topic: { host, name, at, desktops, cpu_percent, cpu_cores, memory_used_mib,
//       disk_read_bps, disk_write_bps, net_rx_bps, net_tx_bps, cpus, memory_mib, free_memory_mib,
//       allocated_vcpus, vcpu_capacity, allocated_memory_mib, memory_capacity_mib }
//   type "state", desktop and tenant topics: { desktop, state, reason, at }
//   type "stop_notice", desktop topic: { desktop, at, clock, deferrable }  (the pool's plan stops it at `at`,
//       `clock` on the tenant's wall clock; the console shows it, see console_stop.js)
//   type "operation", desktop and tenant topics: { desktop, operation, kind, status, step,
//       error_code, error }  (status: queued | running | succeeded | failed)
//
// onError receives { code, topic, detail } when the server refuses a topic. Codes: not_found (no
// such desktop for this person), admin_required, forbidden (operators only), no_tenant,
// too_many_topics, invalid. A refused topic is not retried.
//
// Events sent before the socket subscribed are not replayed: when onStatus reports "open" (also
// after a reconnection), read the current state once from the API (e.g. the operation's URL) and
// apply the live messages on top.
import "./i18n.js"; // gettext() even where no catalogue loaded

const SIGNED_OUT = 4401;
const TOO_MANY_REFUSALS = 4429;
const MAX_BACKOFF_MS = 30000;

const listeners = new Map(); // topic -> Set of { onMessage, onError }
const statusListeners = new Set();
let socket = null;
let backoffMs = 1000;
let retryTimer = null;
let status = "closed";
let gaveUp = false;

function topicOf(spec) {
  if (spec && spec.desktop !== undefined) return `desktop:${Number(spec.desktop)}`;
  if (spec && spec.tenant) return "tenant";
  if (spec && spec.operators) return "operators";
  throw new TypeError("subscribe() takes {desktop: id}, {tenant: true} or {operators: true}");
}

function setStatus(next) {
  status = next;
  for (const listener of statusListeners) listener(next);
}

function send(frame) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}

function dispatch(message) {
  const entries = listeners.get(message.topic);
  if (!entries) return;
  for (const entry of [...entries]) {
    try {
      if (message.type === "error") entry.onError?.(message);
      else entry.onMessage(message);
    } catch (error) {
      console.error("live listener failed", error);
    }
  }
}

function connect() {
  if (socket || gaveUp || listeners.size === 0) return;
  const origin = (location.protocol === "https:" ? "wss://" : "ws://") + location.host; // no "}//": see console.js
  socket = new WebSocket(`${origin}/ws/live/`);
  setStatus("connecting");
  socket.addEventListener("open", () => {
    backoffMs = 1000;
    setStatus("open");
    for (const topic of listeners.keys()) send({ subscribe: topic });
  });
  socket.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "error" && message.topic) {
      dispatch(message);
      listeners.delete(message.topic); // refused: asking again would get the same answer
    } else if (message.topic) {
      dispatch(message);
    }
  });
  socket.addEventListener("close", (event) => {
    socket = null;
    if (event.code === SIGNED_OUT || event.code === TOO_MANY_REFUSALS) {
      gaveUp = true;
      setStatus("signed_out");
      return;
    }
    setStatus("closed");
    if (listeners.size === 0) return;
    // Jitter spreads a thousand pages' reconnections after a server restart.
    const delay = backoffMs * (0.5 + Math.random());
    backoffMs = Math.min(MAX_BACKOFF_MS, backoffMs * 2);
    retryTimer = setTimeout(() => {
      retryTimer = null;
      connect();
    }, delay);
  });
}

export function subscribe(spec, onMessage, { onError } = {}) {
  const topic = topicOf(spec);
  const entry = { onMessage, onError };
  let entries = listeners.get(topic);
  if (!entries) {
    entries = new Set();
    listeners.set(topic, entries);
    send({ subscribe: topic });
  }
  entries.add(entry);
  if (!socket && !retryTimer) connect();
  return function unsubscribe() {
    const current = listeners.get(topic);
    if (!current) return;
    current.delete(entry);
    if (current.size === 0) {
      listeners.delete(topic);
      send({ unsubscribe: topic });
      if (listeners.size === 0 && socket) socket.close(1000);
    }
  };
}

export function onStatus(listener) {
  statusListeners.add(listener);
  listener(status);
  return () => statusListeners.delete(listener);
}

export async function series(spec, range = "1h") {
  let path;
  if (spec && spec.desktop !== undefined) path = `/api/v1/desktops/${Number(spec.desktop)}/metrics/`;
  else if (spec && spec.tenant) path = "/api/v1/metrics/tenant/";
  else if (spec && spec.host !== undefined) path = `/api/v1/metrics/hosts/${Number(spec.host)}/`;
  else throw new TypeError("series() takes {desktop: id}, {tenant: true} or {host: id}");
  const response = await fetch(`${path}?range=${encodeURIComponent(range)}`, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.detail || interpolate(gettext("Request failed (%s)"), [response.status]));
    error.code = body.code || "error";
    error.status = response.status;
    throw error;
  }
  return body;
}

window.quetzalLive = { subscribe, onStatus, series };
