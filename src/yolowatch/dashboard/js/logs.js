// The Logs tab: the latest 20 entries (all, or warnings and errors; of every trace, or of one), refreshed and
// copied on demand. An entry's trace id shows short (its first 8 hex digits); clicking it keeps that trace only.

import { api } from "./api.js";
import { el, showStatus } from "./dom.js";
import { fmtMs, fmtTimeMs } from "./format.js";

export async function renderLogs(d, box, isCurrent = () => true) {
  const mine = (d.logsLoads = (d.logsLoads || 0) + 1); // a later load (another mode or trace) draws over this one
  const again = () => renderLogs(d, box, isCurrent);
  const mode = (value) => { d.logsMode = value; again(); };
  const trace = (id) => { d.logsTrace = id; again(); };
  const list = el("div", { class: "log-list", "data-trace": d.logsTrace });
  box.replaceChildren(el("div", { class: "logs-actions" },
    el("button", { type: "button", class: d.logsMode === "errors" ? "active" : "", text: "Errors", onclick: () => mode("errors") }),
    el("button", { type: "button", class: d.logsMode === "all" ? "active" : "", text: "All", onclick: () => mode("all") }),
    el("button", { type: "button", text: "Copy", onclick: () => copyLogs(d) }),
    el("button", { type: "button", text: "Refresh", onclick: again }),
    d.logsTrace && el("span", { class: "trace-chip", title: d.logsTrace, text: `trace ${d.logsTrace.slice(0, 8)}…` },
      el("button", { type: "button", class: "clear", title: "Show every trace", "aria-label": "Clear the trace filter", text: "×", onclick: () => trace(null) }))), list);
  const severity = d.logsMode === "errors" ? "&severity=ERROR,WARNING" : "";
  const traceId = d.logsTrace ? `&traceId=${encodeURIComponent(d.logsTrace)}` : "";
  const current = () => isCurrent() && d.logsLoads === mine;
  let page;
  try { page = await api(`/api/deployments/${encodeURIComponent(d.row.id)}/logs?limit=20${severity}${traceId}`); }
  catch (error) { if (current()) list.replaceChildren(el("div", { class: "error", text: `logs unavailable: ${error.message}` })); return; }
  if (!current()) return;
  d.logEntries = page.entries;
  if (!page.entries.length) { list.replaceChildren(el("div", { class: "empty", text: d.logsTrace ? "No log entries of this trace." : "No log entries." })); return; }
  list.replaceChildren(...page.entries.map((e) => el("div", { class: `log sev-${e.severity}`, "data-severity": e.severity, "data-trace": e.traceId },
    el("span", { class: "bar", title: e.severity }),
    el("span", { class: "time", title: e.timestamp, text: fmtTimeMs(e.timestampMs) }),
    el("span", { class: "trace" }, e.traceId && el("button", { type: "button", title: e.traceId, text: e.traceId.slice(0, 8), onclick: () => trace(e.traceId) })),
    el("span", { class: "message", text: e.message }),
    el("span", { class: "status", text: String(e.status) }),
    el("span", { class: "latency", text: fmtMs(e.latencyMs) }))));
}

async function copyLogs(d) {
  const lines = (d.logEntries || []).map((e) => `${e.timestamp} ${e.severity} ${e.message} [${e.requestId}${e.traceId ? ` trace=${e.traceId}` : ""}]`);
  try { await navigator.clipboard.writeText(lines.join("\n")); showStatus(`copied ${lines.length} log lines`); }
  catch (error) { showStatus(`copy failed: ${error.message}`); }
}
