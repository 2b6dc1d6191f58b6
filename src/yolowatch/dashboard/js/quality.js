// The Quality tab: the drift tests (baseline against current histograms) and the holdout mAP series.

import { api, predictUrl } from "./api.js";
import { lineChart } from "./charts.js";
import { el } from "./dom.js";
import { fmtCount, fmtP, fmtTime } from "./format.js";

const TITLES = { confidence: "Confidence", boxSize: "Box size (share of the image)" };

// Box sizes span five decades: their x axis is log10 of the share, labelled as the share itself.
function histogramChart(holder, hist, logScale) {
  const edges = hist.edges;
  const centres = edges.slice(0, -1).map((lo, i) => (logScale ? Math.log10(Math.sqrt(Math.max(lo, edges[1] / 10) * edges[i + 1])) : (lo + edges[i + 1]) / 2));
  const share = (counts) => { const total = counts.reduce((a, b) => a + b, 0) || 1; return counts.map((c) => c / total); };
  return lineChart(holder, {
    data: [centres, share(hist.baseline), share(hist.current)], height: 140, stepped: true,
    xLabel: (x) => (logScale ? Number(10 ** x).toExponential(0) : x.toFixed(1)),
    series: [{ label: "baseline", stroke: "#98a2b3" }, { label: "current", stroke: "#2f6fde" }],
  });
}

function signalBox(signal) {
  return el("div", { class: "chart", "data-signal": signal.signal },
    el("div", { class: "title", text: TITLES[signal.signal] || signal.signal }),
    el("div", { class: `verdict ${signal.drifted ? "drifted" : "steady"}`, text: signal.drifted ? "drift" : "no drift" }),
    el("div", { class: "stats", text: `KS ${signal.ksStatistic.toFixed(3)} · p = ${fmtP(signal.pValue)} · n = ${fmtCount(signal.baselineSamples)} / ${fmtCount(signal.currentSamples)}` }),
    el("div", { class: "meta reason", text: signal.reason }));
}

function changeItem(c) {
  const what = c.signal === "detectionVolume" ? "Detections a minute" : "Mean confidence";
  return el("li", { class: c.flagged ? "flagged" : "", "data-signal": c.signal, text: `${what}: ${c.flagged ? "flagged — " : ""}${c.reason}` });
}

function showDrift(d, box, drift) {
  const grid = el("div", { class: "charts drift" });
  const windows = `Baseline ${fmtTime(drift.baseline.start)} – ${fmtTime(drift.baseline.end)} · current ${fmtTime(drift.current.start)} – ${fmtTime(drift.current.end)}`;
  box.replaceChildren(el("div", { class: "meta window", text: windows }), grid, el("ul", { class: "changes" }, ...drift.changes.map(changeItem)));
  for (const signal of drift.signals) {
    const holder = signalBox(signal);
    grid.append(holder); // in the page before the chart is drawn, so the chart takes the box's width
    d.tabCharts.push(histogramChart(holder, drift.histograms[signal.signal], signal.signal === "boxSize"));
  }
}

function showHoldout(d, box, runs) {
  const holder = el("div", { class: "chart holdout" }, el("div", { class: "title", text: "Holdout mAP" }));
  box.append(holder);
  if (!runs.length) {
    holder.append(el("div", { class: "meta", text: `No holdout runs yet: yolowatch holdout --data holdout.yaml --deployment ${d.row.id} --endpoint ${predictUrl(d.info)}` }));
    return;
  }
  const last = runs[runs.length - 1];
  holder.append(el("div", { class: "stats", text: `latest: mAP50 ${last.map50.toFixed(3)} · mAP50-95 ${last.map50to95.toFixed(3)} on ${last.dataset} (${last.images} images), ${fmtTime(last.time)}` }));
  d.tabCharts.push(lineChart(holder, {
    data: [runs.map((r) => r.time), runs.map((r) => r.map50), runs.map((r) => r.map50to95)], height: 140, yRange: [0, 1], points: 6,
    series: [{ label: "mAP50", stroke: "#12a150" }, { label: "mAP50-95", stroke: "#7a5af8" }],
  }));
}

export async function renderQuality(d, box) {
  const id = encodeURIComponent(d.row.id);
  box.replaceChildren(el("div", { class: "meta", text: "running the drift tests…" }));
  let drift = null, driftError = "", holdout = { runs: [] };
  try { drift = await api(`/api/deployments/${id}/drift`, { timeoutMs: 60_000 }); } catch (error) { driftError = error.message; }
  try { holdout = await api(`/api/deployments/${id}/holdout`); } catch { /* shown as no runs */ }
  if (d.tab !== "quality") return;
  if (drift) showDrift(d, box, drift);
  else box.replaceChildren(el("div", { class: "meta", text: `Drift: ${driftError}` }));
  showHoldout(d, box, holdout.runs || []);
}
