// The portal's use of live.js: a desktop's recent CPU/RAM to start its sparkline, then every new
// reading, and a nudge when its state changes (the card is then re-read from the server).
import { onStatus, series, subscribe } from "./live.js";

const MINUTES = "15m";

function percentOf(used, total) {
  return used != null && total > 0 ? Math.min(100, (100 * used) / total) : null;
}

export function connect({ onSamples, onChange }) {
  const watched = new Map(); // desktop id -> { memoryMib, stop }

  async function backfill(id) {
    const entry = watched.get(id);
    try {
      const data = await series({ desktop: id }, MINUTES);
      const samples = data.t.map((_, i) => ({
        cpu: data.cpu_percent[i],
        memory: percentOf(data.memory_used_mib[i], entry.memoryMib),
      }));
      onSamples(id, samples.slice(-60));
    } catch (error) {
      // No history yet (a desktop that just started): live readings fill the line.
    }
  }

  function watch(id, memoryMib) {
    id = String(id);
    if (watched.has(id)) return;
    const entry = { memoryMib, stop: null };
    watched.set(id, entry);
    entry.stop = subscribe({ desktop: id }, (message) => {
      if (message.type === "metrics") {
        const total = message.memory_total_mib || entry.memoryMib;
        onSamples(id, [{ cpu: message.cpu_percent, memory: percentOf(message.memory_used_mib, total) }]);
      } else if (message.type === "state") {
        onChange(id, message);
      }
    });
    backfill(id);
  }

  // After a reconnection the gap is filled from the stored series.
  let first = true;
  onStatus((status) => {
    if (status !== "open") return;
    if (!first) for (const id of watched.keys()) backfill(id);
    first = false;
  });

  return { watch };
}
