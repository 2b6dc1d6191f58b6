"""Records to rows and back: the one place that knows how a bucket or a log entry is laid out in a table."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from hdrh.histogram import HdrHistogram

from yolowatch.records import Bucket, LogEntry


class Row(Protocol):
    """A result row: columns by name (what sqlite3.Row and asyncpg's Record both give, in C). `dict(row)` copies
    it for callers outside the store."""

    def __getitem__(self, key: str) -> Any: ...

    def keys(self) -> list[str]: ...


BUCKET_KEY = ("deployment", "tier_s", "start_s", "writer")
BUCKET_COLUMNS = (
    *BUCKET_KEY,
    "requests", "status_1xx", "status_2xx", "status_3xx", "status_4xx", "status_5xx",
    "client_errors", "server_errors", "slow", "latency_sum_us", "predictions", "detections", "confidence_sum",
    "confidence_count", "confidence_hist", "area_hist", "classes", "latency", "signals", "versions",
)  # fmt: skip
# What most reads need: everything but the YOLO signals and the per-version sub-buckets (the larger columns).
CORE_COLUMNS = ", ".join(BUCKET_COLUMNS[:-2])
SIGNAL_COLUMNS = ", ".join(BUCKET_COLUMNS)
LOG_COLUMNS = (
    "deployment", "ts_ms", "severity", "method", "path", "status", "latency_us", "detections", "mean_confidence",
    "request_id", "message", "trace_id",
)  # fmt: skip


def bucket_row(bucket: Bucket, writer: str) -> tuple[Any, ...]:
    """In BUCKET_COLUMNS order; the first four values are the row's key."""
    versions = bucket.whole_versions()
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
        signals_json(bucket),
        json.dumps({name: _bucket_dict(version) for name, version in versions.items()}, separators=(",", ":")),
    )


def signals_json(bucket: Bucket) -> str:
    """The YOLO signals of a bucket as one JSON object (stage histograms in HdrHistogram's base64 encoding)."""
    found: dict[str, Any] = {}
    if bucket.stages:
        found["stages"] = {name: histogram.encode().decode() for name, histogram in bucket.stages.items()}
    if bucket.class_confidence:
        found["classConfidence"] = bucket.class_confidence
    if bucket.params:
        found["params"] = bucket.params
    if bucket.image:
        found["image"] = bucket.image
    if bucket.saturation:
        found["saturation"] = bucket.saturation
    return json.dumps(found, separators=(",", ":")) if found else "{}"


def _read_signals(bucket: Bucket, text: str | None, timings: bool = True) -> None:
    if not text or text == "{}":
        return
    found = json.loads(text)
    if timings:  # decoding the stage histograms is most of the cost
        bucket.stages = {name: HdrHistogram.decode(encoded) for name, encoded in found.get("stages", {}).items()}
    bucket.class_confidence = found.get("classConfidence", {})
    bucket.params = found.get("params", {})
    bucket.image = found.get("image", {})
    bucket.saturation = found.get("saturation", {})


def _bucket_dict(bucket: Bucket) -> dict[str, Any]:
    """A version's sub-bucket as the columns of a row (no key, no versions of its own)."""
    values = dict(zip(BUCKET_COLUMNS[4:-1], bucket_row(bucket, "")[4:-1], strict=True))
    values["latency"] = values["latency"].decode()
    return values


def log_row(entry: LogEntry) -> tuple[Any, ...]:
    """In LOG_COLUMNS order."""
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
        entry.trace_id,
    )


def bucket_from_row(row: Row, distributions: bool = True, signals: bool = False, timings: bool = True) -> Bucket:
    """A stored row back as a Bucket; without `distributions` its histograms stay empty (the JSON is skipped);
    with `signals` (the row must hold the signals and versions columns) the YOLO signals and versions too, but
    without `timings` neither the stage histograms nor the versions (what the alert checks need is the rest)."""
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
    if signals:
        _read_signals(bucket, row["signals"], timings)
        for name, values in json.loads(row["versions"] or "{}").items() if timings else ():
            version = bucket_from_row(_VersionRow(row, values), True, False)
            _read_signals(version, values["signals"])
            bucket.versions[name] = version
    return bucket


class _VersionRow(dict[str, Any]):
    """A version's stored columns, with the key columns of the row that holds it."""

    def __init__(self, row: Row, values: dict[str, Any]) -> None:
        super().__init__(values, deployment=row["deployment"], tier_s=row["tier_s"], start_s=row["start_s"])

    def keys(self) -> list[str]:  # type: ignore[override]  # a list, as Row's are
        return list(super().keys())


def buckets_from_rows(
    rows: Iterable[Row], distributions: bool = True, signals: bool = False, timings: bool = True
) -> Iterator[Bucket]:
    """Decoded one at a time, as the caller merges them (a decoded latency histogram is 24 KiB)."""
    return (bucket_from_row(row, distributions, signals, timings) for row in rows)


def insert_sql(table: str, columns: tuple[str, ...], key: tuple[str, ...] = (), update: bool = True) -> str:
    """A parameterized INSERT; with a key, an upsert (`update`) or an insert that keeps the existing row."""
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    if not key:
        return sql
    if not update:
        return f"{sql} ON CONFLICT ({', '.join(key)}) DO NOTHING"
    changes = ", ".join(f"{column} = excluded.{column}" for column in columns if column not in key)
    return f"{sql} ON CONFLICT ({', '.join(key)}) DO UPDATE SET {changes}"
