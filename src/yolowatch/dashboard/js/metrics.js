// A deployment's metric charts over the chosen range: requests, latency, errors, detections, confidence.

import { api } from "./api.js";
import { lineChart } from "./charts.js";
import { $, el } from "./dom.js";

// title, then one [field, label, colour, scale] per line
const CHARTS = [
  ["Requests", [["requests", "requests", "#2f6fde"]]],
  ["Latency (ms)", [["p50Ms", "P50", "#12a150"], ["p95Ms", "P95", "#d4a000"], ["p99Ms", "P99", "#d92d20"]]],
  ["Error rate (%)", [["errorRate", "errors", "#d92d20", 100]]],
  ["Detections per request", [["detectionsPerRequest", "detections", "#7a5af8"]]],
  ["Mean confidence", [["meanConfidence", "confidence", "#0e9384"]]],
];

// Fetches the range's sparkline points and redraws the charts in the card's .charts box.
export async function loadMetrics(d) {
  const body = await api(`/api/deployments/${encodeURIComponent(d.row.id)}/metrics?range=${d.range}&sparkline=true`);
  d.summary = body.summary;
  drawMetricCharts(d, body.sparkline);
}

function drawMetricCharts(d, points) {
  const box = $(".charts", d.node);
  for (const chart of d.charts) chart.destroy();
  box.replaceChildren();
  const times = points.map((p) => p.time);
  d.charts = CHARTS.map(([title, lines]) => {
    const holder = el("div", { class: "chart", "data-chart": title }, el("div", { class: "title", text: title }));
    box.append(holder);
    const data = [times, ...lines.map(([field, , , scale]) => points.map((p) => (p[field] === null ? null : p[field] * (scale || 1))))];
    return lineChart(holder, {
      data, points: 4, legend: lines.length > 1,
      series: lines.map(([, label, stroke]) => ({ label, stroke })),
    });
  });
}
