"""Probe results (the latest per deployment) and holdout runs (a series per deployment)."""

from __future__ import annotations

import json
from typing import Any

from yolowatch.records import HealthResult
from yolowatch.store.base import StoreBase
from yolowatch.store.rows import insert_sql

HEALTH_COLUMNS = ("deployment", "checked_ms", "healthy", "status", "latency_ms", "error")
UPSERT_HEALTH = insert_sql("health", HEALTH_COLUMNS, ("deployment",))


class HealthQueries(StoreBase):
    async def save_health(self, deployment: str, result: HealthResult) -> None:
        await self.db.execute(
            UPSERT_HEALTH,
            (deployment, result.checked_ms, int(result.healthy), result.status, result.latency_ms, result.error),
        )

    async def health(self) -> dict[str, HealthResult]:
        """The latest probe result of every deployment that has one."""
        return {
            row["deployment"]: HealthResult(
                bool(row["healthy"]), row["status"], row["latency_ms"], row["error"], row["checked_ms"]
            )
            for row in await self.db.fetch_all("SELECT * FROM health")
        }

    async def save_holdout(
        self, deployment: str, dataset: str, digest: str, source: str, result: dict[str, Any]
    ) -> None:
        """One holdout score, with what makes it repeatable (arguments, dataset digest, versions) in `details`."""
        await self.db.execute(
            "INSERT INTO holdout_runs (deployment, ts_s, dataset, digest, source, map50, map50_95, images, details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                deployment,
                int(self.clock()),
                dataset,
                digest,
                source,
                result["map50"],
                result["map50_95"],
                result["images"],
                json.dumps(result.get("details", {}), separators=(",", ":")),
            ),
        )

    async def holdout_runs(self, deployment: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch_all(
            "SELECT * FROM holdout_runs WHERE deployment = ? ORDER BY ts_s, id", (deployment,)
        )
        return [{**dict(row), "details": json.loads(row["details"])} for row in rows]
