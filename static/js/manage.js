// The tenant admin (manage) pages: confirmations, the desktop-hours chart, and live usage from live.js.
import "./i18n.js"; // gettext() even where no catalogue loaded
import { dayBars, liveLines } from "./charts.js";
import { confirmForms } from "./ui.js";

confirmForms();

// On phones the sidebar is a strip of tabs: keep the current one in view.
document.querySelector(".manage-nav [aria-current=page]")?.scrollIntoView({ block: "nearest", inline: "center" });

// A form sent back with errors: bring its first error into view (on a phone it is often far below the top).
document.querySelector("form .errorlist, form .field-error")?.scrollIntoView({ block: "center" });

// A copy button copies the read-only field beside it (the DNS record to publish); where the page may not use the
// clipboard (plain http), the text is selected for the person to copy.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  const field = button?.parentElement.querySelector("input[readonly]");
  if (!field) return;
  field.select();
  try {
    await navigator.clipboard.writeText(field.value);
    button.textContent = gettext("Copied");
  } catch (error) {
    button.textContent = gettext("Selected: copy it");
  }
});

const hours = document.getElementById("hours-chart-data");
if (hours) dayBars(document.getElementById("hours-chart"), JSON.parse(hours.textContent));

// A desktop not heard from for this long has stopped reporting (stopped, moved, deleted).
const STALE_S = 45;

function gib(mib) {
  return mib >= 1024 ? `${(mib / 1024).toFixed(1)} GiB` : `${Math.round(mib)} MiB`;
}

async function liveUsage(panel) {
  let live;
  try {
    live = await import("./live.js");
  } catch (error) {
    panel.querySelector("[data-live-status]").textContent = gettext("live figures unavailable");
    return;
  }
  const status = panel.querySelector("[data-live-status]");
  const chart = liveLines(document.getElementById("live-chart"), ["CPU busy (vCPUs)", "RAM used (GiB)"], {
    height: 160,
    max: null,
    unit: "",
    legend: false,
  });
  const latest = new Map(); // desktop id -> { at, cores, memory }
  const show = (at) => {
    for (const [id, entry] of latest) if (at - entry.at > STALE_S) latest.delete(id);
    let cores = 0;
    let memory = 0;
    for (const entry of latest.values()) {
      cores += entry.cores;
      memory += entry.memory;
    }
    panel.querySelector("[data-live=cpu]").textContent = cores.toFixed(1);
    panel.querySelector("[data-live=memory]").textContent = gib(memory);
    status.textContent = interpolate(
      ngettext("%s desktop reporting", "%s desktops reporting", latest.size),
      [latest.size],
    );
    chart?.push([cores, memory / 1024], at);
  };
  try {
    const past = await live.series({ tenant: true }, "1h");
    past.t.forEach((t, i) => chart?.push([past.cpu_cores[i] ?? null, (past.memory_used_mib[i] ?? 0) / 1024], t));
  } catch (error) {
    // Nothing collected yet: the chart starts with the first reading.
  }
  const figures = () => document.getElementById("figures");
  live.subscribe(
    { tenant: true },
    (message) => {
      if (message.type === "metrics") {
        for (const d of message.desktops) {
          latest.set(String(d.desktop), {
            at: message.at,
            cores: ((d.cpu_percent ?? 0) * (d.vcpus || 0)) / 100,
            memory: d.memory_used_mib || 0,
          });
        }
        show(message.at);
      } else if (message.type === "state" && window.htmx && figures()) {
        // A desktop started or stopped: refresh the figures now rather than at the next tick.
        window.htmx.trigger(figures(), "refresh");
      }
    },
    { onError: (error) => (status.textContent = error.detail || gettext("live figures refused")) },
  );
}

const panel = document.getElementById("live-usage");
if (panel) liveUsage(panel);
