"""OTLP metrics: each process's totals since start, pushed to an OpenTelemetry collector over OTLP/HTTP.

`OtlpMetrics` reads the recorder's `Lifetime` of one deployment from the SDK's reader thread every `interval_s`
(never on the request path, never per request): requests by status class, errors, predictions and detections
as cumulative counters (observable instruments of the SDK's own `MeterProvider`), and request durations as an
OTLP exponential histogram built from the base-2 buckets the fold keeps (`records.ExponentialBuckets`; the SDK
has no observable histogram, so the exporter adds it to each batch). Everything is cumulative since the process
started, as the Prometheus counters are:

    yolowatch.requests        counter    {request}    status_class: 1xx ... 5xx
    yolowatch.errors          counter    {request}    (4xx and 5xx)
    yolowatch.predictions     counter    {response}   yolowatch.model.version, where the response named one
    yolowatch.detections      counter    {detection}  yolowatch.model.version, likewise
    yolowatch.request.duration  exponential histogram, s: scale 3 (base 2**(1/8)), a quantile read from it within
                              4.43 % (`quantile_error`); scale 2 (9.05 %) when durations span over 20 octaves

`OtlpTraces` (`--otlp-traces`) exports a span per sampled request, with its trace context as the middleware
began it (`tracecontext`): the client's `traceparent` honoured, a child span per stage the app timed. The
fold hands it each sampled request (`Recorder.spans`); its own thread turns them into the SDK's span objects and
sends them every second, so nothing of OpenTelemetry runs on the request path (its ASGI middleware costs
hundreds of microseconds a request).

The OpenTelemetry SDK is the optional `otel` extra: it is imported inside functions here, and only once
`start()` is called, so the light install imports this module without it (`otlp_available()` says why not).
The standard `OTEL_EXPORTER_OTLP_*`, `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` variables are read by
the SDK itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from yolowatch._util import redacted_url
from yolowatch.recorder import Recorder, default_writer_id
from yolowatch.records import ExponentialBuckets, LifetimeSnapshot
from yolowatch.tracecontext import RequestSpan, Tracer

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import Metric, MetricExporter, MetricsData
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

log = logging.getLogger("yolowatch")

EXTRA_HINT = "pip install 'yolowatch[otel]'"
METRICS_PATH = "/v1/metrics"
TRACES_PATH = "/v1/traces"
TRACE_EXPORT_EVERY_S = 1.0  # the traced requests the fold made spans of go out this often, in batches
MAX_SPAN_BATCH = 512  # requests per trace export (each is a server span and its stages' child spans)
TRACE_POLL_S = 0.1  # how often the exporter looks whether a batch's worth is waiting
SCOPE = "yolowatch"
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
# At most this many buckets go out in one histogram point (the SDK's own default): durations that span more than
# 20 octaves at scale 3 (say 10 us to 10 s) go out at a lower scale, pairs of buckets merged, as the SDK would.
MAX_BUCKETS = 160
STOP_WAIT_S = 5.0  # the longest stop() waits for the last export (a collector that is down must not hold a shutdown)

# Resource attributes beside OpenTelemetry's own (service.*, host.name).
DEPLOYMENT_ATTRIBUTE = "yolowatch.deployment"
MODEL_ATTRIBUTE = "yolowatch.model.version"


def otlp_available() -> str | None:
    """None when the OpenTelemetry SDK and its OTLP/HTTP exporters can be imported, else why not (with the fix)."""
    try:
        import opentelemetry.exporter.otlp.proto.http.metric_exporter
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.metrics
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as exc:
        return f"OTLP export needs the OpenTelemetry SDK ({exc}); {EXTRA_HINT}"
    return None


def quantile_error(scale: int) -> float:
    """The relative error of a quantile read from an exponential histogram at `scale`: every value in a bucket is
    within a factor sqrt(base) of the bucket's geometric middle, base = 2**(2**-scale). At scale 3 (what the
    fold keeps) that is 2**(1/16) - 1 = 4.43 %; at scale 2 (durations spanning more than MAX_BUCKETS buckets),
    9.05 %. The estimate is of the nearest-rank quantile (the value at rank ceil(q * count))."""
    return float(2 ** (2.0**-scale / 2) - 1)


def fit_buckets(counts: Mapping[int, int], scale: int, max_buckets: int = MAX_BUCKETS) -> tuple[int, int, list[int]]:
    """(scale, offset, bucket counts) of sparse `counts` at `scale` as contiguous buckets, at most `max_buckets`
    of them: the scale is lowered until they fit, each step merging pairs (index >> 1, the OTLP rule)."""
    if not counts:
        return scale, 0, []
    low, high, shift = min(counts), max(counts), 0
    while high - low + 1 > max_buckets:
        low, high, shift = low >> 1, high >> 1, shift + 1
    dense = [0] * (high - low + 1)
    for index, count in counts.items():
        dense[(index >> shift) - low] += count
    return scale - shift, low, dense


def metrics_endpoint(url: str) -> str:
    """`--otlp-endpoint` names the collector (http://collector:4318), as OTEL_EXPORTER_OTLP_ENDPOINT does; the
    metrics go to its /v1/metrics (a URL that already ends so is kept)."""
    return _signal_endpoint(url, METRICS_PATH)


def traces_endpoint(url: str) -> str:
    """The collector's /v1/traces, as `metrics_endpoint` (a URL that names the other signal's path is taken as
    the collector's base: one `--otlp-endpoint` serves both)."""
    return _signal_endpoint(url, TRACES_PATH)


def _signal_endpoint(url: str, path: str) -> str:
    url = url.rstrip("/")
    for known in (METRICS_PATH, TRACES_PATH):
        if url.endswith(known):
            url = url[: -len(known)]
    return url + path


def default_resource(deployment: str, *, instance_id: str | None = None, model: str | None = None) -> dict[str, str]:
    """The resource attributes this process exports under, before OTEL_RESOURCE_ATTRIBUTES and the caller's own.

    `instance_id` should be the store writer's id (host:pid:random), so an OTLP instance and a row of the fleet
    view are the same process; `model` the model version, where known at start."""
    attributes = {
        "service.name": "yolowatch",
        "service.instance.id": instance_id or default_writer_id(),
        "host.name": socket.gethostname(),
        DEPLOYMENT_ATTRIBUTE: deployment,
    }
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):  # a source tree never installed
        attributes["service.version"] = importlib.metadata.version("yolowatch")
    if model:
        attributes[MODEL_ATTRIBUTE] = model
    return attributes


def by_version(total: int, per_version: Mapping[str, int]) -> list[tuple[str, int]]:
    """(version, count) of each version the totals count by name (the first MODEL_VERSIONS_KEPT seen; later ones are
    counted as "other" from the start, so no series ever moves), and ("", the count whose responses named none)."""
    return [*sorted(per_version.items()), ("", total - sum(per_version.values()))]


EMPTY = LifetimeSnapshot((0, 0, 0, 0, 0), 0, ExponentialBuckets(), 0, 0, {}, {})


class _Export:
    """What the metrics and the traces exports share: the collector, the resource they export under, and how a
    collector that is down is reported (once per outage: WARNING, then INFO once it takes exports again; the SDK's
    own log lines about it are kept out of the log)."""

    signal = "metrics"

    def __init__(
        self,
        deployment: str,
        endpoint: str | None,
        every_s: float,
        resource: Mapping[str, str] | None,
        model: str | None,
        instance_id: str | None,
        headers: Mapping[str, str] | None,
        timeout_s: float | None,
    ) -> None:
        self.deployment = deployment
        self.endpoint = endpoint
        self.attributes = {**default_resource(deployment, instance_id=instance_id, model=model), **(resource or {})}
        self._overrides = dict(resource or {})
        self.headers = dict(headers) if headers else None
        self.timeout_s = timeout_s
        self.exports = 0  # successful exports
        self.failures = 0
        self.failing = False
        self.started_ns = 0
        self._every_s = every_s
        self._quiet = _QuietLog()

    @property
    def shown_endpoint(self) -> str:
        return "the OTEL_EXPORTER_OTLP_* endpoint" if self.endpoint is None else redacted_url(self.endpoint)

    def _starting(self) -> None:
        """RuntimeError (saying what to install) without the otel extra; else the start's time is noted."""
        why_not = otlp_available()
        if why_not is not None:
            raise RuntimeError(why_not)
        self.started_ns = time.time_ns()

    def _note_export(self, ok: bool, messages: Sequence[str]) -> None:
        """Once per outage: the first failure (with the SDK's first word on it) and the recovery."""
        if ok:
            self.exports += 1
            if self.failing:
                log.info("exporting OTLP %s to %s again", self.signal, self.shown_endpoint)
            self.failing = False
            return
        self.failures += 1
        if not self.failing:
            reason = messages[0][:300] if messages else "no reason given"
            log.warning(
                "cannot export OTLP %s to %s (%s); retrying every %g s, logged once until it works",
                self.signal,
                self.shown_endpoint,
                reason,
                self._every_s,
            )
        self.failing = True


class OtlpMetrics(_Export):
    """Exports one deployment's totals since start to an OpenTelemetry collector, every `interval_s`, from the
    SDK's reader thread; `stop()` sends a last export. A collector that is down or refuses is logged once per
    outage, never raised.

    `endpoint` is the collector's base URL (None: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT,
    else http://localhost:4318); `headers` are added to the OTEL_EXPORTER_OTLP_HEADERS ones; `resource` overrides
    `default_resource(deployment, instance_id=..., model=...)` and OTEL_RESOURCE_ATTRIBUTES; `timeout_s` bounds
    one export (None: OTEL_EXPORTER_OTLP_TIMEOUT, else 10 s). All points are cumulative (a collector's
    cumulativetodelta processor makes deltas): OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE is not followed.
    The timestamps are the SDK's (wall-clock nanoseconds, as OTLP wants), not the monitor's clock, which a demo
    may speed up.
    """

    def __init__(
        self,
        recorder: Recorder,
        deployment: str,
        *,
        endpoint: str | None = None,
        interval_s: float = 10.0,
        resource: Mapping[str, str] | None = None,
        model: str | None = None,
        instance_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"the OTLP export interval must be more than 0 seconds; got {interval_s:g}")
        url = None if endpoint is None else metrics_endpoint(endpoint)
        super().__init__(deployment, url, interval_s, resource, model, instance_id, headers, timeout_s)
        self.recorder = recorder
        self.interval_s = interval_s
        self._provider: MeterProvider | None = None

    def start(self) -> None:
        """Start the SDK's reader thread; RuntimeError (saying what to install) without the otel extra."""
        if self._provider is not None:
            return
        self._starting()
        self._provider = _meter_provider(self)

    def export_now(self, timeout_s: float = 10.0) -> bool:
        """Collect and export at once (the periodic export goes on); whether the collector took it."""
        if self._provider is None:
            return False
        try:
            self._provider.force_flush(timeout_millis=timeout_s * 1000)
        except Exception:  # collection timed out: logged by the SDK; nothing to raise into yolowatch
            log.debug("OTLP collection failed", exc_info=True)
            return False
        return not self.failing

    def shutdown(self, timeout_s: float = STOP_WAIT_S) -> None:
        """A last export (waited for up to `timeout_s`), then the reader thread ends. Blocking: see `stop`."""
        provider, self._provider = self._provider, None
        if provider is None:
            return
        try:
            provider.shutdown(timeout_millis=timeout_s * 1000)
        except Exception:
            log.debug("OTLP exporter shutdown failed", exc_info=True)
        finally:
            self._quiet.remove()

    async def stop(self) -> None:
        """`shutdown` on a worker thread: the event loop serves on while the last export goes out."""
        await asyncio.to_thread(self.shutdown)

    def snapshot(self) -> LifetimeSnapshot:
        """The deployment's totals now, consistent with each other (safe on any thread)."""
        lifetime = self.recorder.lifetime.get(self.deployment)
        return EMPTY if lifetime is None else lifetime.snapshot()

    def model_versions(self) -> list[str]:
        """The model versions the deployment's responses named since start, most predictions first."""
        counts = self.snapshot().model_predictions
        return sorted(counts, key=lambda name: (-counts[name], name))


class OtlpTraces(_Export):
    """Exports a span per sampled request (and a child span per stage the app timed) to an OpenTelemetry
    collector, from its own thread every second; `stop()` sends what is left.

    `tracer` is what the middleware begins each request's trace with (`ratio`: the share of requests without a
    caller's decision that are traced; a caller's `traceparent` decides for its own). The spans are made from
    the recorder's `spans`, which the fold fills; a collector that is down costs the batches sent meanwhile
    (counted in `dropped`) and one WARNING. `endpoint`, `resource`, `headers`, `timeout_s` as `OtlpMetrics`'
    (None: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT)."""

    signal = "traces"

    def __init__(
        self,
        recorder: Recorder,
        deployment: str,
        *,
        ratio: float = 1.0,
        routes: Iterable[str] = ("/predict",),
        endpoint: str | None = None,
        every_s: float = TRACE_EXPORT_EVERY_S,
        resource: Mapping[str, str] | None = None,
        model: str | None = None,
        instance_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        url = None if endpoint is None else traces_endpoint(endpoint)
        super().__init__(deployment, url, every_s, resource, model, instance_id, headers, timeout_s)
        self.recorder = recorder
        self.tracer = Tracer(ratio)
        self.routes = frozenset(routes)
        self.every_s = every_s
        self.spans = 0  # spans the collector took
        self._ids = Tracer()  # the child spans' ids, drawn on the exporter's thread
        self._sdk: tuple[SpanExporter, Resource, InstrumentationScope] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # one export at a time (the thread's, export_now's, the last one)

    def start(self) -> None:
        """Start the exporting thread; RuntimeError (saying what to install) without the otel extra."""
        if self._thread is not None:
            return
        self._starting()
        self._sdk = _span_exporter(self)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="yolowatch-otlp-traces", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Every `every_s`, or as soon as a batch's worth waits (a busy server makes thousands of spans a second:
        the backlog must not fill between two exports)."""
        last = time.monotonic()
        while not self._stopping.wait(min(self.every_s, TRACE_POLL_S)):
            if len(self.recorder.spans) >= MAX_SPAN_BATCH or time.monotonic() - last >= self.every_s:
                self.export_now()
                last = time.monotonic()

    @property
    def dropped(self) -> int:
        """Traced requests whose spans an export that failed took with it (or a stop left behind)."""
        return self.recorder.stats.spans_failed

    def export_now(self, deadline: float | None = None) -> bool:
        """Export the traced requests the fold has handed over, in batches, until one fails (the rest wait for the
        next round: a collector that is down costs one try a round, not one a batch) or `deadline` (a
        time.monotonic() value) passes; whether everything went."""
        with self._lock:
            if self._sdk is None:
                return False
            pending = self.recorder.spans
            while pending:
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                batch: list[RequestSpan] = []
                while pending and len(batch) < MAX_SPAN_BATCH:
                    batch.append(pending.popleft())  # only this thread takes from the left
                if not self._export(batch):
                    return False
            return True

    def _export(self, batch: list[RequestSpan]) -> bool:
        assert self._sdk is not None
        from opentelemetry.sdk.trace.export import SpanExportResult

        exporter, resource, scope = self._sdk
        spans: list[ReadableSpan] = []
        made = 0  # requests whose spans were made
        with self._quiet.captured() as messages:
            for request in batch:  # one request an app handed odd stages costs its own spans, not the batch's
                try:
                    spans += _request_spans(request, resource, scope, self._ids, self.routes)
                    made += 1
                except Exception as exc:
                    self.recorder.stats.spans_failed += 1
                    log.debug("no span for request %s: %s", request.request_id, exc)
            try:
                ok = exporter.export(spans) is SpanExportResult.SUCCESS if spans else True
            except Exception as exc:  # a refusal (or a bug) must never end the exporting thread
                messages.append(f"{type(exc).__name__}: {exc}")
                ok = False
        if ok:
            self.spans += len(spans)
        else:
            self.recorder.stats.spans_failed += made
        self._note_export(ok, messages)
        return ok

    def shutdown(self, timeout_s: float = STOP_WAIT_S) -> None:
        """Export what is left (the thread ends first) within `timeout_s` (and one export's own timeout, if one is
        under way then), then close the exporter; what a collector that is down does not take is counted as
        dropped, never waited for. Blocking: see `stop`."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        deadline = time.monotonic() + timeout_s
        self._stopping.set()
        thread.join(timeout_s)
        try:
            if not self.export_now(deadline):
                left = len(self.recorder.spans)
                self.recorder.spans.clear()
                self.recorder.stats.spans_failed += left
            with self._lock, self._quiet.captured(), contextlib.suppress(Exception):
                if self._sdk is not None:
                    self._sdk[0].shutdown()
        finally:
            self._sdk = None
            self._quiet.remove()

    async def stop(self) -> None:
        """`shutdown` on a worker thread: the event loop serves on while the last export goes out."""
        await asyncio.to_thread(self.shutdown)


class _QuietLog(logging.Filter):
    """Takes what the SDK's exporter logs while one of *our* exports runs (each try of a failing export logs a
    line or two, every interval) out of the log, for `_note_export` to report once. Other exporters in the
    process (an app's own OpenTelemetry setup) log as before: only records made on the exporting thread, while
    it exports for us, are taken."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()
        self._loggers: list[logging.Logger] = []

    def install(self, names: Iterable[str]) -> None:
        for name in names:
            logger = logging.getLogger(name)
            logger.addFilter(self)
            self._loggers.append(logger)

    def remove(self) -> None:
        for logger in self._loggers:
            logger.removeFilter(self)
        self._loggers.clear()

    @contextlib.contextmanager
    def captured(self) -> Iterator[list[str]]:
        messages: list[str] = []
        self._local.messages = messages
        try:
            yield messages
        finally:
            self._local.messages = None

    def filter(self, record: logging.LogRecord) -> bool:
        messages: list[str] | None = getattr(self._local, "messages", None)
        if messages is None:
            return True
        messages.append(record.getMessage())
        return False


# The SDK's side: everything below imports opentelemetry, and runs only once an export is started.


def _meter_provider(owner: OtlpMetrics) -> MeterProvider:
    """A MeterProvider of our own (never the global one) with the four counters and the exporting reader."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    resource = _resource(owner)
    version = owner.attributes.get("service.version")
    scope = InstrumentationScope(SCOPE, version)
    inner = OTLPMetricExporter(endpoint=owner.endpoint, headers=owner.headers, timeout=owner.timeout_s)
    # The exporter logs through its module's logger (its HTTP client is handed it); the client's own, by default.
    owner._quiet.install({OTLPMetricExporter.__module__, "opentelemetry.exporter.otlp.common.http"})
    reader = PeriodicExportingMetricReader(
        _exporter(owner, inner, resource, scope),
        export_interval_millis=owner.interval_s * 1000,
        export_timeout_millis=(owner.timeout_s or 10.0) * 1000 + 1000,
    )
    provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
    _observe(provider.get_meter(SCOPE, version), owner)
    return provider


def _resource(owner: _Export) -> Resource:
    """Ours, then OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME over them, then the caller's `resource` over all."""
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource

    from_environment = {key: str(value) for key, value in OTELResourceDetector().detect().attributes.items()}
    return Resource.create({**owner.attributes, **from_environment, **owner._overrides})


def _observe(meter: Meter, owner: OtlpMetrics) -> None:
    """The observable counters: each callback reads one consistent snapshot of the totals, on the reader thread.
    (Two counters may come from snapshots a fold apart: each is right, and the next export is cumulative.)"""
    from opentelemetry.metrics import Observation

    def requests(options: CallbackOptions) -> Iterable[Observation]:
        counts = owner.snapshot().status_classes
        return [Observation(count, {"status_class": name}) for name, count in zip(STATUS_CLASSES, counts, strict=True)]

    def errors(options: CallbackOptions) -> Iterable[Observation]:
        counts = owner.snapshot().status_classes
        return [Observation(counts[3] + counts[4])]

    def versions(total: int, per_version: Mapping[str, int]) -> list[Observation]:
        return [
            Observation(count, {MODEL_ATTRIBUTE: version} if version else {})
            for version, count in by_version(total, per_version)
        ]

    def predictions(options: CallbackOptions) -> Iterable[Observation]:
        snapshot = owner.snapshot()
        return versions(snapshot.predictions, snapshot.model_predictions)

    def detections(options: CallbackOptions) -> Iterable[Observation]:
        snapshot = owner.snapshot()
        return versions(snapshot.detections, snapshot.model_detections)

    meter.create_observable_counter(
        "yolowatch.requests", [requests], "{request}", "Requests answered, by status class."
    )
    meter.create_observable_counter(
        "yolowatch.errors", [errors], "{request}", "Requests answered 4xx or 5xx (499: the client hung up)."
    )
    meter.create_observable_counter(
        "yolowatch.predictions", [predictions], "{response}", "Predict responses whose detections were read."
    )
    meter.create_observable_counter(
        "yolowatch.detections", [detections], "{detection}", "Objects detected in those responses."
    )


def _exporter(
    owner: OtlpMetrics, inner: MetricExporter, resource: Resource, scope: InstrumentationScope
) -> MetricExporter:
    """The OTLP exporter, with the latency histogram added to each batch and its failures reported once."""
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    class LatencyAddingExporter(MetricExporter):
        def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
            with owner._quiet.captured() as messages:
                try:
                    latency = _latency_metric(owner.snapshot(), metrics_data, owner.started_ns)
                    data = _with_metric(metrics_data, latency, resource, scope)
                    result = inner.export(data, timeout_millis=timeout_millis)
                except Exception as exc:  # never into the SDK's reader (it would log a traceback every interval)
                    messages.append(f"{type(exc).__name__}: {exc}")
                    result = MetricExportResult.FAILURE
            owner._note_export(result is MetricExportResult.SUCCESS, messages)
            return result

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return bool(inner.force_flush(timeout_millis))

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            with owner._quiet.captured(), contextlib.suppress(Exception):
                inner.shutdown()

    return LatencyAddingExporter()  # cumulative for every instrument: MetricExporter's default


def _latency_metric(snapshot: LifetimeSnapshot, collected: MetricsData, started_ns: int) -> Metric | None:
    """`yolowatch.request.duration` as one cumulative exponential histogram point (None before any request),
    stamped like the counters of the same collection."""
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        Buckets,
        ExponentialHistogram,
        ExponentialHistogramDataPoint,
        Metric,
    )

    latency = snapshot.latency
    if latency.min_us is None or latency.max_us is None:
        return None
    scale, offset, counts = fit_buckets(latency.counts, latency.scale)
    start_ns, now_ns = _stamps(collected, started_ns)
    point = ExponentialHistogramDataPoint(
        attributes={},
        start_time_unix_nano=start_ns,
        time_unix_nano=now_ns,
        count=latency.zero_count + sum(counts),
        sum=snapshot.duration_sum_us / 1e6,
        scale=scale,
        zero_count=latency.zero_count,
        positive=Buckets(offset=offset, bucket_counts=counts),
        negative=Buckets(offset=0, bucket_counts=[]),
        flags=0,
        min=latency.min_us / 1e6,
        max=latency.max_us / 1e6,
    )
    return Metric(
        name="yolowatch.request.duration",
        description="Server-side request duration, first byte in to last byte out.",
        unit="s",
        data=ExponentialHistogram(data_points=[point], aggregation_temporality=AggregationTemporality.CUMULATIVE),
    )


def _stamps(collected: MetricsData, started_ns: int) -> tuple[int, int]:
    """(start, time) of the first counter point collected with it, so every point of a batch agrees."""
    for resource_metrics in collected.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in getattr(metric.data, "data_points", ()):
                    return int(point.start_time_unix_nano), int(point.time_unix_nano)
    return started_ns, time.time_ns()


def _with_metric(
    collected: MetricsData, metric: Metric | None, resource: Resource, scope: InstrumentationScope
) -> MetricsData:
    """`collected` with `metric` added to our scope (the SDK's data classes are frozen: new ones, same points)."""
    from opentelemetry.sdk.metrics.export import MetricsData, ResourceMetrics, ScopeMetrics

    if metric is None:
        return collected
    resources = list(collected.resource_metrics)
    if not resources:
        return MetricsData([ResourceMetrics(resource, [ScopeMetrics(scope, [metric], "")], "")])
    first = resources[0]
    scopes = list(first.scope_metrics)
    for i, scope_metrics in enumerate(scopes):
        if scope_metrics.scope.name == scope.name:
            scopes[i] = ScopeMetrics(scope_metrics.scope, [*scope_metrics.metrics, metric], scope_metrics.schema_url)
            break
    else:
        scopes.append(ScopeMetrics(scope, [metric], ""))
    resources[0] = ResourceMetrics(first.resource, scopes, first.schema_url)
    return MetricsData(resources)


def _span_exporter(owner: OtlpTraces) -> tuple[SpanExporter, Resource, InstrumentationScope]:
    """The OTLP/HTTP span exporter, and the resource and scope every span goes out under."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    exporter = OTLPSpanExporter(endpoint=owner.endpoint, headers=owner.headers, timeout=owner.timeout_s)
    owner._quiet.install({OTLPSpanExporter.__module__, "opentelemetry.exporter.otlp.common.http"})
    return exporter, _resource(owner), InstrumentationScope(SCOPE, owner.attributes.get("service.version"))


def _request_spans(
    request: RequestSpan,
    resource: Resource,
    scope: InstrumentationScope,
    ids: Tracer,
    routes: frozenset[str] = frozenset(("/predict",)),
) -> list[ReadableSpan]:
    """The request's server span (the caller's span as its parent, when it sent one), and a child span for each
    stage the app timed. A 5xx (or a crash) is an error; a 4xx is the client's, not the server span's. The span is
    named "METHOD /path" for a known route (the predict paths), else by its method alone: a proxied app's paths
    may hold ids, and span names must stay few (the OpenTelemetry HTTP conventions; `url.path` has the path)."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    trace_id_hex, span_id_hex, parent_hex = request.trace[:3]
    trace_id, flags = int(trace_id_hex, 16), TraceFlags(TraceFlags.SAMPLED)
    context = SpanContext(trace_id, int(span_id_hex, 16), is_remote=False, trace_flags=flags)
    parent = None
    if parent_hex is not None:  # the caller's span, in another process
        parent = SpanContext(trace_id, int(parent_hex, 16), is_remote=True, trace_flags=flags)
    attributes: dict[str, str | int] = {
        "http.request.method": request.method,
        "url.path": request.path,
        "http.response.status_code": request.status,
        "yolowatch.request_id": request.request_id,
    }
    if request.detections is not None:
        attributes["yolowatch.detections"] = request.detections
    if request.model is not None:
        attributes[MODEL_ATTRIBUTE] = request.model
    failed = request.crashed or request.status >= 500
    server = ReadableSpan(
        name=f"{request.method} {request.path}" if request.path in routes else request.method,
        context=context,
        parent=parent,
        resource=resource,
        attributes=attributes,
        kind=SpanKind.SERVER,
        status=Status(StatusCode.ERROR, f"status {request.status}") if failed else Status(StatusCode.UNSET),
        start_time=request.start_ns,
        end_time=request.end_ns,
        instrumentation_scope=scope,
    )
    return [
        server,
        *(
            ReadableSpan(
                name=name,
                context=SpanContext(trace_id, int(ids.span_id(), 16), is_remote=False, trace_flags=flags),
                parent=context,
                resource=resource,
                attributes={"yolowatch.stage": name},
                kind=SpanKind.INTERNAL,
                start_time=start,
                end_time=end,
                instrumentation_scope=scope,
            )
            for name, start, end in request.stage_times()
        ),
    ]
