"""The schema: its migrations, in order, and the runner that brings any older database up to date.

Version n's entry holds what brings a database from n-1 to n: SQL statements, or a function over the
transaction for data. Every process runs the runner when it first connects, inside one transaction (on
PostgreSQL under an advisory lock), so processes sharing the database never see half a migration. The
statements are written in SQLite's types; `Tx.ddl` gives PostgreSQL's.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from yolowatch.records import AREA_BIN_COUNT, CONFIDENCE_BINS, Bucket
from yolowatch.store.database import Tx
from yolowatch.store.rows import BUCKET_COLUMNS, BUCKET_KEY, bucket_from_row, bucket_row, insert_sql

SCHEMA_VERSION = 13
EIGHT_HOURS = 8 * 3600


class SchemaTooNew(RuntimeError):
    """The database was written by a newer yolowatch."""


async def _add_eight_hour_rollups(tx: Tx) -> None:
    """Version 2 reads 30 days from eight-hour rows: build them from the hour rows a version-1 file holds."""
    merged: dict[tuple[str, int, str], Bucket] = {}
    for row in await tx.fetch_all("SELECT * FROM buckets WHERE tier_s = 3600 ORDER BY deployment, writer, start_s"):
        start = row["start_s"] - row["start_s"] % EIGHT_HOURS
        key = (row["deployment"], start, row["writer"])
        if key not in merged:
            merged[key] = Bucket(row["deployment"], EIGHT_HOURS, start)
        hour = bucket_from_row(row)
        if len(hour.confidence_hist) == 20:  # a version-1 row: in the bins of version 4, which runs after this
            hour.confidence_hist, hour.area_hist = _finer(hour.confidence_hist, hour.area_hist)
        merged[key].merge(hour)
    # The columns of version 2 (the signals and versions columns came with version 9).
    rows = [bucket_row(bucket, writer)[:-2] for (_, _, writer), bucket in merged.items()]
    await tx.execute_many(insert_sql("buckets", BUCKET_COLUMNS[:-2], BUCKET_KEY), rows)


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


async def _finer_bins(tx: Tx) -> None:
    """Version 4 keeps confidences in 100 bins (was 20) and box sizes in 100 (was 25): older rows are split evenly."""
    keys = ", ".join(BUCKET_KEY)
    updates = []
    for row in await tx.fetch_all(f"SELECT {keys}, confidence_hist, area_hist FROM buckets"):
        confidence, area = json.loads(row["confidence_hist"]), json.loads(row["area_hist"])
        if len(confidence) == 20 and len(area) == 25:
            updates.append((*map(json.dumps, _finer(confidence, area)), *(row[k] for k in BUCKET_KEY)))
    where = " AND ".join(f"{k} = ?" for k in BUCKET_KEY)
    await tx.execute_many(f"UPDATE buckets SET confidence_hist = ?, area_hist = ? WHERE {where}", updates)
    for row in await tx.fetch_all("SELECT writer, deployment, totals FROM process_totals"):
        totals = json.loads(row["totals"])
        if len(totals.get("confidence_hist", [])) == 20:
            totals["confidence_hist"] = _split(totals["confidence_hist"], CONFIDENCE_BINS // 20)
            await tx.execute(
                "UPDATE process_totals SET totals = ? WHERE writer = ? AND deployment = ?",
                (json.dumps(totals, separators=(",", ":")), row["writer"], row["deployment"]),
            )


# version -> what brings a database from version-1 to version: SQL statements, or a function for data.
MIGRATIONS: dict[int, tuple[str | Callable[[Tx], Awaitable[None]], ...]] = {
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
    # The fleet: every process that writes (its writer id is the key of its bucket rows), its host and region.
    8: (
        """CREATE TABLE processes (
            writer TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, kind TEXT NOT NULL, region TEXT,
            latitude REAL, longitude REAL, version TEXT NOT NULL, started_s INTEGER NOT NULL,
            seen_s INTEGER NOT NULL)""",
        "CREATE INDEX processes_by_host ON processes (host)",
    ),
    # The YOLO signals (stage times, per-class confidence, request parameters, image properties) and each model
    # version's own sub-bucket, as JSON: read only by the queries that show them.
    9: (
        "ALTER TABLE buckets ADD COLUMN signals TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE buckets ADD COLUMN versions TEXT NOT NULL DEFAULT '{}'",
    ),
    # The class of a class-scoped rule's notifications (a label of the alert, as its deployment is).
    10: ("ALTER TABLE alert_notifications ADD COLUMN class_name TEXT NOT NULL DEFAULT ''",),
    # Golden-image checks: one row per run (its failing images and what differed, as JSON).
    11: (
        """CREATE TABLE golden_runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT, deployment TEXT NOT NULL, checked_ms INTEGER NOT NULL,
            images INTEGER NOT NULL, passed INTEGER NOT NULL, worst TEXT, differences TEXT NOT NULL,
            error TEXT, latency_ms REAL NOT NULL)""",
        "CREATE INDEX golden_by_deployment ON golden_runs (deployment, checked_ms)",
    ),
    # Silences (their matchers as the API's JSON), the silences a notification was stored under (a JSON list of
    # ids; NULL: sent as usual), and the acknowledgement of a pending or firing alert, on its state.
    12: (
        """CREATE TABLE silences (
            id TEXT PRIMARY KEY, matchers TEXT NOT NULL, starts_s INTEGER NOT NULL, ends_s INTEGER NOT NULL,
            created_by TEXT NOT NULL, comment TEXT NOT NULL, created_s INTEGER NOT NULL, updated_s INTEGER NOT NULL)""",
        "CREATE INDEX silences_by_end ON silences (ends_s)",
        "ALTER TABLE alert_notifications ADD COLUMN silenced_by TEXT",
        "ALTER TABLE alert_state ADD COLUMN ack_by TEXT",
        "ALTER TABLE alert_state ADD COLUMN ack_s INTEGER",
        "ALTER TABLE alert_state ADD COLUMN ack_comment TEXT",
    ),
    # The W3C trace id of a log entry's request (the client's traceparent, or this process's trace), and the
    # index that finds a trace's entries (only entries with one are in it).
    13: (
        "ALTER TABLE logs ADD COLUMN trace_id TEXT",
        "CREATE INDEX logs_by_trace ON logs (trace_id) WHERE trace_id IS NOT NULL",
    ),
}


async def migrate(tx: Tx, shown: str) -> None:
    """Apply every migration past the database's version, in order (the caller holds the transaction)."""
    await tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = await tx.fetch_one("SELECT max(version) AS version FROM schema_version")
    current = (row["version"] if row else None) or 0
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{shown} has schema version {current}; this yolowatch knows up to {SCHEMA_VERSION}: upgrade it"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        for step in MIGRATIONS[version]:
            if isinstance(step, str):
                await tx.execute(tx.ddl(step))
            else:
                await step(tx)
        await tx.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
