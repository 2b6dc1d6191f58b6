// The Code tab: how to call this deployment's predict route from Python, JavaScript and cURL.
// The snippets carry the predict key the user entered in the Predict tab, or a placeholder: never the admin
// key, which a client of the predict route must not hold.

import { endpointUrl, predictKey } from "./api.js";
import { el, highlight } from "./dom.js";

const PLACEHOLDER = "YOUR_PREDICT_KEY";

function snippets(url, key) {
  return {
    Python: `import requests

with open("image.jpg", "rb") as f:
    r = requests.post(
        "${url}",
        headers={"Authorization": "Bearer ${key}"},
        files={"file": f},
        data={"conf": 0.25, "iou": 0.7, "imgsz": 640},
    )
print(r.json()["images"][0]["results"])`,
    JavaScript: `const form = new FormData();
form.append("file", fileInput.files[0]);
form.append("conf", "0.25");
form.append("iou", "0.7");
form.append("imgsz", "640");
const res = await fetch("${url}", {
  method: "POST",
  headers: { Authorization: "Bearer ${key}" },
  body: form,
});
console.log((await res.json()).images[0].results);`,
    cURL: `curl -H "Authorization: Bearer ${key}" \\
  -F file=@image.jpg -F conf=0.25 -F iou=0.7 -F imgsz=640 \\
  ${url}`,
  };
}

export function renderCode(d, box) {
  const examples = snippets(endpointUrl(d.info), predictKey() || PLACEHOLDER);
  const pre = el("pre", { class: "code" });
  const show = (name) => { pre.textContent = examples[name]; pre.dataset.language = name; highlight(buttons, "data-language", name); };
  const buttons = el("div", { class: "code-tabs" }, ...Object.keys(examples).map((name) =>
    el("button", { type: "button", "data-language": name, text: name, onclick: () => show(name) })));
  const note = el("div", { class: "meta", text: "The Authorization header carries the predict route's own key (YOLOWATCH_PREDICT_API_KEY), never the admin key; a route without a key ignores it." });
  box.replaceChildren(buttons, pre, note,
    el("button", { type: "button", text: "Copy", onclick: () => navigator.clipboard.writeText(pre.textContent).catch(() => {}) }));
  show("Python");
}
