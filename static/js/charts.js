// Charts drawn with the vendored uPlot (a global from uPlot.iife.min.js): day bars and live lines.
import "./i18n.js"; // gettext() even where no catalogue loaded
const GREEN = "#0b7a5e";
export const COLOURS = ["#0b7a5e", "#3f6ad8", "#e39b0b", "#b3261e", "#6a3fb5", "#00838f"];
const AXIS = "#4a5563";

// A y axis as wide as its longest label (fixed widths cut "1.25 USD" to ".25 USD").
function fitLabels(u, values, axisIdx) {
  if (!values) return 40;
  u.ctx.font = u.axes[axisIdx].font[0];
  const widest = Math.max(...values.map((v) => u.ctx.measureText(String(v)).width));
  return Math.ceil(widest / devicePixelRatio) + 18;
}

function widthOf(element) {
  return Math.max(240, element.clientWidth || element.parentElement?.clientWidth || 600);
}

// Redraw at the element's width whenever it changes (phones rotate, sidebars collapse).
function keepSized(plot, element, height) {
  new ResizeObserver(() => plot.setSize({ width: widthOf(element), height })).observe(element);
}

// Bars of one value per day: data = {x: [unix seconds of day starts], y: [values]}.
export function dayBars(element, data, { unit = "h", height = 240, colour = GREEN } = {}) {
  if (typeof uPlot === "undefined" || !element) return null;
  if (!data.y.some((v) => v > 0)) {
    element.classList.add("chart-empty");
    element.textContent = gettext("No desktop ran in this period yet.");
    return null;
  }
  const bars = uPlot.paths.bars({ size: [0.7, 28] });
  const plot = new uPlot(
    {
      width: widthOf(element),
      height,
      legend: { show: false },
      cursor: { points: { show: false }, drag: { x: false, y: false } },
      scales: {
        // Half a day either side, so the first and last bars are whole.
        x: { time: true, range: (u, min, max) => [min - 43200, max + 43200] },
        y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] },
      },
      axes: [
        { stroke: AXIS, grid: { show: false }, ticks: { show: false }, values: "{MMM} {D}", space: 56 },
        {
          stroke: AXIS,
          grid: { stroke: "#eceff3" },
          ticks: { show: false },
          values: (u, v) => v.map((n) => `${n} ${unit}`),
          size: fitLabels,
        },
      ],
      series: [{}, { label: "hours", stroke: colour, fill: `${colour}cc`, paths: bars, points: { show: false } }],
    },
    // Days without use draw nothing rather than a hairline.
    [data.x, data.y.map((v) => (v > 0 ? v : null))],
    element,
  );
  keepSized(plot, element, height);
  return plot;
}

// A rolling line chart of several series, fed one sample at a time (operators' live dashboard).
// Times on a live x axis: with seconds when the window is short, so no two labels read the same.
const clock = (u, splits) => {
  const span = (splits[splits.length - 1] ?? 0) - (splits[0] ?? 0);
  const format = span < 600 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" };
  return splits.map((s) => new Date(s * 1000).toLocaleTimeString([], format));
};

export function liveLines(element, labels, { height = 200, points = 120, max = 100, unit = "%", legend = true } = {}) {
  if (typeof uPlot === "undefined" || !element) return null;
  const colours = COLOURS;
  const now = Math.floor(Date.now() / 1000);
  const data = [Array.from({ length: points }, (_, i) => now - (points - i))];
  labels.forEach(() => data.push(Array(points).fill(null)));
  const plot = new uPlot(
    {
      width: widthOf(element),
      height,
      // max null: the scale follows the data (from 0).
      scales: { x: { time: true }, y: { range: max == null ? (u, lo, hi) => [0, Math.max(1, (hi || 0) * 1.2)] : [0, max] } },
      legend: { show: legend },
      axes: [
        { stroke: AXIS, grid: { show: false }, values: clock, space: 90 },
        { stroke: AXIS, grid: { stroke: "#eceff3" }, values: (u, v) => v.map((n) => `${n}${unit}`), size: fitLabels },
      ],
      series: [{}, ...labels.map((label, i) => ({ label, stroke: colours[i % colours.length], width: 1.5, points: { show: false } }))],
    },
    data,
    element,
  );
  keepSized(plot, element, height);
  return {
    plot,
    push(values, at = Math.floor(Date.now() / 1000)) {
      data[0] = [...data[0].slice(1), at];
      values.forEach((v, i) => (data[i + 1] = [...data[i + 1].slice(1), v]));
      plot.setData(data);
    },
  };
}
