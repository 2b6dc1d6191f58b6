"""OTLP metrics from a real serve under traffic: a real OTLP/HTTP receiver on 127.0.0.1 decodes what it gets with
the OpenTelemetry project's own protos; the counts match the admin API's and /metrics', the latency histogram's
count and sum match /metrics', and its P95 is within its documented error of the admin API's."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from helpers import run_server, wait_until
from otlp_receiver import OtlpReceiver, histogram, percentile, resource, total
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


@pytest.mark.slow
def test_a_serve_exports_what_it_records(tmp_path: Path) -> None:
    with OtlpReceiver() as receiver:
        args = ["--deployment", "otel", "--otlp-endpoint", receiver.endpoint, "--otlp-interval", "0.5"]
        with run_server(args) as base:
            sent = bad = 0
            for index in range(40):
                name, data, kind = upload_for("normal", index)
                answer = requests.post(f"{base}/predict", files={"file": (name, data, kind)},
                                       data={"imgsz": "320"}, timeout=30)  # fmt: skip
                assert answer.status_code == 200
                sent += 1
            for index in range(6):  # refused: 4xx, counted as errors
                name, data, kind = upload_for("malformed", index)
                assert (
                    requests.post(f"{base}/predict", files={"file": (name, data, kind)}, timeout=30).status_code >= 400
                )
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
    assert resource(export)["service.name"] == "yolowatch" and resource(export)["yolowatch.deployment"] == "otel"
    assert resource(export)["host.name"]
    assert total(export, "yolowatch.requests", status_class="2xx") == sent
    assert total(export, "yolowatch.errors") == bad == summary["clientErrors"] + summary["serverErrors"]
    assert total(export, "yolowatch.detections") == prometheus["yolowatch_detections_total"] > 0
    point = histogram(export, "yolowatch.request.duration")
    assert point.count == prometheus["yolowatch_request_duration_seconds_count"] == sent + bad
    assert point.sum == pytest.approx(prometheus["yolowatch_request_duration_seconds_sum"], rel=1e-6)
    # P95 from the exponential buckets against the admin API's (HDR, under 1 % error): within both errors.
    exported_ms = percentile(point, 95) * 1000
    allowed = quantile_error(point.scale) + 0.01
    assert exported_ms == pytest.approx(summary["p95Ms"], rel=allowed), (exported_ms, summary["p95Ms"], point.scale)
