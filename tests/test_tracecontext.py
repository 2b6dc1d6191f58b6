"""W3C trace context: which traceparent headers are honoured, the ids a tracer makes, and its sampling rule."""

from __future__ import annotations

import time

import pytest

from yolowatch.tracecontext import RequestSpan, Tracer, client_trace, parse_traceparent, traceparent_header

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"00-{TRACE}-{PARENT}-01", (TRACE, PARENT, True)),
        (f"00-{TRACE}-{PARENT}-00", (TRACE, PARENT, False)),
        (f"00-{TRACE}-{PARENT}-03", (TRACE, PARENT, True)),  # other flags: only "sampled" is read
        (f"  00-{TRACE}-{PARENT}-01 ", (TRACE, PARENT, True)),
        (f"01-{TRACE}-{PARENT}-01-later-fields", (TRACE, PARENT, True)),  # a later version: its first four fields
        (f"00-{TRACE}-{PARENT}-01-extra", None),  # version 00 has exactly four
        (f"ff-{TRACE}-{PARENT}-01", None),  # the forbidden version
        (f"00-{TRACE.upper()}-{PARENT}-01", None),  # hex is lowercase
        (f"00-{'0' * 32}-{PARENT}-01", None),  # all-zero ids are invalid
        (f"00-{TRACE}-{'0' * 16}-01", None),
        (f"00-{TRACE[:-1]}-{PARENT}-01", None),
        (f"00_{TRACE}_{PARENT}_01", None),
        ("", None),
        ("<script>alert(1)</script>" * 3, None),
    ],
)
def test_only_a_valid_traceparent_is_honoured(header: str, expected: tuple[str, str, bool] | None) -> None:
    assert parse_traceparent(header.encode("latin-1")) == expected


def test_a_tracer_continues_the_callers_trace_under_a_new_span() -> None:
    """The caller's trace id, its span as the parent, its sampling decision; our own span id."""
    tracer = Tracer(ratio=0.0)  # the caller decides, whatever the ratio
    before = time.time_ns()
    trace = tracer.begin(f"00-{TRACE}-{PARENT}-01".encode(), 12345)
    trace_id, span_id, parent_id, sampled, wall_ns, perf_ns, stages = trace
    assert (trace_id, parent_id, sampled, perf_ns, stages) == (TRACE, PARENT, True, 12345, None)
    assert len(span_id) == 16 and span_id != PARENT and int(span_id, 16) != 0
    assert before <= wall_ns <= time.time_ns()
    assert Tracer(ratio=1.0).begin(f"00-{TRACE}-{PARENT}-00".encode(), 0)[3] is False
    assert traceparent_header(trace) == f"00-{TRACE}-{span_id}-01".encode()


def test_a_request_without_a_caller_starts_a_new_trace() -> None:
    """A new random trace id (no parent) for each request, also when the header is not valid."""
    tracer = Tracer(ratio=1.0)
    traces = [tracer.begin(None, 0) for _ in range(500)] + [tracer.begin(b"00-garbage", 0)]
    assert len({trace[0] for trace in traces}) == len(traces)
    assert all(len(trace[0]) == 32 and trace[2] is None and trace[3] for trace in traces)
    assert len({trace[1] for trace in traces}) == len(traces)


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.5, 1.0])
def test_the_ratio_is_the_share_of_new_traces_sampled_by_their_low_64_bits(ratio: float) -> None:
    """About `ratio` of new traces are sampled, and each choice is OpenTelemetry's TraceIdRatioBased one."""
    tracer = Tracer(ratio=ratio, seed=7)
    traces = [tracer.begin(None, 0) for _ in range(20_000)]
    sampled = [trace for trace in traces if trace[3]]
    assert abs(len(sampled) / len(traces) - ratio) < 0.015
    bound = round(ratio * 2**64)
    assert all((int(trace[0], 16) & (2**64 - 1) < bound) == trace[3] for trace in traces)


def test_a_ratio_outside_0_to_1_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        Tracer(ratio=1.5)


def test_a_client_trace_is_for_the_log_only() -> None:
    assert client_trace(f"00-{TRACE}-{PARENT}-01".encode()) == (TRACE, "", PARENT, False, 0, 0, None)
    assert client_trace(b"nonsense") is None


def test_stages_are_placed_in_wall_time_and_kept_inside_the_request() -> None:
    """perf_counter_ns stamps become epoch nanoseconds from the request's start; a stage that strays outside the
    request (clock rounding) is clipped to it."""
    wall, perf = 1_800_000_000_000_000_000, 5_000
    stages = (("decode", perf + 1_000, perf + 3_000), ("late", perf + 9_000, perf + 20_000), ("early", 0, perf + 10))
    request = RequestSpan(
        (TRACE, PARENT, None, True, wall, perf, stages), "prod", "POST", "/predict", 200, 10, "r1", False
    )
    assert request.end_ns == wall + 10_000
    assert request.stage_times() == [
        ("decode", wall + 1_000, wall + 3_000),
        ("late", wall + 9_000, wall + 10_000),
        ("early", wall, wall + 10),
    ]
