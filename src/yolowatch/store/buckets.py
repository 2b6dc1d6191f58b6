"""Bucket rows (per minute and rollups, one per writer) and each process's lifetime totals: writes and reads.

Queries return buckets with every writer's rows merged, so percentiles are those of the union of the
requests; histograms are decoded off the event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from yolowatch.metrics import (
    RangePoints,
    bucket_metrics,
    merged,
    range_points,
    series_points,
    signal_series,
    versions_seen,
)
from yolowatch.records import Bucket, MinuteCount
from yolowatch.store.base import StoreBase
from yolowatch.store.database import Tx
from yolowatch.store.rows import (
    BUCKET_COLUMNS,
    BUCKET_KEY,
    CORE_COLUMNS,
    SIGNAL_COLUMNS,
    Row,
    buckets_from_rows,
    insert_sql,
)

UNKNOWN_HOST = "unknown"  # how rows of writers that never said who they are (written before the fleet view) group
UPSERT_BUCKET = insert_sql("buckets", BUCKET_COLUMNS, BUCKET_KEY)
TOTALS_COLUMNS = ("writer", "deployment", "updated_s", "totals")
UPSERT_TOTALS = insert_sql("process_totals", TOTALS_COLUMNS, ("writer", "deployment"))


class RangeSignals(NamedTuple):
    """What `signals` reads: the merged bucket, the per-point series, each version's first and last period."""

    total: Bucket
    series: list[dict[str, Any]]
    seen: dict[str, tuple[int, int]]


def _merge_rows(rows: list[Row], distributions: bool, signals: bool = False, timings: bool = True) -> Bucket:
    return merged(buckets_from_rows(rows, distributions, signals, timings))


class BucketQueries(StoreBase):
    @staticmethod
    async def insert_buckets(tx: Tx, rows: Sequence[tuple[Any, ...]]) -> None:
        """Bucket rows in BUCKET_COLUMNS order; a row replaces the earlier snapshot of its key."""
        if rows:
            await tx.execute_many(UPSERT_BUCKET, rows)

    @staticmethod
    async def insert_totals(tx: Tx, totals: Sequence[tuple[str, str, int, str]]) -> None:
        """(writer, deployment, updated_s, totals JSON): each process's counters since it started."""
        if totals:
            await tx.execute_many(UPSERT_TOTALS, totals)

    async def process_totals(self) -> list[dict[str, Any]]:
        """Every process's totals since its start: writer, deployment, updated_s and the totals themselves."""
        rows = await self.db.fetch_all("SELECT * FROM process_totals ORDER BY deployment, writer")
        return [{**dict(row), "totals": json.loads(row["totals"])} for row in rows]

    async def first_traffic_s(self, deployment: str) -> int | None:
        """When the deployment's first recorded hour began (None: no traffic yet)."""
        row = await self.db.fetch_one(
            "SELECT min(start_s) AS first FROM buckets WHERE deployment = ? AND tier_s = 3600", (deployment,)
        )
        return None if row is None or row["first"] is None else int(row["first"])

    async def minute_counts(self, deployment: str, start_s: int, end_s: int) -> dict[int, MinuteCount]:
        """Per minute with traffic in [start_s, end_s), all writers summed. Plain sums in SQL: no histogram
        is decoded."""
        rows = await self.db.fetch_all(
            "SELECT start_s, sum(requests) AS requests, sum(detections) AS detections, "
            "sum(confidence_sum) AS confidence_sum, sum(confidence_count) AS confidence_count FROM buckets "
            "WHERE deployment = ? AND tier_s = 60 AND start_s >= ? AND start_s < ? GROUP BY start_s",
            (deployment, start_s, end_s),
        )
        return {
            int(row["start_s"]): MinuteCount(
                int(row["requests"]), int(row["detections"]), float(row["confidence_sum"]), int(row["confidence_count"])
            )
            for row in rows
        }

    async def minute(self, deployment: str, start_s: int, signals: bool = False) -> Bucket:
        """One minute of one deployment, every writer's row merged (histograms; with `signals` the detection
        distributions and YOLO signals too)."""
        rows = await self.db.fetch_all(
            f"SELECT {SIGNAL_COLUMNS if signals else CORE_COLUMNS} FROM buckets "
            "WHERE deployment = ? AND tier_s = 60 AND start_s = ?",
            (deployment, start_s),
        )
        return await asyncio.to_thread(_merge_rows, rows, signals, signals)

    async def params_first_seen(self, deployment: str, key: str, start_s: int, end_s: int) -> int | None:
        """The first minute in [start_s, end_s) with a prediction sent with these parameters (a `params_key`).
        The key is matched in the stored JSON: keys hold no LIKE wildcards, and quotes close them."""
        row = await self.db.fetch_one(
            "SELECT min(start_s) AS first FROM buckets WHERE deployment = ? AND tier_s = 60 AND start_s >= ? "
            "AND start_s < ? AND signals LIKE ?",
            (deployment, start_s, end_s, f'%"{key}"%'),
        )
        return None if row is None or row["first"] is None else int(row["first"])

    async def window(
        self,
        deployment: str,
        start_s: int,
        end_s: int,
        distributions: bool = True,
        signals: bool = False,
        timings: bool = True,
    ) -> Bucket:
        """Everything recorded in the minutes that start in [start_s, end_s), merged (distributions included).

        Whole hours come from the hour rollups and only the ragged edges from minute rows, so a week-long
        window decodes a few hundred rows, and a ten-minute one is exact to the minute."""
        first_hour = -(-start_s // 3600) * 3600
        last_hour = end_s - end_s % 3600
        if first_hour >= last_hour:
            first_hour = last_hour = end_s  # no whole hour inside: minutes only
        rows = await self.db.fetch_all(
            f"SELECT {SIGNAL_COLUMNS if signals else CORE_COLUMNS} FROM buckets WHERE deployment = ? AND ("
            "(tier_s = 3600 AND start_s >= ? AND start_s < ?) OR "
            "(tier_s = 60 AND ((start_s >= ? AND start_s < ?) OR (start_s >= ? AND start_s < ?))))",
            (deployment, first_hour, last_hour, start_s, first_hour, last_hour, end_s),
        )
        return await asyncio.to_thread(_merge_rows, rows, distributions, signals, timings)

    async def _range_rows(
        self, deployment: str, range_name: str, host: str | None = None, signals: bool = False
    ) -> tuple[list[Row], RangePoints]:
        points = range_points(range_name, self.clock())
        columns = SIGNAL_COLUMNS if signals else CORE_COLUMNS
        sql = f"SELECT {columns} FROM buckets WHERE deployment = ? AND tier_s = ? AND start_s >= ?"
        params: tuple[Any, ...] = (deployment, points.tier_s, points.first_s)
        if host == UNKNOWN_HOST:  # rows of writers that never said who they are, as the fleet view groups them
            sql += " AND writer NOT IN (SELECT writer FROM processes)"
        elif host is not None:
            sql += " AND writer IN (SELECT writer FROM processes WHERE host = ?)"
            params += (host,)
        return await self.db.fetch_all(sql, params), points

    async def summary(self, deployment: str, range_name: str = "24h", host: str | None = None) -> dict[str, Any]:
        """Merged metrics over the range (aligned to its sparkline step): the fleet's, or one host's."""
        rows, points = await self._range_rows(deployment, range_name, host)
        aggregate = await asyncio.to_thread(_merge_rows, rows, False)
        return {"range": range_name, "start_s": points.first_s, **bucket_metrics(aggregate)}

    async def aggregate(self, deployment: str, range_name: str = "24h", distributions: bool = True) -> Bucket:
        """The merged bucket itself (latency histogram, and the detection distributions unless told not to)."""
        rows, _ = await self._range_rows(deployment, range_name)
        return await asyncio.to_thread(_merge_rows, rows, distributions)

    async def series(self, deployment: str, range_name: str = "24h", host: str | None = None) -> list[dict[str, Any]]:
        """Evenly spaced points over the range, oldest first: the fleet's, or one host's."""
        rows, points = await self._range_rows(deployment, range_name, host)
        return await asyncio.to_thread(lambda: series_points(buckets_from_rows(rows, False), points))

    async def signals(
        self, deployment: str, range_name: str = "24h", host: str | None = None, version: str | None = None
    ) -> RangeSignals:
        """The range merged with its YOLO signals and versions (of one model version, if given), each stage's mean
        time and the saturation at each point, and when each version answered first and last. One pass: each
        row's histograms are decoded, merged, dropped."""
        rows, points = await self._range_rows(deployment, range_name, host, signals=True)

        def merge() -> RangeSignals:
            total = Bucket(deployment, 0, points.first_s)
            seen: dict[str, tuple[int, int]] = {}

            def each() -> Iterator[Bucket]:
                for bucket in versions_seen(buckets_from_rows(rows, True, True), seen):
                    if version is not None:
                        bucket = bucket.versions.get(version) or Bucket(deployment, bucket.tier_s, bucket.start_s)
                    total.merge(bucket)
                    yield bucket

            series = signal_series(each(), points)
            return RangeSignals(total, series, seen)

        return await asyncio.to_thread(merge)
