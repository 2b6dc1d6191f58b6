"""Golden-image runs: a series per deployment (each run's pass count, and what differed on the failing images)."""

from __future__ import annotations

import json
from typing import Any

from yolowatch.records import GoldenRun
from yolowatch.store.base import StoreBase

GOLDEN_COLUMNS = "checked_ms, images, passed, worst, differences, error, latency_ms"


def _run(row: Any) -> GoldenRun:
    return GoldenRun(
        row["checked_ms"],
        row["images"],
        row["passed"],
        row["worst"],
        json.loads(row["differences"]),
        row["error"],
        row["latency_ms"],
    )


class GoldenQueries(StoreBase):
    async def save_golden(self, deployment: str, run: GoldenRun) -> None:
        await self.db.execute(
            f"INSERT INTO golden_runs (deployment, {GOLDEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                deployment,
                run.checked_ms,
                run.images,
                run.passed,
                run.worst,
                json.dumps(run.differences, separators=(",", ":")),
                run.error,
                run.latency_ms,
            ),
        )

    async def golden_runs(self, deployment: str, start_ms: int, end_ms: int, limit: int = 500) -> list[GoldenRun]:
        """The runs in [start_ms, end_ms), oldest first; the newest `limit` of them when there are more."""
        rows = await self.db.fetch_all(
            f"SELECT {GOLDEN_COLUMNS} FROM golden_runs WHERE deployment = ? AND checked_ms >= ? AND checked_ms < ? "
            "ORDER BY checked_ms DESC, id DESC LIMIT ?",
            (deployment, start_ms, end_ms, limit),
        )
        return [_run(row) for row in reversed(rows)]

    async def latest_golden(self, deployment: str, before_ms: int | None = None) -> GoldenRun | None:
        """The newest run (at or before `before_ms`, when given)."""
        rows = await self.golden_runs(deployment, 0, (1 << 62) if before_ms is None else before_ms + 1, limit=1)
        return rows[0] if rows else None

    async def golden_slots(self, deployment: str, start_ms: int, step_ms: int, slots: int) -> dict[int, dict[str, int]]:
        """Per slot of `step_ms` from `start_ms`: runs, failing runs and the fewest images passed of any run, for a
        series over a long range without reading every run (the SQL is the same on both dialects)."""
        rows = await self.db.fetch_all(
            "SELECT (checked_ms - ?) / ? AS slot, count(*) AS runs, "
            "sum(CASE WHEN error IS NOT NULL OR passed < images THEN 1 ELSE 0 END) AS failing, "
            "min(CASE WHEN images > 0 THEN CAST(passed AS REAL) / images ELSE 0 END) AS worst_rate "
            "FROM golden_runs WHERE deployment = ? AND checked_ms >= ? AND checked_ms < ? GROUP BY slot",
            (start_ms, step_ms, deployment, start_ms, start_ms + step_ms * slots),
        )
        return {
            int(row["slot"]): {"runs": int(row["runs"]), "failing": int(row["failing"]), "worst": row["worst_rate"]}
            for row in rows
        }
