"""What a Deploy page shows, from merged buckets: pure functions over `records.Bucket`, no I/O.

Ranges name a span, the rollup tier that is read for it, and the step of its sparkline, so that
every range draws 60-96 points and a 30-day query decodes 90 histograms per writer, not 43,200.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from yolowatch.records import IMAGE_EDGES, IMAGE_PROPERTIES, IMAGE_TOP, STAGES, Bucket, add_saturation, parse_params_key

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

    @property
    def end_s(self) -> int:
        """Where the last point ends."""
        return self.first_s + self.count * self.step_s

    def index_of(self, start_s: int) -> int | None:
        """The point a period starting at `start_s` belongs to (None: outside the range)."""
        index = (start_s - self.first_s) // self.step_s
        return index if 0 <= index < self.count else None


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
        index = points.index_of(bucket.start_s)
        if index is not None:
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


def _percentiles_ms(histogram: Any) -> dict[str, Any]:
    values = histogram.get_percentile_to_value_dict([50, 95, 99])
    return {
        "count": histogram.get_total_count(),
        "p50_ms": values[50] / 1000,
        "p95_ms": values[95] / 1000,
        "p99_ms": values[99] / 1000,
        "mean_ms": histogram.get_mean_value() / 1000,
    }


def stage_metrics(bucket: Bucket) -> list[dict[str, Any]]:
    """Each stage with times: P50/P95/P99 and mean (ms), in pipeline order."""
    return [
        {"stage": stage, **_percentiles_ms(bucket.stages[stage])}
        for stage in STAGES
        if stage in bucket.stages and bucket.stages[stage].get_total_count()
    ]


def class_metrics(bucket: Bucket) -> list[dict[str, Any]]:
    """Per class, most detections first: detections, their share, detections per predict response, mean
    confidence (None for rows written before per-class confidences were kept)."""
    total = sum(bucket.classes.values())
    rows = []
    for name, count in sorted(bucket.classes.items(), key=lambda item: (-item[1], item[0])):
        confidence = bucket.class_confidence.get(name)
        rows.append(
            {
                "name": name,
                "detections": count,
                "share": count / total if total else 0.0,
                "per_request": count / bucket.predictions if bucket.predictions else None,
                "mean_confidence": confidence / count if confidence is not None and count else None,
            }
        )
    return rows


def params_metrics(bucket: Bucket) -> list[dict[str, Any]]:
    """The request parameters predictions were sent with, most used first (and the share nobody said)."""
    said = sum(bucket.params.values())
    rows = []
    for key, count in sorted(bucket.params.items(), key=lambda item: (-item[1], item[0])):
        conf, iou, imgsz = parse_params_key(key)
        rows.append({"conf": conf, "iou": iou, "imgsz": imgsz, "predictions": count, "share": count / said})
    return rows


def histogram_quantile(counts: list[int], edges: tuple[float, ...], top: float, q: float) -> float | None:
    """A quantile of binned values, interpolated inside its bin (bins from 0 through `edges` to `top`)."""
    total = sum(counts)
    if not total:
        return None
    bounds = [0.0, *edges, top]
    target, running = q * total, 0
    for k, count in enumerate(counts):
        if count and running + count >= target:
            return bounds[k] + (bounds[k + 1] - bounds[k]) * (target - running) / count
        running += count
    return top


def image_metrics(bucket: Bucket) -> list[dict[str, Any]]:
    """Per image property measured: images, and the 5th, 50th and 95th percentiles (from the bins)."""
    rows = []
    for name in IMAGE_PROPERTIES:
        counts = bucket.image.get(name)
        if counts is None:
            continue
        edges, top = IMAGE_EDGES[name], IMAGE_TOP[name]
        rows.append(
            {
                "property": name,
                "images": sum(counts),
                **{f"p{q}": histogram_quantile(counts, edges, top, q / 100) for q in (5, 50, 95)},
            }
        )
    return rows


def version_metrics(bucket: Bucket, seen: dict[str, tuple[int, int]] | None = None) -> list[dict[str, Any]]:
    """Each model version that answered, most requests first, with its own figures and, given `seen`, the start
    of the first and of the last period it answered in (which one is the incumbent, which the canary)."""
    seen = seen or {}
    return [
        {
            "version": name,
            "first_seen_s": seen.get(name, (None, None))[0],
            "last_seen_s": seen.get(name, (None, None))[1],
            **bucket_metrics(version),
        }
        for name, version in sorted(bucket.versions.items(), key=lambda item: (-item[1].requests, item[0]))
    ]


def saturation_metrics(figures: dict[str, float]) -> dict[str, float | None]:
    """Means and peaks from a bucket's saturation sums (None where nothing was sampled). In a fleet the means are
    per process and the peaks those of the busiest process."""

    def mean(total: str, samples: str = "samples") -> float | None:
        count = figures.get(samples, 0.0)
        return figures[total] / count if count and total in figures else None

    return {
        "in_flight_mean": mean("in_flight_sum"),
        "in_flight_max": figures.get("in_flight_max"),
        "queue_mean": mean("queue_sum"),
        "queue_max": figures.get("queue_max"),
        "cpu_percent": mean("cpu_percent_sum", "cpu_samples"),
        "rss_max_bytes": figures.get("rss_max_bytes"),
        "gpu_utilization_percent": mean("gpu_utilization_sum", "gpu_samples"),
        "gpu_memory_max_bytes": figures.get("gpu_memory_max_bytes"),
    }


def signal_metrics(bucket: Bucket, seen: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """Everything a YOLO operator reads beyond latency and errors, from one merged bucket (`seen`: when each
    version first and last answered)."""
    return {
        "saturation": saturation_metrics(bucket.saturation),
        "stages": stage_metrics(bucket),
        "classes": class_metrics(bucket),
        "params": params_metrics(bucket),
        "params_unknown": bucket.predictions - sum(bucket.params.values()),
        "image": image_metrics(bucket),
        "versions": version_metrics(bucket, seen),
    }


def versions_seen(buckets: Iterable[Bucket], seen: dict[str, tuple[int, int]]) -> Iterator[Bucket]:
    """Pass the buckets through, noting in `seen` the first and last period start of each version in them."""
    for bucket in buckets:
        for name in bucket.versions:
            first, last = seen.get(name, (bucket.start_s, bucket.start_s))
            seen[name] = (min(first, bucket.start_s), max(last, bucket.start_s))
        yield bucket


def signal_series(buckets: Iterable[Bucket], points: RangePoints) -> list[dict[str, Any]]:
    """At each of the range's points: mean ms per stage (a stacked chart of where the time goes) and saturation."""
    totals = [Bucket("", 0, 0) for _ in range(points.count)]
    for bucket in buckets:
        index = points.index_of(bucket.start_s)
        if index is not None:
            for stage, histogram in bucket.stages.items():
                totals[index].stage(stage).add(histogram)
            add_saturation(totals[index].saturation, bucket.saturation)
    return [
        {
            "start_s": points.first_s + i * points.step_s,
            "stages": {
                stage: total.stages[stage].get_mean_value() / 1000 if stage in total.stages else None
                for stage in STAGES
            },
            "saturation": saturation_metrics(total.saturation),
        }
        for i, total in enumerate(totals)
    ]
