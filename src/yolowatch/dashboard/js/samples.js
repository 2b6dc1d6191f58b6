// The Samples tab: production frames kept with --sample-dir, from GET /api/deployments/{id}/samples: counts by
// the rule that kept them, a rule filter, and the newest frames as thumbnails. The images need the admin key,
// which an <img src> cannot send: each is fetched through api.js and shown from a blob: URL, revoked when the tab
// is left (or drawn again).

import { api, apiBlob } from "./api.js";
import { el, emptyNote, highlight, panel } from "./dom.js";
import { fmtBytes, fmtCount, fmtTimeMs } from "./format.js";

const SHOWN = 24;
const THUMB_PX = 160;
export const SAMPLE_RULES = {
  class: "a class asked for", low_confidence: "low confidence", no_detection: "no detection",
  drift: "while drifting", random: "at random",
};

const fmtSize = (bytes) => (bytes < 2 ** 20 ? `${Math.ceil(bytes / 1024)} KiB` : fmtBytes(bytes));
const when = (iso) => (iso ? fmtTimeMs(Date.parse(iso)) : "–");

export function renderSamples(d, box, isCurrent) {
  const shown = new Set(); // the blob: URLs of the thumbnails on show
  const revoke = () => { for (const url of shown) URL.revokeObjectURL(url); shown.clear(); };
  d.tabCharts.push({ destroy: revoke }); // destroyed when the tab is left or drawn again
  let loads = 0;
  const load = async () => {
    const mine = ++loads;
    const current = () => isCurrent() && loads === mine; // not once another tab, or another filter, drew over it
    const rule = d.samplesRule || "";
    let body;
    try { body = await api(`/api/deployments/${encodeURIComponent(d.row.id)}/samples?limit=${SHOWN}&rule=${encodeURIComponent(rule)}`); }
    catch (error) { if (current()) box.replaceChildren(el("div", { class: "error", text: `samples unavailable: ${error.message}` })); return; }
    if (!current()) return;
    revoke();
    if (!body.enabled && !body.summary.frames) { box.replaceChildren(howToStart()); return; }
    const grid = el("div", { class: "sample-grid" });
    const pick = (picked) => { d.samplesRule = picked; load(); };
    box.replaceChildren(el("div", { class: "samples", "data-rule": rule },
      summaryPanel(body), filter(rule, body.summary, pick),
      body.samples.length ? grid : emptyNote(rule ? `No frame was kept ${SAMPLE_RULES[rule] || rule}.` : "No frames kept yet.")));
    for (const sample of body.samples) {
      const height = sample.width > 0 ? Math.round((THUMB_PX * sample.height) / sample.width) : THUMB_PX;
      const image = el("img", { alt: `frame kept ${SAMPLE_RULES[sample.rule] || sample.rule}, ${when(sample.time)}`, width: String(THUMB_PX), height: String(height) });
      grid.append(thumbnail(sample, image));
      showImage(sample, image, shown, current);
    }
  };
  box.replaceChildren(el("div", { class: "meta", text: "loading the kept frames…" }));
  load();
}

function howToStart() {
  return panel("samples-summary", "Sampled frames",
    el("div", { class: "empty how-to" },
      el("div", { text: "Frame sampling is off for this deployment. Start serve or sidecar with --sample-dir DIR to keep a sample of production frames (low confidence, no detection, chosen classes, while drifting, at random) with the model's answers as pseudo-labels, for labelling and retraining." }),
      el("div", { class: "warning", text: "It stores your users' images on this machine: turn it on only where that is allowed (retention and a disk cap apply: --sample-retention-days, --sample-max-mb)." })));
}

function summaryPanel(body) {
  const s = body.summary;
  const source = body.enabled ? "kept by this process" : "kept by another process (this one has no --sample-dir for it)";
  return panel("samples-summary", "Sampled frames",
    el("div", { class: "sample-counts" },
      el("span", { class: "frames", text: `${fmtCount(s.frames)} frames` }),
      el("span", { class: "meta", text: `${fmtSize(s.bytes)} · ${when(s.oldest)} – ${when(s.newest)} · ${source}` })));
}

function filter(rule, summary, pick) {
  const group = el("div", { class: "sample-rules", role: "group", "aria-label": "Rule" },
    el("button", { type: "button", "data-rule": "", text: `All (${fmtCount(summary.frames)})`, onclick: () => pick("") }),
    ...Object.entries(SAMPLE_RULES).map(([name, label]) => el("button", {
      type: "button", "data-rule": name, title: `kept ${label}`, text: `${name} (${fmtCount(summary.byRule[name] || 0)})`,
      onclick: () => pick(name),
    })));
  highlight(group, "data-rule", rule);
  return group;
}

function thumbnail(sample, image) {
  const classes = sample.classes.length ? sample.classes.join(", ") : "no detections";
  return el("figure", { class: "sample", "data-id": sample.id, "data-rule": sample.rule },
    image,
    el("figcaption", {},
      el("div", {}, el("span", { class: `pill rule ${sample.rule}`, text: sample.rule }), el("span", { class: "meta time", text: ` ${when(sample.time)}` })),
      el("div", { class: "classes", title: `${fmtCount(sample.detections)} detections`, text: classes })));
}

async function showImage(sample, image, shown, current) {
  let blob;
  try { blob = await apiBlob(sample.image); }
  catch (error) { if (current()) image.replaceWith(el("div", { class: "meta missing", text: `image unavailable: ${error.message}` })); return; }
  if (!current()) return; // drawn over while it loaded: its URLs are revoked already
  const url = URL.createObjectURL(blob);
  shown.add(url);
  image.src = url;
}
