// The overview: the four numbers at the top, and the deployments as cards, a compact grid or a sortable table.

import { api } from "./api.js";
import { newDeployment, renderCard, updateCard } from "./deployment.js";
import { $, el, statusPill } from "./dom.js";
import { fmtCount, fmtMs, fmtPct } from "./format.js";

const COLUMNS = [
  ["name", "Name", (r) => r.name], ["region", "Region", (r) => r.region || ""], ["status", "Status", (r) => r.status],
  ["requests", "Requests", (r) => r.requests], ["p95", "P95", (r) => r.p95LatencyMs ?? -1], ["errors", "Errors", (r) => r.errorRate],
];

// Loads the overview into `state.deployments` (id -> what the page keeps) and shows it.
export async function loadOverview(state) {
  const overview = await api("/api/monitoring");
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
    else state.deployments.set(row.id, newDeployment(row, info.get(row.id)));
  }
  renderList(state);
}

export function renderList(state) {
  const list = $("#list");
  const entries = [...state.deployments.values()];
  if (!entries.length) {
    list.replaceChildren(el("div", { class: "empty", text: "No deployments yet: send a request to a monitored predict route." }));
    return;
  }
  if (state.view === "table") list.replaceChildren(renderTable(state, entries));
  else if (state.view === "compact") list.replaceChildren(el("div", { class: "compact" }, ...entries.map(renderCompact)));
  else list.replaceChildren(...entries.map((d) => (d.node && list.contains(d.node) ? updateCard(d) : renderCard(d))));
}

function renderCompact(d) {
  const r = d.row;
  return el("div", { class: "item", "data-id": r.id },
    el("div", { class: "name", text: r.name }), statusPill(r.status),
    el("div", { class: "numbers", text: `${fmtCount(r.requests)} requests · P95 ${fmtMs(r.p95LatencyMs)} · ${fmtPct(r.errorRate)} errors` }));
}

function renderTable(state, entries) {
  const { column, desc } = state.sort;
  const key = COLUMNS.find((c) => c[0] === column)[2];
  const rows = entries.map((d) => d.row).sort((a, b) => {
    const x = key(a), y = key(b);
    const order = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
    return desc ? -order : order;
  });
  const head = el("tr", {}, ...COLUMNS.map(([id, label]) => el("th", {
    "data-column": id, class: id === column ? `sorted${desc ? " desc" : ""}` : "", text: label,
    onclick: () => { state.sort = { column: id, desc: id === column ? !desc : false }; renderList(state); },
  })));
  const body = rows.map((r) => el("tr", { "data-id": r.id },
    el("td", { text: r.name }), el("td", { text: r.region || "–" }), el("td", {}, statusPill(r.status)),
    el("td", { text: fmtCount(r.requests) }), el("td", { text: fmtMs(r.p95LatencyMs) }), el("td", { text: fmtPct(r.errorRate) })));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}
