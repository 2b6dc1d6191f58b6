// The Predict tab: send an image to the deployment's predict route and draw the boxes it found.
// It sends the predict key (asked for when the route answers 401), never the admin key.

import { predict, predictKey, predictUrl } from "./api.js";
import { el } from "./dom.js";

const BOX_COLOURS = ["#ff3b30", "#34c759", "#007aff", "#ff9500", "#af52de", "#00c7be"];

export function renderPredict(d, box) {
  const input = el("input", { type: "file", accept: "image/*", class: "file" });
  const drop = el("div", { class: "drop", text: "Drop an image here, or pick one: " }, input);
  const result = el("div", { class: "result" });
  const send = (file) => predictFile(d, file, result);
  input.addEventListener("change", () => input.files[0] && send(input.files[0]));
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => { event.preventDefault(); drop.classList.remove("over"); if (event.dataTransfer.files[0]) send(event.dataTransfer.files[0]); });
  box.replaceChildren(drop, result);
}

async function predictFile(d, file, result, key = predictKey()) {
  result.replaceChildren(el("span", { class: "spinner" }), el("span", { text: " predicting…" }));
  let answer;
  try { answer = await predict(predictUrl(d.info), file, key); }
  catch (error) { result.replaceChildren(el("div", { class: "error", text: `predict failed: ${error.message}` })); return; }
  const { status, body } = answer;
  if (status === 401) { result.replaceChildren(predictKeyForm(Boolean(key), (entered) => predictFile(d, file, result, entered))); return; }
  const raw = el("pre", { class: "raw", text: JSON.stringify(body, null, 2) });
  if (status !== 200) { result.replaceChildren(el("div", { class: "error", text: `${status}: ${body.error || ""}` }), raw); return; }
  const detections = (body.images && body.images[0] && body.images[0].results) || [];
  const canvas = await drawDetections(file, detections);
  result.replaceChildren(el("div", { text: `${detections.length} detections` }), canvas, raw);
}

// The field for the predict route's own key; `retry(key)` sends the same image again with the key entered.
function predictKeyForm(refused, retry) {
  const input = el("input", { type: "password", autocomplete: "off", placeholder: "Predict key", "aria-label": "Predict key" });
  const form = el("form", { class: "predict-key", onsubmit: (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    retry(key);
  } },
  el("label", { text: "This predict route needs its own predict key (YOLOWATCH_PREDICT_API_KEY), not the admin key. It is kept for this browser tab only." }),
  input,
  el("button", { type: "submit", text: "Use key and predict" }),
  el("span", { class: "error", text: refused ? "That predict key was refused." : "" }));
  queueMicrotask(() => input.focus());
  return form;
}

async function drawDetections(file, detections) {
  const bitmap = await createImageBitmap(file);
  const canvas = el("canvas", { class: "predicted" });
  canvas.width = bitmap.width; canvas.height = bitmap.height;
  const context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0);
  const line = Math.max(2, Math.round(Math.min(bitmap.width, bitmap.height) / 150));
  context.font = `${Math.max(12, line * 6)}px system-ui, sans-serif`;
  context.textBaseline = "bottom";
  for (const det of detections) {
    const { x1, y1, x2, y2 } = det.box;
    const colour = BOX_COLOURS[det.class % BOX_COLOURS.length];
    context.strokeStyle = colour; context.lineWidth = line;
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const label = `${det.name} ${det.confidence.toFixed(2)}`;
    const width = context.measureText(label).width + 6;
    const top = Math.max(y1, line * 6 + 4);
    context.fillStyle = colour; context.fillRect(x1, top - line * 6 - 4, width, line * 6 + 4);
    context.fillStyle = "#fff"; context.fillText(label, x1 + 3, top - 2);
  }
  canvas.dataset.boxes = String(detections.length);
  return canvas;
}
