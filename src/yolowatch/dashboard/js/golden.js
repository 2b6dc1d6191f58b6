// The Golden tab: golden-image checks over the card's range, from GET /api/deployments/{id}/golden. A set of
// images with approved answers goes through the real endpoint every minute; the tab shows the latest run (what
// differed on each failing image), the worst pass rate and the failing runs per step, and the failing runs listed.

import { api, predictUrl } from "./api.js";
import { lineChart, stackedChart } from "./charts.js";
import { el, emptyNote, figureTable, panel } from "./dom.js";
import { fmtCount, fmtMs, fmtPct, fmtTimeMs } from "./format.js";

const FAILING_SHOWN = 10;

const epochS = (iso) => Date.parse(iso) / 1000;
const when = (iso) => fmtTimeMs(Date.parse(iso));

export async function renderGolden(d, box, isCurrent) {
  box.replaceChildren(el("div", { class: "meta", text: `loading the last ${d.range}…` }));
  let golden;
  try { golden = await api(`/api/deployments/${encodeURIComponent(d.row.id)}/golden?range=${d.range}`); }
  catch (error) { if (isCurrent()) box.replaceChildren(el("div", { class: "error", text: `golden checks unavailable: ${error.message}` })); return; }
  if (!isCurrent()) return;
  const view = el("div", { class: "golden", "data-range": golden.range });
  box.replaceChildren(view); // in the page before the charts are drawn, so each takes its box's width
  if (!golden.latest) { view.append(howToStart(d, golden)); return; }
  view.append(latestPanel(golden));
  const charts = el("div", { class: "charts golden-charts" });
  view.append(panel("golden-series", `Pass rate (${golden.range})`, charts), failingPanel(golden.runs));
  drawSeries(d, charts, golden.series);
}

function howToStart(d, golden) {
  if (golden.checked) return panel("golden-latest", "Golden images", emptyNote(`Golden checks run here (set ${golden.set}); the first run is not stored yet.`));
  return panel("golden-latest", "Golden images",
    el("div", { class: "empty how-to" },
      el("div", { text: "No golden checks yet. Record the answers of a few images you have looked at, then serve with the set:" }),
      el("pre", { class: "command", text: `yolowatch golden record --endpoint ${predictUrl(d.info)} --out golden IMAGES…\nyolowatch serve --golden golden` }),
      el("div", { class: "meta", text: "Every minute each image goes through the real endpoint, and its answer is matched with the recorded one (class, box IoU, confidence). --golden-in-health makes a failing run fail /health." })));
}

function latestPanel(golden) {
  const run = golden.latest;
  const status = run.ok ? "passing" : "failing";
  const headline = el("div", { class: `golden-headline ${status}` },
    el("span", { class: `pill ${status}`, text: status }),
    el("span", { class: "passed", text: `${fmtCount(run.passed)}/${fmtCount(run.images)} passed` }),
    el("span", { class: "rate", text: fmtPct(run.passRate) }),
    el("span", { class: "meta when", text: `${when(run.checkedAt)} · ${fmtMs(run.latencyMs)}` }),
    run.worst && el("span", { class: "worst" }, "worst: ", el("code", { text: run.worst })));
  const differences = Object.entries(run.differences || {});
  const list = differences.length
    ? el("ul", { class: "golden-differences" }, ...differences.map(([image, lines]) =>
      el("li", { "data-image": image }, el("code", { class: "image", text: image }),
        el("ul", {}, ...lines.map((line) => el("li", { class: "difference", text: line }))))))
    : null;
  const source = golden.checked ? `set ${golden.set}, checked by this process` : "checked by another process";
  return panel("golden-latest", "Latest run", headline,
    run.error && el("div", { class: "error run-error", text: run.error }), list,
    el("div", { class: "meta", text: source }));
}

function drawSeries(d, charts, series) {
  const times = series.map((p) => epochS(p.time));
  const rate = el("div", { class: "chart golden-rate" }, el("div", { class: "title", text: "Worst pass rate per step" }));
  const runs = el("div", { class: "chart golden-runs" }, el("div", { class: "title", text: "Runs per step" }));
  charts.append(rate, runs);
  d.tabCharts.push(lineChart(rate, {
    data: [times, series.map((p) => p.worstPassRate)], height: 140, yRange: [0, 1], points: 4,
    series: [{ label: "worst pass rate", stroke: "#12a150" }],
  }));
  d.tabCharts.push(stackedChart(runs, {
    times, height: 140, value: (v) => fmtCount(v),
    layers: [
      { label: "passing", colour: "#12a150", values: series.map((p) => (p.runs ? p.runs - p.failing : null)) },
      { label: "failing", colour: "#d92d20", values: series.map((p) => (p.runs ? p.failing : null)) },
    ],
  }));
}

function failingPanel(runs) {
  const failing = runs.filter((run) => !run.ok).reverse();
  if (!failing.length) return panel("golden-failing", "Failing runs", emptyNote(`No failing run among the latest ${fmtCount(runs.length)}.`));
  const rows = failing.slice(0, FAILING_SHOWN).map((run) => el("tr", { "data-time": run.checkedAt },
    el("td", { text: when(run.checkedAt) }), el("td", { text: `${fmtCount(run.passed)}/${fmtCount(run.images)}` }),
    el("td", { class: "image", text: run.worst || "–" }),
    el("td", { class: "what", text: run.error || (run.differences[run.worst] || [])[0] || "" })));
  const more = failing.length > FAILING_SHOWN ? el("div", { class: "meta more", text: `and ${fmtCount(failing.length - FAILING_SHOWN)} more` }) : null;
  return panel("golden-failing", "Failing runs",
    figureTable({ class: "golden-failing" }, ["When", "Passed", "Worst image", "What differed first"], rows), more);
}
