"""The store: one database shared by every process of a deployment, and the only place that speaks SQL.

Every bucket row carries its writer (one per process start), so several workers or sidecars can share
one database; queries merge the HDR histograms of all writers, so percentiles are those of the union.
Ranges longer than six hours read quarter-hour, hour or eight-hour rollups, so a 30-day query decodes
90 histograms per writer instead of 43,200. The SQL of each concern lives in its own module (buckets,
logs, deployments, health and holdout, alerts, silences, golden runs), the schema in `schema`, the dialects in
`sqlite` and `postgres` (a path names an SQLite file, the embedded default; a postgresql:// URL a server that a
fleet of hosts shares).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from yolowatch._types import Clock
from yolowatch.store.alerts import AlertQueries
from yolowatch.store.buckets import BucketQueries
from yolowatch.store.database import Tx, open_database
from yolowatch.store.deployments import DeploymentQueries
from yolowatch.store.fleet import FleetQueries
from yolowatch.store.golden import GoldenQueries
from yolowatch.store.health import HealthQueries
from yolowatch.store.logs import LogQueries
from yolowatch.store.schema import migrate
from yolowatch.store.silences import EXPIRED_KEPT_S, SilenceQueries
from yolowatch.store.sqlite import SQLiteDatabase


class Store(
    BucketQueries,
    LogQueries,
    DeploymentQueries,
    HealthQueries,
    AlertQueries,
    SilenceQueries,
    FleetQueries,
    GoldenQueries,
):
    """An SQLite file or a PostgreSQL database (created and migrated on first use), read and written through
    async calls. `pool_size` bounds PostgreSQL's connections per process."""

    def __init__(
        self,
        target: str | Path,
        clock: Clock = time.time,
        metrics_retention_days: float = 30,
        logs_retention_days: float = 7,
        max_db_pages: int | None = None,
        pool_size: int = 4,
    ) -> None:
        self.clock = clock
        self.metrics_retention_days = metrics_retention_days
        self.logs_retention_days = logs_retention_days
        self.db = open_database(target, self._prepare, pool_size, max_db_pages)
        self._secret = None

    async def _prepare(self, tx: Tx) -> None:
        await migrate(tx, self.db.shown)

    @property
    def shown(self) -> str:
        """The database as messages and logs name it (never with a password)."""
        return self.db.shown

    async def open(self) -> None:
        """Connect now (connections also open on first use); raises if the database cannot be used."""
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    async def reconnect_writer(self) -> None:
        """A fresh writer connection next time: a database that was read-only or replaced may be writable again."""
        await self.db.reconnect_writer()

    async def set_max_pages(self, pages: int) -> None:
        """Cap an SQLite file's size (a full database is one of the faults the writer must survive)."""
        if not isinstance(self.db, SQLiteDatabase):
            raise NotImplementedError("only an SQLite file has a page cap")
        await self.db.set_max_pages(pages)

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def schema_version(self) -> int:
        row = await self.db.fetch_one("SELECT max(version) AS version FROM schema_version")
        assert row is not None
        return int(row["version"])

    async def write(
        self,
        rows: Sequence[tuple[Any, ...]],
        logs: Sequence[tuple[Any, ...]],
        totals: Sequence[tuple[str, str, int, str]] = (),
        process: Sequence[Any] | None = None,
    ) -> None:
        """Bucket rows (replacing earlier snapshots of the same key), log rows, process totals and the writing
        process's own row (fleet.process_row): one transaction."""
        async with self.db.transaction() as tx:
            await self.insert_buckets(tx, rows)
            await self.insert_logs(tx, logs)
            await self.insert_totals(tx, totals)
            if process is not None:
                await self.insert_process(tx, process)

    async def enforce_retention(self) -> tuple[int, int]:
        """Delete metrics and logs past their retention; returns (bucket rows, log rows) deleted. One process at a
        time across the fleet: one that finds another at it deletes nothing."""
        now = self.clock()
        metrics_before = int(now - self.metrics_retention_days * 86400)
        async with self.db.transaction() as tx:
            if not await tx.try_lock("yolowatch:retention"):
                return 0, 0
            buckets = await tx.execute("DELETE FROM buckets WHERE start_s < ?", (metrics_before,))
            logs = await tx.execute(
                "DELETE FROM logs WHERE ts_ms < ?", (int((now - self.logs_retention_days * 86400) * 1000),)
            )
            await tx.execute("DELETE FROM process_totals WHERE updated_s < ?", (metrics_before,))
            await tx.execute("DELETE FROM processes WHERE seen_s < ?", (metrics_before,))
            await tx.execute("DELETE FROM golden_runs WHERE checked_ms < ?", (metrics_before * 1000,))
            await tx.execute("DELETE FROM silences WHERE ends_s < ?", (int(now) - EXPIRED_KEPT_S,))
        return buckets, logs
