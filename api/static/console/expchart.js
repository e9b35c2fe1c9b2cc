// Inline SVG drawings for the experiments page: a relative-difference interval bar per metric
// and the metric per arm over time. Each carries its numbers in words for screen readers.

import { LOWER_IS_BETTER, METRIC_NAMES } from "./expform.js";

const NS = "http://www.w3.org/2000/svg";
export const ARM_COLOURS = ["#56606c", "#1f5fbf", "#d9480f", "#2b8a3e", "#9467bd", "#b8860b"];

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child) node.append(child instanceof Node ? child : document.createTextNode(child));
  }
  return node;
}

export function pct(value, signed = true) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const text = `${(value * 100).toFixed(Math.abs(value) < 0.1 ? 1 : 0)}%`;
  return signed && value > 0 ? `+${text}` : text.replace("-", "−");
}

// better | worse | unsure: whether the whole interval says this arm is better than control.
export function direction(metric, d) {
  if (!d || !d.significant) return "unsure";
  const up = (d.relative ?? d.diff) > 0;
  return up !== LOWER_IS_BETTER.has(metric) ? "better" : "worse";
}

// The interval of the relative difference against control, on a scale centred on zero.
export function intervalBar(metric, d) {
  const width = 150;
  const height = 18;
  const relative = d && d.relative !== null && d.relative_low !== null;
  const [mid, low, high] = relative ? [d.relative, d.relative_low, d.relative_high]
    : d ? [d.diff, d.low, d.high] : [null, null, null];
  const verdict = direction(metric, d);
  const words = mid === null || low === null ? "no interval yet"
    : relative ? `${pct(mid)} against control, interval ${pct(low)} to ${pct(high)}, ${verdict}`
      : `difference ${mid.toFixed(3)}, interval ${low.toFixed(3)} to ${high.toFixed(3)}, ${verdict}`;
  const box = svg("svg", { class: `interval ${verdict}`, width, height, role: "img",
    viewBox: `0 0 ${width} ${height}`, "aria-label": `${METRIC_NAMES[metric]}: ${words}`,
    "data-verdict": verdict });
  const zero = width / 2;
  box.append(svg("line", { x1: zero, x2: zero, y1: 1, y2: height - 1, class: "zero" }));
  if (mid === null || low === null || high === null) return box;
  // The scale grows to hold the interval (at least ±10%), clipped at ±100%.
  const reach = Math.min(1, Math.max(0.1, Math.abs(low), Math.abs(high)));
  const x = (v) => zero + (Math.max(-reach, Math.min(reach, v)) / reach) * (zero - 6);
  box.append(
    svg("line", { x1: x(low), x2: x(high), y1: height / 2, y2: height / 2, class: "span" }),
    svg("circle", { cx: x(mid), cy: height / 2, r: 3.5, class: "point" }),
    svg("title", {}, words));
  return box;
}

function format(value) {
  if (value === null || value === undefined) return "–";
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

// One line per arm of the metric's mean over time; for each treatment arm a band: where its
// mean may lie given control's and the always-valid interval of the relative difference.
export function timelineChart(data, armNames) {
  const points = data.points || [];
  const W = 640;
  const H = 220;
  const pad = { left: 48, right: 12, top: 10, bottom: 28 };
  const metric = data.metric;
  const control = armNames[0];
  const series = armNames.map((name) => points.map((p) => p.arms?.[name]?.mean ?? null));
  const bands = armNames.map((name, k) => (k === 0 ? [] : points.map((p) => {
    const base = p.arms?.[control]?.mean;
    const a = p.arms?.[name];
    if (base === null || base === undefined || !a || a.relative_low === null ||
        a.relative_low === undefined) return null;
    // Every metric is a count or a share: a mean below zero is not possible.
    return [Math.max(0, base * (1 + a.relative_low)), Math.max(0, base * (1 + a.relative_high))];
  })));
  const values = [...series.flat(), ...bands.flat().flat()].filter((v) => v !== null);
  if (!values.length) return null; // no user has a value yet: nothing to draw
  const top = Math.max(1e-9, ...values) * 1.1;
  const bottom = Math.min(0, ...values);
  const x = (i) => pad.left + (points.length < 2 ? 0.5 : i / (points.length - 1)) *
    (W - pad.left - pad.right);
  const y = (v) => H - pad.bottom - ((v - bottom) / (top - bottom)) * (H - pad.top - pad.bottom);
  const last = armNames.map((name, k) => `${name} ${format(series[k].at(-1))}`).join(", ");
  const chart = svg("svg", { class: "timeline", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${METRIC_NAMES[metric]} per arm over ${points.length} points; latest: ${last}`,
    "data-metric": metric, "data-points": points.length });
  for (const frac of [0, 0.5, 1]) {
    const v = bottom + (top - bottom) * frac;
    chart.append(svg("line", { x1: pad.left, x2: W - pad.right, y1: y(v), y2: y(v),
      class: "grid" }), svg("text", { x: pad.left - 6, y: y(v) + 4, class: "tick",
      "text-anchor": "end" }, format(v)));
  }
  const span = points.length ? Date.parse(points.at(-1).at) - Date.parse(points[0].at) : 0;
  const at = (i) => new Date(points[i].at).toLocaleTimeString([], { hour: "2-digit",
    minute: "2-digit", second: span < 3600e3 ? "2-digit" : undefined });
  if (points.length) {
    chart.append(svg("text", { x: x(0), y: H - 8, class: "tick" }, at(0)),
      svg("text", { x: x(points.length - 1), y: H - 8, class: "tick", "text-anchor": "end" },
        at(points.length - 1)));
  }
  armNames.forEach((name, k) => {
    const colour = ARM_COLOURS[k % ARM_COLOURS.length];
    const band = bands[k].map((b, i) => (b ? [x(i), y(b[0]), y(b[1])] : null)).filter(Boolean);
    if (band.length > 1) {
      const edge = [...band.map(([px, lo]) => `${px},${lo}`),
        ...band.reverse().map(([px, , hi]) => `${px},${hi}`)];
      chart.append(svg("polygon", { points: edge.join(" "), fill: colour, class: "band",
        "data-arm": name }));
    }
    const line = series[k].map((v, i) => (v === null ? null : `${x(i)},${y(v)}`))
      .filter(Boolean);
    if (line.length) {
      chart.append(svg("polyline", { points: line.join(" "), stroke: colour, class: "line",
        "data-arm": name }));
      const [lx, ly] = line.at(-1).split(",");
      chart.append(svg("circle", { cx: lx, cy: ly, r: 3, fill: colour }));
    }
  });
  return chart;
}
