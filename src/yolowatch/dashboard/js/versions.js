// The Versions tab: the model versions that answered over the card's range (GET .../signals), and two of them
// side by side (GET .../compare): their figures, stage times and classes, and the drift tests of b against a
// (a canary against the version it may replace).

import { api } from "./api.js";
import { el, emptyNote, figureTable, panel } from "./dom.js";
import { fmtCount, fmtFixed, fmtMs, fmtPct } from "./format.js";
import { paramsNote, SIGNAL_TITLES, testStats, verdict } from "./quality.js";
import { signalsPath } from "./signals.js";
import { STAGES, stageLabel } from "./stages.js";

const TOP_CLASSES = 20;

// The summary figures compared: [field, label, format].
const FIGURES = [
  ["requests", "Requests", fmtCount], ["p50Ms", "P50", fmtMs], ["p95Ms", "P95", fmtMs], ["p99Ms", "P99", fmtMs],
  ["errorRate", "Error rate", fmtPct], ["detectionsPerRequest", "Detections per request", (v) => fmtFixed(v, 2)],
  ["meanConfidence", "Mean confidence", (v) => fmtFixed(v, 3)],
];

export async function renderVersions(d, box, isCurrent) {
  box.replaceChildren(el("div", { class: "meta", text: `loading the last ${d.range}…` }));
  let signals;
  try { signals = await api(signalsPath(d, d.range)); }
  catch (error) { if (isCurrent()) box.replaceChildren(el("div", { class: "error", text: `versions unavailable: ${error.message}` })); return; }
  if (!isCurrent()) return;
  const versions = signals.versions || [];
  const view = el("div", { class: "versions", "data-range": signals.range });
  box.replaceChildren(view);
  if (!versions.length) {
    view.append(emptyNote(`No response named its model version in the last ${signals.range}.`));
    return;
  }
  view.append(panel("version-list", "Model versions", versionTable(versions)));
  if (versions.length < 2) {
    view.append(el("div", { class: "meta single", text: "A second model version will appear here when one serves, with the two side by side." }));
    return;
  }
  // Oldest first: by default a is the incumbent (the version that answered first) and b the newest (the canary).
  const byAge = [...versions].sort((x, y) => (x.firstSeen ?? 0) - (y.firstSeen ?? 0));
  view.append(comparisonPanel(d, byAge.map((v) => v.version), signals.range));
}

function versionTable(versions) {
  const rows = versions.map((v) => el("tr", { "data-version": v.version },
    el("td", { class: "version", text: v.version }), el("td", { text: fmtCount(v.requests) }),
    el("td", { text: fmtMs(v.p50Ms) }), el("td", { text: fmtMs(v.p95Ms) }), el("td", { text: fmtMs(v.p99Ms) }),
    el("td", { text: fmtPct(v.errorRate) }), el("td", { text: fmtFixed(v.detectionsPerRequest, 2) }),
    el("td", { text: fmtFixed(v.meanConfidence, 3) })));
  return figureTable({ class: "version-list" }, ["Version", "Requests", "P50", "P95", "P99", "Errors", "Detections per request", "Mean confidence"], rows);
}

// Two selectors, a and b (kept on the deployment while both still served in the range), and their comparison.
function comparisonPanel(d, names, range) {
  const picked = d.versionPick || {};
  const a = names.includes(picked.a) ? picked.a : names[0];
  const b = names.includes(picked.b) && picked.b !== a ? picked.b : [...names].reverse().find((name) => name !== a);
  d.versionPick = { a, b };
  const comparison = el("div", { class: "comparison" });
  const selects = {};
  // Picking for one side the version the other side shows swaps the two.
  const choose = (side) => {
    const other = side === "a" ? "b" : "a";
    if (selects[side].value === d.versionPick[other]) selects[other].value = d.versionPick[side];
    d.versionPick = { a: selects.a.value, b: selects.b.value };
    loadComparison(d, comparison, range);
  };
  for (const side of ["a", "b"]) {
    selects[side] = el("select", { "data-side": side, "aria-label": `Version ${side}`, onchange: () => choose(side) },
      ...names.map((name) => el("option", { value: name, text: name })));
    selects[side].value = d.versionPick[side];
  }
  loadComparison(d, comparison, range);
  return panel("compare", "Side by side",
    el("div", { class: "version-pick" }, el("label", {}, "a ", selects.a), el("span", { text: " against " }), el("label", {}, "b ", selects.b)),
    comparison);
}

async function loadComparison(d, box, range) {
  const { a, b } = d.versionPick;
  const asked = `${a}\n${b}`;
  box.dataset.asked = asked;
  box.replaceChildren(el("div", { class: "meta", text: "comparing…" }));
  const query = new URLSearchParams({ range, a, b });
  let body;
  try { body = await api(`/api/deployments/${encodeURIComponent(d.row.id)}/compare?${query}`, { timeoutMs: 60_000 }); }
  catch (error) { if (box.dataset.asked === asked) box.replaceChildren(el("div", { class: "error", text: `comparison unavailable: ${error.message}` })); return; }
  if (box.dataset.asked !== asked) return; // another pair was picked meanwhile
  box.replaceChildren(
    figureTable({ class: "compare-summary" }, ["", `a: ${a}`, `b: ${b}`, "b against a"], FIGURES.map((f) => figureRow(f, body.a.summary, body.b.summary))),
    el("h4", { text: "P50 per stage" }), stageTable(body.a.stages || [], body.b.stages || [], a, b),
    el("h4", { text: "Classes" }), classTable(body.a.classes || [], body.b.classes || [], a, b),
    el("h4", { text: "Drift of b against a" }), driftPart(body.drift));
}

function figureRow([field, label, format], a, b) {
  return el("tr", { "data-figure": field },
    el("td", { text: label }), el("td", { class: "a", text: format(a[field]) }), el("td", { class: "b", text: format(b[field]) }),
    el("td", { class: "change", text: field === "requests" ? "" : change(a[field], b[field]) }));
}

// b relative to a, e.g. "+12.5%"; "–" when either is missing or a is 0.
function change(a, b) {
  if (a === null || a === undefined || b === null || b === undefined || a === 0) return "–";
  const relative = (b - a) / Math.abs(a);
  return `${relative >= 0 ? "+" : "−"}${Math.abs(relative * 100).toFixed(1)}%`;
}

function stageTable(stagesA, stagesB, a, b) {
  const p50 = (stages, name) => (stages.find((s) => s.stage === name) || {}).p50Ms;
  const shown = STAGES.map(([name]) => name).filter((name) => p50(stagesA, name) !== undefined || p50(stagesB, name) !== undefined);
  if (!shown.length) return emptyNote("Neither version's responses carry stage times.");
  const rows = shown.map((name) => el("tr", { "data-stage": name },
    el("td", { text: stageLabel(name) }), el("td", { class: "a", text: fmtMs(p50(stagesA, name)) }),
    el("td", { class: "b", text: fmtMs(p50(stagesB, name)) }), el("td", { class: "change", text: change(p50(stagesA, name), p50(stagesB, name)) })));
  return figureTable({ class: "compare-stages" }, ["Stage", `a: ${a}`, `b: ${b}`, "b against a"], rows);
}

function classTable(classesA, classesB, a, b) {
  const byName = new Map();
  for (const [side, classes] of [["a", classesA], ["b", classesB]]) {
    for (const c of classes) byName.set(c.name, { ...(byName.get(c.name) || {}), [side]: c });
  }
  if (!byName.size) return emptyNote("Neither version detected anything with a class.");
  const total = (entry) => ((entry.a || {}).detections || 0) + ((entry.b || {}).detections || 0);
  const ordered = [...byName.entries()].sort((x, y) => total(y[1]) - total(x[1]));
  const cell = (c) => (c ? `${fmtCount(c.detections)} (${fmtPct(c.share)})` : "–");
  const rows = ordered.slice(0, TOP_CLASSES).map(([name, entry]) => el("tr", { "data-class": name },
    el("td", { class: "class-name", text: name }), el("td", { class: "a", text: cell(entry.a) }), el("td", { class: "b", text: cell(entry.b) })));
  const more = ordered.length > TOP_CLASSES ? el("div", { class: "meta more", text: `and ${fmtCount(ordered.length - TOP_CLASSES)} more classes` }) : null;
  return el("div", {}, figureTable({ class: "compare-classes" }, ["Class", `a: ${a} detections (share)`, `b: ${b} detections (share)`], rows), more);
}

function driftPart(drift) {
  if (!drift) return emptyNote("The drift tests need the yolo extra (scipy) on the server; the figures above do not.");
  const rows = drift.signals.map((s) => el("tr", { "data-signal": s.signal },
    el("td", { text: SIGNAL_TITLES[s.signal] || s.signal }), el("td", {}, verdict(s)),
    el("td", { class: "stats", text: testStats(s) }), el("td", { class: "reason", text: s.reason })));
  const headline = drift.drifted ? "b drifted from a" : "no drift of b against a";
  return el("div", { class: "compare-drift" },
    el("div", { class: `verdict-line ${drift.drifted ? "drifted" : "steady"}`, text: headline }),
    paramsNote(drift.params),
    figureTable({ class: "compare-signals" }, ["Signal", "Verdict", "Test", "Reason"], rows));
}
