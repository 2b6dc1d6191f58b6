// Alerts: the page's panel (every active rule, the latest notifications) and a deployment's Alerts tab.

import { api } from "./api.js";
import { $, el } from "./dom.js";
import { fmtDuration, fmtTime, fmtValue } from "./format.js";

function notificationItem(n) {
  return el("li", { class: `notification ${n.status} ${n.severity}`, "data-rule": n.rule },
    el("span", { class: `pill ${n.status}`, text: n.status }),
    el("span", { class: "rule", text: n.rule }),
    el("span", { class: "deployment-name", text: n.deployment }),
    el("span", { class: "time", text: fmtTime(n.createdS) }),
    el("span", { class: "value", text: `value ${fmtValue(n.value)}` }),
    el("span", { class: "runbook", text: n.runbook }));
}

function activeRuleItem(r) {
  return el("li", { class: `notification ${r.state} ${r.severity || ""}`, "data-rule": r.rule },
    el("span", { class: `pill ${r.state}`, text: r.state }),
    el("span", { class: "rule", text: r.rule }), el("span", { class: "deployment-name", text: r.deployment }),
    el("span", { class: "time", text: `since ${fmtTime(r.activeSince)}` }),
    el("span", { class: "value", text: `value ${fmtValue(r.value)}` }), el("span", { class: "runbook", text: r.runbook || "" }));
}

export async function loadNotifications() {
  let body;
  try { body = await api("/api/alerts"); } catch { return; }
  const active = body.rules.filter((r) => r.state !== "inactive");
  const firing = active.filter((r) => r.state === "firing").length;
  $("#alerts-summary").textContent = `${firing} firing · ${active.length - firing} pending · ${body.history.length} notifications`;
  const items = [...active.map(activeRuleItem), ...body.history.slice(0, 10).map(notificationItem)];
  $("#notifications").replaceChildren(...(items.length ? items : [el("li", { class: "meta", text: "No alerts: every rule is quiet." })]));
}

function ruleCondition(r) {
  if (!r.metric) return "(rule of another process)";
  const every = r.every > 60 ? `, checked every ${fmtDuration(r.every)}` : "";
  return `${r.metric} ${r.comparison} ${r.threshold} for ${fmtDuration(r.forSeconds)}${every}`;
}

export async function renderAlerts(d, box) {
  let body;
  try { body = await api(`/api/alerts?deployment=${encodeURIComponent(d.row.id)}`); }
  catch (error) { box.replaceChildren(el("div", { class: "error", text: error.message })); return; }
  if (d.tab !== "alerts") return;
  const head = el("tr", {}, ...["Rule", "When", "State", "Value", "Runbook"].map((label) => el("th", { text: label })));
  const rows = body.rules.map((r) => el("tr", { "data-rule": r.rule },
    el("td", { text: r.rule }), el("td", { text: ruleCondition(r) }),
    el("td", {}, el("span", { class: `pill ${r.state}`, text: r.state })),
    el("td", { text: fmtValue(r.value) }), el("td", { class: "runbook", text: r.runbook || "" })));
  const history = body.history.map(notificationItem);
  box.replaceChildren(
    el("table", { class: "alert-rules" }, el("thead", {}, head), el("tbody", {}, ...rows)),
    el("h3", { text: "Notifications" }),
    el("ul", { class: "notification-list" }, ...(history.length ? history : [el("li", { class: "meta", text: "None yet." })])));
}
