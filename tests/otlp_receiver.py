"""A real OTLP/HTTP metrics and traces receiver on 127.0.0.1, decoding with the OpenTelemetry project's own
protos, and the arithmetic a test needs to read what it received (totals of a counter, an exponential
histogram's quantiles, the spans of every trace export).

    with OtlpReceiver() as receiver:             # receiver.endpoint: the base URL, as --otlp-endpoint takes it
        ...                                      # export to it
        request = receiver.wait_for(lambda r: total(r, "yolowatch.requests") >= 100, "100 requests")
        p95 = percentile(histogram(request, "yolowatch.request.duration"), 95)
        receiver.total("yolowatch.requests", status_class="5xx")     # the same readers, of the latest request
        spans = receiver.wait_for_spans(lambda found: len(found) >= 6, "6 spans")   # every span received so far
"""

from __future__ import annotations

import gzip
import math
import threading
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import ExponentialHistogramDataPoint, Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from helpers import wait_until


class OtlpReceiver:
    """Accepts POST /v1/metrics and /v1/traces (protobuf, plain, gzip or deflate) and keeps each decoded request
    in `requests` (metrics) or `trace_requests`, and the metrics requests' headers in `headers`; answers `status`
    (200; set 500 or 503 to play a collector that refuses)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[ExportMetricsServiceRequest] = []
        self.trace_requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.attempts += 1
                known = self.path in ("/v1/metrics", "/v1/traces")
                if not known or receiver.status != 200:
                    self.send_response(receiver.status if known else 404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path == "/v1/traces":
                    traces = ExportTraceServiceRequest()
                    traces.ParseFromString(body)
                    receiver.trace_requests.append(traces)
                    answer = ExportTraceServiceResponse().SerializeToString()
                else:
                    request = ExportMetricsServiceRequest()
                    request.ParseFromString(body)
                    receiver.requests.append(request)
                    receiver.headers.append({key.lower(): value for key, value in self.headers.items()})
                    answer = ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self.endpoint = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def latest(self) -> ExportMetricsServiceRequest:
        assert self.requests, "nothing was exported"
        return self.requests[-1]

    # The module's readers, of the latest request.

    def metric(self, name: str) -> Metric:
        return metric(self.latest(), name)

    def total(self, name: str, **where: Any) -> float:
        return total(self.latest(), name, **where)

    def histogram(self, name: str) -> ExponentialHistogramDataPoint:
        return histogram(self.latest(), name)

    def resource(self) -> dict[str, Any]:
        return resource(self.latest())

    def wait_for(
        self, condition: Callable[[ExportMetricsServiceRequest], object], what: str, timeout_s: float = 10.0
    ) -> ExportMetricsServiceRequest:
        """The first request received (now or later) for which `condition` holds."""

        def found() -> ExportMetricsServiceRequest | None:
            return next((request for request in list(self.requests) if condition(request)), None)

        return wait_until(found, f"an export with {what}", accept=lambda request: request is not None,
                          timeout_s=timeout_s)  # fmt: skip

    def spans(self) -> list[Span]:
        """Every span received so far."""
        return [span for _, span in received_spans(list(self.trace_requests))]

    def wait_for_spans(
        self, condition: Callable[[list[Span]], object], what: str, timeout_s: float = 10.0
    ) -> list[Span]:
        """Every span received, once `condition` holds of them."""
        return wait_until(self.spans, what, accept=condition, timeout_s=timeout_s)


def received_spans(requests: list[ExportTraceServiceRequest]) -> list[tuple[dict[str, Any], Span]]:
    """Every span of these trace exports, each with its resource's attributes."""
    return [
        (attributes(resource_spans.resource.attributes), span)
        for request in requests
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]


def value_of(value: Any) -> Any:
    """An AnyValue as Python."""
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


def attributes(items: list[KeyValue] | Any) -> dict[str, Any]:
    return {item.key: value_of(item.value) for item in items}


def resource(request: ExportMetricsServiceRequest) -> dict[str, Any]:
    """The resource attributes of the (first) resource in a request."""
    return attributes(request.resource_metrics[0].resource.attributes)


def metric(request: ExportMetricsServiceRequest, name: str) -> Metric:
    found = [m for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.name == name]
    assert len(found) == 1, f"{len(found)} metrics named {name}"
    return found[0]


def points(request: ExportMetricsServiceRequest, name: str) -> list[tuple[dict[str, Any], float]]:
    """(attributes, value) of each point of a sum or gauge."""
    data = metric(request, name)
    series = data.sum if data.WhichOneof("data") == "sum" else data.gauge
    return [(attributes(point.attributes), getattr(point, point.WhichOneof("value"))) for point in series.data_points]


def total(request: ExportMetricsServiceRequest, name: str, **where: Any) -> float:
    """The sum of a counter's points whose attributes include `where` (all of them, without)."""
    return sum(value for labels, value in points(request, name) if where.items() <= labels.items())


def histogram(request: ExportMetricsServiceRequest, name: str) -> ExponentialHistogramDataPoint:
    data = metric(request, name)
    assert data.WhichOneof("data") == "exponential_histogram", data.WhichOneof("data")
    (point,) = data.exponential_histogram.data_points
    return point


def percentile(point: ExponentialHistogramDataPoint, q: float) -> float:
    """The nearest-rank q-th percentile (rank ceil(q/100 * count)) as the geometric middle of the bucket that holds
    it, clamped to the point's min and max: within yolowatch.otlp.quantile_error(point.scale) of the exact one."""
    assert point.count > 0 and not point.negative.bucket_counts
    rank = max(1, math.ceil(q / 100 * point.count))
    if rank <= point.zero_count:
        return 0.0
    seen = point.zero_count
    base = 2.0 ** (2.0**-point.scale)
    for i, count in enumerate(point.positive.bucket_counts):
        seen += count
        if seen >= rank:
            middle = base ** (point.positive.offset + i + 0.5)
            return min(point.max, max(point.min, middle))
    raise AssertionError(f"the buckets hold {seen} values, the point says {point.count}")
