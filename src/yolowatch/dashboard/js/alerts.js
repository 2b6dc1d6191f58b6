// Alerts: the page's panel (every active rule, the latest notifications, the silences) and a deployment's Alerts
// tab. Silences and acknowledgements are Alertmanager's: a silenced alert shows the silence that holds it (who,
// until when, why); a firing or pending alert can be acknowledged through a small form in its row.

import { api } from "./api.js";
import { $, el } from "./dom.js";
import { fmtDuration, fmtTime, fmtTimeMs, fmtValue } from "./format.js";

let silencesById = new Map();

const fmtIso = (iso) => fmtTimeMs(Date.parse(iso));

async function loadSilences() {
  const { silences } = await api("/api/silences");
  silencesById = new Map(silences.map((s) => [s.id, s]));
  return silences;
}

// Alertmanager's notation: name="value", name!="value", name=~"regex", name!~"regex".
function matcherText(m) {
  const op = `${m.isEqual ? "=" : "!="}${m.isRegex ? "~" : ""}`.replace("!=~", "!~");
  return `${m.name}${op}"${m.value}"`;
}

function silencedNote(ids) {
  if (!ids || !ids.length) return null;
  const silence = ids.map((id) => silencesById.get(id)).find(Boolean);
  const pill = el("span", { class: "pill silenced", text: "silenced" });
  if (!silence) return pill;
  return el("span", { class: "silenced-note", "data-silence": silence.id }, pill,
    ` until ${fmtIso(silence.endsAt)} by ${silence.createdBy}: ${silence.comment}`);
}

// The acknowledgement of a firing or pending alert, or the button that opens the form to make one.
function ackNote(r, refresh) {
  if (r.acknowledged) {
    const { by, at, comment } = r.acknowledged;
    return el("span", { class: "ack-note", text: `acknowledged by ${by} at ${fmtIso(at)}${comment ? `: ${comment}` : ""}` });
  }
  if (r.state === "inactive") return null;
  const button = el("button", { type: "button", class: "ack", text: "Acknowledge" });
  button.addEventListener("click", () => button.replaceWith(ackForm(r, refresh)));
  return button;
}

function ackForm(r, refresh) {
  const by = el("input", { name: "by", placeholder: "your name", required: "", maxlength: "100", autocomplete: "name" });
  const comment = el("input", { name: "comment", placeholder: "comment (optional)", maxlength: "1000" });
  const error = el("span", { class: "error" });
  const form = el("form", { class: "ack-form" }, by, comment, el("button", { type: "submit", text: "Acknowledge" }),
    el("button", { type: "button", class: "cancel", text: "Cancel", onclick: () => { form.remove(); refresh(); } }), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("/api/alerts/ack", { method: "POST", json: { rule: r.rule, deployment: r.deployment, by: by.value.trim(), comment: comment.value.trim() } });
    } catch (failure) { error.textContent = failure.message; return; }
    form.remove();
    refresh();
  });
  queueMicrotask(() => by.focus());
  return form;
}

// A "Silence…" button that opens the panel's New silence form with this alert's name and deployment.
function silenceButton(r) {
  return el("button", { type: "button", class: "silence", text: "Silence…", onclick: () => openSilenceForm({ alertname: r.rule, deployment: r.deployment }) });
}

function notificationItem(n) {
  return el("li", { class: `notification ${n.status} ${n.severity}`, "data-rule": n.rule },
    el("span", { class: `pill ${n.status}`, text: n.status }),
    el("span", { class: "rule", text: n.rule }),
    el("span", { class: "deployment-name", text: n.deployment }),
    el("span", { class: "time", text: fmtTime(n.createdS) }),
    el("span", { class: "value", text: `value ${fmtValue(n.value)}` }),
    n.silencedBy && n.silencedBy.length ? el("span", { class: "pill silenced", text: "silenced: not sent" }) : null,
    el("span", { class: "runbook", text: n.runbook }));
}

function activeRuleItem(r) {
  return el("li", { class: `notification ${r.state} ${r.severity || ""}`, "data-rule": r.rule, "data-deployment": r.deployment },
    el("span", { class: `pill ${r.state}`, text: r.state }),
    el("span", { class: "rule", text: r.rule }), el("span", { class: "deployment-name", text: r.deployment }),
    el("span", { class: "time", text: `since ${fmtTime(r.activeSince)}` }),
    el("span", { class: "value", text: `value ${fmtValue(r.value)}` }), el("span", { class: "runbook", text: r.runbook || "" }),
    silencedNote(r.silencedBy), ackNote(r, loadNotifications), r.silencedBy.length ? null : silenceButton(r));
}

function silenceItem(s) {
  const state = s.status.state;
  const when = { active: `until ${fmtIso(s.endsAt)}`, pending: `from ${fmtIso(s.startsAt)} until ${fmtIso(s.endsAt)}`, expired: `ended ${fmtIso(s.endsAt)}` }[state];
  const expire = state === "expired" ? null : el("button", { type: "button", class: "expire", text: "Expire", onclick: async () => {
    try { await api(`/api/silences/${encodeURIComponent(s.id)}`, { method: "DELETE" }); } catch { /* shown by the banner, or gone already */ }
    loadNotifications();
  } });
  return el("li", { class: `notification silence ${state}`, "data-id": s.id },
    el("span", { class: `pill ${state}`, text: state }),
    el("span", { class: "matchers", text: s.matchers.map(matcherText).join(", ") }),
    el("span", { class: "time", text: when }),
    el("span", { class: "by", text: `by ${s.createdBy}` }),
    el("span", { class: "comment", text: s.comment }), expire);
}

// While someone types in an acknowledgement form, the 30-second refresh leaves the list alone.
const typing = () => Boolean($("#notifications .ack-form"));

export async function loadNotifications() {
  let body, silences;
  try { [body, silences] = await Promise.all([api("/api/alerts"), loadSilences()]); } catch { return; }
  const active = body.rules.filter((r) => r.state !== "inactive");
  const firing = active.filter((r) => r.state === "firing").length;
  $("#alerts-summary").textContent = `${firing} firing · ${active.length - firing} pending · ${body.history.length} notifications`;
  const counts = ["active", "pending"].map((state) => `${silences.filter((s) => s.status.state === state).length} ${state}`);
  $("#silences-summary").textContent = counts.join(" · ");
  $("#silences").replaceChildren(...(silences.length ? silences.map(silenceItem) : [el("li", { class: "meta", text: "No silences." })]));
  if (typing()) return;
  const items = [...active.map(activeRuleItem), ...body.history.slice(0, 10).map(notificationItem)];
  $("#notifications").replaceChildren(...(items.length ? items : [el("li", { class: "meta", text: "No alerts: every rule is quiet." })]));
}

// The New silence form (in the page, under the panel): matchers for alertname, deployment and severity, a duration,
// who and why. Empty fields match anything; at least one must be set.
function openSilenceForm(values = {}) {
  const form = $("#silence-form");
  for (const [name, value] of Object.entries(values)) form.elements[name].value = value;
  form.hidden = false;
  form.querySelector(".error").textContent = "";
  form.elements[values.alertname ? "createdBy" : "alertname"].focus();
}

export function listenForSilences() {
  const form = $("#silence-form");
  $("#new-silence").addEventListener("click", () => openSilenceForm());
  form.querySelector(".cancel").addEventListener("click", () => { form.reset(); form.hidden = true; });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = (name) => form.elements[name].value.trim();
    const matchers = ["alertname", "deployment", "severity"].filter((name) => value(name)).map((name) => ({ name, value: value(name) }));
    const error = form.querySelector(".error");
    if (!matchers.length) { error.textContent = "Give an alertname, a deployment or a severity: a silence of everything is refused."; return; }
    try {
      await api("/api/silences", { method: "POST", json: { matchers, duration: value("duration"), createdBy: value("createdBy"), comment: value("comment") } });
    } catch (failure) { error.textContent = failure.message; return; }
    form.reset();
    form.hidden = true;
    loadNotifications();
  });
}

function ruleCondition(r) {
  if (!r.metric) return "(rule of another process)";
  const every = r.every > 60 ? `, checked every ${fmtDuration(r.every)}` : "";
  return `${r.metric} ${r.comparison} ${r.threshold} for ${fmtDuration(r.forSeconds)}${every}`;
}

export async function renderAlerts(d, box) {
  let body;
  try { [body] = await Promise.all([api(`/api/alerts?deployment=${encodeURIComponent(d.row.id)}`), loadSilences()]); }
  catch (error) { box.replaceChildren(el("div", { class: "error", text: error.message })); return; }
  if (d.tab !== "alerts") return;
  const refresh = () => renderAlerts(d, box);
  const head = el("tr", {}, ...["Rule", "When", "State", "Value", "Runbook", "Silence / acknowledgement"].map((label) => el("th", { text: label })));
  const rows = body.rules.map((r) => el("tr", { "data-rule": r.rule },
    el("td", { text: r.rule }), el("td", { text: ruleCondition(r) }),
    el("td", {}, el("span", { class: `pill ${r.state}`, text: r.state })),
    el("td", { text: fmtValue(r.value) }), el("td", { class: "runbook", text: r.runbook || "" }),
    el("td", { class: "notes" }, silencedNote(r.silencedBy), ackNote(r, refresh))));
  const history = body.history.map(notificationItem);
  box.replaceChildren(
    el("table", { class: "alert-rules" }, el("thead", {}, head), el("tbody", {}, ...rows)),
    el("h3", { text: "Notifications" }),
    el("ul", { class: "notification-list" }, ...(history.length ? history : [el("li", { class: "meta", text: "None yet." })])));
}
