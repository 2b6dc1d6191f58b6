"""OTLP metrics: a real OTLP/HTTP receiver gets the recorder's totals, cumulative, with an exponential latency
histogram whose percentiles are within the documented error; a collector that is down costs one log line."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from helpers import FakeClock, free_port
from otlp_receiver import OtlpReceiver, attributes, histogram, metric, percentile, received_spans, resource, total
from yolowatch.otlp import (
    DEPLOYMENT_ATTRIBUTE,
    MAX_BUCKETS,
    MODEL_ATTRIBUTE,
    STATUS_CLASSES,
    OtlpMetrics,
    OtlpTraces,
    by_version,
    fit_buckets,
    metrics_endpoint,
    quantile_error,
    traces_endpoint,
)
from yolowatch.recorder import Recorder
from yolowatch.records import (
    EXPONENTIAL_SCALE,
    MODEL_VERSIONS_KEPT,
    OTHER_VERSIONS,
    DetectionSummary,
    ExponentialBuckets,
    Lifetime,
    exponential_index,
)
from yolowatch.tracecontext import Trace, Tracer

DEPLOYMENT = "prod-eu"
DURATION = "yolowatch.request.duration"
MODELS = ("yolo11n.pt@1a2b3c4d5e6f", "yolo11s.pt@0f9e8d7c6b5a", None)  # None: a response that names no model


@dataclass
class Traffic:
    """What a test recorded, to compare the export with."""

    statuses: list[int] = field(default_factory=list)
    latencies_us: list[int] = field(default_factory=list)
    predictions: Counter[str | None] = field(default_factory=Counter)
    detections: Counter[str | None] = field(default_factory=Counter)

    def exact_percentile_s(self, q: float) -> float:
        """Nearest rank, as `percentile` estimates it."""
        ordered = sorted(self.latencies_us)
        return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1] / 1e6


def _body(boxes: int, model: str | None) -> bytes:
    """A predict response in the Ultralytics shape, read by the fold as the bundled app's are."""
    results = [
        {"name": "car", "class": 2, "confidence": 0.5 + 0.04 * k, "box": {"x1": 1.0, "y1": 2.0, "x2": 30.0, "y2": 40.0}}
        for k in range(boxes)
    ]
    metadata = {} if model is None else {"model": model.split("@")[0], "modelHash": model.split("@")[1]}
    return json.dumps({"images": [{"shape": [480, 640], "results": results}], "metadata": metadata}).encode()


def send(
    recorder: Recorder, rng: np.random.Generator, n: int, latencies_us: Any = None, into: Traffic | None = None
) -> Traffic:
    """`n` requests of mixed statuses (a third of the 2xx with a detection body) and lognormal latencies around
    40 ms (or the ones given), recorded and folded."""
    traffic = into or Traffic()
    statuses = rng.choice([200, 200, 200, 200, 201, 304, 400, 404, 499, 500, 503], n)
    if latencies_us is None:
        latencies_us = rng.lognormal(np.log(40_000), 0.8, n).astype(int)
    for i, (status, latency_us) in enumerate(zip(statuses.tolist(), list(latencies_us), strict=True)):
        body = None
        if status < 300 and i % 3 == 0:
            model = MODELS[int(rng.integers(len(MODELS)))]
            boxes = int(rng.integers(0, 6))
            body = _body(boxes, model)
            traffic.predictions[model] += 1
            traffic.detections[model] += boxes
        recorder.record_request(DEPLOYMENT, "POST", "/predict", status, int(latency_us), f"r{i}", body)
        traffic.statuses.append(status)
        traffic.latencies_us.append(int(latency_us))
    recorder.collect()
    return traffic


@pytest.fixture
def recorder(clock: FakeClock) -> Recorder:
    return Recorder(clock=clock, parses_per_second=0)  # every body read: the counts are exact


@pytest.fixture
def collector() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def exporters(collector: OtlpReceiver) -> Iterator[Callable[..., OtlpMetrics]]:
    """Factory of started OtlpMetrics (a long interval unless given: tests export with export_now()), stopped
    while the collector still answers."""
    made: list[OtlpMetrics] = []

    def make(recorder: Recorder, endpoint: str | None, **options: Any) -> OtlpMetrics:
        options.setdefault("interval_s", 60.0)
        options.setdefault("timeout_s", 2.0)
        otlp = OtlpMetrics(recorder, DEPLOYMENT, endpoint=endpoint, **options)
        otlp.start()
        made.append(otlp)
        return otlp

    yield make
    for otlp in made:
        otlp.shutdown(timeout_s=2.0)


def test_a_collector_receives_what_the_recorder_folded(
    recorder: Recorder, collector: OtlpReceiver, exporters: Callable[..., OtlpMetrics]
) -> None:
    """Every interval the collector gets requests by status class, errors, predictions and detections (by model
    version) equal to what was recorded, a latency histogram of the same count and sum, and the resource."""
    rng = np.random.default_rng(15)
    traffic = send(recorder, rng, 3000, rng.lognormal(np.log(40_000), 0.8, 3000).astype(int).tolist()[:-3] + [0] * 3)
    exporters(recorder, collector.endpoint, interval_s=0.1, model="yolo11n.pt", instance_id="pod-7:31:a1b2c3")
    request = collector.wait_for(lambda r: total(r, "yolowatch.requests") > 0, "the folded requests")

    classes = Counter(STATUS_CLASSES[min(4, status // 100 - 1)] for status in traffic.statuses)
    assert {name: total(request, "yolowatch.requests", status_class=name) for name in STATUS_CLASSES} == {
        name: classes[name] for name in STATUS_CLASSES
    }
    assert total(request, "yolowatch.errors") == sum(status >= 400 for status in traffic.statuses)
    assert total(request, "yolowatch.predictions") == traffic.predictions.total() > 0
    assert total(request, "yolowatch.detections") == traffic.detections.total() > 0
    for model in MODELS[:2]:
        where = {MODEL_ATTRIBUTE: model}
        assert total(request, "yolowatch.predictions", **where) == traffic.predictions[model]
        assert total(request, "yolowatch.detections", **where) == traffic.detections[model]

    point = histogram(request, DURATION)
    assert point.count == len(traffic.latencies_us) and point.zero_count == 3
    assert point.sum == pytest.approx(sum(traffic.latencies_us) / 1e6, rel=1e-12)
    assert (point.min, point.max) == (min(traffic.latencies_us) / 1e6, max(traffic.latencies_us) / 1e6)
    assert point.scale == EXPONENTIAL_SCALE
    for q in (50, 95, 99):
        exact = traffic.exact_percentile_s(q)
        assert abs(percentile(point, q) - exact) / exact <= quantile_error(point.scale), q

    attributes = resource(request)
    assert attributes["service.name"] == "yolowatch" and attributes["service.instance.id"] == "pod-7:31:a1b2c3"
    assert attributes["host.name"] == socket.gethostname()
    assert attributes[DEPLOYMENT_ATTRIBUTE] == DEPLOYMENT
    assert attributes[MODEL_ATTRIBUTE] == "yolo11n.pt"


def test_each_export_is_cumulative_since_start(
    recorder: Recorder, collector: OtlpReceiver, exporters: Callable[..., OtlpMetrics]
) -> None:
    """A second export after more traffic carries the totals of both batches, from the same start time."""
    rng = np.random.default_rng(2)
    otlp = exporters(recorder, collector.endpoint)
    traffic = send(recorder, rng, 500)
    assert otlp.export_now()
    first = collector.latest()
    send(recorder, rng, 700, into=traffic)
    assert otlp.export_now()
    second = collector.latest()

    assert total(first, "yolowatch.requests") == 500 and total(second, "yolowatch.requests") == 1200
    assert total(second, "yolowatch.errors") == sum(status >= 400 for status in traffic.statuses)
    assert total(second, "yolowatch.detections") == traffic.detections.total()
    before, after = histogram(first, DURATION), histogram(second, DURATION)
    assert (before.count, after.count) == (500, 1200)
    assert after.sum == pytest.approx(sum(traffic.latencies_us) / 1e6, rel=1e-12)
    assert after.start_time_unix_nano == before.start_time_unix_nano < before.time_unix_nano < after.time_unix_nano
    counters = second.resource_metrics[0].scope_metrics[0].metrics
    sums = [counter.sum for counter in counters if counter.WhichOneof("data") == "sum"]
    assert len(sums) == 4 and all(s.aggregation_temporality == 2 and s.is_monotonic for s in sums)  # cumulative
    duration = metric(second, DURATION)
    assert duration.unit == "s" and duration.exponential_histogram.aggregation_temporality == 2


@pytest.mark.parametrize(
    ("spread", "scale"),
    [
        ("lognormal around 20 ms", EXPONENTIAL_SCALE),
        ("1 us to 10 min, log-uniform: more octaves than MAX_BUCKETS holds at scale 3", EXPONENTIAL_SCALE - 1),
    ],
)
def test_percentiles_from_the_buckets_are_within_the_documented_error(
    spread: str, scale: int, recorder: Recorder, collector: OtlpReceiver, exporters: Callable[..., OtlpMetrics]
) -> None:
    """P50/P90/P95/P99/P99.9 read from the exported buckets are within quantile_error(scale) of the exact ones; a
    spread too wide for MAX_BUCKETS goes out at a lower scale (and its wider error)."""
    rng = np.random.default_rng(7)
    if spread.startswith("lognormal"):
        latencies = rng.lognormal(np.log(20_000), 1.0, 10_000)
    else:
        latencies = np.exp(rng.uniform(0, np.log(600e6), 10_000))
    otlp = exporters(recorder, collector.endpoint)
    traffic = send(recorder, rng, len(latencies), latencies.astype(int).clip(1).tolist())
    assert otlp.export_now()
    point = collector.histogram(DURATION)

    assert point.scale == scale and len(point.positive.bucket_counts) <= MAX_BUCKETS
    assert point.count == len(latencies)
    for q in (50, 90, 95, 99, 99.9):
        exact = traffic.exact_percentile_s(q)
        assert abs(percentile(point, q) - exact) / exact <= quantile_error(point.scale), q


@pytest.mark.parametrize("failure", ["connection refused", "HTTP 500"])
def test_a_collector_that_is_down_raises_nothing_and_is_logged_once(
    failure: str,
    recorder: Recorder,
    collector: OtlpReceiver,
    exporters: Callable[..., OtlpMetrics],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Failed exports raise nothing, log one WARNING for the outage and none of the SDK's own lines; the first
    export that works again logs one INFO."""
    send(recorder, np.random.default_rng(3), 50)
    with caplog.at_level(logging.DEBUG):
        if failure == "HTTP 500":
            collector.status = 500
            endpoint = collector.endpoint
        else:
            endpoint = f"http://127.0.0.1:{free_port()}"
        otlp = exporters(recorder, endpoint, timeout_s=0.5)
        assert [otlp.export_now() for _ in range(3)] == [False, False, False]
        assert otlp.failures == 3 and otlp.failing
        if failure == "HTTP 500":
            assert collector.attempts == 3
            collector.status = 200
            assert otlp.export_now() and otlp.export_now()
            assert collector.total("yolowatch.requests") == 50
        else:
            otlp.shutdown(timeout_s=0.5)  # its last export fails too: still the one line

    ours = [record for record in caplog.records if record.name == "yolowatch"]
    warnings = [record.getMessage() for record in ours if record.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "cannot export OTLP metrics to http://127.0.0.1:" in warnings[0]
    sdk = [record for record in caplog.records if record.name.startswith("opentelemetry")]
    assert [record.getMessage() for record in sdk if record.levelno >= logging.WARNING] == []
    again = [record.getMessage() for record in ours if "again" in record.getMessage()]
    assert len(again) == (1 if failure == "HTTP 500" else 0)


def test_stop_sends_a_last_export(
    recorder: Recorder, collector: OtlpReceiver, exporters: Callable[..., OtlpMetrics]
) -> None:
    """What was folded since the last interval still reaches the collector when the exporter stops."""
    otlp = exporters(recorder, collector.endpoint)  # a minute's interval: nothing goes out on its own
    send(recorder, np.random.default_rng(4), 40)
    asyncio.run(otlp.stop())
    assert len(collector.requests) == 1 and collector.total("yolowatch.requests") == 40
    assert collector.histogram(DURATION).count == 40


def test_the_standard_environment_variables_configure_it(
    recorder: Recorder,
    collector: OtlpReceiver,
    exporters: Callable[..., OtlpMetrics],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without an endpoint, OTEL_EXPORTER_OTLP_ENDPOINT and _HEADERS say where and how; OTEL_RESOURCE_ATTRIBUTES
    and OTEL_SERVICE_NAME override yolowatch's defaults, and the caller's `resource` overrides them."""
    send(recorder, np.random.default_rng(5), 10)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging,host.name=from-env")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "detector")
    otlp = exporters(recorder, None, resource={"host.name": "pod-7"})
    assert otlp.export_now()
    attributes = collector.resource()
    assert collector.headers[-1]["x-tenant"] == "acme"
    assert attributes["service.name"] == "detector" and attributes["deployment.environment.name"] == "staging"
    assert attributes["host.name"] == "pod-7" and attributes[DEPLOYMENT_ATTRIBUTE] == DEPLOYMENT


def test_the_light_install_imports_the_module_without_the_sdk() -> None:
    """Importing yolowatch.otlp loads no OpenTelemetry module; without the SDK, otlp_available() names the extra
    and start() refuses with it."""
    script = (
        "import sys\n"
        "import yolowatch.otlp as otlp\n"
        "assert not [name for name in sys.modules if name.startswith('opentelemetry')]\n"
        "sys.modules['opentelemetry'] = None\n"  # as if not installed
        "print(otlp.otlp_available())\n"
        "try:\n"
        "    otlp.OtlpMetrics(None, 'd').start()\n"
        "except RuntimeError as exc:\n"
        "    print('refused:', exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "yolowatch[otel]" in result.stdout and "refused: OTLP export needs the OpenTelemetry SDK" in result.stdout


def test_a_snapshot_taken_while_the_fold_runs_is_consistent() -> None:
    """Regression guard for the exporter's thread: every snapshot holds whole add_requests calls (as many status
    counts as latencies, and the sum of exactly those latencies), however the fold on another thread interleaves."""
    lifetime = Lifetime()
    done = threading.Event()
    seen: list[tuple[int, int, int]] = []

    def read() -> None:
        while not done.is_set():
            snapshot = lifetime.snapshot()
            seen.append((sum(snapshot.status_classes), snapshot.latency.count, snapshot.duration_sum_us))

    switch_s = sys.getswitchinterval()
    sys.setswitchinterval(
        1e-6
    )  # threads take turns inside nearly every call (a plain copy is then wrong half the time)
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(3000):
            lifetime.add_requests(Counter({200: 3, 500: 1}), Counter({1000 + i: 2, 7: 1, 0: 1}))
    finally:
        done.set()
        reader.join()
        sys.setswitchinterval(switch_s)
    assert seen
    for requests, counted, sum_us in seen:
        calls = requests // 4
        assert requests == counted == 4 * calls
        assert sum_us == sum(2 * (1000 + i) + 7 for i in range(calls))


@pytest.mark.parametrize("value_us", [1, 7, 999, 15_625, 31_250, 500_000, 1_000_000, 2_000_001, 600_000_000])
def test_each_latency_lands_in_the_bucket_whose_bounds_hold_it(value_us: int) -> None:
    """Bucket i holds (base**i, base**(i+1)] seconds: a power of two (15.625 ms, 0.5 s, 1 s) on its upper bound."""
    buckets = ExponentialBuckets()
    buckets.add_us(Counter({value_us: 3}))
    ((index, count),) = buckets.counts.items()
    seconds = value_us / 1e6
    base = 2 ** (2**-EXPONENTIAL_SCALE)
    assert count == 3 and index == exponential_index(seconds)
    assert base**index < seconds <= base ** (index + 1) * (1 + 1e-12)
    if math.log2(seconds).is_integer():
        assert index == math.log2(seconds) * 2**EXPONENTIAL_SCALE - 1


def test_fitting_buckets_merges_pairs_and_keeps_every_count() -> None:
    """Too many buckets: the scale drops until they fit, each step merging i and i+1 into i >> 1 (negative indexes
    too), and no count is lost."""
    counts = {-300: 1, -7: 2, -6: 3, 0: 4, 1: 5, 200: 6}
    assert fit_buckets(counts, 3, max_buckets=1000) == (3, -300, [*_dense(counts, -300, 200)])
    scale, offset, dense = fit_buckets(counts, 3, max_buckets=160)
    assert (scale, offset) == (1, -75) and len(dense) <= 160 and sum(dense) == 21
    assert dense[0] == 1 and dense[(-7 >> 2) + 75] == 5 and dense[0 + 75] == 9 and dense[-1] == 6
    assert fit_buckets({}, 3) == (3, 0, [])


def _dense(counts: dict[int, int], low: int, high: int) -> list[int]:
    return [counts.get(index, 0) for index in range(low, high + 1)]


def test_model_versions_are_bounded_and_never_move(recorder: Recorder) -> None:
    """The first MODEL_VERSIONS_KEPT versions are counted by name and later ones as "other" from the start, however
    their counts grow (a series never moves from one name to another); predictions naming none keep no attribute;
    the versions seen are readable, most predictions first."""
    lifetime = Lifetime()
    for k in range(MODEL_VERSIONS_KEPT + 2):
        for _ in range(1 + 3 * k):  # the later versions overtake the earlier ones
            lifetime.add_detections(DetectionSummary(1, 1, (0.9,), (), (0,), ("circle",), model=f"v{k}"))
    named = {f"v{k}": 1 + 3 * k for k in range(MODEL_VERSIONS_KEPT)}
    assert lifetime.model_predictions == {**named, OTHER_VERSIONS: sum(1 + 3 * k for k in (10, 11))}
    points = by_version(lifetime.predictions + 4, lifetime.model_predictions)
    assert points == [*sorted(lifetime.model_predictions.items()), ("", 4)]

    send(recorder, np.random.default_rng(6), 300)
    otlp = OtlpMetrics(recorder, DEPLOYMENT)
    counts = recorder.lifetime[DEPLOYMENT].model_predictions
    assert otlp.model_versions() == sorted(counts, key=lambda name: (-counts[name], name))
    assert set(otlp.model_versions()) == {model for model in MODELS if model}


def test_the_endpoint_names_the_collector() -> None:
    """--otlp-endpoint is the collector's base URL (as OTEL_EXPORTER_OTLP_ENDPOINT); a full metrics URL is kept."""
    assert metrics_endpoint("http://collector:4318") == "http://collector:4318/v1/metrics"
    assert metrics_endpoint("http://collector:4318/otlp/") == "http://collector:4318/otlp/v1/metrics"
    assert metrics_endpoint("https://c.example/v1/metrics") == "https://c.example/v1/metrics"
    with pytest.raises(ValueError, match="more than 0 seconds"):
        OtlpMetrics(Recorder(), DEPLOYMENT, interval_s=0)


# Traces: the spans of the requests the fold handed over.

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = "00f067aa0ba902b7"


def traced(recorder: Recorder, tracer: Tracer, n: int, *, caller: bool = False, stages: bool = False) -> list[Trace]:
    """`n` requests begun by `tracer` (under the caller's trace, or new ones), recorded with a detection body and
    folded; each sampled one timed as a stage of 2 ms 1 ms after it began."""
    made = []
    for i in range(n):
        header = f"00-{TRACE}-{CALLER}-01".encode() if caller else None
        trace = tracer.begin(header, 1_000_000)
        if stages and trace[3]:
            trace = (*trace[:6], (("inference", 2_000_000, 4_000_000),))
        status = 503 if i == 0 else 200
        body = None if status >= 300 else _body(2, MODELS[0])
        recorder.record_request(DEPLOYMENT, "POST", "/predict", status, 5_000, f"t{i}", body, trace=trace)
        made.append(trace)
    recorder.collect()
    return made


@pytest.fixture
def trace_exporters(collector: OtlpReceiver) -> Iterator[Callable[..., OtlpTraces]]:
    """Factory of started OtlpTraces (a minute between exports unless given: tests call export_now())."""
    made: list[OtlpTraces] = []

    def make(recorder: Recorder, endpoint: str | None, **options: Any) -> OtlpTraces:
        options.setdefault("every_s", 60.0)
        options.setdefault("timeout_s", 2.0)
        traces = OtlpTraces(recorder, DEPLOYMENT, endpoint=endpoint, **options)
        traces.start()
        made.append(traces)
        return traces

    yield make
    for traces in made:
        traces.shutdown(timeout_s=2.0)


def test_a_collector_receives_a_span_per_traced_request_and_its_stages(
    recorder: Recorder, collector: OtlpReceiver, trace_exporters: Callable[..., OtlpTraces]
) -> None:
    """Each request under a caller's trace is a server span in that trace, the caller's span its parent; a stage
    is its child, placed from the request's start; a 503 is an error; what the body said is on the span."""
    otlp = trace_exporters(recorder, collector.endpoint, resource={"host.name": "pod-7"})
    made = traced(recorder, otlp.tracer, 3, caller=True, stages=True)
    assert otlp.export_now()
    spans = collector.spans()
    servers = [span for span in spans if span.kind == span.SPAN_KIND_SERVER]
    children = [span for span in spans if span.kind == span.SPAN_KIND_INTERNAL]
    assert len(servers) == 3 and len(children) == 3 and otlp.spans == 6
    assert {span.trace_id.hex() for span in spans} == {TRACE}
    assert {span.parent_span_id.hex() for span in servers} == {CALLER}
    assert sorted(span.span_id.hex() for span in servers) == sorted(trace[1] for trace in made)
    by_id = {span.span_id.hex(): span for span in servers}
    for child in children:
        server = by_id[child.parent_span_id.hex()]
        assert child.name == "inference" and attributes(child.attributes) == {"yolowatch.stage": "inference"}
        assert child.start_time_unix_nano == server.start_time_unix_nano + 1_000_000
        assert child.end_time_unix_nano - child.start_time_unix_nano == 2_000_000
        assert server.end_time_unix_nano - server.start_time_unix_nano == 5_000_000
    failed = [span for span in servers if span.status.code == span.status.STATUS_CODE_ERROR]
    assert [attributes(span.attributes)["http.response.status_code"] for span in failed] == [503]
    answered = [attributes(span.attributes) for span in servers if span not in failed]
    assert all(a["yolowatch.detections"] == 2 and a[MODEL_ATTRIBUTE] == MODELS[0] for a in answered)
    assert {a["http.request.method"] for a in answered} == {"POST"} and servers[0].name == "POST /predict"
    (resource_attributes, _), *_ = received_spans(collector.trace_requests)
    assert resource_attributes["host.name"] == "pod-7" and resource_attributes[DEPLOYMENT_ATTRIBUTE] == DEPLOYMENT


def test_only_sampled_requests_are_exported(
    recorder: Recorder, collector: OtlpReceiver, trace_exporters: Callable[..., OtlpTraces]
) -> None:
    """A caller's "not sampled" is followed; with a ratio of 0 no new trace is exported. The log entry keeps the
    caller's trace id, not the id of a new trace that was not exported (it would lead nowhere)."""
    otlp = trace_exporters(recorder, collector.endpoint, ratio=0.0)
    unsampled = f"00-{TRACE}-{CALLER}-00".encode()
    for i in range(4):
        trace = otlp.tracer.begin(unsampled if i % 2 else None, 0)
        recorder.record_request(DEPLOYMENT, "GET", "/x", 200, 100, f"u{i}", trace=trace)
    logs = recorder.collect().logs
    assert otlp.export_now() is True and collector.trace_requests == [] and otlp.exports == 0
    assert [entry.trace_id for entry in logs] == [None, TRACE, None, TRACE]


def test_a_trace_collector_that_is_down_costs_its_batches_and_one_line(
    recorder: Recorder,
    collector: OtlpReceiver,
    trace_exporters: Callable[..., OtlpTraces],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused export raises nothing: its requests are counted as dropped, one WARNING for the outage, none of
    the SDK's own lines; the next one that works logs one INFO."""
    collector.status = 500
    with caplog.at_level(logging.DEBUG):
        otlp = trace_exporters(recorder, collector.endpoint, timeout_s=0.5)
        traced(recorder, otlp.tracer, 4)
        assert otlp.export_now() is False
        traced(recorder, otlp.tracer, 2)
        assert otlp.export_now() is False
        assert otlp.dropped == 6 and otlp.failures == 2 and recorder.spans == deque()
        collector.status = 200
        traced(recorder, otlp.tracer, 3)
        assert otlp.export_now()
    assert len([span for span in collector.spans() if span.kind == span.SPAN_KIND_SERVER]) == 3
    ours = [record.getMessage() for record in caplog.records if record.name == "yolowatch"]
    warnings = [m for m in ours if "cannot export" in m]
    assert len(warnings) == 1 and "cannot export OTLP traces to http://127.0.0.1:" in warnings[0]
    assert len([m for m in ours if "exporting OTLP traces" in m and "again" in m]) == 1
    sdk = [record for record in caplog.records if record.name.startswith("opentelemetry")]
    assert [record.getMessage() for record in sdk if record.levelno >= logging.WARNING] == []


def test_traces_go_out_on_their_own(
    recorder: Recorder, collector: OtlpReceiver, trace_exporters: Callable[..., OtlpTraces]
) -> None:
    otlp = trace_exporters(recorder, collector.endpoint, every_s=0.1)
    traced(recorder, otlp.tracer, 5)
    collector.wait_for_spans(lambda spans: len(spans) == 5, "5 spans exported by the thread")


def test_stop_sends_the_rest(
    recorder: Recorder, collector: OtlpReceiver, trace_exporters: Callable[..., OtlpTraces]
) -> None:
    """A minute between exports and fewer than a batch waiting: only stop() sends them."""
    otlp = trace_exporters(recorder, collector.endpoint)
    traced(recorder, otlp.tracer, 7)
    assert collector.spans() == []
    asyncio.run(otlp.stop())
    assert len(collector.spans()) == 7 and otlp.dropped == 0


def test_stopping_never_waits_on_a_collector_that_is_down(
    recorder: Recorder, trace_exporters: Callable[..., OtlpTraces], caplog: pytest.LogCaptureFixture
) -> None:
    """Several batches waiting and no collector: stop tries one, counts every request it could not send as
    dropped, and returns within its deadline (plus that one export's timeout); one WARNING."""
    otlp = trace_exporters(recorder, f"http://127.0.0.1:{free_port()}", timeout_s=0.5)
    broken = (*otlp.tracer.begin(None, 0)[:6], (("decode", "soon", None),))  # no spans: counted once, not twice
    recorder.record_request(DEPLOYMENT, "GET", "/predict", 200, 100, "broken", trace=broken)  # type: ignore[arg-type]
    traced(recorder, otlp.tracer, 1_999)  # four batches in all
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="yolowatch"):
        otlp.shutdown(timeout_s=1.0)
    assert time.monotonic() - started < 1.0 + 0.5 + 1.0
    # One try at stop (and perhaps one by the thread, which tries as soon as a batch waits): never one a batch.
    assert otlp.dropped == 2_000 and recorder.spans == deque() and otlp.failures in (1, 2)
    assert len([r for r in caplog.records if "cannot export OTLP traces" in r.getMessage()]) == 1


def test_spans_are_named_by_route_and_a_bad_stage_costs_only_its_request(
    recorder: Recorder, collector: OtlpReceiver, trace_exporters: Callable[..., OtlpTraces]
) -> None:
    """A path that is no known route names its span by the method alone (a proxied app's paths hold ids); an app
    that left stages of the wrong shape loses that request's spans, not its batch's."""
    otlp = trace_exporters(recorder, collector.endpoint, routes=("/predict", "/v1/detect"))
    for path in ("/v1/detect", "/items/8731"):
        recorder.record_request(DEPLOYMENT, "GET", path, 200, 100, path, trace=otlp.tracer.begin(None, 0))
    broken = (*otlp.tracer.begin(None, 0)[:6], (("decode", "soon", None),))
    recorder.record_request(DEPLOYMENT, "GET", "/v1/detect", 200, 100, "broken", trace=broken)  # type: ignore[arg-type]
    recorder.collect()
    assert otlp.export_now()
    names = {attributes(span.attributes)["url.path"]: span.name for span in collector.spans()}
    assert names == {"/v1/detect": "GET /v1/detect", "/items/8731": "GET"} and otlp.dropped == 1


def test_a_full_span_backlog_drops_the_oldest_and_counts_them(clock: FakeClock) -> None:
    recorder = Recorder(clock=clock, max_pending_spans=10)
    traced(recorder, Tracer(ratio=1.0), 25)
    assert len(recorder.spans) == 10 and recorder.stats.spans_dropped == 15
    assert [span.request_id for span in recorder.spans] == [f"t{i}" for i in range(15, 25)]


def test_the_traces_endpoint_is_beside_the_metrics_one() -> None:
    assert traces_endpoint("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_endpoint("http://collector:4318/v1/metrics") == "http://collector:4318/v1/traces"
    assert traces_endpoint("https://c.example/otlp/v1/traces/") == "https://c.example/otlp/v1/traces"
    assert metrics_endpoint("http://collector:4318/v1/traces") == "http://collector:4318/v1/metrics"
