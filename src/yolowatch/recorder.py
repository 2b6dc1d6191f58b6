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

import dataclasses
import logging
import os
import socket
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter

from yolowatch._types import Clock
from yolowatch.detections import error_reason, summarize_detections, version_name
from yolowatch.records import TIER_SECONDS, Bucket, DetectionSummary, Lifetime, LogEntry, add_saturation
from yolowatch.tracecontext import RequestSpan, Trace

log = logging.getLogger("yolowatch")

SCAN_PIECE = 1024  # requests scanned (in C where possible) between two looks at the clock
COUNT_PIECE = 256  # distinct latencies recorded into the histograms between two looks at the clock
LOG_PIECE = 64  # requests looked at for log entries between two looks at the clock


class _Slice:
    """A fold's time budget: `spent()` says when to yield the event loop; `restart()` once it is back."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.perf_counter()

    def spent(self) -> bool:
        return time.perf_counter() - self.started >= self.seconds

    def restart(self) -> None:
        self.started = time.perf_counter()


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
    images_dropped: int = 0  # sampled image properties that came after their minute ended
    spans_dropped: int = 0  # traced requests lost because nobody exported them in time (the span backlog was full)
    spans_failed: int = 0  # traced requests whose export failed (written by the trace exporter's thread only)


# A response body to read later, or one with the model version its X-Model-Version header named.
Body = bytes | tuple[bytes, str]
# What record_request appends: (time, deployment, method, path, status, latency_us, request_id, detections, crashed,
# trace)
Pending = tuple[float, str, str, str, int, int, str, "DetectionSummary | Body | None", bool, "Trace | None"]


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
        max_pending_spans: int = 32_768,
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
        # Sampled requests for the trace exporter, which takes them from its own thread (deque ends are atomic). A fold
        # adds a second's worth at once: the bound is above what one process serves in a second (about 15 MB full).
        self.spans: deque[RequestSpan] = deque(maxlen=max_pending_spans)
        self._info_second = -1
        self._info_in_second = 0
        self.lifetime: dict[str, Lifetime] = {}  # deployment -> totals since start
        self._last_fold = clock()
        self._parse_tokens = float(parses_per_second)
        self._failure_logged = False
        self._folding = False  # a sliced fold is in progress (record_request must not start another inside it)
        # Deployments whose monitor is paused or archived (the writer refreshes this from the store).
        self.paused: frozenset[str] = frozenset()
        # Requests inside the wrapped app now (the middleware counts them in and out); saturation figures.
        self.in_flight = 0
        self._pending_images: list[tuple[float, str, dict[str, float]]] = []
        self.saturation_now: dict[str, dict[str, float]] = {}  # deployment -> the latest sample

    def record_image(self, deployment: str, properties: dict[str, float]) -> None:
        """One upload's image properties, measured apart from its request (the sidecar's sample of uploads): kept
        for the next fold, which adds them to the deployment's live minute (after that minute's requests)."""
        self._pending_images.append((self.clock(), deployment, properties))

    def _fold_images(self) -> None:
        """The pending image properties into their live minutes; one whose minute is no longer live is dropped
        (measured as its minute ended) and counted."""
        images, self._pending_images = self._pending_images, []
        for ts, deployment, properties in images:
            bucket = self._live.get(deployment)
            if bucket is None or bucket.start_s != int(ts // 60) * 60:
                self.stats.images_dropped += 1
            else:
                bucket.add_image(properties)

    def record_saturation(self, deployment: str, sample: dict[str, float]) -> None:
        """Note one saturation sample (about once a second, from the monitor's sampler): kept as the latest, and
        added to the deployment's live minute, the one with traffic now or just before (the writer closes an
        ended minute within a second); idle minutes keep no rows."""
        self.saturation_now[deployment] = sample
        bucket = self._live.get(deployment)
        if bucket is not None:
            add_saturation(bucket.saturation, saturation_figures(sample))

    def record_request(
        self,
        deployment: str,
        method: str,
        path: str,
        status: int,
        latency_us: int,
        request_id: str,
        detections: DetectionSummary | Body | None = None,
        crashed: bool = False,
        trace: Trace | None = None,
    ) -> None:
        """Note one request. `detections` is a summary, or a JSON response body to read later (off this path),
        alone or with the model version a response header named; `trace` the request's trace context, if any."""
        self._pending.append(
            (self.clock(), deployment, method, path, status, latency_us, request_id, detections, crashed, trace)
        )
        if detections is not None:
            if type(detections) is bytes:
                self._pending_body_bytes += len(detections)
            elif type(detections) is tuple:
                self._pending_body_bytes += len(detections[0])
            if self._pending_body_bytes > self.max_pending_body_bytes and not self._folding:
                self._fold(parse=False)
        if len(self._pending) >= self.max_pending and not self._folding:
            # Bounded memory when nobody collects (or the writer's fold falls behind: an overloaded loop), in one
            # piece: counts only, the bodies left unread (counted as skipped), so the pause stays short.
            self._fold(parse=False)

    @property
    def pending(self) -> int:
        """Requests recorded and not folded yet."""
        return len(self._pending)

    def _fold(self, parse: bool = True) -> None:
        """Fold everything pending now, in one piece (collect, and the bounded-memory fallback)."""
        for _ in self.folding(parse=parse):
            pass

    def folding(self, slice_s: float = 0.0005, parse: bool = True) -> Iterator[None]:
        """Fold the pending requests into their buckets and log entries, yielding each time `slice_s` is spent.

        The writer awaits at each yield, so the requests that arrive meanwhile are served: one fold of a busy
        second (thousands of requests, hundreds of bodies to read) would otherwise hold the event loop for
        ~10 ms at once, and every request arriving then would wait for it (the p99 `benchmarks/overhead.py`
        shows). Requests that arrive during a fold are left for the next one."""
        pending, self._pending = self._pending, []
        self._pending_body_bytes = 0
        now = self.clock()
        elapsed, self._last_fold = max(0.0, now - self._last_fold), now
        if self.paused and pending:  # filtered here, off the request path
            kept = [request for request in pending if request[1] not in self.paused]
            self.stats.paused_skipped += len(pending) - len(kept)
            pending = kept
        if not pending:
            self._fold_images()
            return
        self._folding = True
        try:
            budget = _Slice(slice_s)
            bodies: list[int] = []
            for low in range(0, len(pending), SCAN_PIECE):
                bodies += [
                    low + i
                    for i, item in enumerate(pending[low : low + SCAN_PIECE])
                    if item[7] is not None and item[4] < 300
                ]
                if budget.spent():
                    yield
                    budget.restart()
            if parse:
                chosen = self._chosen_for_parsing(bodies, elapsed)
            else:  # summaries made by the caller cost nothing to add; bodies are left unread
                chosen = [i for i in bodies if isinstance(pending[i][7], DetectionSummary)]
                self.stats.detections_skipped += len(bodies) - len(chosen)
            start = 0
            for end in _run_ends(pending):
                run = pending[start:end]
                try:
                    yield from self._fold_run(run, [i - start for i in chosen if start <= i < end], budget)
                except Exception:  # a bug here must cost figures, never requests or the writer task
                    self.stats.monitoring_failures += len(run)
                    if not self._failure_logged:
                        self._failure_logged = True
                        log.exception("yolowatch could not fold %d requests (counted; logged only once)", len(run))
                start = end
            self._fold_images()
        finally:
            self._folding = False

    def _chosen_for_parsing(self, bodies: list[int], elapsed: float) -> list[int]:
        """Which of the response bodies (indexes of 2xx requests with one) to read, within the per-second budget;
        past it, a systematic sample (spread evenly)."""
        if not bodies:
            return bodies
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
        return chosen

    def _fold_run(self, run: list[Pending], chosen: list[int], budget: _Slice) -> Iterator[None]:
        """Fold `run` (requests of one deployment and one minute): counts first, then detections, then log
        entries, each in pieces with a look at the slice budget between them."""
        first = run[0]
        deployment, minute = first[1], int(first[0] // 60) * 60
        bucket = self._live.get(deployment)
        if bucket is None or bucket.start_s != minute:
            bucket = self._roll(deployment, minute)
        lifetime = self.lifetime.get(deployment)
        if lifetime is None:
            lifetime = self.lifetime[deployment] = Lifetime()
        # Counted in C; the Python work (histogram records) is per distinct latency, in pieces.
        statuses, counted = Counter[int](), Counter[int]()
        for low in range(0, len(run), SCAN_PIECE):
            statuses.update(map(itemgetter(4), run[low : low + SCAN_PIECE]))
            counted.update(map(itemgetter(5), run[low : low + SCAN_PIECE]))
            if budget.spent():
                yield
                budget.restart()
        latencies = list(counted.items())
        for low in range(0, len(latencies), COUNT_PIECE):
            piece = Counter(dict(latencies[low : low + COUNT_PIECE]))
            piece_statuses = statuses if low == 0 else Counter[int]()
            bucket.add_requests(piece_statuses, piece, self.budget_us)
            lifetime.add_requests(piece_statuses, piece)
            if budget.spent():
                yield
                budget.restart()
        summaries: dict[int, DetectionSummary] = {}
        versions: dict[str, tuple[Counter[int], Counter[int]]] = {}  # its statuses and latencies, per version
        for i in chosen:
            summary = _summary(run[i][7])
            if summary is not None:
                summaries[i] = summary
                bucket.add_parsed(summary)
                lifetime.add_detections(summary)
                if summary.model is not None:  # the version's own requests: those whose response names it
                    statuses_of, latencies_of = versions.setdefault(summary.model, (Counter(), Counter()))
                    statuses_of[run[i][4]] += 1
                    latencies_of[run[i][5]] += 1
            if budget.spent():
                yield
                budget.restart()
        for name, (statuses_of, latencies_of) in versions.items():
            bucket.version(name).add_requests(statuses_of, latencies_of, self.budget_us)
        for low in range(0, len(run), LOG_PIECE):
            self._log_entries(run, summaries, low, min(len(run), low + LOG_PIECE))
            if budget.spent():
                yield
                budget.restart()

    def _log_entries(self, run: list[Pending], summaries: dict[int, DetectionSummary], low: int, high: int) -> None:
        """Log entries for run[low:high]: every WARNING and worse, INFO up to the per-second allowance; and the
        sampled requests' spans for the trace exporter."""
        budget_us, info_cap = self.budget_us, self.info_logs_per_second
        second, used, sampled_away = self._info_second, self._info_in_second, 0
        logs = self._logs
        for i in range(low, high):
            ts, deployment, method, path, status, latency_us, request_id, body, crashed, trace = run[i]
            if trace is not None and trace[3]:
                self._keep_span(run[i], summaries.get(i))
            if status < 400 and latency_us <= budget_us and not crashed:
                if info_cap > 0:
                    if int(ts) != second:
                        second, used = int(ts), 0
                    used += 1
                    if used > info_cap:
                        sampled_away += 1
                        continue
                severity = logging.INFO
            else:
                severity = severity_for(status, latency_us, budget_us, crashed)
            if len(logs) == logs.maxlen:
                self.stats.logs_dropped += 1
            summary = summaries.get(i)
            message = format_message(method, path, status, latency_us, summary)
            if type(body) is tuple:
                body = body[0]
            if status >= 400 and type(body) is bytes and (reason := error_reason(body)):
                message += f": {reason}"
            logs.append(
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
                    # A trace that goes somewhere: exported (sampled), or the caller's (its own logs have the id).
                    None if trace is None or not (trace[3] or trace[2]) else trace[0],
                )
            )
        self._info_second, self._info_in_second = second, used
        self.stats.sampled_away += sampled_away

    def _keep_span(self, request: Pending, summary: DetectionSummary | None) -> None:
        _, deployment, method, path, status, latency_us, request_id, _, crashed, trace = request
        assert trace is not None
        if len(self.spans) == self.spans.maxlen:
            self.stats.spans_dropped += 1
        self.spans.append(
            RequestSpan(
                trace,
                deployment,
                method,
                path,
                status,
                latency_us,
                request_id,
                crashed,
                None if summary is None else summary.count,
                None if summary is None else summary.model,
            )
        )

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

    def collect(self, fold: bool = True) -> Collected:
        """Closed minutes since last time, snapshots of the live minutes and their rollups, and new log entries.

        `fold=False` leaves the pending requests for the next fold (the writer's, in slices, when an overloaded
        server left many); a live minute is then not closed yet, since some of them may belong to it."""
        if fold:
            self._fold()
        now_minute = int(self.clock() // 60) * 60
        for deployment, bucket in list(self._live.items()):
            if bucket.start_s != now_minute and not self._pending:  # no request since the minute ended
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


def saturation_figures(sample: dict[str, float]) -> dict[str, float]:
    """A sample (in_flight, queue, cpu_percent, rss_bytes, gpu_utilization, gpu_memory_bytes; any may be absent)
    as the sums and peaks a bucket keeps."""
    figures = {"samples": 1.0}
    for name, total, peak in (
        ("in_flight", "in_flight_sum", "in_flight_max"),
        ("queue", "queue_sum", "queue_max"),
        ("cpu_percent", "cpu_percent_sum", ""),
        ("rss_bytes", "", "rss_max_bytes"),
        ("gpu_utilization", "gpu_utilization_sum", ""),
        ("gpu_memory_bytes", "", "gpu_memory_max_bytes"),
    ):
        value = sample.get(name)
        if value is None:
            continue
        if total:
            figures[total] = value
        if peak:
            figures[peak] = value
    if "cpu_percent" in sample:
        figures["cpu_samples"] = 1.0
    if "gpu_utilization" in sample:
        figures["gpu_samples"] = 1.0
    return figures


def _summary(detections: DetectionSummary | Body | None) -> DetectionSummary | None:
    if isinstance(detections, tuple):
        summary = summarize_detections(detections[0])
        if summary is not None and summary.model is None:
            return dataclasses.replace(summary, model=version_name(detections[1]))
        return summary
    return summarize_detections(detections) if isinstance(detections, bytes) else detections


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
