"""Data every layer shares: buckets, log entries, detections, health results, alert states, and their bins.

Plain data with the arithmetic that belongs to it (a bucket merges with a bucket); no I/O, and nothing
here imports another yolowatch module but the helpers beneath it.
"""

from __future__ import annotations

import bisect
import functools
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from hdrh.histogram import HdrHistogram

# Latency histograms: 1 us to 10 min at 2 significant digits. Measured (benchmarks/hdr_precision.py): worst
# P50/P95/P99 error 0.6 % on lognormal latencies (< 1 % by construction: 1/128 at most), 24 KiB per live
# histogram, about 1 KB encoded, 0.02 ms to decode. 3 digits cut the error to 0.03 % but cost 7x the memory
# and 3x the decode time, which a 24h query pays 96 times and a 30d query 720 times.
LATENCY_MIN_US = 1
LATENCY_MAX_US = 600_000_000
LATENCY_DIGITS = 2

# Fine enough that a KS test on the bins stays within 0.02 of one on the raw values (tests/test_quality.py;
# 0.05-wide bins missed by up to 0.034 at 500 detections a side).
CONFIDENCE_BINS = 100  # 0.01 wide, 0..1
# Box sizes (normalized w*h) span orders of magnitude: 100 log-spaced bins from 1e-5 to 1 (20 a decade);
# smaller goes to bin 0.
AREA_BIN_COUNT = 100
AREA_EDGES: tuple[float, ...] = tuple(10 ** (-5 + 5 * k / AREA_BIN_COUNT) for k in range(1, AREA_BIN_COUNT))

# Where a predict request's time goes: the bundled app's decode and queue wait, then Ultralytics' own `speed`
# stages. A stage outside this list (an upstream's own name) is not kept: the series stay bounded.
STAGES = ("decode", "queue", "preprocess", "inference", "postprocess")


def _log_edges(low_exp: float, high_exp: float, bins: int, base: float = 10.0) -> tuple[float, ...]:
    return tuple(base ** (low_exp + (high_exp - low_exp) * k / bins) for k in range(1, bins))


# Image properties of each decoded upload, binned so any two windows can be compared with a KS test:
# name -> inner bin edges (a value below the first edge is in bin 0, at or above the last in the last bin).
IMAGE_EDGES: dict[str, tuple[float, ...]] = {
    "brightness": tuple(4.0 * k for k in range(1, 64)),  # mean gray level, 0-255: 64 bins of 4
    "contrast": tuple(2.0 * k for k in range(1, 64)),  # standard deviation of gray levels: 64 bins of 2, to 128
    "sharpness": _log_edges(-1, 5, 60),  # variance of the Laplacian, 0.1 to 1e5: 10 bins a decade
    "aspect": _log_edges(-2, 2, 40, 2.0),  # width / height, 1/4 to 4: 10 bins per doubling
    "megapixels": _log_edges(-3, 2, 50),  # width * height / 1e6, 0.001 to 100: 10 bins a decade
}
IMAGE_PROPERTIES = tuple(IMAGE_EDGES)
# Where each property's last bin nominally ends (it holds everything above its inner edge), for charts.
IMAGE_TOP = {"brightness": 256.0, "contrast": 128.0, "sharpness": 1e5, "aspect": 4.0, "megapixels": 100.0}


@functools.lru_cache(maxsize=256)  # a pure function of a few distinct values, called per predict response read
def params_key(conf: float | None, iou: float | None, imgsz: int | None) -> str:
    """The request parameters as one short key ("conf=0.25 iou=0.7 imgsz=640"; "?" for one not said)."""
    shown = (f"{value:g}" if value is not None else "?" for value in (conf, iou, imgsz))
    return " ".join(f"{name}={value}" for name, value in zip(("conf", "iou", "imgsz"), shown, strict=True))


def parse_params_key(key: str) -> tuple[float | None, float | None, int | None]:
    """The values of a `params_key` (None where unknown)."""
    values: dict[str, str] = dict(part.split("=", 1) for part in key.split() if "=" in part)

    def number(name: str) -> float | None:
        text = values.get(name, "?")
        try:
            return float(text)
        except ValueError:
            return None

    imgsz = number("imgsz")
    return number("conf"), number("iou"), None if imgsz is None else int(imgsz)


# Minute buckets, and their quarter-hour, hour and eight-hour rollups (8 h: a 30-day query reads 90 rows).
TIER_SECONDS = (60, 900, 3600, 8 * 3600)

SEVERITY_NAMES = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}
SEVERITY_LEVELS = {name: level for level, name in SEVERITY_NAMES.items()}


def new_latency_histogram() -> HdrHistogram:
    return HdrHistogram(LATENCY_MIN_US, LATENCY_MAX_US, LATENCY_DIGITS)


def status_class(status: int) -> int:
    """Index into the 1xx..5xx counts (a status outside 100-599 goes to the nearest class)."""
    return min(4, max(0, status // 100 - 1))


def confidence_bin(confidence: float) -> int:
    return min(CONFIDENCE_BINS - 1, max(0, int(confidence * CONFIDENCE_BINS)))


def area_bin(area: float) -> int:
    return bisect.bisect_right(AREA_EDGES, area)


# Saturation figures a bucket keeps: these are peaks (merged by max), the rest sums (merged by addition):
# samples, in_flight_sum, queue_sum, cpu_percent_sum, gpu_samples, gpu_utilization_sum.
SATURATION_PEAKS = frozenset({"in_flight_max", "queue_max", "rss_max_bytes", "gpu_memory_max_bytes"})


def add_saturation(into: dict[str, float], other: dict[str, float]) -> None:
    """Fold one set of saturation figures (a sample, or a bucket's) into another."""
    for name, value in other.items():
        if name in SATURATION_PEAKS:
            into[name] = max(into.get(name, value), value)
        else:
            into[name] = into.get(name, 0.0) + value


@dataclass(frozen=True)
class DetectionSummary:
    """What one response says. Box areas are w*h/(W*H), only for boxes whose image size is known; `class_names`
    and `class_confidences` pair up. The rest is there when the response says it: per image, its stage times
    (ms, the `speed` object) and image properties; the request's parameters (conf, iou, imgsz) and the model
    version that answered."""

    images: int
    count: int
    confidences: tuple[float, ...]
    box_areas: tuple[float, ...]
    class_ids: tuple[int, ...]
    class_names: tuple[str, ...]
    class_confidences: tuple[float, ...] = ()
    stages: tuple[dict[str, float], ...] = ()
    image_properties: tuple[dict[str, float], ...] = ()
    params: tuple[float | None, float | None, int | None] | None = None
    model: str | None = None

    @property
    def mean_confidence(self) -> float | None:
        return sum(self.confidences) / len(self.confidences) if self.confidences else None


@dataclass
class Bucket:
    """Counts and histograms of one deployment over one period (a minute, or a rollup of minutes)."""

    deployment: str
    tier_s: int
    start_s: int
    latency: HdrHistogram = field(default_factory=new_latency_histogram)
    requests: int = 0
    status_classes: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0])  # 1xx..5xx
    client_errors: int = 0
    server_errors: int = 0
    slow: int = 0
    latency_sum_us: int = 0
    predictions: int = 0  # responses whose detections were read
    detections: int = 0
    confidence_sum: float = 0.0
    confidence_count: int = 0
    confidence_hist: list[int] = field(default_factory=lambda: [0] * CONFIDENCE_BINS)
    area_hist: list[int] = field(default_factory=lambda: [0] * AREA_BIN_COUNT)
    classes: dict[str, int] = field(default_factory=dict)
    # The YOLO signals, from the responses that say them (see DetectionSummary).
    stages: dict[str, HdrHistogram] = field(default_factory=dict)  # stage -> its times, microseconds
    class_confidence: dict[str, float] = field(default_factory=dict)  # class -> sum of its confidences
    params: dict[str, int] = field(default_factory=dict)  # params_key -> predictions that sent them
    image: dict[str, list[int]] = field(default_factory=dict)  # property -> counts in IMAGE_EDGES' bins
    versions: dict[str, Bucket] = field(default_factory=dict)  # model version -> its own requests (one level)
    # Saturation, sampled about once a second while the minute had traffic: sums and peaks (SATURATION_PEAKS).
    saturation: dict[str, float] = field(default_factory=dict)
    # While every response read so far named this one model, its version's detection figures are this bucket's
    # own (kept once, not twice: `add_parsed`); they are copied into the version when that stops holding, and
    # read with it by `merge` and `whole_versions`.
    sole_version: str | None = field(default=None, repr=False, compare=False)

    @property
    def errors(self) -> int:
        return self.client_errors + self.server_errors

    def add_requests(self, statuses: Counter[int], latencies_us: Counter[int], budget_us: int) -> None:
        """Count a batch of requests, given as counts of each status and each latency (the fold makes them once,
        in C, for this bucket and the lifetime totals): Python work per distinct value, not per request."""
        self.requests += statuses.total()
        for status, count in statuses.items():
            self.status_classes[status_class(status)] += count
            if status >= 500:
                self.server_errors += count
            elif status >= 400:
                self.client_errors += count
        self.latency_sum_us += sum(value * count for value, count in latencies_us.items())
        self.slow += sum(count for value, count in latencies_us.items() if value > budget_us)
        latency = self.latency
        for value, count in latencies_us.items():
            # Clamped into the histogram's range, so a request slower than 10 minutes still counts in the percentiles.
            latency.record_value(min(LATENCY_MAX_US, max(LATENCY_MIN_US, value)), count)

    def add_detections(self, summary: DetectionSummary) -> None:
        self.predictions += 1
        self.detections += summary.count
        confidence_hist = self.confidence_hist
        for confidence in summary.confidences:  # inlined confidence_bin: this runs per detection
            confidence_hist[min(CONFIDENCE_BINS - 1, max(0, int(confidence * CONFIDENCE_BINS)))] += 1
        self.confidence_sum += sum(summary.confidences)
        self.confidence_count += len(summary.confidences)
        area_hist = self.area_hist
        for area in summary.box_areas:
            area_hist[bisect.bisect_right(AREA_EDGES, area)] += 1
        classes = self.classes
        if summary.class_confidences:
            sums = self.class_confidence
            for name, confidence in zip(summary.class_names, summary.class_confidences, strict=True):
                classes[name] = classes.get(name, 0) + 1
                sums[name] = sums.get(name, 0.0) + confidence
        else:
            for name in summary.class_names:
                classes[name] = classes.get(name, 0) + 1
        for times in summary.stages:
            for stage, ms in times.items():  # clamped into the histogram's range, as request latencies are
                self.stage(stage).record_value(min(LATENCY_MAX_US, max(LATENCY_MIN_US, int(ms * 1000))))
        if summary.params is not None:
            key = params_key(*summary.params)
            self.params[key] = self.params.get(key, 0) + 1
        for properties in summary.image_properties:
            self.add_image(properties)

    def add_image(self, properties: dict[str, float]) -> None:
        """One image's properties (IMAGE_PROPERTIES; others are not kept) into their bins."""
        for name, value in properties.items():
            edges = IMAGE_EDGES.get(name)
            if edges is None:
                continue
            counts = self.image.get(name)
            if counts is None:
                counts = self.image[name] = [0] * (len(edges) + 1)
            counts[bisect.bisect_right(edges, value)] += 1

    def stage(self, name: str) -> HdrHistogram:
        histogram = self.stages.get(name)
        if histogram is None:
            histogram = self.stages[name] = new_latency_histogram()
        return histogram

    def version(self, name: str) -> Bucket:
        """The sub-bucket of one model version (created empty)."""
        bucket = self.versions.get(name)
        if bucket is None:
            bucket = self.versions[name] = Bucket(self.deployment, self.tier_s, self.start_s)
        return bucket

    def add_parsed(self, summary: DetectionSummary) -> None:
        """A read response's detections and signals, here and in its model version's sub-bucket (the caller adds
        the version's request). The common case, one model, does the detection work once."""
        model = summary.model
        if self.sole_version is not None:
            if model != self.sole_version:
                self.settle_versions()
        elif model is not None and self.predictions == 0 and not self.versions:
            self.sole_version = model
        self.add_detections(summary)
        if model is not None and self.sole_version is None:
            self.version(model).add_detections(summary)

    def settle_versions(self) -> None:
        """Give the sole version its detection figures (this bucket's own so far), and keep them apart from now."""
        if self.sole_version is not None:
            self.version(self.sole_version).merge_detections(self)
            self.sole_version = None

    def whole_versions(self) -> dict[str, Bucket]:
        """The versions with all their figures (the sole version's detection figures included), for writing;
        this bucket is left as it is."""
        if self.sole_version is None:
            return self.versions
        own = self.versions.get(self.sole_version)
        sole = (
            Bucket(self.deployment, self.tier_s, self.start_s)
            if own is None
            else own.copy_as(self.tier_s, self.start_s)
        )
        sole.merge_detections(self)
        return {**self.versions, self.sole_version: sole}

    def merge(self, other: Bucket) -> None:
        self.latency.add(other.latency)
        self.requests += other.requests
        self.status_classes = [a + b for a, b in zip(self.status_classes, other.status_classes, strict=True)]
        self.client_errors += other.client_errors
        self.server_errors += other.server_errors
        self.slow += other.slow
        self.latency_sum_us += other.latency_sum_us
        self.merge_detections(other)
        for name, bucket in other.versions.items():
            self.version(name).merge(bucket)
        if other.sole_version is not None:
            self.version(other.sole_version).merge_detections(other)
        if other.saturation:
            add_saturation(self.saturation, other.saturation)

    def merge_detections(self, other: Bucket) -> None:
        """The detection figures and YOLO signals of `other` (not its requests, latency or versions)."""
        self.predictions += other.predictions
        self.detections += other.detections
        self.confidence_sum += other.confidence_sum
        self.confidence_count += other.confidence_count
        self.confidence_hist = [a + b for a, b in zip(self.confidence_hist, other.confidence_hist, strict=True)]
        self.area_hist = [a + b for a, b in zip(self.area_hist, other.area_hist, strict=True)]
        for name, count in other.classes.items():
            self.classes[name] = self.classes.get(name, 0) + count
        for name, total in other.class_confidence.items():
            self.class_confidence[name] = self.class_confidence.get(name, 0.0) + total
        for name, histogram in other.stages.items():
            self.stage(name).add(histogram)
        for key, count in other.params.items():
            self.params[key] = self.params.get(key, 0) + count
        for name, counts in other.image.items():
            mine = self.image.get(name)
            self.image[name] = list(counts) if mine is None else [a + b for a, b in zip(mine, counts, strict=True)]

    def copy_as(self, tier_s: int, start_s: int) -> Bucket:
        clone = Bucket(self.deployment, tier_s, start_s)
        clone.merge(self)
        return clone


# Prometheus histogram bounds for request durations (seconds): exact counts, kept per process since start.
DURATION_BOUNDS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_DURATION_BOUNDS_US = tuple(int(bound * 1_000_000) for bound in DURATION_BOUNDS_S)
# Stages are shorter than requests: finer bounds at the low end.
STAGE_BOUNDS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_STAGE_BOUNDS_US = tuple(int(bound * 1_000_000) for bound in STAGE_BOUNDS_S)


# OTLP's exponential histogram of request durations (in seconds) keeps its buckets at this scale: bucket i holds
# (base**i, base**(i+1)] with base = 2**(2**-scale), here 2**(1/8) (see `ExponentialBuckets`).
EXPONENTIAL_SCALE = 3


def exponential_index(value: float, scale: int = EXPONENTIAL_SCALE) -> int:
    """The bucket of a positive value at a scale of 0 or more: i such that base**i < value <= base**(i+1), base =
    2**(2**-scale). A power of two lands on its bucket's upper bound (math.log2 is exact for it); the other bounds
    are irrational, so a float is at worst one rounding away from its side of them."""
    return math.ceil(math.log2(value) * (1 << scale)) - 1


@dataclass
class ExponentialBuckets:
    """Request durations in the base-2 exponential buckets of OTLP's ExponentialHistogram (what a collector,
    and Prometheus as a native histogram, aggregate across a fleet without fixed bounds), kept since start.

    Values are seconds: bucket i of `counts` holds durations in (2**(i/8), 2**((i+1)/8)] s at scale 3, and a
    duration of 0 is counted in `zero_count`. Any quantile read at the geometric middle of its bucket is within
    2**(1/16) - 1 = 4.4 % of the exact one (see yolowatch.otlp.quantile_error). Added per distinct latency of a
    fold's batch, off the request path: a few hundred nanoseconds each."""

    scale: int = EXPONENTIAL_SCALE
    counts: dict[int, int] = field(default_factory=dict)  # bucket index -> count
    zero_count: int = 0
    min_us: int | None = None
    max_us: int | None = None

    def add_us(self, latencies_us: Counter[int]) -> None:
        """Count durations given in microseconds, as a Counter of each value (the fold's)."""
        if not latencies_us:
            return
        counts, factor = self.counts, 1 << self.scale
        for value, count in latencies_us.items():
            if value <= 0:
                self.zero_count += count
                continue
            index = math.ceil(math.log2(value / 1e6) * factor) - 1  # exponential_index(seconds), inlined
            counts[index] = counts.get(index, 0) + count
        low, high = min(latencies_us), max(latencies_us)
        self.min_us = low if self.min_us is None else min(self.min_us, low)
        self.max_us = high if self.max_us is None else max(self.max_us, high)

    @property
    def count(self) -> int:
        return self.zero_count + sum(self.counts.values())

    def copy(self) -> ExponentialBuckets:
        return ExponentialBuckets(self.scale, dict(self.counts), self.zero_count, self.min_us, self.max_us)


@dataclass(frozen=True)
class LifetimeSnapshot:
    """What the OTLP exporter reads of a Lifetime, copied at one moment (see `Lifetime.snapshot`)."""

    status_classes: tuple[int, ...]
    duration_sum_us: int
    latency: ExponentialBuckets
    predictions: int
    detections: int
    model_predictions: dict[str, int]  # model version -> predictions whose response named it
    model_detections: dict[str, int]


# Model versions the lifetime totals count by name (for OTLP's per-version series); later ones count together as
# OTHER_VERSIONS, so a series never moves from one name to another and an upstream cannot grow them without end.
MODEL_VERSIONS_KEPT = 10
OTHER_VERSIONS = "other"


@dataclass
class Lifetime:
    """Totals since this process started, for Prometheus counters (which must only go up) and OTLP.

    The store's writer saves `dataclasses.asdict(lifetime)`, the fields, as this process's Prometheus totals
    every second. What only OTLP reads is kept beside the fields (set in __post_init__): the exponential
    latency buckets and the predictions and detections per model version."""

    status_classes: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0])
    duration_counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BOUNDS_S) + 1))  # +Inf last
    duration_sum_us: int = 0
    predictions: int = 0
    detections: int = 0
    confidence_hist: list[int] = field(default_factory=lambda: [0] * CONFIDENCE_BINS)
    confidence_sum: float = 0.0
    classes: dict[str, int] = field(default_factory=dict)  # detections per class name
    class_confidence: dict[str, float] = field(default_factory=dict)
    stage_counts: dict[str, list[int]] = field(default_factory=dict)  # stage -> counts in STAGE_BOUNDS_S, +Inf last
    stage_sum_us: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.latency_buckets = ExponentialBuckets()
        self.model_predictions: dict[str, int] = {}
        self.model_detections: dict[str, int] = {}
        # Odd while add_requests or add_detections is changing the totals: `snapshot` (another thread) retries
        # until it has read between two changes (a sequence lock: the fold, on the event loop, never waits).
        self.changes = 0

    def add_requests(self, statuses: Counter[int], latencies_us: Counter[int]) -> None:
        self.changes += 1
        try:
            for status, count in statuses.items():
                self.status_classes[status_class(status)] += count
            self.duration_sum_us += sum(value * count for value, count in latencies_us.items())
            counts = self.duration_counts
            for value, count in latencies_us.items():
                counts[bisect.bisect_left(_DURATION_BOUNDS_US, value)] += count  # le: value <= bound
            self.latency_buckets.add_us(latencies_us)
        finally:  # even if it raised (the fold goes on): an odd count would hold `snapshot` forever
            self.changes += 1

    def add_detections(self, summary: DetectionSummary) -> None:
        self.changes += 1
        try:
            self._add_detections(summary)
        finally:
            self.changes += 1

    def _add_detections(self, summary: DetectionSummary) -> None:
        self.predictions += 1
        self.detections += summary.count
        for confidence in summary.confidences:
            self.confidence_hist[confidence_bin(confidence)] += 1
        self.confidence_sum += sum(summary.confidences)
        for name in summary.class_names:
            self.classes[name] = self.classes.get(name, 0) + 1
        for name, confidence in zip(summary.class_names, summary.class_confidences, strict=False):
            self.class_confidence[name] = self.class_confidence.get(name, 0.0) + confidence
        for times in summary.stages:
            for stage, ms in times.items():
                counts = self.stage_counts.get(stage)
                if counts is None:
                    counts = self.stage_counts[stage] = [0] * (len(STAGE_BOUNDS_S) + 1)
                value_us = int(ms * 1000)
                counts[bisect.bisect_left(_STAGE_BOUNDS_US, value_us)] += 1
                self.stage_sum_us[stage] = self.stage_sum_us.get(stage, 0) + value_us
        if summary.model is not None:
            # The first MODEL_VERSIONS_KEPT versions by name, the rest together: a series never moves between them.
            model = summary.model
            if model not in self.model_predictions and len(self.model_predictions) >= MODEL_VERSIONS_KEPT:
                model = OTHER_VERSIONS
            self.model_predictions[model] = self.model_predictions.get(model, 0) + 1
            self.model_detections[model] = self.model_detections.get(model, 0) + summary.count

    def snapshot(self) -> LifetimeSnapshot:
        """A consistent copy, safe to take on another thread than the one folding (the OTLP exporter's): every
        add_requests or add_detections call is either wholly in it or not at all. Each copy below is one C call
        (no other thread runs inside it); the change count says whether a fold ran between them."""
        while True:
            before = self.changes
            if before % 2 == 0:
                copied = LifetimeSnapshot(
                    tuple(self.status_classes),
                    self.duration_sum_us,
                    self.latency_buckets.copy(),
                    self.predictions,
                    self.detections,
                    dict(self.model_predictions),
                    dict(self.model_detections),
                )
                if self.changes == before:
                    return copied
            time.sleep(0)  # let the folding thread finish its call


@dataclass(frozen=True)
class LogEntry:
    """One request as the logs show it. Never holds headers or bodies."""

    deployment: str
    ts_ms: int
    severity: int
    method: str
    path: str
    status: int
    latency_us: int
    detections: int | None
    mean_confidence: float | None
    request_id: str
    message: str
    trace_id: str | None = None  # the W3C trace the request was part of (the client's, or this process's)


# A monitor records (active), records nothing (paused), or records nothing and is hidden (archived).
MONITOR_STATES = ("active", "paused", "archived")
# The live snapshot a monitor shows (and judges its Healthy/Warning/Critical state on), in seconds.
SNAPSHOT_WINDOWS = {"5m": 300, "15m": 900, "1h": 3600, "6h": 6 * 3600, "1d": 86400}


@dataclass(frozen=True)
class HealthResult:
    """One health probe: what `/health` answers. `status` is the probe's HTTP status (None: no answer)."""

    healthy: bool
    status: int | None
    latency_ms: float | None
    error: str | None
    checked_ms: int


@dataclass(frozen=True)
class GoldenRun:
    """One golden check of a deployment: how many images matched their recorded answer, and what differed."""

    checked_ms: int  # clock milliseconds when the run finished
    images: int
    passed: int
    worst: str | None  # the image with the most differences (None when all passed)
    differences: dict[str, list[str]]  # failing image file name -> what differed, in sentences
    error: str | None = None  # the run could not be made at all (the golden set is unreadable, say)
    latency_ms: float = 0.0  # the whole run

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.images if self.images else None

    @property
    def ok(self) -> bool:
        """Every image matched (a run that could not be made is not ok)."""
        return self.error is None and self.images > 0 and self.passed == self.images


@dataclass
class AlertState:
    """One rule for one deployment. `state` is inactive, pending or firing."""

    rule: str
    deployment: str
    state: str = "inactive"
    active_since: int | None = None  # when the condition started holding (pending or firing)
    last_true: int | None = None
    value: float | None = None


@dataclass(frozen=True)
class Notification:
    rule: str
    deployment: str
    status: str  # firing or resolved
    starts_at: int
    ends_at: int | None
    value: float | None
    severity: str
    runbook: str
    id: int | None = None
    class_name: str = ""  # a class-scoped rule's class (a label of the alert)


@dataclass(frozen=True)
class ProcessInfo:
    """One process of the fleet, as the fleet view shows it: the host it runs on (a pod, in Kubernetes), what it is
    (serve, sidecar, or a middleware in someone's app), where (a region and its coordinates, for the map), and
    since when. The writer stores it with its writer id and refreshes `seen_s` while it runs."""

    host: str
    pid: int
    kind: str = "middleware"
    region: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    version: str = ""
    started_s: int = 0


class MinuteCount(NamedTuple):
    """One minute of one deployment, all writers summed: plain sums that need no histogram decoded."""

    requests: int
    detections: int
    confidence_sum: float
    confidence_count: int


NO_TRAFFIC = MinuteCount(0, 0, 0.0, 0)
