// The Quality tab: the drift tests (baseline against current histograms) and the holdout mAP series (the fixed
// set's and the recent production frames'). A change of the clients' request parameters (conf, iou, imgsz) shows
// above the tests, and a test it makes meaningless says "not comparable" instead of a verdict.

import { api, predictUrl } from "./api.js";
import { lineChart } from "./charts.js";
import { el } from "./dom.js";
import { fmtCount, fmtP, fmtTime } from "./format.js";
import { IMAGE_PROPERTIES } from "./signals.js";

export const SIGNAL_TITLES = { confidence: "Confidence", boxSize: "Box size (share of the image)", ...IMAGE_PROPERTIES };
// Signals whose histogram bins grow geometrically (spanning decades): drawn on a log10 x axis.
const LOG_SCALE = new Set(["boxSize", "sharpness", "aspect", "megapixels"]);

const axisLabel = (v) => (v >= 0.01 && v < 10_000 ? String(Number(v.toPrecision(2))) : v.toExponential(0));

function histogramChart(holder, hist, logScale) {
  const edges = hist.edges;
  const centres = edges.slice(0, -1).map((lo, i) => (logScale ? Math.log10(Math.sqrt(Math.max(lo, edges[1] / 10) * edges[i + 1])) : (lo + edges[i + 1]) / 2));
  const share = (counts) => { const total = counts.reduce((a, b) => a + b, 0) || 1; return counts.map((c) => c / total); };
  return lineChart(holder, {
    data: [centres, share(hist.baseline), share(hist.current)], height: 140, stepped: true,
    xLabel: (x) => (logScale ? axisLabel(10 ** x) : x.toFixed(1)),
    series: [{ label: "baseline", stroke: "#98a2b3" }, { label: "current", stroke: "#2f6fde" }],
  });
}

// A drift test's verdict: drift, no drift, or not comparable (the request parameters changed under it).
export function verdict(signal) {
  if (signal.comparable === false) return el("span", { class: "verdict incomparable", text: "not comparable", title: "the request parameters changed under this test" });
  return el("span", { class: `verdict ${signal.drifted ? "drifted" : "steady"}`, text: signal.drifted ? "drift" : "no drift" });
}

export const testStats = (signal) => `KS ${signal.ksStatistic.toFixed(3)} · p = ${fmtP(signal.pValue)} · n = ${fmtCount(signal.baselineSamples)} / ${fmtCount(signal.currentSamples)}`;

// What the drift answer's `params` says: prominent when the clients changed their parameters.
export function paramsNote(params) {
  if (!params) return null;
  if (!params.changed && !params.imgszDiffers) return el("div", { class: "meta params-note", text: `Request parameters: ${params.reason}` });
  const at = params.since ? ` at ${fmtTime(params.since)}` : "";
  const sides = params.baseline && params.current ? `before: ${params.baseline} · after: ${params.current}` : "";
  return el("div", { class: "params-change", role: "note" },
    el("strong", { text: `Parameter change${at}: ` }), el("span", { class: "reason", text: params.reason }),
    sides && el("div", { class: "meta", text: sides }));
}

function signalBox(signal) {
  return el("div", { class: "chart", "data-signal": signal.signal },
    el("div", { class: "title", text: SIGNAL_TITLES[signal.signal] || signal.signal }),
    verdict(signal), el("div", { class: "stats", text: testStats(signal) }),
    el("div", { class: "meta reason", text: signal.reason }));
}

function changeItem(c) {
  const what = c.signal === "detectionVolume" ? "Detections a minute" : "Mean confidence";
  return el("li", { class: c.flagged ? "flagged" : "", "data-signal": c.signal, text: `${what}: ${c.flagged ? "flagged — " : ""}${c.reason}` });
}

function showDrift(d, box, drift) {
  const grid = el("div", { class: "charts drift" });
  const windows = `Baseline ${fmtTime(drift.baseline.start)} – ${fmtTime(drift.baseline.end)} · current ${fmtTime(drift.current.start)} – ${fmtTime(drift.current.end)}`;
  const parts = [paramsNote(drift.params), el("div", { class: "meta window", text: windows }), grid,
    el("ul", { class: "changes" }, ...drift.changes.map(changeItem))];
  box.replaceChildren(...parts.filter(Boolean));
  for (const signal of drift.signals) {
    const holder = signalBox(signal);
    grid.append(holder); // in the page before the chart is drawn, so the chart takes the box's width
    const hist = (drift.histograms || {})[signal.signal];
    if (hist) d.tabCharts.push(histogramChart(holder, hist, LOG_SCALE.has(signal.signal)));
  }
}

// The fixed holdout set and the recent production frames (exported, corrected and scored with --recent) are two
// series, side by side: a drop in the recent one alone says the world moved, a drop in both that the model did.
function showHoldout(d, box, runs) {
  const holdout = runs.filter((r) => (r.set || "holdout") === "holdout");
  const recent = runs.filter((r) => r.set === "recent");
  const pair = el("div", { class: "charts holdout-sets" });
  box.append(pair);
  const fixed = holdoutChart(d, pair, "holdout", "Holdout mAP (fixed set)", holdout, `No holdout runs yet: yolowatch holdout --data holdout.yaml --deployment ${d.row.id} --endpoint ${predictUrl(d.info)}`);
  if (recent.length) holdoutChart(d, pair, "recent", "Recent production frames mAP", recent, "");
  else fixed.append(el("div", { class: "meta recent-how-to", text: `Recent frames: none scored yet. With --sample-dir: yolowatch samples export --deployment ${d.row.id} --out recent, correct the labels, then yolowatch holdout --recent --data recent/data.yaml --deployment ${d.row.id} --endpoint ${predictUrl(d.info)}` }));
}

function holdoutChart(d, pair, set, title, runs, empty) {
  const holder = el("div", { class: `chart ${set}`, "data-set": set }, el("div", { class: "title", text: title }));
  pair.append(holder);
  if (!runs.length) { holder.append(el("div", { class: "meta", text: empty })); return holder; }
  const last = runs[runs.length - 1];
  holder.append(el("div", { class: "stats", text: `latest: mAP50 ${last.map50.toFixed(3)} · mAP50-95 ${last.map50to95.toFixed(3)} on ${last.dataset} (${last.images} images), ${fmtTime(last.time)}` }));
  d.tabCharts.push(lineChart(holder, {
    data: [runs.map((r) => r.time), runs.map((r) => r.map50), runs.map((r) => r.map50to95)], height: 140, yRange: [0, 1], points: 6,
    series: [{ label: "mAP50", stroke: "#12a150" }, { label: "mAP50-95", stroke: "#7a5af8" }],
  }));
  return holder;
}

export async function renderQuality(d, box, isCurrent) {
  const id = encodeURIComponent(d.row.id);
  box.replaceChildren(el("div", { class: "meta", text: "running the drift tests…" }));
  let drift = null, driftError = "", holdout = { runs: [] };
  try { drift = await api(`/api/deployments/${id}/drift`, { timeoutMs: 60_000 }); } catch (error) { driftError = error.message; }
  try { holdout = await api(`/api/deployments/${id}/holdout`); } catch { /* shown as no runs */ }
  if (!isCurrent()) return;
  if (drift) showDrift(d, box, drift);
  else box.replaceChildren(el("div", { class: "meta", text: `Drift: ${driftError}` }));
  showHoldout(d, box, holdout.runs || []);
}
