"""Deployments: what is monitored, its monitor's state and snapshot window, and its pinned drift baseline."""

from __future__ import annotations

import json
from typing import Any

from yolowatch.records import MONITOR_STATES, SNAPSHOT_WINDOWS
from yolowatch.store.base import StoreBase


class DeploymentQueries(StoreBase):
    async def register_deployment(
        self,
        deployment_id: str,
        name: str | None = None,
        model: str | None = None,
        endpoint: str | None = None,
        region: str | None = None,
    ) -> None:
        """Create the deployment, or update what it serves; its creation time is kept."""
        await self.db.execute(
            "INSERT INTO deployments (id, name, model, endpoint, region, created_s) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name, model = excluded.model, "
            "endpoint = excluded.endpoint, region = excluded.region",
            (deployment_id, name or deployment_id, model, endpoint, region, int(self.clock())),
        )

    async def update_deployment(
        self, deployment_id: str, state: str | None = None, snapshot_window: str | None = None
    ) -> None:
        """Set the monitor's state (active, paused, archived) and/or its live snapshot window."""
        if state is not None and state not in MONITOR_STATES:
            raise ValueError(f"state must be one of {', '.join(MONITOR_STATES)}")
        if snapshot_window is not None and snapshot_window not in SNAPSHOT_WINDOWS:
            raise ValueError(f"snapshot window must be one of {', '.join(SNAPSHOT_WINDOWS)}")
        await self.db.execute(
            "UPDATE deployments SET state = coalesce(?, state), snapshot_window = coalesce(?, snapshot_window) "
            "WHERE id = ?",
            (state, snapshot_window, deployment_id),
        )

    async def paused_deployments(self) -> frozenset[str]:
        """Deployments whose monitors record nothing now (paused or archived)."""
        rows = await self.db.fetch_all("SELECT id FROM deployments WHERE state != 'active'")
        return frozenset(row["id"] for row in rows)

    async def deployments(self) -> list[dict[str, Any]]:
        return [dict(row) for row in await self.db.fetch_all("SELECT * FROM deployments ORDER BY created_s, id")]

    async def deployment(self, deployment_id: str) -> dict[str, Any] | None:
        row = await self.db.fetch_one("SELECT * FROM deployments WHERE id = ?", (deployment_id,))
        return None if row is None else dict(row)

    async def pinned_baseline(self, deployment: str, version: str | None = None) -> tuple[int, int] | None:
        """The baseline window a user pinned for drift tests, of the deployment or of one model version (None:
        the default, the first days of traffic)."""
        row = await self.db.fetch_one("SELECT value FROM meta WHERE key = ?", (_baseline_key(deployment, version),))
        if row is None:
            return None
        start, end = json.loads(row["value"])
        return int(start), int(end)

    async def pin_baseline(self, deployment: str, window: tuple[int, int] | None, version: str | None = None) -> None:
        """Pin (or, with None, unpin) the drift baseline of a deployment or of one of its model versions; kept in
        the database, so every process and restart sees it."""
        key = _baseline_key(deployment, version)
        if window is None:
            await self.db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            await self.db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(list(window))),
            )


def _baseline_key(deployment: str, version: str | None) -> str:
    return f"baseline:{deployment}" if version is None else f"baseline:{deployment}@{version}"
