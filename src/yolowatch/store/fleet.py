"""The fleet: the processes that write (one row per writer id: host, kind, region, last seen), and the traffic of
a deployment per host."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from yolowatch.metrics import merged
from yolowatch.records import Bucket, ProcessInfo
from yolowatch.store.base import StoreBase
from yolowatch.store.buckets import UNKNOWN_HOST
from yolowatch.store.database import Tx
from yolowatch.store.rows import BUCKET_COLUMNS, buckets_from_rows, insert_sql

PROCESS_COLUMNS = (
    "writer", "host", "pid", "kind", "region", "latitude", "longitude", "version", "started_s", "seen_s",
)  # fmt: skip
UPSERT_PROCESS = insert_sql("processes", PROCESS_COLUMNS, ("writer",))


def process_row(writer: str, process: ProcessInfo, seen_s: int) -> tuple[Any, ...]:
    """In PROCESS_COLUMNS order."""
    return (
        writer, process.host, process.pid, process.kind, process.region, process.latitude, process.longitude,
        process.version, process.started_s, seen_s,
    )  # fmt: skip


class FleetQueries(StoreBase):
    @staticmethod
    async def insert_process(tx: Tx, row: Sequence[Any]) -> None:
        await tx.execute(UPSERT_PROCESS, row)

    async def fleet_processes(self) -> list[dict[str, Any]]:
        """Every process that has written, with when it was last seen (epoch s), by host and start."""
        rows = await self.db.fetch_all("SELECT * FROM processes ORDER BY host, started_s, writer")
        return [dict(row) for row in rows]

    async def host_windows(self, deployment: str, start_s: int, end_s: int, tier_s: int = 60) -> dict[str, Bucket]:
        """The deployment's traffic in the periods of `tier_s` (a minute, or a range's rollups: a 30-day range reads
        eight-hour rows) starting in [start_s, end_s), merged per host (histograms included, so each host's
        percentiles are exact too)."""
        columns = ", ".join("b." + column for column in BUCKET_COLUMNS[:-2])  # the signals are not read here
        rows = await self.db.fetch_all(
            f"SELECT {columns}, p.host AS host FROM buckets b LEFT JOIN processes p ON p.writer = b.writer "
            "WHERE b.deployment = ? AND b.tier_s = ? AND b.start_s >= ? AND b.start_s < ?",
            (deployment, tier_s, start_s, end_s),
        )
        by_host: dict[str, list[Any]] = {}
        for row in rows:
            by_host.setdefault(row["host"] or UNKNOWN_HOST, []).append(row)

        def merge() -> dict[str, Bucket]:
            return {host: merged(buckets_from_rows(host_rows, False)) for host, host_rows in by_host.items()}

        return await asyncio.to_thread(merge)
