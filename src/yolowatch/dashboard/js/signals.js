// The Signals tab: what a YOLO operator reads beyond latency and errors, over the card's range, from
// GET /api/deployments/{id}/signals: where the time goes, saturation, classes, request parameters and image
// properties. Each panel says so when the API has nothing for it yet (a fresh deployment).

import { api } from "./api.js";
import { el, emptyNote, figureTable, panel } from "./dom.js";
import { fmtCount, fmtFixed, fmtPct, fmtValue } from "./format.js";
import { renderSaturation } from "./saturation.js";
import { renderStages } from "./stages.js";

const TOP_CLASSES = 20;

// Image properties in the order shown, with what each measures.
export const IMAGE_PROPERTIES = {
  brightness: "Brightness (mean grey level, 0–255)",
  contrast: "Contrast (spread of grey levels)",
  sharpness: "Sharpness (variance of the Laplacian)",
  aspect: "Aspect ratio (width / height)",
  megapixels: "Megapixels",
};

export const signalsPath = (d, range) => `/api/deployments/${encodeURIComponent(d.row.id)}/signals?range=${range}`;

export async function renderSignals(d, box, isCurrent) {
  box.replaceChildren(el("div", { class: "meta", text: `loading the last ${d.range}…` }));
  let signals;
  try { signals = await api(signalsPath(d, d.range)); }
  catch (error) { if (isCurrent()) box.replaceChildren(el("div", { class: "error", text: `signals unavailable: ${error.message}` })); return; }
  if (!isCurrent()) return;
  const view = el("div", { class: "signals", "data-range": signals.range });
  box.replaceChildren(view); // in the page before the charts are drawn, so each takes its box's width
  renderStages(view, signals, d.tabCharts);
  renderSaturation(view, signals, d.tabCharts);
  view.append(classesPanel(signals), paramsPanel(signals), imagePanel(signals));
}

function classesPanel(signals) {
  const classes = signals.classes || [];
  if (!classes.length) return panel("classes", "Classes", emptyNote("No detections with a class yet."));
  const most = classes[0].detections || 1;
  const shown = classes.slice(0, TOP_CLASSES);
  const rows = shown.map((c) => el("tr", { "data-class": c.name },
    el("td", { class: "class-name", text: c.name }),
    el("td", { class: "detections" },
      el("meter", { min: "0", max: String(most), value: String(c.detections) }), el("span", { text: ` ${fmtCount(c.detections)}` })),
    el("td", { text: fmtPct(c.share) }), el("td", { text: fmtFixed(c.perRequest, 2) }), el("td", { text: fmtFixed(c.meanConfidence, 3) })));
  const rest = classes.slice(TOP_CLASSES);
  const more = rest.length
    ? el("div", { class: "meta more", text: `and ${fmtCount(rest.length)} more classes (${fmtCount(rest.reduce((n, c) => n + c.detections, 0))} detections)` })
    : null;
  return panel("classes", "Classes",
    figureTable({ class: "classes" }, ["Class", "Detections", "Share", "Per request", "Mean confidence"], rows), more);
}

const said = (v) => (v === null || v === undefined ? "not said" : String(v));

function paramsPanel(signals) {
  const params = signals.params || [];
  const unknown = signals.paramsUnknown || 0;
  const note = unknown ? el("div", { class: "meta unknown", text: `${fmtCount(unknown)} predictions did not say their parameters.` }) : null;
  if (!params.length) return panel("params", "Request parameters", emptyNote("No prediction said its parameters yet."), note);
  const rows = params.map((p) => el("tr", { "data-params": `conf=${p.conf} iou=${p.iou} imgsz=${p.imgsz}` },
    el("td", { text: said(p.conf) }), el("td", { text: said(p.iou) }), el("td", { text: said(p.imgsz) }),
    el("td", { text: fmtCount(p.predictions) }), el("td", { text: fmtPct(p.share) })));
  return panel("params", "Request parameters", figureTable({ class: "params" }, ["conf", "iou", "imgsz", "Predictions", "Share"], rows), note);
}

function imagePanel(signals) {
  const image = signals.image || [];
  if (!image.length) return panel("image", "Image properties", emptyNote("No image properties measured yet."));
  const order = Object.keys(IMAGE_PROPERTIES);
  const sorted = [...image].sort((a, b) => rank(order, a.property) - rank(order, b.property));
  const rows = sorted.map((p) => el("tr", { "data-property": p.property },
    el("td", { text: IMAGE_PROPERTIES[p.property] || p.property }), el("td", { text: fmtCount(p.images) }),
    el("td", { text: fmtValue(p.p5) }), el("td", { text: fmtValue(p.p50) }), el("td", { text: fmtValue(p.p95) })));
  return panel("image", "Image properties", figureTable({ class: "image-properties" }, ["Property", "Images", "P5", "P50", "P95"], rows));
}

const rank = (order, name) => (order.includes(name) ? order.indexOf(name) : order.length);
