"""W3C trace context for one request: the incoming `traceparent`, new trace and span ids, the sampling choice.

`Tracer.begin` runs on the request path when traces are on (`--otlp-traces`): a header parse (only when the
client sent one), one or two random draws and a wall-clock read, about a microsecond. Everything else (the spans'
objects, their encoding, the export) happens later on the exporter's thread, from the `RequestSpan` the fold
makes of each sampled request. Without traces, a client's `traceparent` still lends its trace id to the request's
log entry (`client_trace`), so a client's logs and yolowatch's meet on one id.

Sampling follows OpenTelemetry's `ParentBased(TraceIdRatioBased(ratio))`: a request whose `traceparent` says
sampled (or not) is traced (or not) as its caller decided; one without is traced when its new trace id's low 64
bits fall under `ratio * 2**64`, the rule OpenTelemetry's Python SDK applies (other SDKs' rules are close, not
identical), so every yolowatch process of a fleet takes the same decision for a trace.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass

TRACEPARENT = b"traceparent"
TRACESTATE = b"tracestate"
_HEX = frozenset("0123456789abcdef")
_LOW_64 = (1 << 64) - 1

# A stage the app timed inside a request: (name, start, end), in time.perf_counter_ns() nanoseconds.
Stage = tuple[str, int, int]
# A request in a trace, as the middleware hands it to the recorder: (trace id, span id of this request's server
# span, the caller's span id or None, sampled, wall-clock start in epoch ns, perf_counter_ns at that start, the
# stages the app timed or None). Not sampled: no span is made; the log entry keeps the trace id when it is the
# caller's (its parent span id is set). A client's trace when this process traces nothing: span id "".
Trace = tuple[str, str, "str | None", bool, int, int, "tuple[Stage, ...] | None"]


def parse_traceparent(value: bytes) -> tuple[str, str, bool] | None:
    """(trace id, parent span id, sampled) of a valid `traceparent` header value, else None (a header that is not
    valid is ignored, as the W3C spec says: the request starts a new trace). Versions after 00 are read by their
    first four fields."""
    text = value.decode("latin-1").strip(" \t")  # HTTP's optional whitespace
    if len(text) < 55 or text[2] != "-" or text[35] != "-" or text[52] != "-":
        return None
    version, trace_id, span_id, flags = text[:2], text[3:35], text[36:52], text[53:55]
    if version == "ff" or not _HEX.issuperset(version + trace_id + span_id + flags):
        return None
    if (version == "00" and len(text) != 55) or (len(text) > 55 and text[55] != "-"):
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 1)


def client_trace(traceparent: bytes) -> Trace | None:
    """The client's trace, for the log entry only (this process traces nothing): None for a header not valid."""
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return None
    return (parsed[0], "", parsed[1], False, 0, 0, None)


def traceparent_header(trace: Trace) -> bytes:
    """The `traceparent` a proxy sends on: this request's span as the parent of what the upstream does."""
    return f"00-{trace[0]}-{trace[1]}-{'01' if trace[3] else '00'}".encode()


class Tracer:
    """Trace and span ids for one process, and whether a request without a caller's decision is sampled.

    Ids come from a `random.Random` seeded from the OS once (no system call per request); `ratio` is the share of
    such requests traced, 0 to 1."""

    def __init__(self, ratio: float = 1.0, seed: int | None = None) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"the trace sampling ratio must be between 0 and 1; got {ratio:g}")
        self.ratio = ratio
        self._bound = round(ratio * (_LOW_64 + 1))
        self._random = random.Random(int.from_bytes(os.urandom(16), "big") if seed is None else seed)

    def span_id(self) -> str:
        return f"{self._random.getrandbits(64) or 1:016x}"

    def begin(self, traceparent: bytes | None, perf_ns: int) -> Trace:
        """This request's trace: the caller's (its trace id, its span as the parent, its sampling decision) when
        `traceparent` is valid, else a new one sampled by the ratio."""
        parsed = None if traceparent is None else parse_traceparent(traceparent)
        if parsed is not None:
            trace_id, parent_id, sampled = parsed
        else:
            bits = self._random.getrandbits(128) or 1
            trace_id, parent_id, sampled = f"{bits:032x}", None, (bits & _LOW_64) < self._bound
        return (trace_id, self.span_id(), parent_id, sampled, time.time_ns(), perf_ns, None)


@dataclass(frozen=True, slots=True)
class RequestSpan:
    """A sampled request, as the exporter turns it into a server span and its stages' child spans (made in the
    fold, off the request path; holds no body)."""

    trace: Trace
    deployment: str
    method: str
    path: str
    status: int
    latency_us: int
    request_id: str
    crashed: bool
    detections: int | None = None
    model: str | None = None

    @property
    def start_ns(self) -> int:
        return self.trace[4]

    @property
    def end_ns(self) -> int:
        return self.trace[4] + self.latency_us * 1000

    def stage_times(self) -> list[tuple[str, int, int]]:
        """The app's stages as (name, start, end) in epoch nanoseconds, each kept inside the request's span."""
        _, _, _, _, wall_ns, perf_ns, stages = self.trace
        if not stages:
            return []
        start, end = self.start_ns, self.end_ns
        return [
            (name, min(max(start, wall_ns + a - perf_ns), end), min(max(start, wall_ns + b - perf_ns), end))
            for name, a, b in stages
        ]
