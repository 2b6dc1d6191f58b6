"""OTLP metrics and traces from a real serve under traffic: a real OTLP/HTTP receiver on 127.0.0.1 decodes what it
gets with the OpenTelemetry project's own protos; the counts match the admin API's and /metrics', the latency
histogram's count and sum match /metrics', and its P95 is within its documented error of the admin API's; the
spans carry the clients' traceparent trace ids, with the bundled app's stages as child spans, and the log entries
show the same ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from helpers import run_server, wait_until
from otlp_receiver import OtlpReceiver, attributes, histogram, percentile, resource, total
from yolowatch.demo.traffic import upload_for
from yolowatch.otlp import quantile_error


def _prometheus(base: str) -> dict[str, float]:
    """The deployment's request count, duration sum and count, and detections from /metrics."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(requests.get(f"{base}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.labels.get("deployment") != "otel":
                continue
            if sample.name in ("yolowatch_request_duration_seconds_sum", "yolowatch_request_duration_seconds_count"):
                values[sample.name] = sample.value
            elif sample.name in ("yolowatch_requests_total", "yolowatch_detections_total"):
                values[sample.name] = values.get(sample.name, 0) + sample.value
    return values


CLIENT_TRACE = "{:04d}2f3577b34da6a3ce929d0e0e4736"  # a client's trace id, one per request index
CLIENT_SPAN = "00f067aa0ba902b7"
STAGES = ["upload", "decode", "image properties", "queue", "preprocess", "inference", "postprocess"]


def _traceparent(index: int) -> dict[str, str]:
    """Requests 0, 1 (not sampled by its client), 100 (refused) and 2-5 come in a client's trace; others in none."""
    if index in (0, 2, 3, 4, 5, 100):
        return {"traceparent": f"00-{CLIENT_TRACE.format(index)}-{CLIENT_SPAN}-01"}
    if index == 1:
        return {"traceparent": f"00-{CLIENT_TRACE.format(index)}-{CLIENT_SPAN}-00"}
    return {}


def _check_traces(spans: list[Any], logged: dict[str, Any]) -> None:
    """Each client's trace: the serve's span is its span's child, the app's stages in order inside it; the log
    entry of the request shows the client's trace id; a request that started its own trace has its own id."""
    servers = [span for span in spans if span.kind == span.SPAN_KIND_SERVER]
    children: dict[bytes, list[Any]] = {}
    for span in spans:
        if span.kind == span.SPAN_KIND_INTERNAL:
            children.setdefault(span.parent_span_id, []).append(span)
    by_trace = {span.trace_id.hex(): span for span in servers}
    assert len(by_trace) == len(servers)  # the requests without a client's trace each started a new one
    for index in (0, 2, 3, 4, 5, 100):
        server = by_trace[CLIENT_TRACE.format(index)]
        assert server.parent_span_id.hex() == CLIENT_SPAN and server.name == "POST /predict"
        status = attributes(server.attributes)["http.response.status_code"]
        stages = sorted(children.get(server.span_id, []), key=lambda span: span.start_time_unix_nano)
        if index == 100:  # refused before any stage
            assert status >= 400 and stages == []
            continue
        assert status == 200 and attributes(server.attributes)["yolowatch.detections"] >= 0
        assert [span.name for span in stages] == STAGES
        assert all(
            server.start_time_unix_nano <= span.start_time_unix_nano <= span.end_time_unix_nano
            <= server.end_time_unix_nano for span in stages
        )  # fmt: skip
        assert stages[-1].end_time_unix_nano - stages[0].start_time_unix_nano > 1_000_000  # real work: over 1 ms
    assert CLIENT_TRACE.format(1) not in by_trace  # its client did not sample it
    for trace_id, page in logged.items():
        (entry,) = page["entries"]
        assert entry["traceId"] == trace_id
        assert entry["status"] == (200 if trace_id != CLIENT_TRACE.format(100) else entry["status"])


@pytest.mark.slow
def test_a_serve_exports_what_it_records(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver:
        args = ["--deployment", "otel", "--otlp-endpoint", receiver.endpoint, "--otlp-interval", "0.5", "--otlp-traces"]
        with run_server(args) as base:
            sent = bad = 0
            for index in range(40):
                name, data, kind = upload_for("normal", index)
                answer = requests.post(f"{base}/predict", files={"file": (name, data, kind)}, data={"imgsz": "320"},
                                       headers=_traceparent(index), timeout=30)  # fmt: skip
                assert answer.status_code == 200
                sent += 1
            for index in range(6):  # refused: 4xx, counted as errors
                name, data, kind = upload_for("malformed", index)
                upload = {"file": (name, data, kind)}
                answer = requests.post(f"{base}/predict", files=upload, headers=_traceparent(index + 100), timeout=30)
                assert answer.status_code >= 400
                bad += 1
            summary = wait_until(
                lambda: requests.get(f"{base}/api/deployments/otel/metrics?range=1h", timeout=10).json()["summary"],
                "every request stored",
                accept=lambda s: s["requests"] == sent + bad,
            )
            prometheus = _prometheus(base)
            export = receiver.wait_for(
                lambda r: (
                    total(r, "yolowatch.requests") == sent + bad
                    and histogram(r, "yolowatch.request.duration").count == sent + bad
                ),
                f"{sent + bad} requests",
            )
            logged = {
                trace_id: requests.get(f"{base}/api/deployments/otel/logs?traceId={trace_id}", timeout=10).json()
                for trace_id in (CLIENT_TRACE.format(0), CLIENT_TRACE.format(100), CLIENT_TRACE.format(1))
            }
            # Every request but the one its client did not sample: a server span each.
            spans = receiver.wait_for_spans(
                lambda found: sum(span.kind == span.SPAN_KIND_SERVER for span in found) == sent + bad - 1,
                "a server span for each sampled request",
            )
    assert resource(export)["service.name"] == "yolowatch" and resource(export)["yolowatch.deployment"] == "otel"
    assert resource(export)["host.name"]
    assert total(export, "yolowatch.requests", status_class="2xx") == sent
    assert total(export, "yolowatch.errors") == bad == summary["clientErrors"] + summary["serverErrors"]
    assert total(export, "yolowatch.detections") == prometheus["yolowatch_detections_total"] > 0
    point = histogram(export, "yolowatch.request.duration")
    assert point.count == prometheus["yolowatch_request_duration_seconds_count"] == sent + bad
    assert point.sum == pytest.approx(prometheus["yolowatch_request_duration_seconds_sum"], rel=1e-6)
    _check_traces(spans, logged)
    # P95 from the exponential buckets against the admin API's (HDR, under 1 % error): within both errors.
    exported_ms = percentile(point, 95) * 1000
    allowed = quantile_error(point.scale) + 0.01
    assert exported_ms == pytest.approx(summary["p95Ms"], rel=allowed), (exported_ms, summary["p95Ms"], point.scale)
