// Saturation: how busy the serving process was over the range (requests in flight, the queue, CPU, memory,
// GPU), as cards and a small chart, from GET /api/deployments/{id}/signals. Any figure may be null: a process
// that samples nothing, or a machine without a GPU.

import { lineChart } from "./charts.js";
import { el, emptyNote, panel } from "./dom.js";
import { fmtBytes } from "./format.js";

const KEYS = ["inFlightMean", "inFlightMax", "queueMean", "queueMax", "cpuPercent", "rssMaxBytes", "gpuUtilizationPercent", "gpuMemoryMaxBytes"];
const known = (v) => v !== null && v !== undefined;
// cpuPercent and gpuUtilizationPercent are percentages (0–100; CPU may pass 100 with several cores busy).
const fmtPercent = (v) => (known(v) ? `${v.toFixed(v >= 10 ? 0 : 1)}%` : "–");
const fmtLoad = (v) => (known(v) ? v.toFixed(Number.isInteger(v) ? 0 : 1) : "–");
const meanAndMax = (mean, max) => (known(mean) || known(max) ? `${fmtLoad(mean)} mean · ${fmtLoad(max)} max` : "–");

function card(figure, label, value, note = "") {
  return el("div", { class: "card", "data-figure": figure },
    el("div", { class: "label", text: label }), el("div", { class: "value", text: value }),
    note && el("div", { class: "meta", text: note }));
}

function gpuCard(s) {
  if (!known(s.gpuUtilizationPercent) && !known(s.gpuMemoryMaxBytes)) return card("gpu", "GPU", "no GPU", "no GPU figures sampled");
  return card("gpu", "GPU", fmtPercent(s.gpuUtilizationPercent), `${fmtBytes(s.gpuMemoryMaxBytes)} memory at most`);
}

// The section for `signals` appended to `box`; its charts, if any, are pushed to `charts`.
export function renderSaturation(box, signals, charts) {
  const s = signals.saturation || {};
  const section = panel("saturation", "Saturation");
  box.append(section);
  section.append(el("div", { class: "cards" },
    card("inFlight", "In flight", meanAndMax(s.inFlightMean, s.inFlightMax), "requests being served"),
    card("queue", "Queue", meanAndMax(s.queueMean, s.queueMax), "images waiting for the model"),
    card("cpu", "CPU", fmtPercent(s.cpuPercent), "mean over the range"),
    card("rss", "Memory (RSS)", fmtBytes(s.rssMaxBytes), "at most"),
    gpuCard(s)));
  const series = signals.series || [];
  const sampled = series.filter((p) => p.saturation && KEYS.some((k) => known(p.saturation[k])));
  if (!sampled.length) {
    section.append(emptyNote("No saturation samples in this range yet."));
    return;
  }
  const times = series.map((p) => p.start);
  const column = (key) => series.map((p) => (p.saturation || {})[key] ?? null);
  const grid = el("div", { class: "charts" });
  const busy = el("div", { class: "chart", "data-chart": "busy" }, el("div", { class: "title", text: "In flight and queue (max)" }));
  const cpu = el("div", { class: "chart", "data-chart": "cpu" }, el("div", { class: "title", text: "CPU %" }));
  grid.append(busy, cpu);
  section.append(grid);
  charts.push(lineChart(busy, {
    data: [times, column("inFlightMax"), column("queueMax")], points: 4,
    series: [{ label: "in flight", stroke: "#2f6fde" }, { label: "queue", stroke: "#d4a000" }],
  }));
  charts.push(lineChart(cpu, { data: [times, column("cpuPercent")], points: 4, legend: false, series: [{ label: "CPU %", stroke: "#12a150" }] }));
}
