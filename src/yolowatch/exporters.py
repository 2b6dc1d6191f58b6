"""Prometheus exposition with prometheus_client, from the totals every process writes to the store.

Each process (a uvicorn worker, a sidecar) writes its counters since start to the shared SQLite
file about once a second; `/metrics` sums them over processes, so with `--workers N` any worker
answers for all of them and counters only go up (a restarted worker adds a new row; its old row
keeps its final values until retention removes it, which Prometheus sees as a counter reset).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from yolowatch.records import DURATION_BOUNDS_S, HealthResult

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
PROMETHEUS_CONFIDENCE_BUCKETS = 20


def _sum_totals(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per deployment, the element-wise sum of every process's totals."""
    merged: dict[str, dict[str, Any]] = {}
    for row in rows:
        totals = row["totals"]
        into = merged.setdefault(row["deployment"], {})
        for name, value in totals.items():
            if isinstance(value, list):
                into[name] = [a + b for a, b in zip(into.get(name, [0] * len(value)), value, strict=True)]
            else:
                into[name] = into.get(name, 0) + value
    return merged


def _cumulative(counts: list[int], bounds: Iterable[float]) -> list[tuple[str, float]]:
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip([*bounds, float("inf")], counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
    return buckets


class _Snapshot:
    """A prometheus_client collector over one read of the store."""

    def __init__(self, totals: dict[str, dict[str, Any]], health: dict[str, HealthResult]) -> None:
        self.totals = totals
        self.health = health

    def collect(self) -> Iterator[Metric]:
        labels = ["deployment"]
        requests = CounterMetricFamily(
            "yolowatch_requests", "Requests answered, by status class.", labels=["deployment", "status_class"]
        )
        duration = HistogramMetricFamily(
            "yolowatch_request_duration_seconds",
            "Server-side request duration, first byte in to last byte out.",
            labels=labels,
        )
        predictions = CounterMetricFamily(
            "yolowatch_predictions", "Predict responses whose detections were read.", labels=labels
        )
        detections = CounterMetricFamily("yolowatch_detections", "Objects detected in those responses.", labels=labels)
        confidence = HistogramMetricFamily(
            "yolowatch_detection_confidence", "Confidence of each detection (bins of 0.05).", labels=labels
        )
        skipped = CounterMetricFamily(
            "yolowatch_detections_skipped",
            "Predict responses not read because the per-second parse budget was spent.",
            labels=labels,
        )
        sampled = CounterMetricFamily(
            "yolowatch_logs_sampled_away", "INFO request log entries not kept under load.", labels=labels
        )
        dropped = CounterMetricFamily(
            "yolowatch_store_dropped",
            "Rows and log entries dropped because the store's backlog was full.",
            labels=["deployment", "kind"],
        )
        failures = CounterMetricFamily(
            "yolowatch_monitoring_failures", "Requests whose recording failed (they were still served).", labels=labels
        )
        backlog = GaugeMetricFamily(
            "yolowatch_store_backlog",
            "Rows and log entries waiting to be written, summed over processes.",
            labels=labels,
        )
        for deployment, totals in sorted(self.totals.items()):
            for name, count in zip(STATUS_CLASSES, totals["status_classes"], strict=True):
                requests.add_metric([deployment, name], count)
            duration.add_metric(
                [deployment],
                _cumulative(totals["duration_counts"], DURATION_BOUNDS_S),
                sum_value=totals["duration_sum_us"] / 1e6,
            )
            predictions.add_metric([deployment], totals["predictions"])
            detections.add_metric([deployment], totals["detections"])
            confidence.add_metric([deployment], _confidence_buckets(totals), sum_value=totals["confidence_sum"])
            skipped.add_metric([deployment], totals["detections_skipped"])
            sampled.add_metric([deployment], totals["sampled_away"])
            dropped.add_metric([deployment, "rows"], totals["rows_dropped"])
            dropped.add_metric([deployment, "logs"], totals["logs_dropped"])
            failures.add_metric([deployment], totals["monitoring_failures"])
            backlog.add_metric([deployment], totals["backlog"])
        up = GaugeMetricFamily("yolowatch_health_up", "1 when the last health probe passed, else 0.", labels=labels)
        probe = GaugeMetricFamily(
            "yolowatch_health_probe_duration_seconds", "How long the last health probe took.", labels=labels
        )
        for deployment, result in sorted(self.health.items()):
            up.add_metric([deployment], 1.0 if result.healthy else 0.0)
            if result.latency_ms is not None:
                probe.add_metric([deployment], result.latency_ms / 1000)
        yield from (requests, duration, predictions, detections, confidence, skipped, sampled, dropped, failures)
        yield from (backlog, up, probe)


def _confidence_buckets(totals: dict[str, Any]) -> list[tuple[str, float]]:
    """The 20 stored bins as buckets le=0.05 ... le=1.0 (a bin holds [k/20, (k+1)/20)), and an empty +Inf."""
    stored = totals["confidence_hist"]
    group = len(stored) // PROMETHEUS_CONFIDENCE_BUCKETS  # 100 stored bins -> 20 buckets of 0.05
    counts = [sum(stored[k * group : (k + 1) * group]) for k in range(PROMETHEUS_CONFIDENCE_BUCKETS)]
    bounds = [round((k + 1) / PROMETHEUS_CONFIDENCE_BUCKETS, 2) for k in range(PROMETHEUS_CONFIDENCE_BUCKETS)]
    return _cumulative([*counts, 0], bounds)


def exposition(process_totals: list[dict[str, Any]], health: dict[str, HealthResult]) -> bytes:
    """The text exposition of what the store holds now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(_sum_totals(process_totals), health))
    return generate_latest(registry)
