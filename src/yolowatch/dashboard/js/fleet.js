// The fleet: where the processes run (a world map with a pin per region, green when every host there is
// healthy, red when one is not, larger with more requests) and, per deployment, its hosts with their share of
// the traffic, percentiles, errors and health, from GET /api/fleet.

import { api } from "./api.js";
import { $, el, statusPill } from "./dom.js";
import { fmtCount, fmtMs, fmtPct, fmtTimeMs } from "./format.js";
import { drawWorldMap, loadLand } from "./worldmap.js";

const FLEET_RANGE = "1h";
const HOST_COLUMNS = ["Host", "Region", "Processes", "Last seen", "Request share", "P50", "P95", "P99", "Errors", "Health"];

// Loads the fleet and shows it; an API that cannot answer leaves what the section last showed.
export async function loadFleet() {
  let fleet;
  try { fleet = await api(`/api/fleet?range=${FLEET_RANGE}`); } catch { return; }
  renderSummary(fleet);
  renderMap(fleet, await loadLand());
  renderHosts(fleet);
}

function renderSummary(fleet) {
  const alive = fleet.processes.filter((p) => p.alive).length;
  const hosts = new Set(fleet.processes.map((p) => p.host)).size;
  $("#fleet-summary").textContent = `${alive} of ${counted(fleet.processes.length, "process", "processes")} alive · ` +
    `${counted(hosts, "host")} · ${counted(fleet.regions.length, "region")} · last ${fleet.range}`;
}

const counted = (n, one, many = `${one}s`) => `${fmtCount(n)} ${n === 1 ? one : many}`;

function renderMap(fleet, land) {
  const most = Math.max(0, ...fleet.regions.map((r) => r.requests));
  const pins = fleet.regions.map((r) => ({
    name: r.region, latitude: r.latitude, longitude: r.longitude, healthy: r.healthy,
    weight: most ? r.requests / most : 0,
    title: `${r.region}: ${r.healthy ? "healthy" : "unhealthy"}\n${counted(r.hosts, "host")} · ` +
      `${fmtCount(r.requests)} requests · P95 ${fmtMs(r.p95LatencyMs)} (last ${fleet.range})`,
  }));
  drawWorldMap($("#fleet-map"), land, pins);
  const unplaced = new Set(fleet.processes.filter((p) => p.latitude === null || p.longitude === null).map((p) => p.host));
  $("#fleet-note").textContent = unplaced.size
    ? `Not on the map (no region, or one it does not know): ${[...unplaced].join(", ")}. ` +
      "Start them with --region, a cloud region such as eu-west-1 or us-central1, or LAT,LON."
    : "";
}

function renderHosts(fleet) {
  const now = Date.parse(fleet.now);
  const shown = fleet.deployments.filter((d) => d.hosts.length);
  if (!shown.length) {
    $("#fleet-hosts").replaceChildren(el("div", { class: "empty", text: `No traffic in the last ${fleet.range}.` }));
    return;
  }
  $("#fleet-hosts").replaceChildren(...shown.map((d) => el("div", { class: "fleet-deployment", "data-id": d.id },
    el("h3", { text: d.name }),
    el("div", { class: "scroll" }, el("table", { class: "hosts" },
      el("thead", {}, el("tr", {}, ...HOST_COLUMNS.map((label) => el("th", { text: label })))),
      // Rows straight under <table> (valid HTML): the overview's own table is the page's one <tbody>.
      ...d.hosts.map((h) => hostRow(h, now)))))));
}

function hostRow(h, now) {
  return el("tr", { "data-host": h.host, class: h.healthy ? "" : "unhealthy" },
    el("td", { class: "host", text: h.host }),
    el("td", { text: h.region || "–" }),
    el("td", { text: fmtCount(h.processes) }),
    el("td", { text: ago(now, h.lastSeenAt), title: h.lastSeenAt ? fmtTimeMs(Date.parse(h.lastSeenAt)) : "" }),
    el("td", { class: "share" },
      el("meter", { min: "0", max: "1", value: String(h.share) }), ` ${fmtPct(h.share)} · ${fmtCount(h.requests)}`),
    el("td", { text: fmtMs(h.p50LatencyMs) }), el("td", { text: fmtMs(h.p95LatencyMs) }), el("td", { text: fmtMs(h.p99LatencyMs) }),
    el("td", { text: fmtPct(h.errorRate), title: `server errors ${fmtPct(h.serverErrorRate)}` }),
    el("td", {}, statusPill(h.healthy ? "healthy" : "unhealthy")));
}

// How long before the API's own `now` (so a browser clock that is off does not matter).
function ago(now, iso) {
  if (!iso) return "–";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}
