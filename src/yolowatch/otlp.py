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

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import Metric, MetricExporter, MetricsData
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

log = logging.getLogger("yolowatch")

EXTRA_HINT = "pip install 'yolowatch[otel]'"
METRICS_PATH = "/v1/metrics"
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
    """None when the OpenTelemetry SDK and its OTLP/HTTP exporter can be imported, else why not (with the fix)."""
    try:
        import opentelemetry.exporter.otlp.proto.http.metric_exporter
        import opentelemetry.sdk.metrics  # noqa: F401
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
    url = url.rstrip("/")
    return url if url.endswith(METRICS_PATH) else url + METRICS_PATH


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


class OtlpMetrics:
    """Exports one deployment's totals since start to an OpenTelemetry collector, every `interval_s`, from the
    SDK's reader thread; `stop()` sends a last export. A collector that is down or refuses is logged once per
    outage (WARNING, then INFO once it takes exports again), never raised: the SDK's own log lines about it are
    kept out of the log.

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
        self.recorder = recorder
        self.deployment = deployment
        self.endpoint = None if endpoint is None else metrics_endpoint(endpoint)
        self.interval_s = interval_s
        self.attributes = {**default_resource(deployment, instance_id=instance_id, model=model), **(resource or {})}
        self._overrides = dict(resource or {})
        self.headers = dict(headers) if headers else None
        self.timeout_s = timeout_s
        self.exports = 0  # successful exports
        self.failures = 0
        self.failing = False
        self.started_ns = 0
        self._provider: MeterProvider | None = None
        self._quiet = _QuietLog()

    @property
    def shown_endpoint(self) -> str:
        return "the OTEL_EXPORTER_OTLP_* endpoint" if self.endpoint is None else redacted_url(self.endpoint)

    def start(self) -> None:
        """Start the SDK's reader thread; RuntimeError (saying what to install) without the otel extra."""
        if self._provider is not None:
            return
        why_not = otlp_available()
        if why_not is not None:
            raise RuntimeError(why_not)
        self.started_ns = time.time_ns()
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

    def _note_export(self, ok: bool, messages: Sequence[str]) -> None:
        """Once per outage: the first failure (with the SDK's first word on it) and the recovery."""
        if ok:
            self.exports += 1
            if self.failing:
                log.info("exporting OTLP metrics to %s again", self.shown_endpoint)
            self.failing = False
            return
        self.failures += 1
        if not self.failing:
            reason = messages[0][:300] if messages else "no reason given"
            log.warning(
                "cannot export OTLP metrics to %s (%s); retrying every %g s, logged once until it works",
                self.shown_endpoint,
                reason,
                self.interval_s,
            )
        self.failing = True


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


# The SDK's side: everything below imports opentelemetry, and runs only from OtlpMetrics.start().


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


def _resource(owner: OtlpMetrics) -> Resource:
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
