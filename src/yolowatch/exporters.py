"""Prometheus exposition with prometheus_client, from the totals every process writes to the store.

Each process (a uvicorn worker, a sidecar) writes its counters since start to the shared SQLite
file about once a second; `/metrics` sums them over processes, so with `--workers N` any worker
answers for all of them and counters only go up (a restarted worker adds a new row; its old row
keeps its final values until retention removes it, which Prometheus sees as a counter reset).

Besides requests, durations and detections, it exports the YOLO stage times (decode, queue, preprocess,
inference, postprocess) as one histogram per stage, and detections and confidence sums per class: the
`class` label is bounded to the top `max_classes` classes by detections, the rest summed under
class="other" (see `_bounded_classes` for what that costs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from yolowatch.records import DURATION_BOUNDS_S, STAGE_BOUNDS_S, STAGES, HealthResult

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
PROMETHEUS_CONFIDENCE_BUCKETS = 20
MAX_CLASSES = 20
OTHER_CLASS = "other"


def _add_into(into: dict[str, Any], totals: dict[str, Any]) -> None:
    """Element-wise: numbers add, lists add per element, dicts (per class, per stage) add per key."""
    for name, value in totals.items():
        if isinstance(value, dict):
            _add_into(into.setdefault(name, {}), value)
        elif isinstance(value, list):
            into[name] = [a + b for a, b in zip(into.get(name, [0] * len(value)), value, strict=True)]
        else:
            into[name] = into.get(name, 0) + value


def _sum_totals(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per deployment, the element-wise sum of every process's totals."""
    merged: dict[str, dict[str, Any]] = {}
    for row in rows:
        _add_into(merged.setdefault(row["deployment"], {}), row["totals"])
    return merged


def _cumulative(counts: list[int], bounds: Iterable[float]) -> list[tuple[str, float]]:
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip([*bounds, float("inf")], counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
    return buckets


def _bounded_classes(totals: dict[str, Any], max_classes: int) -> list[tuple[str, int, float]]:
    """(class label, detections, confidence sum) of the top `max_classes` classes by detections (ties by name),
    then "other" with the rest; nothing for a deployment that has seen no class.

    A class named "other" is folded into "other" too. "other" is there from the first class on (0 while nothing
    is folded), so its first increase is not lost to rate(). The known cost: membership of the top N can change
    between scrapes. A class that drops out ends its series and adds its whole count to "other" (a jump); a
    class that climbs in starts a series at its whole count and takes it out of "other", which Prometheus sees
    as a counter reset. Both distort rate() of "other" for a scrape or two; the per-class series stay right.
    """
    classes: dict[str, int] = totals.get("classes", {})
    if not classes:
        return []
    sums: dict[str, float] = totals.get("class_confidence", {})
    ranked = sorted((name for name in classes if name != OTHER_CLASS), key=lambda name: (-classes[name], name))
    top = ranked[:max_classes]
    named = set(top)
    other = (
        OTHER_CLASS,
        sum(count for name, count in classes.items() if name not in named),
        sum(total for name, total in sums.items() if name not in named),
    )
    return [*((name, classes[name], sums.get(name, 0.0)) for name in top), other]


class _Snapshot:
    """A prometheus_client collector over one read of the store."""

    def __init__(
        self, totals: dict[str, dict[str, Any]], health: dict[str, HealthResult], max_classes: int = MAX_CLASSES
    ) -> None:
        self.totals = totals
        self.health = health
        self.max_classes = max_classes

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
        spans = CounterMetricFamily(
            "yolowatch_spans_dropped",
            "Traced requests whose spans never reached the collector (the backlog was full, or the export failed).",
            labels=labels,
        )
        failures = CounterMetricFamily(
            "yolowatch_monitoring_failures", "Requests whose recording failed (they were still served).", labels=labels
        )
        backlog = GaugeMetricFamily(
            "yolowatch_store_backlog",
            "Rows and log entries waiting to be written, summed over processes.",
            labels=labels,
        )
        stages = HistogramMetricFamily(
            "yolowatch_stage_duration_seconds",
            "Time per image in each predict stage, as the responses report it.",
            labels=["deployment", "stage"],
        )
        class_labels = ["deployment", "class"]
        class_detections = CounterMetricFamily(
            "yolowatch_class_detections",
            f'Detections per class: the top {self.max_classes} by detections, the rest as class="other".',
            labels=class_labels,
        )
        class_confidence = CounterMetricFamily(
            "yolowatch_class_confidence_sum",
            "Sum of the confidences of each class's detections (over yolowatch_class_detections: the mean).",
            labels=class_labels,
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
            spans.add_metric([deployment], totals.get("spans_dropped", 0))  # 0 from a process before traces
            failures.add_metric([deployment], totals["monitoring_failures"])
            backlog.add_metric([deployment], totals["backlog"])
            stage_counts: dict[str, list[int]] = totals.get("stage_counts", {})
            stage_sums: dict[str, int] = totals.get("stage_sum_us", {})
            for stage in STAGES:  # only the known stages: the series stay bounded
                if stage in stage_counts:
                    buckets = _cumulative(stage_counts[stage], STAGE_BOUNDS_S)
                    stages.add_metric([deployment, stage], buckets, sum_value=stage_sums.get(stage, 0) / 1e6)
            for name, count, confidence_total in _bounded_classes(totals, self.max_classes):
                class_detections.add_metric([deployment, name], count)
                class_confidence.add_metric([deployment, name], confidence_total)
        up = GaugeMetricFamily("yolowatch_health_up", "1 when the last health probe passed, else 0.", labels=labels)
        probe = GaugeMetricFamily(
            "yolowatch_health_probe_duration_seconds", "How long the last health probe took.", labels=labels
        )
        for deployment, result in sorted(self.health.items()):
            up.add_metric([deployment], 1.0 if result.healthy else 0.0)
            if result.latency_ms is not None:
                probe.add_metric([deployment], result.latency_ms / 1000)
        yield from (requests, duration, predictions, detections, confidence, skipped, sampled, dropped, spans, failures)
        yield from (backlog, up, probe, stages, class_detections, class_confidence)


def _confidence_buckets(totals: dict[str, Any]) -> list[tuple[str, float]]:
    """The 20 stored bins as buckets le=0.05 ... le=1.0 (a bin holds [k/20, (k+1)/20)), and an empty +Inf."""
    stored = totals["confidence_hist"]
    group = len(stored) // PROMETHEUS_CONFIDENCE_BUCKETS  # 100 stored bins -> 20 buckets of 0.05
    counts = [sum(stored[k * group : (k + 1) * group]) for k in range(PROMETHEUS_CONFIDENCE_BUCKETS)]
    bounds = [round((k + 1) / PROMETHEUS_CONFIDENCE_BUCKETS, 2) for k in range(PROMETHEUS_CONFIDENCE_BUCKETS)]
    return _cumulative([*counts, 0], bounds)


# A process whose totals were not updated for this long is gone (or stalled): its gauges are left out.
LIVE_GAUGES_S = 30

# Saturation gauges: (metric, sample key, help, how processes combine: "sum" or "max").
SATURATION_GAUGES = (
    ("yolowatch_requests_in_flight", "in_flight", "Requests inside the app now, summed over live processes.", "sum"),
    ("yolowatch_inference_queue_depth", "queue", "Requests waiting for or on the model thread, summed.", "sum"),
    ("yolowatch_process_cpu_percent", "cpu_percent", "CPU of the live processes, percent of one core, summed.", "sum"),
    ("yolowatch_process_resident_memory_bytes", "rss_bytes", "Resident memory of the live processes, summed.", "sum"),
    # Processes on one host see the same GPUs: the busiest reading, not a sum.
    ("yolowatch_gpu_utilization_percent", "gpu_utilization", "GPU utilisation (NVML), the highest reading.", "max"),
    ("yolowatch_gpu_memory_used_bytes", "gpu_memory_bytes", "GPU memory used (NVML), the highest reading.", "max"),
)  # fmt: skip


def saturation_gauges(process_totals: list[dict[str, Any]], now_s: float) -> list[Metric]:
    """The saturation gauges from the processes that wrote in the last LIVE_GAUGES_S seconds (a dead process's
    last sample is not a gauge of now)."""
    values: dict[str, dict[str, float]] = {}
    for row in process_totals:
        if row.get("updated_s", 0) < now_s - LIVE_GAUGES_S:
            continue
        sample = row["totals"].get("saturation") or {}
        per_deployment = values.setdefault(row["deployment"], {})
        for _, key, _, combine in SATURATION_GAUGES:
            if key in sample:
                seen = per_deployment.get(key)
                value = float(sample[key])
                per_deployment[key] = (
                    value if seen is None else (seen + value if combine == "sum" else max(seen, value))
                )
    gauges: list[Metric] = []
    for metric, key, text, _ in SATURATION_GAUGES:
        gauge = GaugeMetricFamily(metric, text, labels=["deployment"])
        for deployment, found in sorted(values.items()):
            if key in found:
                gauge.add_metric([deployment], found[key])
        gauges.append(gauge)
    return gauges


class _Gauges:
    """A collector of ready-made metric families."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


def exposition(
    process_totals: list[dict[str, Any]],
    health: dict[str, HealthResult],
    max_classes: int = MAX_CLASSES,
    now_s: float | None = None,
) -> bytes:
    """The text exposition of what the store holds now; `max_classes` bounds the `class` label's values. With
    `now_s` (the store's clock), the saturation gauges of the processes alive then."""
    if max_classes < 0:
        raise ValueError(f"max_classes must be 0 or more; got {max_classes}")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(_sum_totals(process_totals), health, max_classes))
    if now_s is not None:
        registry.register(_Gauges(saturation_gauges(process_totals, now_s)))
    return generate_latest(registry)
