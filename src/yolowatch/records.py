"""Data every layer shares: buckets, log entries, detections, health results, alert states, and their bins.

Plain data with the arithmetic that belongs to it (a bucket merges with a bucket); no I/O, and nothing
here imports another yolowatch module but the helpers beneath it.
"""

from __future__ import annotations

import bisect
import logging
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


@dataclass(frozen=True)
class DetectionSummary:
    """Detections of one response. Box areas are w*h/(W*H), only for boxes whose image size is known."""

    images: int
    count: int
    confidences: tuple[float, ...]
    box_areas: tuple[float, ...]
    class_ids: tuple[int, ...]
    class_names: tuple[str, ...]

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
        for name in summary.class_names:
            classes[name] = classes.get(name, 0) + 1

    def merge(self, other: Bucket) -> None:
        self.latency.add(other.latency)
        self.requests += other.requests
        self.status_classes = [a + b for a, b in zip(self.status_classes, other.status_classes, strict=True)]
        self.client_errors += other.client_errors
        self.server_errors += other.server_errors
        self.slow += other.slow
        self.latency_sum_us += other.latency_sum_us
        self.predictions += other.predictions
        self.detections += other.detections
        self.confidence_sum += other.confidence_sum
        self.confidence_count += other.confidence_count
        self.confidence_hist = [a + b for a, b in zip(self.confidence_hist, other.confidence_hist, strict=True)]
        self.area_hist = [a + b for a, b in zip(self.area_hist, other.area_hist, strict=True)]
        for name, count in other.classes.items():
            self.classes[name] = self.classes.get(name, 0) + count

    def copy_as(self, tier_s: int, start_s: int) -> Bucket:
        clone = Bucket(self.deployment, tier_s, start_s)
        clone.merge(self)
        return clone


# Prometheus histogram bounds for request durations (seconds): exact counts, kept per process since start.
DURATION_BOUNDS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_DURATION_BOUNDS_US = tuple(int(bound * 1_000_000) for bound in DURATION_BOUNDS_S)


@dataclass
class Lifetime:
    """Totals since this process started, for Prometheus counters (which must only go up)."""

    status_classes: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0])
    duration_counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BOUNDS_S) + 1))  # +Inf last
    duration_sum_us: int = 0
    predictions: int = 0
    detections: int = 0
    confidence_hist: list[int] = field(default_factory=lambda: [0] * CONFIDENCE_BINS)
    confidence_sum: float = 0.0

    def add_requests(self, statuses: Counter[int], latencies_us: Counter[int]) -> None:
        for status, count in statuses.items():
            self.status_classes[status_class(status)] += count
        self.duration_sum_us += sum(value * count for value, count in latencies_us.items())
        counts = self.duration_counts
        for value, count in latencies_us.items():
            counts[bisect.bisect_left(_DURATION_BOUNDS_US, value)] += count  # le: value <= bound

    def add_detections(self, summary: DetectionSummary) -> None:
        self.predictions += 1
        self.detections += summary.count
        for confidence in summary.confidences:
            self.confidence_hist[confidence_bin(confidence)] += 1
        self.confidence_sum += sum(summary.confidences)


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
