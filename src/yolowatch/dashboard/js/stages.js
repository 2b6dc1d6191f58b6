// Where the time goes: the mean milliseconds of each pipeline stage over the range (stacked), and each
// stage's percentiles, from GET /api/deployments/{id}/signals.

import { stackedChart } from "./charts.js";
import { el, emptyNote, figureTable, panel } from "./dom.js";
import { fmtCount, fmtMs } from "./format.js";

// Pipeline order, bottom of the stack first.
export const STAGES = [
  ["decode", "Decode", "#98a2b3"], ["queue", "Queue", "#d4a000"], ["preprocess", "Preprocess", "#0e9384"],
  ["inference", "Inference", "#2f6fde"], ["postprocess", "Postprocess", "#7a5af8"],
];

export const stageLabel = (stage) => (STAGES.find(([name]) => name === stage) || [stage, stage])[1];

// The section for `signals` appended to `box`; its chart, if any, is pushed to `charts`.
export function renderStages(box, signals, charts) {
  const section = panel("stages", "Where the time goes");
  box.append(section);
  if (!signals.stages.length) {
    section.append(emptyNote("No stage times yet: they come from predict responses that carry Ultralytics' speed figures."));
    return;
  }
  const holder = el("div", { class: "chart wide" }, el("div", { class: "title", text: "Mean ms per stage" }));
  section.append(holder, stageTable(signals.stages));
  const series = signals.series || [];
  charts.push(stackedChart(holder, {
    times: series.map((p) => p.start), value: fmtMs,
    layers: STAGES.map(([stage, label, colour]) => ({ label, colour, values: series.map((p) => (p.stages || {})[stage] ?? null) })),
  }));
}

function stageTable(stages) {
  const rows = stages.map((s) => el("tr", { "data-stage": s.stage },
    el("td", { text: stageLabel(s.stage) }), el("td", { text: fmtCount(s.count) }),
    el("td", { text: fmtMs(s.p50Ms) }), el("td", { text: fmtMs(s.p95Ms) }), el("td", { text: fmtMs(s.p99Ms) }),
    el("td", { text: fmtMs(s.meanMs) })));
  return figureTable({ class: "stage-times" }, ["Stage", "Images", "P50", "P95", "P99", "Mean"], rows);
}
