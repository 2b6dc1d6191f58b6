// yolowatch dashboard: plain ES module, no build step. Everything shown is set with textContent
// (never innerHTML), so a path or message holding HTML shows as text.

const OVERVIEW_EVERY_MS = 30_000;
const METRICS_EVERY_MS = 60_000;
const TRANSITIONAL_EVERY_MS = 3_000; // while a deployment is being checked or is unhealthy
const RETRY_EVERY_MS = 5_000; // while the API cannot be reached
const API_TIMEOUT_MS = 15_000;
const RANGES = ["1h", "6h", "24h", "7d", "30d"];
const TABS = ["logs", "quality", "alerts", "code", "predict"];
const KEY_STORE = "yolowatch-api-key";
const TIME_FORMAT = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" };

const state = {
  view: "cards",
  sort: { column: "name", desc: false },
  overview: null,
  deployments: new Map(), // id -> {row, info, node, range, tab, logsMode, charts, metricsTimer}
  apiDown: false,
};

// -- DOM helpers ------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

const $ = (selector, root = document) => root.querySelector(selector);

function fmtCount(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"); }
function fmtMs(ms) { return ms === null || ms === undefined ? "–" : `${ms >= 100 ? Math.round(ms) : ms.toFixed(1)} ms`; }
function fmtPct(rate) { return rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(rate >= 0.1 ? 1 : 2)}%`; }
function fmtNum(x, digits = 2) { return x === null || x === undefined ? "–" : x.toFixed(digits); }

// -- API ----------------------------------------------------------------------------------------------

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers.Authorization = `Bearer ${key}`;
  let response;
  try {
    // A hung API must not hang the page: past the timeout it counts as unreachable, and is retried.
    response = await fetch(path, { ...options, headers, cache: "no-store", signal: AbortSignal.timeout(options.timeoutMs || API_TIMEOUT_MS) });
  } catch (error) {
    const reason = error.name === "TimeoutError" ? `no answer within ${(options.timeoutMs || API_TIMEOUT_MS) / 1000} s` : error.message;
    setApiDown(`cannot reach the yolowatch API (${reason})`);
    throw error;
  }
  if (response.status === 401) {
    setApiDown(null);
    askForKey(key ? "That key was refused." : "");
    throw new Unauthorized();
  }
  const body = await response.json().catch(() => ({ error: `answer ${response.status} is not JSON` }));
  if (response.status >= 500 && response.status !== 503) {
    setApiDown(`the API answered ${response.status}: ${body.error || ""}`);
    throw new Error(body.error);
  }
  setApiDown(null);
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function setApiDown(reason) {
  const banner = $("#banner");
  state.apiDown = Boolean(reason);
  banner.hidden = !reason;
  banner.textContent = reason ? `${reason}. The page keeps what it last showed and retries every ${RETRY_EVERY_MS / 1000} s.` : "";
}

function askForKey(message) {
  const form = $("#auth");
  form.hidden = false;
  $("#auth-error").textContent = message;
  $("#auth-key").focus();
}

$("#auth").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("#auth-key").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORE, key);
  $("#auth").hidden = true;
  $("#auth-key").value = "";
  refreshAll();
});

// -- overview and list --------------------------------------------------------------------------------

async function loadOverview() {
  const overview = await api("/api/monitoring");
  state.overview = overview;
  $("#card-requests .value").textContent = fmtCount(overview.totalRequests);
  $("#card-active .value").textContent = fmtCount(overview.activeDeployments);
  $("#card-errors .value").textContent = fmtPct(overview.errorRate);
  $("#card-errors").classList.toggle("bad", overview.errorRate > 0.05);
  $("#card-p95 .value").textContent = fmtMs(overview.p95LatencyMs);
  const { deployments } = await api("/api/deployments");
  const info = new Map(deployments.map((d) => [d.id, d]));
  for (const row of overview.deployments) {
    const known = state.deployments.get(row.id);
    if (known) { known.row = row; known.info = info.get(row.id) || known.info; }
    else state.deployments.set(row.id, { row, info: info.get(row.id), range: "24h", tab: "logs", logsMode: "all", charts: [] });
  }
  renderList();
  await loadNotifications();
  $("#status").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function renderList() {
  const list = $("#list");
  const entries = [...state.deployments.values()];
  if (!entries.length) {
    list.replaceChildren(el("div", { class: "empty", text: "No deployments yet: send a request to a monitored predict route." }));
    return;
  }
  if (state.view === "table") list.replaceChildren(renderTable(entries));
  else if (state.view === "compact") list.replaceChildren(el("div", { class: "compact" }, ...entries.map(renderCompact)));
  else {
    const nodes = entries.map((d) => d.node && list.contains(d.node) ? updateCard(d) : renderCard(d));
    list.replaceChildren(...nodes);
  }
}

function statusPill(status) { return el("span", { class: `pill ${status}`, text: status }); }

function renderCompact(d) {
  const r = d.row;
  return el("div", { class: "item", "data-id": r.id },
    el("div", { class: "name", text: r.name }), statusPill(r.status),
    el("div", { class: "numbers", text: `${fmtCount(r.requests)} requests · P95 ${fmtMs(r.p95LatencyMs)} · ${fmtPct(r.errorRate)} errors` }));
}

const COLUMNS = [
  ["name", "Name", (r) => r.name], ["region", "Region", (r) => r.region || ""], ["status", "Status", (r) => r.status],
  ["requests", "Requests", (r) => r.requests], ["p95", "P95", (r) => r.p95LatencyMs ?? -1], ["errors", "Errors", (r) => r.errorRate],
];

function renderTable(entries) {
  const { column, desc } = state.sort;
  const key = COLUMNS.find((c) => c[0] === column)[2];
  const rows = entries.map((d) => d.row).sort((a, b) => {
    const x = key(a), y = key(b);
    const order = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
    return desc ? -order : order;
  });
  const head = el("tr", {}, ...COLUMNS.map(([id, label]) => el("th", {
    "data-column": id, class: id === column ? `sorted${desc ? " desc" : ""}` : "", text: label,
    onclick: () => { state.sort = { column: id, desc: id === column ? !desc : false }; renderList(); },
  })));
  const body = rows.map((r) => el("tr", { "data-id": r.id },
    el("td", { text: r.name }), el("td", { text: r.region || "–" }), el("td", {}, statusPill(r.status)),
    el("td", { text: fmtCount(r.requests) }), el("td", { text: fmtMs(r.p95LatencyMs) }), el("td", { text: fmtPct(r.errorRate) })));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

// -- one deployment's card ----------------------------------------------------------------------------

function renderCard(d) {
  const r = d.row;
  const node = el("article", { class: "deployment", "data-id": r.id });
  d.node = node;
  const ranges = el("div", { class: "ranges", role: "group", "aria-label": "Range" }, ...RANGES.map((range) =>
    el("button", { type: "button", "data-range": range, class: range === d.range ? "active" : "", text: range,
      onclick: () => { d.range = range; highlight(ranges, "data-range", range); loadMetrics(d); } })));
  const tabs = el("div", { class: "tabs", role: "tablist" }, ...TABS.map((tab) =>
    el("button", { type: "button", "data-tab": tab, class: tab === d.tab ? "active" : "", text: tab[0].toUpperCase() + tab.slice(1),
      onclick: () => { d.tab = tab; highlight(tabs, "data-tab", tab); renderTab(d); } })));
  node.append(
    el("div", { class: "head" },
      el("span", { class: "name", text: r.name }), el("span", { class: "status-pill" }),
      el("span", { class: "monitor-state" }),
      el("span", { class: "meta" }),
      el("div", { class: "health" })),
    el("div", { class: "metrics" }),
    ranges,
    el("div", { class: "charts" }),
    tabs,
    el("div", { class: "tab" }));
  updateCard(d);
  loadMetrics(d);
  renderTab(d);
  return node;
}

function highlight(group, attribute, value) {
  for (const button of group.querySelectorAll(`[${attribute}]`)) button.classList.toggle("active", button.getAttribute(attribute) === value);
}

function updateCard(d) {
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

function renderHealth(d) {
  const health = d.row.health;
  const box = $(".health", d.node);
  const parts = [];
  if (!health) parts.push(el("span", { class: "meta", text: "no health probe" }));
  else if (health.checking) parts.push(el("span", { class: "spinner", "aria-label": "checking" }), el("span", { text: "checking…" }));
  else if (health.healthy) parts.push(el("span", { class: "heart up", text: "♥", "aria-label": "healthy" }), el("span", { text: fmtMs(health.latencyMs) }));
  else parts.push(el("span", { class: "heart down", text: "♥", "aria-label": "unhealthy" }), el("span", { class: "error", text: health.lastError || "unhealthy" }));
  parts.push(el("button", { type: "button", class: "check", text: "Check now", onclick: () => checkNow(d) }));
  box.replaceChildren(...parts);
  scheduleMetrics(d);
}

async function checkNow(d) {
  d.row.health = { ...(d.row.health || {}), checking: true };
  renderHealth(d);
  // A probe may take up to its own 55 s timeout (a cold start): wait a little longer than that.
  try { d.row.health = await api(`/api/deployments/${encodeURIComponent(d.row.id)}/health/check`, { method: "POST", timeoutMs: 60_000 }); }
  catch (error) { d.row.health = { ...(d.row.health || {}), checking: false, healthy: false, lastError: error.message }; }
  renderHealth(d);
}

function transitional(d) { const h = d.row.health; return Boolean(h && (h.checking || !h.healthy)); }

function scheduleMetrics(d) {
  clearTimeout(d.metricsTimer);
  const every = state.apiDown ? RETRY_EVERY_MS : transitional(d) ? TRANSITIONAL_EVERY_MS : METRICS_EVERY_MS;
  d.metricsTimer = setTimeout(async () => {
    if (transitional(d)) {
      try { d.row.health = await api(`/api/deployments/${encodeURIComponent(d.row.id)}/health`); renderHealth(d); } catch { /* shown by the banner */ }
    }
    loadMetrics(d);
  }, every);
}

// Pausing stops recording (requests are still served); the state lives in the store, for every process.
function renderMonitorState(d) {
  const current = d.row.state || "active";
  const next = current === "active" ? "paused" : "active";
  const box = $(".monitor-state", d.node);
  box.replaceChildren(
    current === "active" ? "" : el("span", { class: `pill ${current}`, text: current }),
    el("button", { type: "button", class: "pause", text: current === "active" ? "Pause monitoring" : "Resume monitoring",
      title: current === "active" ? "Stop recording this deployment's requests (they are still served)" : "Record requests again",
      onclick: async () => {
        try { d.row.state = (await api(`/api/deployments/${encodeURIComponent(d.row.id)}`, {
          method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ state: next }) })).state; }
        catch { return; }
        renderMonitorState(d);
      } }));
}

const SNAPSHOT_WINDOWS = ["5m", "15m", "1h", "6h", "1d"];

function snapshotSelect(d) {
  const current = (d.row.snapshot || {}).window || "1h";
  const select = el("select", { "aria-label": "Snapshot window", onchange: async () => {
    try { await api(`/api/deployments/${encodeURIComponent(d.row.id)}`, {
      method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ snapshotWindow: select.value }) }); }
    catch { return; }
    refreshAll();
  } }, ...SNAPSHOT_WINDOWS.map((w) => el("option", { value: w, text: w })));
  select.value = current;
  return select;
}

// -- alerts -------------------------------------------------------------------------------------------

function fmtTime(epochS) { return epochS ? new Date(epochS * 1000).toLocaleString([], TIME_FORMAT) : "–"; }
function fmtDuration(s) {
  if (s === null || s === undefined) return "–";
  for (const [unit, size] of [["w", 604800], ["d", 86400], ["h", 3600], ["m", 60]]) if (s >= size && s % size === 0) return `${s / size}${unit}`;
  return `${s}s`;
}
function fmtValue(v) { return v === null || v === undefined ? "–" : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 0.001 || v === 0 ? v.toPrecision(3) : v.toExponential(1); }

function notificationItem(n) {
  return el("li", { class: `notification ${n.status} ${n.severity}`, "data-rule": n.rule },
    el("span", { class: `pill ${n.status}`, text: n.status }),
    el("span", { class: "rule", text: n.rule }),
    el("span", { class: "deployment-name", text: n.deployment }),
    el("span", { class: "time", text: fmtTime(n.createdS) }),
    el("span", { class: "value", text: `value ${fmtValue(n.value)}` }),
    el("span", { class: "runbook", text: n.runbook }));
}

async function loadNotifications() {
  let body;
  try { body = await api("/api/alerts"); } catch { return; }
  const active = body.rules.filter((r) => r.state !== "inactive");
  const firing = active.filter((r) => r.state === "firing").length;
  $("#alerts-summary").textContent = `${firing} firing · ${active.length - firing} pending · ${body.history.length} notifications`;
  const items = active.map((r) => el("li", { class: `notification ${r.state} ${r.severity || ""}`, "data-rule": r.rule },
    el("span", { class: `pill ${r.state}`, text: r.state }),
    el("span", { class: "rule", text: r.rule }), el("span", { class: "deployment-name", text: r.deployment }),
    el("span", { class: "time", text: `since ${fmtTime(r.activeSince)}` }),
    el("span", { class: "value", text: `value ${fmtValue(r.value)}` }), el("span", { class: "runbook", text: r.runbook || "" })));
  items.push(...body.history.slice(0, 10).map(notificationItem));
  $("#notifications").replaceChildren(...(items.length ? items : [el("li", { class: "meta", text: "No alerts: every rule is quiet." })]));
}

async function renderAlerts(d, box) {
  let body;
  try { body = await api(`/api/alerts?deployment=${encodeURIComponent(d.row.id)}`); }
  catch (error) { box.replaceChildren(el("div", { class: "error", text: error.message })); return; }
  if (d.tab !== "alerts") return;
  const head = el("tr", {}, ...["Rule", "When", "State", "Value", "Runbook"].map((label) => el("th", { text: label })));
  const rows = body.rules.map((r) => el("tr", { "data-rule": r.rule },
    el("td", { text: r.rule }),
    el("td", { text: r.metric ? `${r.metric} ${r.comparison} ${r.threshold} for ${fmtDuration(r.forSeconds)}${r.every > 60 ? `, checked every ${fmtDuration(r.every)}` : ""}` : "(rule of another process)" }),
    el("td", {}, el("span", { class: `pill ${r.state}`, text: r.state })),
    el("td", { text: fmtValue(r.value) }), el("td", { class: "runbook", text: r.runbook || "" })));
  const history = body.history.map(notificationItem);
  box.replaceChildren(
    el("table", { class: "alert-rules" }, el("thead", {}, head), el("tbody", {}, ...rows)),
    el("h3", { text: "Notifications" }),
    el("ul", { class: "notification-list" }, ...(history.length ? history : [el("li", { class: "meta", text: "None yet." })])));
}

// -- quality: drift and holdout -----------------------------------------------------------------------

function fmtP(p) { return p >= 0.001 ? p.toFixed(3) : p.toExponential(1); }

// Box sizes span five decades: their x axis is log10 of the share, labelled as the share itself.
function histogramChart(holder, hist, logScale) {
  const edges = hist.edges;
  const centres = edges.slice(0, -1).map((lo, i) => logScale ? Math.log10(Math.sqrt(Math.max(lo, edges[1] / 10) * edges[i + 1])) : (lo + edges[i + 1]) / 2);
  const share = (counts) => { const total = counts.reduce((a, b) => a + b, 0) || 1; return counts.map((c) => c / total); };
  const label = (t) => logScale ? Number(10 ** t).toExponential(0) : t.toFixed(1);
  const options = {
    width: Math.max(240, holder.clientWidth - 10), height: 140, cursor: { drag: { x: false, y: false } },
    scales: { x: { time: false } },
    series: [{ value: (u, t) => t === null ? "–" : label(t) },
      { label: "baseline", stroke: "#98a2b3", width: 1.5, paths: uPlot.paths.stepped({ align: 1 }) },
      { label: "current", stroke: "#2f6fde", width: 1.5, paths: uPlot.paths.stepped({ align: 1 }) }],
    axes: [{ size: 30, space: 60, values: (u, ticks) => ticks.map(label) }, { size: 46 }],
  };
  return new uPlot(options, [centres, share(hist.baseline), share(hist.current)], holder);
}

async function renderQuality(d, box) {
  const id = encodeURIComponent(d.row.id);
  box.replaceChildren(el("div", { class: "meta", text: "running the drift tests…" }));
  let drift = null, driftError = "", holdout = { runs: [] };
  try { drift = await api(`/api/deployments/${id}/drift`, { timeoutMs: 60_000 }); } catch (error) { driftError = error.message; }
  try { holdout = await api(`/api/deployments/${id}/holdout`); } catch { /* shown as no runs */ }
  if (d.tab !== "quality") return;
  const parts = [];
  if (drift) {
    parts.push(el("div", { class: "meta window", text: `Baseline ${fmtTime(drift.baseline.start)} – ${fmtTime(drift.baseline.end)} · current ${fmtTime(drift.current.start)} – ${fmtTime(drift.current.end)}` }));
    const grid = el("div", { class: "charts drift" });
    parts.push(grid);
    const titles = { confidence: "Confidence", boxSize: "Box size (share of the image)" };
    const pending = [];
    for (const signal of drift.signals) {
      const holder = el("div", { class: "chart", "data-signal": signal.signal },
        el("div", { class: "title", text: titles[signal.signal] || signal.signal }),
        el("div", { class: `verdict ${signal.drifted ? "drifted" : "steady"}`, text: signal.drifted ? "drift" : "no drift" }),
        el("div", { class: "stats", text: `KS ${signal.ksStatistic.toFixed(3)} · p = ${fmtP(signal.pValue)} · n = ${fmtCount(signal.baselineSamples)} / ${fmtCount(signal.currentSamples)}` }),
        el("div", { class: "meta reason", text: signal.reason }));
      grid.append(holder);
      pending.push([holder, drift.histograms[signal.signal], signal.signal === "boxSize"]);
    }
    parts.push(el("ul", { class: "changes" }, ...drift.changes.map((c) =>
      el("li", { class: c.flagged ? "flagged" : "", "data-signal": c.signal, text: `${c.signal === "detectionVolume" ? "Detections a minute" : "Mean confidence"}: ${c.flagged ? "flagged — " : ""}${c.reason}` }))));
    box.replaceChildren(...parts);
    for (const [holder, hist, logScale] of pending) d.qualityCharts.push(histogramChart(holder, hist, logScale));
  } else {
    box.replaceChildren(el("div", { class: "meta", text: `Drift: ${driftError}` }));
  }
  const runs = holdout.runs || [];
  const holder = el("div", { class: "chart holdout" }, el("div", { class: "title", text: "Holdout mAP" }));
  box.append(holder);
  if (!runs.length) {
    holder.append(el("div", { class: "meta", text: `No holdout runs yet: yolowatch holdout --data holdout.yaml --deployment ${d.row.id} --endpoint ${predictUrl(d)}` }));
    return;
  }
  const last = runs[runs.length - 1];
  holder.append(el("div", { class: "stats", text: `latest: mAP50 ${last.map50.toFixed(3)} · mAP50-95 ${last.map50to95.toFixed(3)} on ${last.dataset} (${last.images} images), ${fmtTime(last.time)}` }));
  const options = {
    width: Math.max(240, holder.clientWidth - 10), height: 140, cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: [0, 1] } },
    series: [{}, { label: "mAP50", stroke: "#12a150", width: 1.5, points: { show: true, size: 6 } },
      { label: "mAP50-95", stroke: "#7a5af8", width: 1.5, points: { show: true, size: 6 } }],
    axes: [{ size: 30, space: 80 }, { size: 40 }],
  };
  d.qualityCharts.push(new uPlot(options, [runs.map((r) => r.time), runs.map((r) => r.map50), runs.map((r) => r.map50to95)], holder));
}

// -- charts -------------------------------------------------------------------------------------------

const CHARTS = [
  ["Requests", [["requests", "requests", "#2f6fde"]]],
  ["Latency (ms)", [["p50Ms", "P50", "#12a150"], ["p95Ms", "P95", "#d4a000"], ["p99Ms", "P99", "#d92d20"]]],
  ["Error rate (%)", [["errorRate", "errors", "#d92d20", 100]]],
  ["Detections per request", [["detectionsPerRequest", "detections", "#7a5af8"]]],
  ["Mean confidence", [["meanConfidence", "confidence", "#0e9384"]]],
];

async function loadMetrics(d) {
  if (!d.node) return;
  let body;
  try {
    body = await api(`/api/deployments/${encodeURIComponent(d.row.id)}/metrics?range=${d.range}&sparkline=true`);
  } catch { scheduleMetrics(d); return; }
  d.summary = body.summary;
  drawCharts(d, body.sparkline);
  scheduleMetrics(d);
}

function drawCharts(d, points) {
  const box = $(".charts", d.node);
  for (const chart of d.charts) chart.destroy();
  d.charts = [];
  box.replaceChildren();
  const times = points.map((p) => p.time);
  for (const [title, series] of CHARTS) {
    const holder = el("div", { class: "chart", "data-chart": title }, el("div", { class: "title", text: title }));
    box.append(holder);
    const data = [times, ...series.map(([field, , , scale]) => points.map((p) => p[field] === null ? null : p[field] * (scale || 1)))];
    const width = Math.max(240, holder.clientWidth - 10);
    const options = {
      width, height: 120, legend: { show: series.length > 1 }, cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      series: [{}, ...series.map(([, label, stroke]) => ({ label, stroke, width: 1.5, spanGaps: false, points: { show: true, size: 4 } }))],
      axes: [{ size: 30, space: 80 }, { size: 46 }],
    };
    d.charts.push(new uPlot(options, data, holder));
  }
}

// -- tabs ---------------------------------------------------------------------------------------------

function renderTab(d) {
  const box = $(".tab", d.node);
  for (const chart of d.qualityCharts || []) chart.destroy();
  d.qualityCharts = [];
  if (d.tab === "logs") renderLogs(d, box);
  else if (d.tab === "quality") renderQuality(d, box);
  else if (d.tab === "alerts") renderAlerts(d, box);
  else if (d.tab === "code") renderCode(d, box);
  else renderPredict(d, box);
}

async function renderLogs(d, box) {
  const list = el("div", { class: "log-list" });
  const mode = (value) => { d.logsMode = value; renderLogs(d, box); };
  box.replaceChildren(el("div", { class: "logs-actions" },
    el("button", { type: "button", class: d.logsMode === "errors" ? "active" : "", text: "Errors", onclick: () => mode("errors") }),
    el("button", { type: "button", class: d.logsMode === "all" ? "active" : "", text: "All", onclick: () => mode("all") }),
    el("button", { type: "button", text: "Copy", onclick: () => copyLogs(d, list) }),
    el("button", { type: "button", text: "Refresh", onclick: () => renderLogs(d, box) })), list);
  const severity = d.logsMode === "errors" ? "&severity=ERROR,WARNING" : "";
  let page;
  try { page = await api(`/api/deployments/${encodeURIComponent(d.row.id)}/logs?limit=20${severity}`); }
  catch (error) { list.replaceChildren(el("div", { class: "error", text: `logs unavailable: ${error.message}` })); return; }
  d.logEntries = page.entries;
  if (!page.entries.length) { list.replaceChildren(el("div", { class: "empty", text: "No log entries." })); return; }
  list.replaceChildren(...page.entries.map((e) => el("div", { class: `log sev-${e.severity}`, "data-severity": e.severity },
    el("span", { class: "bar", title: e.severity }),
    el("span", { class: "time", title: e.timestamp, text: new Date(e.timestampMs).toLocaleString([], TIME_FORMAT) }),
    el("span", { class: "message", text: e.message }),
    el("span", { class: "status", text: String(e.status) }),
    el("span", { class: "latency", text: fmtMs(e.latencyMs) }))));
}

async function copyLogs(d, list) {
  const lines = (d.logEntries || []).map((e) => `${e.timestamp} ${e.severity} ${e.message} [${e.requestId}]`);
  try { await navigator.clipboard.writeText(lines.join("\n")); $("#status").textContent = `copied ${lines.length} log lines`; }
  catch (error) { $("#status").textContent = `copy failed: ${error.message}`; }
}

// The deployment's own URL, for the Code tab (a wildcard bind address is shown as this page's host).
function endpointUrl(d) {
  try {
    const url = new URL(d.info.endpoint);
    if (["0.0.0.0", "[::]"].includes(url.hostname)) url.hostname = location.hostname;
    if (!url.pathname.endsWith("/predict")) url.pathname = url.pathname.replace(/\/?$/, "/predict");
    return url.href;
  } catch { return `${location.origin}/predict`; }
}

// Where the Predict tab sends: the page talks to its own origin only (its Content-Security-Policy says so).
function predictUrl(d) {
  const url = endpointUrl(d);
  return new URL(url).origin === location.origin ? url : `${location.origin}/predict`;
}

function renderCode(d, box) {
  const url = endpointUrl(d);
  const key = sessionStorage.getItem(KEY_STORE) || "YOUR_API_KEY";
  const examples = {
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
  const pre = el("pre", { class: "code" });
  const show = (name) => { pre.textContent = examples[name]; pre.dataset.language = name; highlight(buttons, "data-language", name); };
  const buttons = el("div", { class: "code-tabs" }, ...Object.keys(examples).map((name) =>
    el("button", { type: "button", "data-language": name, text: name, onclick: () => show(name) })));
  box.replaceChildren(buttons, pre,
    el("button", { type: "button", text: "Copy", onclick: () => navigator.clipboard.writeText(pre.textContent).catch(() => {}) }));
  show("Python");
}

function renderPredict(d, box) {
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

const BOX_COLOURS = ["#ff3b30", "#34c759", "#007aff", "#ff9500", "#af52de", "#00c7be"];

async function predictFile(d, file, result) {
  result.replaceChildren(el("span", { class: "spinner" }), el("span", { text: " predicting…" }));
  const form = new FormData();
  form.append("file", file);
  const headers = {};
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers.Authorization = `Bearer ${key}`;
  let body, status;
  try {
    const response = await fetch(predictUrl(d), { method: "POST", body: form, headers });
    status = response.status;
    body = await response.json();
  } catch (error) { result.replaceChildren(el("div", { class: "error", text: `predict failed: ${error.message}` })); return; }
  const raw = el("pre", { class: "raw", text: JSON.stringify(body, null, 2) });
  if (status !== 200) { result.replaceChildren(el("div", { class: "error", text: `${status}: ${body.error || ""}` }), raw); return; }
  const bitmap = await createImageBitmap(file);
  const canvas = el("canvas", { class: "predicted" });
  canvas.width = bitmap.width; canvas.height = bitmap.height;
  const context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0);
  const detections = (body.images && body.images[0] && body.images[0].results) || [];
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
  result.replaceChildren(el("div", { text: `${detections.length} detections` }), canvas, raw);
}

// Charts are drawn at their box's width: follow the window when it changes.
let resizeTimer;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    for (const d of state.deployments.values()) {
      for (const chart of d.charts) {
        const holder = chart.root.parentElement;
        if (holder) chart.setSize({ width: Math.max(240, holder.clientWidth - 10), height: 120 });
      }
    }
  }, 100);
});

// -- refresh loop -------------------------------------------------------------------------------------

let overviewTimer;
async function refreshAll() {
  clearTimeout(overviewTimer);
  try {
    await loadOverview();
    for (const d of state.deployments.values()) if (d.node && state.view === "cards") loadMetrics(d);
  } catch { /* banner or key prompt already shown */ }
  overviewTimer = setTimeout(refreshAll, state.apiDown ? RETRY_EVERY_MS : OVERVIEW_EVERY_MS);
}

for (const button of document.querySelectorAll("[data-view]")) {
  button.addEventListener("click", () => {
    state.view = button.dataset.view;
    highlight(button.parentElement, "data-view", state.view);
    renderList();
  });
}
$("#refresh").addEventListener("click", () => {
  refreshAll();
  for (const d of state.deployments.values()) if (d.node && d.tab === "logs") renderTab(d);
});

refreshAll();
