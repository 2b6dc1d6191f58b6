// yolowatch dashboard: plain ES modules, no build step (index.html loads this one). It wires the page's
// header and views, and loads everything again every 30 s (every 5 s while the API cannot be reached).

import { isApiDown, listenForAdminKey, RETRY_EVERY_MS } from "./api.js";
import { listenForSilences, loadNotifications } from "./alerts.js";
import { refreshesWithPage, refreshMetrics, renderTab } from "./deployment.js";
import { $, highlight, showStatus } from "./dom.js";
import { loadFleet } from "./fleet.js";
import { loadOverview, renderList } from "./overview.js";

const OVERVIEW_EVERY_MS = 30_000;

const state = {
  view: "cards",
  sort: { column: "name", desc: false },
  deployments: new Map(), // id -> what the page keeps (deployment.js newDeployment)
};

let overviewTimer;
async function refreshAll() {
  clearTimeout(overviewTimer);
  try {
    await loadOverview(state);
    await loadNotifications();
    await loadFleet();
    showStatus(`updated ${new Date().toLocaleTimeString()}`);
    if (state.view === "cards") for (const d of state.deployments.values()) if (d.node) refreshMetrics(d);
  } catch { /* banner or key prompt already shown */ }
  overviewTimer = setTimeout(refreshAll, isApiDown() ? RETRY_EVERY_MS : OVERVIEW_EVERY_MS);
}

for (const button of document.querySelectorAll("[data-view]")) {
  button.addEventListener("click", () => {
    state.view = button.dataset.view;
    highlight(button.parentElement, "data-view", state.view);
    renderList(state);
  });
}
$("#refresh").addEventListener("click", () => {
  refreshAll();
  for (const d of state.deployments.values()) if (d.node && refreshesWithPage(d)) renderTab(d);
});
$("#list").addEventListener("deployment-changed", refreshAll);
listenForAdminKey(refreshAll);
listenForSilences();

refreshAll();
