// Small inline-SVG charts (no library): lines with one or two y axes, scatter with reference lines, bars.
const NS = "http://www.w3.org/2000/svg";
const M = { l: 44, r: 66, t: 24, b: 34 };
let W = 520, H = 240;

/** Draw in the SVG's own pixel size so text stays 10.5 px whatever the card width. */
function size(svg) {
  const box = svg.getBoundingClientRect();
  W = Math.max(240, Math.round(box.width || 520)); H = Math.max(160, Math.round(box.height || 240));
}

function node(tag, attrs = {}, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (text != null) n.textContent = text;
  return n;
}

function ticks(lo, hi, n = 5) {
  if (!(hi > lo)) { hi = lo + 1; }
  const step0 = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(step0)), err = step0 / mag;
  const step = (err >= 5 ? 10 : err >= 2 ? 5 : err >= 1 ? 2 : 1) * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toFixed(10));
  out.decimals = Math.max(0, -Math.floor(Math.log10(step)));
  return out;
}
function labels(values) { return values.map((v) => v.toFixed(Math.min(4, values.decimals))); }

/** [lo, hi] around the values, padded, and never narrower than `minSpan` nor than a tenth of their size: an axis that
 *  spans 5.7157–5.7158 draws noise in the fourth decimal as a steep rise (issue 32, row 9). */
export function extent(values, pad = 0.05, minSpan = 0) {
  const finite = values.filter(Number.isFinite);
  if (!finite.length) return [0, 1];
  let lo = Math.min(...finite), hi = Math.max(...finite);
  const least = Math.max(minSpan, 0.1 * Math.max(Math.abs(lo), Math.abs(hi)), 1e-9);
  if (hi - lo < least) {
    const middle = (lo + hi) / 2;
    lo = middle - least / 2; hi = middle + least / 2;
    if (Math.min(...finite) >= 0 && lo < 0) { hi -= lo; lo = 0; }  // a loss or an error never goes below zero
  }
  const p = (hi - lo) * pad;
  return [Math.min(...finite) >= 0 ? Math.max(0, lo - p) : lo - p, hi + p];
}

function frame(svg, { x, y, y2, xLabel, yLabel, y2Label }) {
  size(svg);
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.classList.add("chart");
  const sx = (v) => M.l + ((v - x[0]) / (x[1] - x[0])) * (W - M.l - M.r);
  const sy = (v, s = y) => H - M.b - ((v - s[0]) / (s[1] - s[0])) * (H - M.t - M.b);
  const grid = node("g", { class: "grid" }), axis = node("g", { class: "axis" });
  const yt = ticks(...y), yl = labels(yt);
  yt.forEach((t, i) => {
    grid.append(node("line", { x1: M.l, x2: W - M.r, y1: sy(t), y2: sy(t) }));
    axis.append(node("text", { x: M.l - 6, y: sy(t) + 3.5, "text-anchor": "end" }, yl[i]));
  });
  if (y2) { const t2 = ticks(...y2), l2 = labels(t2); t2.forEach((t, i) => axis.append(node("text", { x: W - M.r + 6, y: sy(t, y2) + 3.5 }, l2[i]))); }
  const xt = ticks(...x, 6), xl = labels(xt);
  xt.forEach((t, i) => axis.append(node("text", { x: sx(t), y: H - M.b + 15, "text-anchor": "middle" }, xl[i])));
  axis.append(node("line", { x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }));
  if (xLabel) axis.append(node("text", { x: (M.l + W - M.r) / 2, y: H - 4, "text-anchor": "middle" }, xLabel));
  svg.append(grid, axis);
  if (yLabel) svg.setAttribute("aria-label", `${yLabel} against ${xLabel}${y2Label ? ` and ${y2Label}` : ""}`);
  return { sx, sy };
}

/** series: [{label, color, points: [[x, y]], right: bool, minSpan}]; xDomain: [lo, hi] the x axis spans at least
 *  (a run's epochs: 0 to its planned total, so one point is not drawn on a −0.5…1.5 axis) */
export function lineChart(svg, { series, xLabel, yLabel, y2Label, xDomain = null }) {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const span = (side) => Math.max(0, ...series.filter((s) => !!s.right === side).map((s) => s.minSpan || 0));
  const left = series.filter((s) => !s.right).flatMap((s) => s.points.map((p) => p[1]));
  const right = series.filter((s) => s.right).flatMap((s) => s.points.map((p) => p[1]));
  const y = extent(left.length ? left : [0, 1], 0.05, span(false)), y2 = right.length ? extent(right, 0.05, span(true)) : null;
  const x = xDomain ? [Math.min(xDomain[0], ...xs), Math.max(xDomain[1], ...xs)] : extent(xs.length ? xs : [0, 1], 0);
  const { sx, sy } = frame(svg, { x, y, y2, xLabel, yLabel, y2Label });
  for (const s of series) {
    if (!s.points.length) continue;
    const scale = s.right ? y2 : y;
    svg.append(node("polyline", { points: s.points.map(([a, b]) => `${sx(a)},${sy(b, scale)}`).join(" "), fill: "none",
                                  stroke: s.color, "stroke-width": 2, "stroke-linejoin": "round", "data-series": s.label }));
    if (s.dots) for (const [a, b] of s.points) svg.append(node("circle", { cx: sx(a), cy: sy(b, scale), r: 3, fill: s.color }));
  }
}

/** points: [{x, y, color}], lines: [{kind: "identity"} | {y, label, dash}] */
export function scatter(svg, { points, xLabel, yLabel, lines = [], square = false }) {
  let x = extent(points.map((p) => p.x)), y = extent([...points.map((p) => p.y), ...lines.filter((l) => l.y != null).map((l) => l.y)]);
  if (square) { const lo = Math.min(x[0], y[0]), hi = Math.max(x[1], y[1]); x = [lo, hi]; y = [lo, hi]; }
  const { sx, sy } = frame(svg, { x, y, xLabel, yLabel });
  for (const line of lines) {
    if (line.kind === "identity") svg.append(node("line", { x1: sx(x[0]), y1: sy(x[0]), x2: sx(x[1]), y2: sy(x[1]), stroke: "var(--muted)", "stroke-dasharray": "4 4" }));
    else {
      svg.append(node("line", { x1: M.l, x2: W - M.r, y1: sy(line.y), y2: sy(line.y), stroke: line.color || "var(--muted)", "stroke-dasharray": line.dash || "" }));
      svg.append(node("text", { x: W - M.r + 4, y: sy(line.y) + 3.5, style: `fill:${line.color || "var(--muted)"}` }, line.label || ""));
    }
  }
  for (const p of points) {
    const dot = node("circle", { cx: sx(p.x), cy: sy(p.y), r: 3.2, fill: p.color || "var(--accent)", "fill-opacity": 0.8 });
    if (p.title) dot.append(node("title", {}, p.title));
    svg.append(dot);
  }
  svg.append(node("text", { x: 4, y: 12 }, yLabel || ""));
}

/** bars: [{label, value, n, color}] */
export function bars(svg, { bars: items, yLabel }) {
  size(svg);
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.classList.add("chart");
  const top = Math.max(1, ...items.map((b) => b.value || 0)) * 1.15, bw = (W - M.l - M.r) / Math.max(1, items.length);
  const sy = (v) => H - M.b - (v / top) * (H - M.t - M.b);
  const grid = node("g", { class: "grid" }), axis = node("g", { class: "axis" });
  const bt = ticks(0, top), bl = labels(bt);
  bt.forEach((t, i) => { grid.append(node("line", { x1: M.l, x2: W - M.r, y1: sy(t), y2: sy(t) })); axis.append(node("text", { x: M.l - 6, y: sy(t) + 3.5, "text-anchor": "end" }, bl[i])); });
  svg.append(grid, axis);
  items.forEach((b, i) => {
    const x = M.l + i * bw + bw * 0.18, w = bw * 0.64;
    if (b.value != null) {
      const rect = node("rect", { x, y: sy(b.value), width: w, height: H - M.b - sy(b.value), fill: b.color || "var(--accent)", rx: 2 });
      rect.append(node("title", {}, `${b.label}: ${b.value.toFixed(1)} (n=${b.n})`));
      svg.append(rect, node("text", { x: x + w / 2, y: sy(b.value) - 4, "text-anchor": "middle" }, b.value.toFixed(1)));
    }
    svg.append(node("text", { x: x + w / 2, y: H - M.b + 14, "text-anchor": "middle" }, b.label),
               node("text", { x: x + w / 2, y: H - M.b + 26, "text-anchor": "middle" }, `n=${b.n}`));
  });
  svg.append(node("text", { x: 4, y: 12 }, yLabel || ""));
}
