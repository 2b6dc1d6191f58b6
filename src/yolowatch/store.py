"""SQLite (aiosqlite, WAL) storage: schema and migrations, the batched writer, queries, retention.

The only module that speaks SQL. Every bucket row carries its writer (one per
process start), so several workers or sidecars can share one file; queries
merge the HDR histograms of all writers, so percentiles are those of the union.
Ranges longer than six hours read quarter-hour, hour or eight-hour rollups, so a
30-day query decodes 90 histograms per writer instead of 43,200.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
from hdrh.histogram import HdrHistogram

from yolowatch.alerts import AlertState, Notification
from yolowatch.recorder import (
    AREA_BIN_COUNT,
    CONFIDENCE_BINS,
    SEVERITY_LEVELS,
    Bucket,
    Clock,
    LogEntry,
    Recorder,
)

log = logging.getLogger("yolowatch.store")


@dataclass(frozen=True)
class HealthResult:
    """One health probe: what `/health` answers. `status` is the probe's HTTP status (None: no answer)."""

    healthy: bool
    status: int | None
    latency_ms: float | None
    error: str | None
    checked_ms: int


request_log = logging.getLogger("yolowatch.requests")

SCHEMA_VERSION = 7
EIGHT_HOURS = 8 * 3600


async def _add_eight_hour_rollups(db: aiosqlite.Connection) -> None:
    """Version 2 reads 30 days from eight-hour rows: build them from the hour rows a version-1 file holds."""
    cursor = await db.execute("SELECT * FROM buckets WHERE tier_s = 3600 ORDER BY deployment, writer, start_s")
    merged: dict[tuple[str, int, str], Bucket] = {}
    for row in await cursor.fetchall():
        start = row["start_s"] - row["start_s"] % EIGHT_HOURS
        key = (row["deployment"], start, row["writer"])
        if key not in merged:
            merged[key] = Bucket(row["deployment"], EIGHT_HOURS, start)
        hour = bucket_from_row(row)
        if len(hour.confidence_hist) == 20:  # a version-1 row: in the bins of version 4, which runs after this
            hour.confidence_hist, hour.area_hist = _finer(hour.confidence_hist, hour.area_hist)
        merged[key].merge(hour)
    rows = [bucket_row(bucket, writer) for (_, _, writer), bucket in merged.items()]
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        await db.executemany(f"INSERT OR REPLACE INTO buckets ({_BUCKET_COLUMNS}) VALUES ({marks})", rows)


def _split(counts: list[int], parts: int) -> list[int]:
    """Each bin's count spread over `parts` finer bins (remainders to the first ones): totals are kept."""
    finer = []
    for count in counts:
        share, left = divmod(count, parts)
        finer += [share + (1 if j < left else 0) for j in range(parts)]
    return finer


def _finer(confidence: list[int], area: list[int]) -> tuple[list[int], list[int]]:
    """Version-1..3 histograms (20 and 25 bins) in today's bins; the old edges are a subset of the new."""
    return _split(confidence, CONFIDENCE_BINS // 20), _split(area, AREA_BIN_COUNT // 25)


async def _finer_bins(db: aiosqlite.Connection) -> None:
    """Version 4 keeps confidences in 100 bins (was 20) and box sizes in 100 (was 25): older rows are split evenly."""
    cursor = await db.execute("SELECT rowid, confidence_hist, area_hist FROM buckets")
    updates = []
    for row in await cursor.fetchall():
        confidence, area = json.loads(row["confidence_hist"]), json.loads(row["area_hist"])
        if len(confidence) == 20 and len(area) == 25:
            updates.append((*map(json.dumps, _finer(confidence, area)), row["rowid"]))
    await db.executemany("UPDATE buckets SET confidence_hist = ?, area_hist = ? WHERE rowid = ?", updates)
    cursor = await db.execute("SELECT writer, deployment, totals FROM process_totals")
    for row in await cursor.fetchall():
        totals = json.loads(row["totals"])
        if len(totals.get("confidence_hist", [])) == 20:
            totals["confidence_hist"] = _split(totals["confidence_hist"], CONFIDENCE_BINS // 20)
            await db.execute(
                "UPDATE process_totals SET totals = ? WHERE writer = ? AND deployment = ?",
                (json.dumps(totals, separators=(",", ":")), row["writer"], row["deployment"]),
            )


# version -> what brings a database from version-1 to version: SQL statements, or a function for data.
MIGRATIONS: dict[int, tuple[str | Callable[[aiosqlite.Connection], Awaitable[None]], ...]] = {
    1: (
        """CREATE TABLE deployments (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, model TEXT, endpoint TEXT, region TEXT,
            created_s INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'active')""",
        """CREATE TABLE buckets (
            deployment TEXT NOT NULL, tier_s INTEGER NOT NULL, start_s INTEGER NOT NULL, writer TEXT NOT NULL,
            requests INTEGER NOT NULL, status_1xx INTEGER NOT NULL, status_2xx INTEGER NOT NULL,
            status_3xx INTEGER NOT NULL, status_4xx INTEGER NOT NULL, status_5xx INTEGER NOT NULL,
            client_errors INTEGER NOT NULL, server_errors INTEGER NOT NULL, slow INTEGER NOT NULL,
            latency_sum_us INTEGER NOT NULL, predictions INTEGER NOT NULL, detections INTEGER NOT NULL,
            confidence_sum REAL NOT NULL, confidence_count INTEGER NOT NULL,
            confidence_hist TEXT NOT NULL, area_hist TEXT NOT NULL, classes TEXT NOT NULL, latency BLOB NOT NULL,
            PRIMARY KEY (deployment, tier_s, start_s, writer))""",
        """CREATE TABLE logs (
            id INTEGER PRIMARY KEY AUTOINCREMENT, deployment TEXT NOT NULL, ts_ms INTEGER NOT NULL,
            severity INTEGER NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL,
            latency_us INTEGER NOT NULL, detections INTEGER, mean_confidence REAL, request_id TEXT NOT NULL,
            message TEXT NOT NULL)""",
        "CREATE INDEX logs_by_time ON logs (deployment, ts_ms, id)",
        "CREATE INDEX logs_by_severity ON logs (deployment, severity, ts_ms, id)",
        "CREATE INDEX buckets_by_age ON buckets (start_s)",
    ),
    2: (_add_eight_hour_rollups,),
    3: (
        # meta holds the secret that signs log page tokens (shared by every process on this file).
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE health (
            deployment TEXT PRIMARY KEY, checked_ms INTEGER NOT NULL, healthy INTEGER NOT NULL,
            status INTEGER, latency_ms REAL, error TEXT)""",
        # Each process's totals since it started (JSON), summed by /metrics so several workers add up.
        """CREATE TABLE process_totals (
            writer TEXT NOT NULL, deployment TEXT NOT NULL, updated_s INTEGER NOT NULL, totals TEXT NOT NULL,
            PRIMARY KEY (writer, deployment))""",
    ),
    4: (_finer_bins,),
    5: (
        """CREATE TABLE holdout_runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT, deployment TEXT NOT NULL, ts_s INTEGER NOT NULL,
            dataset TEXT NOT NULL, digest TEXT NOT NULL, source TEXT NOT NULL, map50 REAL NOT NULL,
            map50_95 REAL NOT NULL, images INTEGER NOT NULL, details TEXT NOT NULL)""",
        "CREATE INDEX holdout_by_deployment ON holdout_runs (deployment, ts_s)",
    ),
    6: (
        """CREATE TABLE alert_state (
            rule TEXT NOT NULL, deployment TEXT NOT NULL, state TEXT NOT NULL, active_since INTEGER,
            last_true INTEGER, value REAL, PRIMARY KEY (rule, deployment))""",
        """CREATE TABLE alert_notifications (
            id INTEGER PRIMARY KEY AUTOINCREMENT, rule TEXT NOT NULL, deployment TEXT NOT NULL,
            status TEXT NOT NULL, starts_at INTEGER NOT NULL, ends_at INTEGER, value REAL,
            severity TEXT NOT NULL, runbook TEXT NOT NULL, created_s INTEGER NOT NULL)""",
        """CREATE TABLE alert_deliveries (
            notification INTEGER NOT NULL, sink TEXT NOT NULL, delivered_s INTEGER NOT NULL,
            PRIMARY KEY (notification, sink))""",
    ),
    # Rules created through the admin API (the config file's stay in the file), in the API's JSON shape.
    7: (
        "CREATE TABLE alert_rules (name TEXT PRIMARY KEY, definition TEXT NOT NULL, created_s INTEGER NOT NULL)",
        # The monitor's live snapshot window (its state, active/paused/archived, has been there since 1).
        "ALTER TABLE deployments ADD COLUMN snapshot_window TEXT NOT NULL DEFAULT '1h'",
    ),
}

# range -> (span, tier to read, sparkline step), all in seconds. 60-96 points each.
RANGES: dict[str, tuple[int, int, int]] = {
    "1h": (3600, 60, 60),
    "6h": (6 * 3600, 60, 300),
    "24h": (24 * 3600, 900, 900),
    "7d": (7 * 86400, 3600, 2 * 3600),
    "30d": (30 * 86400, EIGHT_HOURS, EIGHT_HOURS),
}
RANGE_NAMES = ", ".join(RANGES)
MONITOR_STATES = ("active", "paused", "archived")  # paused and archived record nothing; archived is hidden
SNAPSHOT_WINDOWS = {"5m": 300, "15m": 900, "1h": 3600, "6h": 6 * 3600, "1d": 86400}

_BUCKET_COLUMNS = (
    "deployment, tier_s, start_s, writer, requests, status_1xx, status_2xx, status_3xx, status_4xx, status_5xx, "
    "client_errors, server_errors, slow, latency_sum_us, predictions, detections, confidence_sum, "
    "confidence_count, confidence_hist, area_hist, classes, latency"
)
_LOG_COLUMNS = (
    "deployment, ts_ms, severity, method, path, status, latency_us, detections, mean_confidence, request_id, message"
)


class SchemaTooNew(RuntimeError):
    """The database was written by a newer yolowatch."""


def bucket_row(bucket: Bucket, writer: str) -> tuple[Any, ...]:
    return (
        bucket.deployment,
        bucket.tier_s,
        bucket.start_s,
        writer,
        bucket.requests,
        *bucket.status_classes,
        bucket.client_errors,
        bucket.server_errors,
        bucket.slow,
        bucket.latency_sum_us,
        bucket.predictions,
        bucket.detections,
        bucket.confidence_sum,
        bucket.confidence_count,
        json.dumps(bucket.confidence_hist),
        json.dumps(bucket.area_hist),
        json.dumps(bucket.classes),
        bucket.latency.encode(),
    )


def log_row(entry: LogEntry) -> tuple[Any, ...]:
    return (
        entry.deployment,
        entry.ts_ms,
        entry.severity,
        entry.method,
        entry.path,
        entry.status,
        entry.latency_us,
        entry.detections,
        entry.mean_confidence,
        entry.request_id,
        entry.message,
    )


def bucket_from_row(row: sqlite3.Row, distributions: bool = True) -> Bucket:
    """A stored row back as a Bucket; without `distributions` its histograms stay empty (the JSON is skipped)."""
    bucket = Bucket(row["deployment"], row["tier_s"], row["start_s"], HdrHistogram.decode(row["latency"]))
    bucket.requests = row["requests"]
    bucket.status_classes = [row[f"status_{k}xx"] for k in range(1, 6)]
    bucket.client_errors = row["client_errors"]
    bucket.server_errors = row["server_errors"]
    bucket.slow = row["slow"]
    bucket.latency_sum_us = row["latency_sum_us"]
    bucket.predictions = row["predictions"]
    bucket.detections = row["detections"]
    bucket.confidence_sum = row["confidence_sum"]
    bucket.confidence_count = row["confidence_count"]
    if distributions:
        bucket.confidence_hist = json.loads(row["confidence_hist"])
        bucket.area_hist = json.loads(row["area_hist"])
        bucket.classes = json.loads(row["classes"])
    return bucket


def merge_rows(rows: Iterable[sqlite3.Row], distributions: bool = True) -> Bucket:
    """One bucket holding all the rows; its percentiles are those of the union of their requests."""
    total = Bucket("", 0, 0)
    for row in rows:
        total.merge(bucket_from_row(row, distributions))
    return total


def bucket_metrics(bucket: Bucket) -> dict[str, Any]:
    """The numbers a Deploy page shows, snake_case (the admin API converts at its edge)."""
    requests = bucket.requests
    p50 = p95 = p99 = None
    if bucket.latency.get_total_count():
        # One pass for the three (a pass per percentile costs 3x, which a 90-point sparkline feels).
        values = bucket.latency.get_percentile_to_value_dict([50, 95, 99])
        p50, p95, p99 = (values[q] / 1000 for q in (50, 95, 99))
    return {
        "requests": requests,
        "errors": bucket.errors,
        "client_errors": bucket.client_errors,
        "server_errors": bucket.server_errors,
        "error_rate": bucket.errors / requests if requests else 0.0,
        "slow": bucket.slow,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "mean_latency_ms": bucket.latency_sum_us / requests / 1000 if requests else None,
        "predictions": bucket.predictions,
        "detections_per_request": bucket.detections / bucket.predictions if bucket.predictions else None,
        "mean_confidence": bucket.confidence_sum / bucket.confidence_count if bucket.confidence_count else None,
    }


def series_points(rows: Sequence[sqlite3.Row], first_s: int, step_s: int, count: int) -> list[dict[str, Any]]:
    """Rows grouped into `count` evenly spaced points from `first_s`; empty points have zero requests."""
    groups: list[list[sqlite3.Row]] = [[] for _ in range(count)]
    for row in rows:
        index = (row["start_s"] - first_s) // step_s
        if 0 <= index < count:
            groups[index].append(row)
    return [
        {"start_s": first_s + i * step_s, **bucket_metrics(merge_rows(group, distributions=False))}
        for i, group in enumerate(groups)
    ]


@dataclass(frozen=True)
class LogPage:
    entries: list[dict[str, Any]]
    next_cursor: tuple[int, int] | None  # (ts_ms, id) of the last entry when more remain


class Store:
    """One SQLite file: a writer connection and a reader connection (aiosqlite gives each its own thread)."""

    def __init__(
        self,
        path: str | Path,
        clock: Clock = time.time,
        metrics_retention_days: float = 30,
        logs_retention_days: float = 7,
        max_db_pages: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self.metrics_retention_days = metrics_retention_days
        self.logs_retention_days = logs_retention_days
        self.max_db_pages = max_db_pages
        self._write: aiosqlite.Connection | None = None
        self._read: aiosqlite.Connection | None = None
        self._secret: bytes | None = None

    async def open(self) -> None:
        """Connect both connections now (they also connect on first use); raises if the file cannot be used."""
        await self._writer()
        await self._reader()

    async def _connect(self) -> aiosqlite.Connection:
        connection = await aiosqlite.connect(self.path, isolation_level=None)
        connection.row_factory = sqlite3.Row
        try:
            await connection.execute("PRAGMA busy_timeout=2000")
            await connection.execute("PRAGMA synchronous=NORMAL")  # reads the schema: can fail when locked
        except BaseException:
            await connection.close()  # else its worker thread outlives us and blocks interpreter exit
            raise
        return connection

    async def _writer(self) -> aiosqlite.Connection:
        if self._write is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = await self._connect()
            try:
                await connection.execute("PRAGMA journal_mode=WAL")
                await self._migrate(connection)
                if self.max_db_pages is not None:
                    await connection.execute(f"PRAGMA max_page_count={int(self.max_db_pages)}")
            except BaseException:
                await connection.close()
                raise
            if self._write is None:
                self._write = connection
            else:  # another task connected while this one waited: keep one, close the other
                await connection.close()
        return self._write

    async def _reader(self) -> aiosqlite.Connection:
        if self._read is None:
            if self._write is None:
                # The schema must be current before anything reads it; a file we cannot write is read as it is.
                with contextlib.suppress(sqlite3.Error, OSError):
                    await self._writer()
            connection = await self._connect()
            if self._read is None:
                self._read = connection
            else:  # another task connected while this one waited: keep one, close the other
                await connection.close()
        return self._read

    async def set_max_pages(self, pages: int) -> None:
        """Cap the database size in pages (SQLite answers 'database or disk is full' past it)."""
        self.max_db_pages = pages
        await (await self._writer()).execute(f"PRAGMA max_page_count={int(pages)}")

    async def reconnect_writer(self) -> None:
        """Drop the writer connection; the next write opens a new one (a read-only file may have become writable)."""
        if self._write is not None:
            connection, self._write = self._write, None
            with contextlib.suppress(sqlite3.Error):
                await connection.close()

    async def close(self) -> None:
        for connection in (self._read, self._write):
            if connection is not None:
                await connection.close()
        self._read = self._write = None

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        await db.execute("BEGIN IMMEDIATE")
        try:
            await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = await (await db.execute("SELECT max(version) FROM schema_version")).fetchone()
            current = (row[0] if row else None) or 0
            if current > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"{self.path} has schema version {current}; this yolowatch knows up to {SCHEMA_VERSION}: upgrade it"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for step in MIGRATIONS[version]:
                    if isinstance(step, str):
                        await db.execute(step)
                    else:
                        await step(db)
                await db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    async def schema_version(self) -> int:
        row = await (await (await self._reader()).execute("SELECT max(version) FROM schema_version")).fetchone()
        return int(row[0])

    # -- writing -------------------------------------------------------------------------------------------

    async def write(
        self,
        rows: Sequence[tuple[Any, ...]],
        logs: Sequence[tuple[Any, ...]],
        totals: Sequence[tuple[str, str, int, str]] = (),
    ) -> None:
        """Bucket rows (replacing earlier snapshots of the same key), log rows and process totals: one transaction."""
        db = await self._writer()
        await db.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                await db.executemany(f"INSERT OR REPLACE INTO buckets ({_BUCKET_COLUMNS}) VALUES ({marks})", rows)
            if logs:
                marks = ", ".join("?" * len(logs[0]))
                await db.executemany(f"INSERT INTO logs ({_LOG_COLUMNS}) VALUES ({marks})", logs)
            if totals:
                await db.executemany(
                    "INSERT OR REPLACE INTO process_totals (writer, deployment, updated_s, totals) VALUES (?, ?, ?, ?)",
                    totals,
                )
            await db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise

    async def register_deployment(
        self,
        deployment_id: str,
        name: str | None = None,
        model: str | None = None,
        endpoint: str | None = None,
        region: str | None = None,
    ) -> None:
        """Create the deployment, or update what it serves; its creation time is kept."""
        await (await self._writer()).execute(
            "INSERT INTO deployments (id, name, model, endpoint, region, created_s) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET name=excluded.name, model=excluded.model, endpoint=excluded.endpoint, "
            "region=excluded.region",
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
        await (await self._writer()).execute(
            "UPDATE deployments SET state = coalesce(?, state), snapshot_window = coalesce(?, snapshot_window) "
            "WHERE id = ?",
            (state, snapshot_window, deployment_id),
        )

    async def paused_deployments(self) -> frozenset[str]:
        """Deployments whose monitors record nothing now (paused or archived)."""
        cursor = await (await self._reader()).execute("SELECT id FROM deployments WHERE state != 'active'")
        return frozenset(row[0] for row in await cursor.fetchall())

    async def save_health(self, deployment: str, result: HealthResult) -> None:
        await (await self._writer()).execute(
            "INSERT OR REPLACE INTO health (deployment, checked_ms, healthy, status, latency_ms, error) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (deployment, result.checked_ms, int(result.healthy), result.status, result.latency_ms, result.error),
        )

    async def save_holdout(
        self, deployment: str, dataset: str, digest: str, source: str, result: dict[str, Any]
    ) -> None:
        """One holdout score, with what makes it repeatable (arguments, dataset digest, versions) in `details`."""
        await (await self._writer()).execute(
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
        cursor = await (await self._reader()).execute(
            "SELECT * FROM holdout_runs WHERE deployment = ? ORDER BY ts_s, id", (deployment,)
        )
        return [{**dict(row), "details": json.loads(row["details"])} for row in await cursor.fetchall()]

    async def alert_states(self, deployment: str | None = None) -> dict[str, AlertState]:
        """Rule -> state for one deployment; with None, every deployment's, keyed "deployment\0rule"."""
        where, params = ("WHERE deployment = ?", (deployment,)) if deployment is not None else ("", ())
        cursor = await (await self._reader()).execute(f"SELECT * FROM alert_state {where}", params)
        return {
            (row["rule"] if deployment is not None else f"{row['deployment']}\0{row['rule']}"): AlertState(
                row["rule"], row["deployment"], row["state"], row["active_since"], row["last_true"], row["value"]
            )
            for row in await cursor.fetchall()
        }

    async def save_alerts(self, states: Sequence[AlertState], notifications: Sequence[Notification]) -> None:
        """New rule states and the notifications they made, in one transaction (so neither is kept without the
        other)."""
        db = await self._writer()
        await db.execute("BEGIN IMMEDIATE")
        try:
            await db.executemany(
                "INSERT OR REPLACE INTO alert_state (rule, deployment, state, active_since, last_true, value) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(s.rule, s.deployment, s.state, s.active_since, s.last_true, s.value) for s in states],
            )
            await db.executemany(
                "INSERT INTO alert_notifications (rule, deployment, status, starts_at, ends_at, value, severity, "
                "runbook, created_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        n.rule,
                        n.deployment,
                        n.status,
                        n.starts_at,
                        n.ends_at,
                        n.value,
                        n.severity,
                        n.runbook,
                        int(self.clock()),
                    )
                    for n in notifications
                ],
            )
            await db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise

    async def undelivered(self, sink: str, within_s: int = 86400) -> list[Notification]:
        """Notifications of the last day that `sink` has not delivered yet, oldest first."""
        cursor = await (await self._reader()).execute(
            "SELECT * FROM alert_notifications n WHERE created_s >= ? AND NOT EXISTS "
            "(SELECT 1 FROM alert_deliveries d WHERE d.notification = n.id AND d.sink = ?) ORDER BY id",
            (int(self.clock()) - within_s, sink),
        )
        return [
            Notification(
                row["rule"], row["deployment"], row["status"], row["starts_at"], row["ends_at"], row["value"],
                row["severity"], row["runbook"], row["id"],
            )
            for row in await cursor.fetchall()
        ]  # fmt: skip

    async def claim_deliveries(self, sink: str, ids: Sequence[int]) -> list[int]:
        """Claim notifications for delivery by `sink`; returns the ones this process got (another process sharing
        the file may have claimed some already). A failed delivery gives its claims back."""
        db = await self._writer()
        claimed = []
        for notification in ids:
            cursor = await db.execute(
                "INSERT OR IGNORE INTO alert_deliveries (notification, sink, delivered_s) VALUES (?, ?, ?)",
                (notification, sink, int(self.clock())),
            )
            if cursor.rowcount == 1:
                claimed.append(notification)
        return claimed

    async def release_deliveries(self, sink: str, ids: Sequence[int]) -> None:
        await (await self._writer()).executemany(
            "DELETE FROM alert_deliveries WHERE notification = ? AND sink = ?", [(i, sink) for i in ids]
        )

    async def claim_minute(self, key: str, minute_end: int) -> bool:
        """True for exactly one caller per (key, minute), across every process on this file: who evaluates it."""
        cursor = await (await self._writer()).execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value "
            "WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
            (key, str(minute_end)),
        )
        return cursor.rowcount == 1

    async def alert_rules(self) -> list[dict[str, Any]]:
        cursor = await (await self._reader()).execute("SELECT definition FROM alert_rules ORDER BY created_s, name")
        return [json.loads(row[0]) for row in await cursor.fetchall()]

    async def add_alert_rule(self, name: str, definition: dict[str, Any]) -> bool:
        """False when a rule of that name exists already (names are unique across processes)."""
        cursor = await (await self._writer()).execute(
            "INSERT OR IGNORE INTO alert_rules (name, definition, created_s) VALUES (?, ?, ?)",
            (name, json.dumps(definition), int(self.clock())),
        )
        return cursor.rowcount == 1

    async def delete_alert_rule(self, name: str) -> bool:
        """Delete the rule and its state; where it was firing, a resolved notification goes out (else the
        receiver would hold a firing alert that nothing will ever resolve). False: no such rule."""
        db = await self._writer()
        await db.execute("BEGIN IMMEDIATE")
        try:
            row = await (await db.execute("SELECT definition FROM alert_rules WHERE name = ?", (name,))).fetchone()
            if row is None:
                await db.execute("ROLLBACK")
                return False
            rule = json.loads(row[0])
            now = int(self.clock())
            await db.execute(
                "INSERT INTO alert_notifications (rule, deployment, status, starts_at, ends_at, value, severity, "
                "runbook, created_s) SELECT rule, deployment, 'resolved', active_since, ?, value, ?, ?, ? "
                "FROM alert_state WHERE rule = ? AND state = 'firing'",
                (now, rule.get("severity", "warning"), rule.get("runbook", ""), now, name),
            )
            await db.execute("DELETE FROM alert_state WHERE rule = ?", (name,))
            await db.execute("DELETE FROM alert_rules WHERE name = ?", (name,))
            await db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise
        return True

    async def alert_history(self, deployment: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        where, params = ("WHERE deployment = ?", [deployment]) if deployment else ("", [])
        cursor = await (await self._reader()).execute(
            f"SELECT * FROM alert_notifications {where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [dict(row) for row in await cursor.fetchall()]

    async def secret(self) -> bytes:
        """This file's random signing secret, made on first use (every process sharing the file agrees on it)."""
        if self._secret is None:
            db = await self._writer()
            await db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('token_secret', ?)", (secrets.token_hex(32),)
            )
            row = await (await db.execute("SELECT value FROM meta WHERE key = 'token_secret'")).fetchone()
            self._secret = bytes.fromhex(row[0])
        return self._secret

    async def enforce_retention(self) -> tuple[int, int]:
        """Delete metrics and logs past their retention; returns (bucket rows, log rows) deleted."""
        now = self.clock()
        db = await self._writer()
        buckets = await db.execute(
            "DELETE FROM buckets WHERE start_s < ?", (int(now - self.metrics_retention_days * 86400),)
        )
        logs = await db.execute(
            "DELETE FROM logs WHERE ts_ms < ?", (int((now - self.logs_retention_days * 86400) * 1000),)
        )
        await db.execute(
            "DELETE FROM process_totals WHERE updated_s < ?", (int(now - self.metrics_retention_days * 86400),)
        )
        return buckets.rowcount, logs.rowcount

    # -- reading ---------------------------------------------------------------------------------------------

    async def deployments(self) -> list[dict[str, Any]]:
        cursor = await (await self._reader()).execute("SELECT * FROM deployments ORDER BY created_s, id")
        return [dict(row) for row in await cursor.fetchall()]

    async def deployment(self, deployment_id: str) -> dict[str, Any] | None:
        cursor = await (await self._reader()).execute("SELECT * FROM deployments WHERE id = ?", (deployment_id,))
        row = await cursor.fetchone()
        return None if row is None else dict(row)

    async def health(self) -> dict[str, HealthResult]:
        """The latest probe result of every deployment that has one."""
        cursor = await (await self._reader()).execute("SELECT * FROM health")
        return {
            row["deployment"]: HealthResult(
                bool(row["healthy"]), row["status"], row["latency_ms"], row["error"], row["checked_ms"]
            )
            for row in await cursor.fetchall()
        }

    async def process_totals(self) -> list[dict[str, Any]]:
        """Every process's totals since its start: writer, deployment, updated_s and the totals themselves."""
        cursor = await (await self._reader()).execute("SELECT * FROM process_totals ORDER BY deployment, writer")
        return [{**dict(row), "totals": json.loads(row["totals"])} for row in await cursor.fetchall()]

    async def first_traffic_s(self, deployment: str) -> int | None:
        """When the deployment's first recorded hour began (None: no traffic yet)."""
        cursor = await (await self._reader()).execute(
            "SELECT min(start_s) FROM buckets WHERE deployment = ? AND tier_s = 3600", (deployment,)
        )
        row = await cursor.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    async def minute_counts(self, deployment: str, start_s: int, end_s: int) -> dict[int, tuple[int, int, float, int]]:
        """Per minute with traffic in [start_s, end_s), all writers summed: (requests, detections,
        confidence sum, confidence count). Plain sums in SQL: no histogram is decoded."""
        cursor = await (await self._reader()).execute(
            "SELECT start_s, sum(requests), sum(detections), sum(confidence_sum), sum(confidence_count) FROM buckets "
            "WHERE deployment = ? AND tier_s = 60 AND start_s >= ? AND start_s < ? GROUP BY start_s",
            (deployment, start_s, end_s),
        )
        return {int(row[0]): (int(row[1]), int(row[2]), float(row[3]), int(row[4])) for row in await cursor.fetchall()}

    async def minute(self, deployment: str, start_s: int) -> Bucket:
        """One minute of one deployment, every writer's row merged (histograms, no detection distributions)."""
        cursor = await (await self._reader()).execute(
            "SELECT * FROM buckets WHERE deployment = ? AND tier_s = 60 AND start_s = ?", (deployment, start_s)
        )
        rows = list(await cursor.fetchall())
        return await asyncio.to_thread(merge_rows, rows, False)

    async def window(self, deployment: str, start_s: int, end_s: int, distributions: bool = True) -> Bucket:
        """Everything recorded in the minutes that start in [start_s, end_s), merged (distributions included).

        Whole hours come from the hour rollups and only the ragged edges from minute rows, so a week-long
        window decodes a few hundred rows, and a ten-minute one is exact to the minute."""
        first_hour = -(-start_s // 3600) * 3600
        last_hour = end_s - end_s % 3600
        if first_hour >= last_hour:
            first_hour = last_hour = end_s  # no whole hour inside: minutes only
        cursor = await (await self._reader()).execute(
            "SELECT * FROM buckets WHERE deployment = ? AND ("
            "(tier_s = 3600 AND start_s >= ? AND start_s < ?) OR "
            "(tier_s = 60 AND ((start_s >= ? AND start_s < ?) OR (start_s >= ? AND start_s < ?))))",
            (deployment, first_hour, last_hour, start_s, first_hour, last_hour, end_s),
        )
        rows = list(await cursor.fetchall())
        return await asyncio.to_thread(merge_rows, rows, distributions)

    async def pinned_baseline(self, deployment: str) -> tuple[int, int] | None:
        """The baseline window a user pinned for drift tests (None: the default, the first days of traffic)."""
        db = await self._reader()
        row = await (await db.execute("SELECT value FROM meta WHERE key = ?", (f"baseline:{deployment}",))).fetchone()
        if row is None:
            return None
        start, end = json.loads(row[0])
        return int(start), int(end)

    async def pin_baseline(self, deployment: str, window: tuple[int, int] | None) -> None:
        """Pin (or, with None, unpin) the drift baseline; kept in the file, so every process and restart sees it."""
        db = await self._writer()
        key = f"baseline:{deployment}"
        if window is None:
            await db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(list(window))),
            )

    async def _range_rows(self, deployment: str, range_name: str) -> tuple[list[sqlite3.Row], int, int, int]:
        if range_name not in RANGES:
            raise ValueError(f"range must be one of {RANGE_NAMES}")
        span_s, tier_s, step_s = RANGES[range_name]
        now = int(self.clock())
        count = span_s // step_s
        # Points end with the one holding "now"; the first starts count-1 steps before it.
        first_s = (now - now % step_s) - (count - 1) * step_s
        cursor = await (await self._reader()).execute(
            "SELECT * FROM buckets WHERE deployment = ? AND tier_s = ? AND start_s >= ?",
            (deployment, tier_s, first_s),
        )
        return list(await cursor.fetchall()), first_s, step_s, count

    async def summary(self, deployment: str, range_name: str = "24h") -> dict[str, Any]:
        """Merged metrics over the range (aligned to its sparkline step)."""
        rows, first_s, _, _ = await self._range_rows(deployment, range_name)
        # Histogram decoding stays off the event loop.
        aggregate = await asyncio.to_thread(merge_rows, rows, False)
        return {"range": range_name, "start_s": first_s, **bucket_metrics(aggregate)}

    async def aggregate(self, deployment: str, range_name: str = "24h", distributions: bool = True) -> Bucket:
        """The merged bucket itself (latency histogram, and the detection distributions unless told not to)."""
        rows, _, _, _ = await self._range_rows(deployment, range_name)
        return await asyncio.to_thread(merge_rows, rows, distributions)

    async def series(self, deployment: str, range_name: str = "24h") -> list[dict[str, Any]]:
        """Evenly spaced points over the range, oldest first."""
        rows, first_s, step_s, count = await self._range_rows(deployment, range_name)
        return await asyncio.to_thread(series_points, rows, first_s, step_s, count)

    async def logs(
        self,
        deployment: str,
        limit: int = 50,
        severities: Iterable[str] | None = None,
        before: tuple[int, int] | None = None,
    ) -> LogPage:
        """Newest first; `before` is the cursor of the previous page (keyset paging, stable under inserts)."""
        where = ["deployment = ?"]
        params: list[Any] = [deployment]
        if severities:
            levels = [SEVERITY_LEVELS[name] for name in severities]
            where.append(f"severity IN ({', '.join('?' * len(levels))})")
            params += levels
        if before is not None:
            where.append("(ts_ms, id) < (?, ?)")
            params += list(before)
        cursor = await (await self._reader()).execute(
            f"SELECT id, {_LOG_COLUMNS} FROM logs WHERE {' AND '.join(where)} ORDER BY ts_ms DESC, id DESC LIMIT ?",
            (*params, limit + 1),
        )
        rows = [dict(row) for row in await cursor.fetchall()]
        more = len(rows) > limit
        rows = rows[:limit]
        return LogPage(rows, (rows[-1]["ts_ms"], rows[-1]["id"]) if more and rows else None)


@dataclass
class WriterStats:
    rows_written: int = 0
    logs_written: int = 0
    rows_dropped: int = 0
    logs_dropped: int = 0
    failures: int = 0
    last_error: str | None = None


class StoreWriter:
    """Moves what the recorder collected into the store about once a second, off the request path.

    When the database cannot be written (locked, read-only, full), the batch stays in a bounded backlog
    and is retried; requests never wait for it. Bucket rows are snapshots keyed by period and writer, so
    the backlog holds one row per key; log entries past the cap are dropped oldest first and counted.
    """

    def __init__(
        self,
        store: Store,
        recorder: Recorder,
        writer_id: str,
        interval_s: float = 1.0,
        max_backlog_rows: int = 20_000,
        max_backlog_logs: int = 50_000,
        retention_every_s: float = 600.0,
        on_connect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.on_connect = on_connect
        self.recorder = recorder
        self.writer_id = writer_id
        self.interval_s = interval_s
        self.max_backlog_rows = max_backlog_rows
        self.retention_every_s = retention_every_s
        self.stats = WriterStats()
        self._rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._logs: deque[LogEntry] = deque()
        self._max_logs = max_backlog_logs
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._connected = False
        self._last_retention = float("-inf")
        self._written_totals: dict[str, str] = {}  # deployment -> the totals JSON last written
        # Everything this process recorded before this time (store clock) is in the file.
        self.flushed_through: float | None = None

    @property
    def backlog(self) -> int:
        return len(self._rows) + len(self._logs)

    def _take(self) -> None:
        """Move the recorder's new data into the backlog. Synchronous: the snapshot is taken between requests."""
        collected = self.recorder.collect()
        for bucket in collected.buckets:
            row = bucket_row(bucket, self.writer_id)
            self._rows.pop(row[:4], None)  # re-insert so the newest snapshot is last (oldest are dropped first)
            self._rows[row[:4]] = row
        while len(self._rows) > self.max_backlog_rows:
            del self._rows[next(iter(self._rows))]
            self.stats.rows_dropped += 1
        for entry in collected.logs:
            request_log.log(
                entry.severity,
                entry.message,
                extra={
                    "deployment": entry.deployment,
                    "request_id": entry.request_id,
                    "status": entry.status,
                    "latency_ms": round(entry.latency_us / 1000, 3),
                    "detections": entry.detections,
                },
            )
            if len(self._logs) >= self._max_logs:
                self._logs.popleft()
                self.stats.logs_dropped += 1
            self._logs.append(entry)

    async def flush(self) -> bool:
        """Write everything collected so far; False (and the backlog kept) when the database refused."""
        taken_at = self.store.clock()
        self._take()
        rows, logs = list(self._rows.values()), [log_row(entry) for entry in self._logs]
        totals = self._changed_totals()
        try:
            if not self._connected:
                if self.on_connect is not None:
                    await self.on_connect()
                self._connected = True
            if rows or logs or totals:
                await self.store.write(rows, logs, totals)
        except (sqlite3.Error, OSError) as exc:
            self._note_failure(exc)
            self._connected = False
            # A fresh connection next time: a file that was read-only or replaced may be writable again.
            await self.store.reconnect_writer()
            return False
        if self._failing:
            log.warning(
                "writing to %s again; backlog of %d rows and %d log entries written",
                self.store.path,
                len(rows),
                len(logs),
            )
        self._failing = False
        self.stats.rows_written += len(rows)
        self.stats.logs_written += len(logs)
        self._rows.clear()
        self._logs.clear()
        self._written_totals.update((deployment, text) for _, deployment, _, text in totals)
        self.flushed_through = taken_at
        return True

    def _changed_totals(self) -> list[tuple[str, str, int, str]]:
        """This process's totals per deployment (its Prometheus counters), where they changed since last written."""
        recorder_stats, writer_stats = self.recorder.stats, self.stats
        changed = []
        for deployment, lifetime in self.recorder.lifetime.items():
            text = json.dumps(
                {
                    **dataclasses.asdict(lifetime),
                    "sampled_away": recorder_stats.sampled_away,
                    "detections_skipped": recorder_stats.detections_skipped,
                    "monitoring_failures": recorder_stats.monitoring_failures,
                    "logs_dropped": recorder_stats.logs_dropped + writer_stats.logs_dropped,
                    "rows_dropped": writer_stats.rows_dropped,
                    "write_failures": writer_stats.failures,
                    "backlog": self.backlog,
                },
                separators=(",", ":"),
            )
            if self._written_totals.get(deployment) != text:
                changed.append((self.writer_id, deployment, int(self.store.clock()), text))
        return changed

    def _note_failure(self, exc: BaseException) -> None:
        self.stats.failures += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if not self._failing:  # once per outage, not once per second
            log.warning(
                "cannot write to %s (%s); keeping a bounded backlog and retrying",
                self.store.path,
                self.stats.last_error,
            )
        self._failing = True

    async def _maybe_enforce_retention(self) -> None:
        now = time.monotonic()
        if now - self._last_retention < self.retention_every_s:
            return
        self._last_retention = now
        try:
            await self.store.enforce_retention()
        except (sqlite3.Error, OSError) as exc:
            log.warning("retention job failed: %s", exc)

    async def _refresh_paused(self) -> None:
        """Which monitors are paused or archived: a user's change through the admin API, from any process,
        takes effect here within a second."""
        with contextlib.suppress(sqlite3.Error, OSError):  # keep the last known set; the flush noted the outage
            self.recorder.paused = await self.store.paused_deployments()

    async def run(self) -> None:
        while True:
            await self.flush()
            await self._refresh_paused()
            await self._maybe_enforce_retention()
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="yolowatch-store-writer")

    async def stop(self) -> None:
        """Stop the periodic task and write what is left (the shutdown flush)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
