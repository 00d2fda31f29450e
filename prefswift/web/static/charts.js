// Line charts drawn as inline SVG (no library): lineChart(title, series) -> a <div class="chart">.
// series: [{name, color, points: [[x, y], ...]}]; non-finite y values are left out (a gap, never a NaN path).
"use strict";

const COLORS = ["#2563c9", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#0b7285", "#5c940d", "#e67700"];
const SVGNS = "http://www.w3.org/2000/svg";

function fmt(v) {
  if (!isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return Number(v.toPrecision(4)).toString();
}

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function lineChart(title, series, xLabel) {
  const box = document.createElement("div");
  box.className = "chart";
  box.dataset.metric = title;
  const head = document.createElement("div");
  head.className = "title";
  head.textContent = title;
  box.appendChild(head);
  const W = 400, H = 190, L = 56, R = 10, T = 8, B = 26;
  const svg = svgEl("svg", {viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none"});
  const pts = series.flatMap(s => s.points.filter(p => isFinite(p[0]) && isFinite(p[1])));
  box.dataset.points = String(pts.length);
  if (!pts.length) {
    svg.appendChild(svgEl("text", {x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#9aa3b2"}, "no values yet"));
    box.appendChild(svg);
    return box;
  }
  let x0 = Math.min(...pts.map(p => p[0])), x1 = Math.max(...pts.map(p => p[0]));
  let y0 = Math.min(...pts.map(p => p[1])), y1 = Math.max(...pts.map(p => p[1]));
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { const d = Math.abs(y0) * 0.05 || 1; y0 -= d; y1 += d; }
  const pad = (y1 - y0) * 0.06; y0 -= pad; y1 += pad;
  const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R);
  const sy = y => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  for (let i = 0; i <= 3; i++) {
    const y = y0 + (y1 - y0) * i / 3;
    svg.appendChild(svgEl("line", {x1: L, x2: W - R, y1: sy(y), y2: sy(y), stroke: "#eef0f3"}));
    svg.appendChild(svgEl("text", {x: L - 4, y: sy(y) + 4, "text-anchor": "end", "font-size": 10, fill: "#6b7280"},
      fmt(y)));
  }
  svg.appendChild(svgEl("line", {x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#9aa3b2"}));
  svg.appendChild(svgEl("text", {x: L, y: H - 8, "font-size": 10, fill: "#6b7280"}, fmt(x0)));
  svg.appendChild(svgEl("text", {x: W - R, y: H - 8, "text-anchor": "end", "font-size": 10, fill: "#6b7280"},
    fmt(x1)));
  svg.appendChild(svgEl("text", {x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle", "font-size": 10,
    fill: "#6b7280"}, xLabel || "step"));
  series.forEach((s, i) => {
    const color = s.color || COLORS[i % COLORS.length];
    let d = "", pen = "M";
    for (const [x, y] of s.points) {
      if (!isFinite(x) || !isFinite(y)) { pen = "M"; continue; }
      d += `${pen}${sx(x).toFixed(1)},${sy(y).toFixed(1)} `;
      pen = "L";
    }
    svg.appendChild(svgEl("path", {d, fill: "none", stroke: color, "stroke-width": 1.6,
      "vector-effect": "non-scaling-stroke"}));
    if (s.points.length <= 2) {
      for (const [x, y] of s.points) {
        if (isFinite(x) && isFinite(y)) svg.appendChild(svgEl("circle", {cx: sx(x), cy: sy(y), r: 2.5, fill: color}));
      }
    }
  });
  box.appendChild(svg);
  const legend = document.createElement("div");
  legend.className = "legend";
  series.forEach((s, i) => {
    const item = document.createElement("span");
    const sw = document.createElement("i");
    sw.style.background = s.color || COLORS[i % COLORS.length];
    item.appendChild(sw);
    item.appendChild(document.createTextNode(s.name));
    legend.appendChild(item);
  });
  box.appendChild(legend);
  return box;
}
