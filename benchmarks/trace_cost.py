"""What traces cost, piece by piece, in this process (no server): on the request path, in the fold, on the exporter.

    python benchmarks/trace_cost.py

Request path: the header scan the middleware does for every request (it now also looks for `traceparent`), and
`Tracer.begin` (traces on: a new trace, or one under a caller's `traceparent`). Fold: a sampled request turned into
a `RequestSpan`, per request. Exporter thread: the SDK's span objects for one request (a server span and the seven
stages of the bundled app) and their protobuf encoding. Each figure is the median of 7 timeit runs, in µs.
"""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable

from yolowatch.asgi.middleware import request_headers
from yolowatch.recorder import Recorder
from yolowatch.tracecontext import Tracer

HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"python-requests/2.32"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept", b"*/*"),
    (b"connection", b"keep-alive"),
    (b"content-length", b"48211"),
    (b"content-type", b"multipart/form-data; boundary=0f1e2d3c4b5a"),
]
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
STAGES = tuple((name, 1_000 * k, 1_000 * (k + 1)) for k, name in enumerate(
    ("upload", "decode", "image properties", "queue", "preprocess", "inference", "postprocess")
))  # fmt: skip


def median_us(action: Callable[[], object], number: int) -> float:
    runs = timeit.repeat(action, number=number, repeat=7)
    return statistics.median(runs) / number * 1e6


def main() -> None:
    tracer = Tracer(ratio=1.0)
    with_parent = [*HEADERS, (b"traceparent", TRACEPARENT)]
    print("request path (µs a request)")
    print(f"  header scan, no traceparent        {median_us(lambda: request_headers(HEADERS), 200_000):6.3f}")
    print(f"  header scan, with traceparent      {median_us(lambda: request_headers(with_parent), 200_000):6.3f}")
    print(f"  Tracer.begin, a new trace          {median_us(lambda: tracer.begin(None, 0), 200_000):6.3f}")
    print(f"  Tracer.begin, the caller's trace   {median_us(lambda: tracer.begin(TRACEPARENT, 0), 200_000):6.3f}")

    n = 10_000  # folded in one collect(): under max_pending, which would fold them as they come
    recorder = Recorder(parses_per_second=0, info_logs_per_second=0, max_pending=2 * n, max_pending_spans=2 * n)

    def fold(traced: bool) -> float:
        for i in range(n):
            trace = (*tracer.begin(None, 0)[:6], STAGES) if traced else None
            recorder.record_request("bench", "POST", "/predict", 200, 40_000, f"r{i}", None, False, trace)
        started = timeit.default_timer()
        recorder.collect()
        assert len(recorder.spans) == (n if traced else 0)
        recorder.spans.clear()
        return (timeit.default_timer() - started) / n * 1e6

    plain = statistics.median(fold(False) for _ in range(5))
    traced = statistics.median(fold(True) for _ in range(5))
    print(f"fold (µs a request)                  {plain:6.3f} untraced, {traced:6.3f} sampled (+{traced - plain:.3f})")

    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from yolowatch.otlp import OtlpTraces, _request_spans, _resource

    owner = OtlpTraces(recorder, "bench")  # not started: only its resource is used
    resource, scope = _resource(owner), InstrumentationScope("yolowatch")
    staged = (*tracer.begin(None, 0)[:6], STAGES)
    recorder.record_request("bench", "POST", "/predict", 200, 40_000, "r", None, False, staged)
    recorder.collect()
    request = recorder.spans.popleft()
    made = _request_spans(request, resource, scope, tracer)
    build = median_us(lambda: _request_spans(request, resource, scope, tracer), 2_000)
    batch = made * 64
    encode = median_us(lambda: encode_spans(batch).SerializeToString(), 20) / 64
    print(f"exporter thread (µs a request: 8 spans) {build:6.1f} to build, {encode:6.1f} to encode")


if __name__ == "__main__":
    main()
