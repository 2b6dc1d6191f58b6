// The Logs tab: the latest 20 entries (all, or warnings and errors), refreshed and copied on demand.

import { api } from "./api.js";
import { el, showStatus } from "./dom.js";
import { fmtMs, fmtTimeMs } from "./format.js";

export async function renderLogs(d, box) {
  const list = el("div", { class: "log-list" });
  const mode = (value) => { d.logsMode = value; renderLogs(d, box); };
  box.replaceChildren(el("div", { class: "logs-actions" },
    el("button", { type: "button", class: d.logsMode === "errors" ? "active" : "", text: "Errors", onclick: () => mode("errors") }),
    el("button", { type: "button", class: d.logsMode === "all" ? "active" : "", text: "All", onclick: () => mode("all") }),
    el("button", { type: "button", text: "Copy", onclick: () => copyLogs(d) }),
    el("button", { type: "button", text: "Refresh", onclick: () => renderLogs(d, box) })), list);
  const severity = d.logsMode === "errors" ? "&severity=ERROR,WARNING" : "";
  let page;
  try { page = await api(`/api/deployments/${encodeURIComponent(d.row.id)}/logs?limit=20${severity}`); }
  catch (error) { list.replaceChildren(el("div", { class: "error", text: `logs unavailable: ${error.message}` })); return; }
  d.logEntries = page.entries;
  if (!page.entries.length) { list.replaceChildren(el("div", { class: "empty", text: "No log entries." })); return; }
  list.replaceChildren(...page.entries.map((e) => el("div", { class: `log sev-${e.severity}`, "data-severity": e.severity },
    el("span", { class: "bar", title: e.severity }),
    el("span", { class: "time", title: e.timestamp, text: fmtTimeMs(e.timestampMs) }),
    el("span", { class: "message", text: e.message }),
    el("span", { class: "status", text: String(e.status) }),
    el("span", { class: "latency", text: fmtMs(e.latencyMs) }))));
}

async function copyLogs(d) {
  const lines = (d.logEntries || []).map((e) => `${e.timestamp} ${e.severity} ${e.message} [${e.requestId}]`);
  try { await navigator.clipboard.writeText(lines.join("\n")); showStatus(`copied ${lines.length} log lines`); }
  catch (error) { showStatus(`copy failed: ${error.message}`); }
}
