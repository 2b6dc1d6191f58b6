// One deployment's card: its head (status, pause, health), numbers, metric charts with a range, and tabs.
// A change that other parts of the page show (the snapshot window) is announced with a bubbling
// "deployment-changed" event, for the page to load again.

import { api, isApiDown, RETRY_EVERY_MS } from "./api.js";
import { renderAlerts } from "./alerts.js";
import { renderCode } from "./code.js";
import { $, el, highlight, statusPill } from "./dom.js";
import { fmtCount, fmtMs, fmtPct } from "./format.js";
import { renderGolden } from "./golden.js";
import { renderLogs } from "./logs.js";
import { loadMetrics } from "./metrics.js";
import { renderPredict } from "./predict.js";
import { renderQuality } from "./quality.js";
import { renderSamples } from "./samples.js";
import { renderSignals } from "./signals.js";
import { renderVersions } from "./versions.js";

const METRICS_EVERY_MS = 60_000;
const TRANSITIONAL_EVERY_MS = 3_000; // while a deployment is being checked or is unhealthy
const RANGES = ["1h", "6h", "24h", "7d", "30d"];
const SNAPSHOT_WINDOWS = ["5m", "15m", "1h", "6h", "1d"];
const TABS = {
  logs: renderLogs, signals: renderSignals, versions: renderVersions, quality: renderQuality, golden: renderGolden,
  samples: renderSamples, alerts: renderAlerts, code: renderCode, predict: renderPredict,
};
const RANGED_TABS = new Set(["signals", "versions", "golden"]); // they show the card's range: a new range loads them again

// What the page keeps about a deployment between refreshes.
export function newDeployment(row, info) {
  return { row, info, range: "24h", tab: "logs", logsMode: "all", charts: [], tabCharts: [], tabRenders: 0 };
}

const path = (d, rest = "") => `/api/deployments/${encodeURIComponent(d.row.id)}${rest}`;

export function renderCard(d) {
  const node = el("article", { class: "deployment", "data-id": d.row.id });
  d.node = node;
  const ranges = el("div", { class: "ranges", role: "group", "aria-label": "Range" }, ...RANGES.map((range) =>
    el("button", { type: "button", "data-range": range, class: range === d.range ? "active" : "", text: range,
      onclick: () => {
        d.range = range;
        highlight(ranges, "data-range", range);
        refreshMetrics(d);
        if (RANGED_TABS.has(d.tab)) renderTab(d);
      } })));
  const tabs = el("div", { class: "tabs", role: "tablist" }, ...Object.keys(TABS).map((tab) =>
    el("button", { type: "button", "data-tab": tab, class: tab === d.tab ? "active" : "", text: tab[0].toUpperCase() + tab.slice(1),
      onclick: () => { d.tab = tab; highlight(tabs, "data-tab", tab); renderTab(d); } })));
  node.append(
    el("div", { class: "head" },
      el("span", { class: "name", text: d.row.name }), el("span", { class: "status-pill" }),
      el("span", { class: "monitor-state" }), el("span", { class: "meta" }), el("div", { class: "health" })),
    el("div", { class: "metrics" }), ranges, el("div", { class: "charts" }), tabs, el("div", { class: "tab" }));
  updateCard(d);
  refreshMetrics(d);
  renderTab(d);
  return node;
}

export function updateCard(d) {
  const r = d.row, node = d.node;
  $(".status-pill", node).replaceChildren(statusPill(r.status));
  renderMonitorState(d);
  const info = d.info || {};
  $(".meta", node).textContent = [info.model, r.region, info.endpoint].filter(Boolean).join(" · ");
  const snapshot = r.snapshot || {};
  $(".metrics", node).replaceChildren(
    metric("Requests (24h)", fmtCount(r.requests)), metric("P95 (24h)", fmtMs(r.p95LatencyMs)), metric("Error rate (24h)", fmtPct(r.errorRate)),
    el("div", { class: "metric snapshot", title: "The live snapshot the health state is judged on" },
      el("div", { class: "label" }, "Snapshot ", snapshotSelect(d)),
      el("div", { class: "value", text: `${fmtCount(snapshot.requests)} req · P95 ${fmtMs(snapshot.p95LatencyMs)} · ${fmtPct(snapshot.errorRate)}` })));
  renderHealth(d);
  return node;
}

function metric(label, value) { return el("div", { class: "metric" }, el("div", { class: "label", text: label }), el("div", { class: "value", text: value })); }

// Draws the chosen tab afresh. A tab that loads something draws only while `isCurrent()`: not once another tab,
// range or refresh has drawn over it meanwhile. What a tab leaves in `d.tabCharts` (charts, the Samples tab's
// blob: URLs) is destroyed when it is drawn again or left.
export function renderTab(d) {
  for (const chart of d.tabCharts) chart.destroy();
  d.tabCharts = [];
  const render = ++d.tabRenders;
  const tab = d.tab;
  TABS[tab](d, $(".tab", d.node), () => d.tabRenders === render && d.tab === tab);
}

// Whether Refresh should load the open tab again (those that show recorded traffic).
export const refreshesWithPage = (d) => d.tab === "logs" || RANGED_TABS.has(d.tab);

// Loads the metric charts again, then schedules the next load.
export async function refreshMetrics(d) {
  if (!d.node) return;
  try { await loadMetrics(d); } catch { /* shown by the banner or the key prompt */ }
  scheduleMetrics(d);
}

function transitional(d) { const h = d.row.health; return Boolean(h && (h.checking || !h.healthy)); }

function scheduleMetrics(d) {
  clearTimeout(d.metricsTimer);
  const every = isApiDown() ? RETRY_EVERY_MS : transitional(d) ? TRANSITIONAL_EVERY_MS : METRICS_EVERY_MS;
  d.metricsTimer = setTimeout(async () => {
    if (transitional(d)) {
      try { d.row.health = await api(path(d, "/health")); renderHealth(d); } catch { /* shown by the banner */ }
    }
    refreshMetrics(d);
  }, every);
}

function renderHealth(d) {
  const health = d.row.health;
  const parts = [];
  if (!health) parts.push(el("span", { class: "meta", text: "no health probe" }));
  else if (health.checking) parts.push(el("span", { class: "spinner", "aria-label": "checking" }), el("span", { text: "checking…" }));
  else if (health.healthy) parts.push(el("span", { class: "heart up", text: "♥", "aria-label": "healthy" }), el("span", { text: fmtMs(health.latencyMs) }));
  else parts.push(el("span", { class: "heart down", text: "♥", "aria-label": "unhealthy" }), el("span", { class: "error", text: health.lastError || "unhealthy" }));
  parts.push(el("button", { type: "button", class: "check", text: "Check now", onclick: () => checkNow(d) }));
  $(".health", d.node).replaceChildren(...parts);
  scheduleMetrics(d);
}

async function checkNow(d) {
  d.row.health = { ...(d.row.health || {}), checking: true };
  renderHealth(d);
  // A probe may take up to its own 55 s timeout (a cold start): wait a little longer than that.
  try { d.row.health = await api(path(d, "/health/check"), { method: "POST", timeoutMs: 60_000 }); }
  catch (error) { d.row.health = { ...(d.row.health || {}), checking: false, healthy: false, lastError: error.message }; }
  renderHealth(d);
}

// Pausing stops recording (requests are still served); the state lives in the store, for every process.
function renderMonitorState(d) {
  const current = d.row.state || "active";
  const next = current === "active" ? "paused" : "active";
  $(".monitor-state", d.node).replaceChildren(
    current === "active" ? "" : statusPill(current),
    el("button", { type: "button", class: "pause", text: current === "active" ? "Pause monitoring" : "Resume monitoring",
      title: current === "active" ? "Stop recording this deployment's requests (they are still served)" : "Record requests again",
      onclick: async () => {
        try { d.row.state = (await api(path(d), { method: "PATCH", json: { state: next } })).state; } catch { return; }
        renderMonitorState(d);
      } }));
}

function snapshotSelect(d) {
  const select = el("select", { "aria-label": "Snapshot window", onchange: async () => {
    try { await api(path(d), { method: "PATCH", json: { snapshotWindow: select.value } }); } catch { return; }
    select.dispatchEvent(new CustomEvent("deployment-changed", { bubbles: true }));
  } }, ...SNAPSHOT_WINDOWS.map((w) => el("option", { value: w, text: w })));
  select.value = (d.row.snapshot || {}).window || "1h";
  return select;
}
