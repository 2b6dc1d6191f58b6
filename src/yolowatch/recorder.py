"""Live per-minute buckets per deployment, and the log entries of recent requests.

`Recorder.record_request` is the only thing the middleware calls per request: it
appends one tuple (O(1), no I/O, no await). The store's writer task calls
`Recorder.collect` about once a second, on the same event loop; collect folds the
pending requests into the buckets in bulk (counts, sums and the latency histogram
take one C-level pass each) and hands the writer bucket rows (the live minute and
its quarter-hour and hour rollups, as snapshots that replace earlier ones) plus the
log entries made since the last call. Folding in bulk is what keeps the per-request
cost of monitoring a few microseconds; `benchmarks/overhead.py` measures it.
"""

from __future__ import annotations

import bisect
import logging
import os
import socket
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from yolowatch.detections import DetectionSummary, error_reason, summarize_detections

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

Clock = Callable[[], float]

log = logging.getLogger("yolowatch")


def new_latency_histogram() -> HdrHistogram:
    return HdrHistogram(LATENCY_MIN_US, LATENCY_MAX_US, LATENCY_DIGITS)


def status_class(status: int) -> int:
    """Index into the 1xx..5xx counts (a status outside 100-599 goes to the nearest class)."""
    return min(4, max(0, status // 100 - 1))


def confidence_bin(confidence: float) -> int:
    return min(CONFIDENCE_BINS - 1, max(0, int(confidence * CONFIDENCE_BINS)))


def area_bin(area: float) -> int:
    return bisect.bisect_right(AREA_EDGES, area)


def default_writer_id() -> str:
    """Unique per process start, so rows of several workers (and of restarts) never overwrite each other."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def severity_for(status: int, latency_us: int, budget_us: int, crashed: bool) -> int:
    if crashed:
        return logging.CRITICAL
    if status >= 500:
        return logging.ERROR
    if status >= 400 or latency_us > budget_us:
        return logging.WARNING
    return logging.INFO


def format_message(method: str, path: str, status: int, latency_us: int, summary: DetectionSummary | None) -> str:
    text = f"{method} {path} {status} {latency_us / 1000:.1f} ms"
    if summary is not None:
        text += f", {summary.count} detection{'' if summary.count == 1 else 's'}"
    return text


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


@dataclass
class Collected:
    """What one `collect` hands the writer."""

    buckets: list[Bucket]
    logs: list[LogEntry]


@dataclass
class RecorderStats:
    sampled_away: int = 0  # INFO entries not kept under load
    logs_dropped: int = 0  # entries lost because the log backlog was full
    monitoring_failures: int = 0
    detections_skipped: int = 0  # predict responses not parsed because the per-second parse budget was spent
    paused_skipped: int = 0  # requests of paused or archived monitors, not recorded


# What record_request appends: (time, deployment, method, path, status, latency_us, request_id, detections, crashed)
Pending = tuple[float, str, str, str, int, int, str, "DetectionSummary | bytes | None", bool]


class Recorder:
    """In-memory aggregation between the middleware and the store."""

    def __init__(
        self,
        clock: Clock = time.time,
        latency_budget_ms: float = 500.0,
        info_logs_per_second: int = 200,
        max_pending_logs: int = 50_000,
        parses_per_second: int = 500,
        max_pending: int = 20_000,
        max_pending_body_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.clock = clock
        self.budget_us = int(latency_budget_ms * 1000)
        self.info_logs_per_second = info_logs_per_second
        self.parses_per_second = parses_per_second
        self.max_pending = max_pending
        self.max_pending_body_bytes = max_pending_body_bytes
        self.stats = RecorderStats()
        self._pending: list[Pending] = []
        self._pending_body_bytes = 0
        self._live: dict[str, Bucket] = {}  # deployment -> current minute
        self._rollups: dict[tuple[str, int], Bucket] = {}  # closed minutes of the current quarter / hour
        self._closed: list[Bucket] = []  # final versions not yet collected
        self._logs: deque[LogEntry] = deque(maxlen=max_pending_logs)
        self._info_second = -1
        self._info_in_second = 0
        self.lifetime: dict[str, Lifetime] = {}  # deployment -> totals since start
        self._last_fold = clock()
        self._parse_tokens = float(parses_per_second)
        self._failure_logged = False
        # Deployments whose monitor is paused or archived (the writer refreshes this from the store).
        self.paused: frozenset[str] = frozenset()

    def record_request(
        self,
        deployment: str,
        method: str,
        path: str,
        status: int,
        latency_us: int,
        request_id: str,
        detections: DetectionSummary | bytes | None = None,
        crashed: bool = False,
    ) -> None:
        """Note one request. `detections` is a summary, or a JSON response body to read later (off this path)."""
        self._pending.append(
            (self.clock(), deployment, method, path, status, latency_us, request_id, detections, crashed)
        )
        if type(detections) is bytes:
            self._pending_body_bytes += len(detections)
            if self._pending_body_bytes > self.max_pending_body_bytes:
                self._fold()
        if len(self._pending) >= self.max_pending:
            self._fold()  # bounded memory when nobody collects: amortized O(1)

    def _fold(self) -> None:
        """Move the pending requests into their buckets and log entries."""
        pending, self._pending = self._pending, []
        self._pending_body_bytes = 0
        now = self.clock()
        elapsed, self._last_fold = max(0.0, now - self._last_fold), now
        if self.paused and pending:  # filtered here, off the request path
            kept = [request for request in pending if request[1] not in self.paused]
            self.stats.paused_skipped += len(pending) - len(kept)
            pending = kept
        if not pending:
            return
        try:
            summaries = self._read_detections(pending, elapsed)
            start = 0
            for end in _run_ends(pending):
                self._fold_run(pending, summaries, start, end)
                start = end
        except Exception:  # a bug here must cost figures, never requests or the writer task
            self.stats.monitoring_failures += len(pending)
            if not self._failure_logged:
                self._failure_logged = True
                log.exception("yolowatch could not fold %d requests (counted; logged only once)", len(pending))

    def _read_detections(self, pending: list[Pending], elapsed: float) -> list[DetectionSummary | None]:
        """Parse response bodies, within the per-second budget; past it, a systematic sample (spread evenly)."""
        summaries: list[DetectionSummary | None] = [None] * len(pending)
        bodies = [i for i, item in enumerate(pending) if item[7] is not None and item[4] < 300]
        if not bodies:
            return summaries
        allowance = len(bodies)
        if self.parses_per_second > 0:  # a token bucket: a second's worth of burst, refilled as time passes
            rate = self.parses_per_second
            self._parse_tokens = min(float(rate), self._parse_tokens + rate * elapsed)
            allowance = int(self._parse_tokens)
        if len(bodies) > allowance:
            step = len(bodies) / max(1, allowance)
            chosen = [bodies[int(k * step)] for k in range(allowance)]
            self.stats.detections_skipped += len(bodies) - allowance
        else:
            chosen = bodies
        if self.parses_per_second > 0:
            self._parse_tokens -= len(chosen)
        for i in chosen:
            detections = pending[i][7]
            summaries[i] = summarize_detections(detections) if type(detections) is bytes else detections
        return summaries

    def _fold_run(self, pending: list[Pending], summaries: list[DetectionSummary | None], start: int, end: int) -> None:
        """Fold pending[start:end], which share one deployment and one minute."""
        first = pending[start]
        deployment, minute = first[1], int(first[0] // 60) * 60
        bucket = self._live.get(deployment)
        if bucket is None or bucket.start_s != minute:
            bucket = self._roll(deployment, minute)
        run = pending[start:end]
        statuses, latencies = Counter(item[4] for item in run), Counter(item[5] for item in run)
        bucket.add_requests(statuses, latencies, self.budget_us)
        lifetime = self.lifetime.get(deployment)
        if lifetime is None:
            lifetime = self.lifetime[deployment] = Lifetime()
        lifetime.add_requests(statuses, latencies)
        for summary in summaries[start:end]:
            if summary is not None:
                bucket.add_detections(summary)
                lifetime.add_detections(summary)
        budget_us = self.budget_us
        for offset, (ts, _, method, path, status, latency_us, request_id, body, crashed) in enumerate(run):
            if status < 400 and latency_us <= budget_us and not crashed:
                if not self._keep_info(int(ts)):
                    self.stats.sampled_away += 1
                    continue
                severity = logging.INFO
            else:
                severity = severity_for(status, latency_us, budget_us, crashed)
            if len(self._logs) == self._logs.maxlen:
                self.stats.logs_dropped += 1
            summary = summaries[start + offset]
            message = format_message(method, path, status, latency_us, summary)
            if status >= 400 and type(body) is bytes and (reason := error_reason(body)):
                message += f": {reason}"
            self._logs.append(
                LogEntry(
                    deployment,
                    int(ts * 1000),
                    severity,
                    method,
                    path,
                    status,
                    latency_us,
                    None if summary is None else summary.count,
                    None if summary is None else summary.mean_confidence,
                    request_id,
                    message,
                )
            )

    def _keep_info(self, second: int) -> bool:
        if self.info_logs_per_second <= 0:
            return True
        if second != self._info_second:
            self._info_second, self._info_in_second = second, 0
        self._info_in_second += 1
        return self._info_in_second <= self.info_logs_per_second

    def _roll(self, deployment: str, minute: int) -> Bucket:
        old = self._live.get(deployment)
        if old is not None:
            self._close(old)
        bucket = self._live[deployment] = Bucket(deployment, 60, minute)
        return bucket

    def _close(self, minute_bucket: Bucket) -> None:
        self._closed.append(minute_bucket)
        for tier in TIER_SECONDS[1:]:
            start = minute_bucket.start_s - minute_bucket.start_s % tier
            key = (minute_bucket.deployment, tier)
            rollup = self._rollups.get(key)
            if rollup is None or rollup.start_s != start:
                rollup = self._rollups[key] = Bucket(minute_bucket.deployment, tier, start)
            rollup.merge(minute_bucket)
            self._closed.append(rollup.copy_as(tier, start))

    def collect(self) -> Collected:
        """Closed minutes since last time, snapshots of the live minutes and their rollups, and new log entries."""
        self._fold()
        now_minute = int(self.clock() // 60) * 60
        for deployment, bucket in list(self._live.items()):
            if bucket.start_s != now_minute:  # no request since the minute ended
                self._close(bucket)
                del self._live[deployment]
        rows = self._closed
        self._closed = []
        for bucket in self._live.values():
            rows.append(bucket.copy_as(60, bucket.start_s))  # a snapshot: later requests must not change it
            for tier in TIER_SECONDS[1:]:
                start = bucket.start_s - bucket.start_s % tier
                rollup = self._rollups.get((bucket.deployment, tier))
                combined = bucket.copy_as(tier, start)
                if rollup is not None and rollup.start_s == start:
                    combined.merge(rollup)
                rows.append(combined)
        logs = list(self._logs)
        self._logs.clear()
        return Collected(rows, logs)


def _run_ends(pending: list[Pending]) -> list[int]:
    """End indexes of the runs of pending requests that share a deployment and a minute (usually just one)."""
    first, last = pending[0], pending[-1]
    if (
        first[1] == last[1]
        and int(first[0] // 60) == int(last[0] // 60)
        and all(item[1] == first[1] for item in pending)
    ):
        return [len(pending)]
    ends = []
    key = (first[1], int(first[0] // 60))
    for i, item in enumerate(pending):
        item_key = (item[1], int(item[0] // 60))
        if item_key != key:
            ends.append(i)
            key = item_key
    ends.append(len(pending))
    return ends
