"""What a Deploy page shows, from merged buckets: pure functions over `records.Bucket`, no I/O.

Ranges name a span, the rollup tier that is read for it, and the step of its sparkline, so that
every range draws 60-96 points and a 30-day query decodes 90 histograms per writer, not 43,200.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from yolowatch.records import Bucket

EIGHT_HOURS = 8 * 3600

# range -> (span, tier to read, sparkline step), all in seconds. 60-96 points each.
RANGES: dict[str, tuple[int, int, int]] = {
    "1h": (3600, 60, 60),
    "6h": (6 * 3600, 60, 300),
    "24h": (24 * 3600, 900, 900),
    "7d": (7 * 86400, 3600, 2 * 3600),
    "30d": (30 * 86400, EIGHT_HOURS, EIGHT_HOURS),
}
RANGE_NAMES = ", ".join(RANGES)


@dataclass(frozen=True)
class RangePoints:
    """The points of a range ending now: `count` steps of `step_s` from `first_s`, read from tier `tier_s`."""

    first_s: int
    step_s: int
    count: int
    tier_s: int


def range_points(range_name: str, now_s: float) -> RangePoints:
    """Points end with the one holding `now_s`; the first starts count-1 steps before it. ValueError naming the
    allowed ranges for an unknown one."""
    if range_name not in RANGES:
        raise ValueError(f"range must be one of {RANGE_NAMES}")
    span_s, tier_s, step_s = RANGES[range_name]
    now = int(now_s)
    count = span_s // step_s
    return RangePoints((now - now % step_s) - (count - 1) * step_s, step_s, count, tier_s)


def merged(buckets: Iterable[Bucket]) -> Bucket:
    """One bucket holding them all; its percentiles are those of the union of their requests."""
    total = Bucket("", 0, 0)
    for bucket in buckets:
        total.merge(bucket)
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


def series_points(buckets: Iterable[Bucket], points: RangePoints) -> list[dict[str, Any]]:
    """Buckets merged into the range's evenly spaced points; empty points have zero requests. Each bucket is
    merged as it comes, so a lazy iterable keeps one decoded histogram alive at a time, not hundreds."""
    totals = [Bucket("", 0, 0) for _ in range(points.count)]
    for bucket in buckets:
        index = (bucket.start_s - points.first_s) // points.step_s
        if 0 <= index < points.count:
            totals[index].merge(bucket)
    return [{"start_s": points.first_s + i * points.step_s, **bucket_metrics(total)} for i, total in enumerate(totals)]


def minute_figures(metrics: dict[str, Any], minutes: int = 1) -> dict[str, float | None]:
    """Per-minute figures that alert rules compare (a request rate per second averaged over `minutes`)."""
    requests = metrics["requests"]
    return {
        "p50_ms": metrics["p50_ms"],
        "p95_ms": metrics["p95_ms"],
        "p99_ms": metrics["p99_ms"],
        "error_rate": metrics["error_rate"] if requests else None,
        "request_rate": requests / 60 / max(1, minutes),
        "mean_confidence": metrics["mean_confidence"],
    }
