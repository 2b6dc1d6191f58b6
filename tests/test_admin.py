"""The admin API, /health and /metrics of a real `yolowatch serve` (real model, real SQLite) on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Route

from conftest import run_server
from yolowatch.admin import admin_router
from yolowatch.admin.routes import admin_document
from yolowatch.demo.shapes import sample_image
from yolowatch.store import Store

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).parents[1] / "examples" / "shapes.jpg"
KEY = "test-admin-key-7f3c"


def _predict(base: str, **data: str) -> requests.Response:
    with EXAMPLE.open("rb") as image:
        return requests.post(f"{base}/predict", files={"file": image}, data=data, timeout=60)


def _flushed(base: str, expected_requests: int, headers: dict[str, str] | None = None) -> dict:
    """The overview once the writer has stored `expected_requests` (it writes about once a second)."""
    deadline = time.monotonic() + 15
    while True:
        overview = requests.get(f"{base}/api/monitoring", headers=headers, timeout=10).json()
        if overview["totalRequests"] >= expected_requests or time.monotonic() > deadline:
            return overview
        time.sleep(0.3)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One open server with known traffic: 6 good predictions, 2 refused uploads."""
    db = tmp_path_factory.mktemp("admin") / "admin.db"
    with run_server(["--db", str(db), "--region", "test-region"]) as base:
        for conf in ("0.25", "0.5", "0.25", "0.6", "0.25", "0.3"):
            assert _predict(base, conf=conf).status_code == 200
        for _ in range(2):
            refused = requests.post(f"{base}/predict", files={"file": ("a.txt", b"not an image")}, timeout=30)
            assert refused.status_code == 415
        yield base, db


def test_overview_counts_the_predict_traffic_only(served: tuple[str, Path]) -> None:
    base, _ = served
    requests.get(f"{base}/health", timeout=10)  # probes and admin calls are not the deployment's traffic
    overview = _flushed(base, 8)
    assert overview["totalRequests"] == 8
    assert overview["errorRate"] == pytest.approx(2 / 8)
    assert overview["activeDeployments"] == 1 and overview["p95LatencyMs"] > 0
    (row,) = overview["deployments"]
    assert (row["name"], row["region"], row["requests"]) == ("demo", "test-region", 8)
    assert row["status"] == "critical"  # 25 % errors in the latest hour is past the 10 % threshold
    assert row["health"]["healthy"] is True


def test_deployments_and_unknown_ones(served: tuple[str, Path]) -> None:
    base, _ = served
    listed = requests.get(f"{base}/api/deployments", timeout=10).json()["deployments"]
    assert [d["id"] for d in listed] == ["demo"]
    one = requests.get(f"{base}/api/deployments/demo", timeout=10).json()
    assert one["model"] == "shapes-yolo.pt" and one["endpoint"].endswith("/predict") and one["state"] == "active"
    missing = requests.get(f"{base}/api/deployments/nope/metrics", timeout=10)
    assert missing.status_code == 404 and "known: demo" in missing.json()["error"]


def test_metrics_summary_and_sparkline(served: tuple[str, Path]) -> None:
    base, _ = served
    _flushed(base, 8)
    body = requests.get(f"{base}/api/deployments/demo/metrics?range=1h&sparkline=true", timeout=10).json()
    summary = body["summary"]
    assert summary["requests"] == 8 and summary["clientErrors"] == 2 and summary["serverErrors"] == 0
    assert 0 < summary["p50Ms"] <= summary["p95Ms"] <= summary["p99Ms"]
    assert summary["detectionsPerRequest"] > 0 and 0 < summary["meanConfidence"] <= 1
    assert summary["healthState"] == "critical"
    points = body["sparkline"]
    assert len(points) == 60 and sum(p["requests"] for p in points) == 8
    assert set(points[0]) == {
        "time",
        "requests",
        "errorRate",
        "p50Ms",
        "p95Ms",
        "p99Ms",
        "detectionsPerRequest",
        "meanConfidence",
    }
    without = requests.get(f"{base}/api/deployments/demo/metrics", timeout=10).json()
    assert without["range"] == "24h" and "sparkline" not in without


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("metrics?range=2h", "range must be one of 1h, 6h, 24h, 7d, 30d"),
        ("metrics?sparkline=maybe", "sparkline must be true/false, 1/0, yes/no or on/off"),
        ("logs?limit=0", "limit must be an integer from 1 to 200"),
        ("logs?limit=500", "limit must be an integer from 1 to 200"),
        ("logs?limit=ten", "limit must be an integer from 1 to 200"),
        ("logs?severity=ERROR,LOUD", "unknown severity LOUD"),
        ("logs?pageToken=garbage", "pageToken is not valid"),
        ("logs?pageToken=abc.%C3%A9t%C3%A9", "pageToken is not valid"),  # non-ASCII: found by schemathesis (a 500)
        ("drift?baselineStart=5", "together"),
    ],
)
def test_bad_parameters_say_what_is_allowed(served: tuple[str, Path], query: str, expected: str) -> None:
    base, _ = served
    response = requests.get(f"{base}/api/deployments/demo/{query}", timeout=10)
    assert response.status_code == 400
    assert expected in response.json()["error"]


def test_logs_page_with_opaque_tokens_and_filter(served: tuple[str, Path]) -> None:
    base, _ = served
    _flushed(base, 8)
    seen, token, pages = [], None, 0
    while True:
        params = {"limit": "3", **({"pageToken": token} if token else {})}
        page = requests.get(f"{base}/api/deployments/demo/logs", params=params, timeout=10).json()
        seen += page["entries"]
        pages += 1
        token = page["nextPageToken"]
        if token is None:
            break
    assert pages == 3 and len(seen) == 8 and len({e["id"] for e in seen}) == 8
    assert [e["timestampMs"] for e in seen] == sorted((e["timestampMs"] for e in seen), reverse=True)
    warnings = requests.get(f"{base}/api/deployments/demo/logs?severity=warning", timeout=10).json()["entries"]
    assert [e["status"] for e in warnings] == [415, 415] and {e["severity"] for e in warnings} == {"WARNING"}
    assert warnings[0]["message"].startswith("POST /predict 415")


def test_forged_and_foreign_page_tokens_are_refused(served: tuple[str, Path]) -> None:
    base, _ = served
    _flushed(base, 8)
    url = f"{base}/api/deployments/demo/logs"
    token = requests.get(url, params={"limit": "2"}, timeout=10).json()["nextPageToken"]
    body, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["i"] += 1000  # move the cursor, keep the old signature
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=") + "." + signature
    refused = requests.get(url, params={"pageToken": forged}, timeout=10)
    assert refused.status_code == 400 and "not valid" in refused.json()["error"]
    foreign = requests.get(url, params={"pageToken": token, "severity": "ERROR"}, timeout=10)
    assert foreign.status_code == 400 and "another query" in foreign.json()["error"]


def test_health_routes(served: tuple[str, Path]) -> None:
    base, _ = served
    own = requests.get(f"{base}/health", timeout=10)
    assert own.status_code == 200
    body = own.json()
    assert body["healthy"] is True and body["status"] == 200 and body["latencyMs"] > 0 and body["lastError"] is None
    assert body["latencyMs"] < 1000  # the first probe's tiny inference only: the model's load (seconds) is not counted
    before = requests.get(f"{base}/api/deployments/demo/health", timeout=10).json()["checkedAt"]
    checked = requests.post(f"{base}/api/deployments/demo/health/check", timeout=60).json()
    assert checked["healthy"] is True and checked["checkedAt"] > before


def test_prometheus_metrics_parse_and_add_up(served: tuple[str, Path]) -> None:
    base, _ = served
    _flushed(base, 8)
    time.sleep(1.5)  # the process totals are written with the next flush
    response = requests.get(f"{base}/metrics", timeout=10)
    assert response.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    requests_by_class = {
        s.labels["status_class"]: s.value
        for s in families["yolowatch_requests"].samples
        if s.name == "yolowatch_requests_total"
    }
    assert requests_by_class["2xx"] == 6 and requests_by_class["4xx"] == 2
    duration = {
        s.name: s.value
        for s in families["yolowatch_request_duration_seconds"].samples
        if s.labels.get("le") in (None, "+Inf")
    }
    assert duration["yolowatch_request_duration_seconds_count"] == 8
    assert duration["yolowatch_request_duration_seconds_sum"] > 0
    detections = families["yolowatch_detections"].samples[0].value
    assert detections > 0
    up = families["yolowatch_health_up"].samples[0]
    assert up.labels == {"deployment": "demo"} and up.value == 1.0


def test_openapi_document_lists_every_route_and_method(served: tuple[str, Path]) -> None:
    """The document the server gives describes every admin route with every method it answers, and /health."""
    base, _ = served
    document = requests.get(f"{base}/api/openapi.json", timeout=10).json()
    assert document["openapi"] == "3.1.0" and "/health" in document["paths"]
    for route in admin_router(Store(Path("/nonexistent/unused.db"))).routes:
        if isinstance(route, Route) and (route.path.startswith("/api/") or route.path == "/metrics"):
            for method in (route.methods or set()) - {"HEAD"}:
                assert method.lower() in document["paths"].get(route.path, {}), (method, route.path)


def test_openapi_document_names_the_statuses_the_handlers_answer() -> None:
    """Regression (the hand-written document listed 200/400/401/404 everywhere): rule creation documents 201 and
    409, deletion 204, 404 and 409, drift 409 and 501, and the deployment lists take ?archived=."""
    document = admin_document()
    paths = document["paths"]

    def statuses(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert statuses("/api/alerts/rules", "post") == {"201", "400", "401", "409"}
    assert statuses("/api/alerts/rules/{name}", "delete") == {"204", "401", "404", "409"}
    assert {"409", "501"} <= statuses("/api/deployments/{deployment}/drift", "get")
    assert statuses("/api/deployments/{deployment}/health/check", "post") == {"200", "401", "404", "409"}
    for path in ("/api/monitoring", "/api/deployments"):
        assert [p["name"] for p in paths[path]["get"]["parameters"]] == ["archived"]
    assert "204" in statuses("/api/alerts/rules/{name}", "delete")
    assert "content" not in paths["/api/alerts/rules/{name}"]["delete"]["responses"]["204"]
    assert paths["/health"]["get"]["security"] == [] and set(paths["/health"]["get"]["responses"]) == {"200", "503"}


def test_keys_guard_the_admin_api_and_never_reach_logs_or_database(tmp_path: Path) -> None:
    db, output = tmp_path / "keyed.db", tmp_path / "server.log"
    with run_server(["--db", str(db), "--log-level", "debug"], env={"YOLOWATCH_API_KEY": KEY}, output=output) as base:
        url = f"{base}/api/monitoring"
        missing = requests.get(url, timeout=10)
        assert missing.status_code == 401 and "Bearer" in missing.json()["error"]
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = requests.get(url, headers={"Authorization": "Bearer not-the-key"}, timeout=10)
        assert wrong.status_code == 401
        assert requests.get(url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10).status_code == 200
        assert requests.get(f"{base}/health", timeout=10).status_code == 200  # probes need no key
        assert requests.get(f"{base}/metrics", timeout=10).status_code == 200  # open unless closed by a setting
        with EXAMPLE.open("rb") as image:
            ok = requests.post(
                f"{base}/predict", files={"file": image}, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
            )
        assert ok.status_code == 200  # the predict route has no key of its own unless one is set
        _flushed(base, 1, headers={"Authorization": f"Bearer {KEY}"})
        time.sleep(1.5)
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("keyed.db*"))
    assert stored and KEY.encode() not in stored
    assert KEY not in output.read_text()
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT count(*) FROM logs").fetchone()[0] >= 1


def test_predict_key_guards_predict_only(tmp_path: Path) -> None:
    with run_server(["--db", str(tmp_path / "p.db")], env={"YOLOWATCH_PREDICT_API_KEY": "predict-key"}) as base:
        image = sample_image(0, "val", 1)[0]
        refused = requests.post(f"{base}/predict", files={"file": ("s.jpg", image)}, timeout=60)
        assert refused.status_code == 401 and "predict needs an API key" in refused.json()["error"]
        accepted = requests.post(
            f"{base}/predict",
            files={"file": ("s.jpg", image)},
            headers={"Authorization": "Bearer predict-key"},
            timeout=60,
        )
        assert accepted.status_code == 200
        assert requests.get(f"{base}/api/deployments", timeout=10).status_code == 200  # admin stays open


@pytest.mark.parametrize(
    "command", [["serve"], ["sidecar", "--upstream", "http://127.0.0.1:9"]], ids=["serve", "sidecar"]
)
def test_public_address_without_a_key_is_refused(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "yolowatch", *command, "--host", "0.0.0.0", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "YOLOWATCH_API_KEY": ""},
    )
    assert result.returncode == 2
    assert "refusing to bind 0.0.0.0 with no admin API key" in result.stderr and "--allow-no-auth" in result.stderr


def test_sidecar_refuses_a_bad_upstream_and_one_port_for_both() -> None:
    base = [sys.executable, "-m", "yolowatch", "sidecar"]
    bad = subprocess.run([*base, "--upstream", "ftp://x"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "must be an http(s) URL" in bad.stderr
    same = subprocess.run(
        [*base, "--upstream", "http://127.0.0.1:9", "--port", "8100", "--admin-port", "8100"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert same.returncode == 2 and "different ports" in same.stderr


def test_readme_curl_example_against_serve(served: tuple[str, Path]) -> None:
    """The README's `curl -F` line, as a user would paste it (this test runs last: it adds traffic)."""
    base, _ = served
    result = subprocess.run(
        ["curl", "-sS", "-F", f"file=@{EXAMPLE}", "-F", "conf=0.25", f"{base}/predict"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    body = json.loads(result.stdout)
    assert body["images"][0]["results"] and body["metadata"]["model"] == "shapes-yolo.pt"


def test_serve_with_two_workers_counts_every_request_once(tmp_path: Path) -> None:
    """`serve --workers 2`: two processes, one port, one database; the API and /metrics add both up."""
    db = tmp_path / "workers.db"
    with run_server(["--db", str(db), "--workers", "2"]) as base:
        image = sample_image(1, "val", 1)[0]
        served_by: set[str] = set()
        sent = 0
        while sent < 10 or (len(served_by) < 2 and sent < 80):  # until both workers have answered
            response = requests.post(f"{base}/predict", files={"file": ("s.jpg", image)}, timeout=60)
            sent += 1  # every answer counts as traffic, a 503 of a worker still loading its model too
            if response.status_code == 503:
                time.sleep(0.25)
                continue
            assert response.status_code == 200
            served_by.add(response.headers["x-request-id"][:12])  # request ids start with a per-process prefix
        assert len(served_by) == 2
        assert _flushed(base, sent)["totalRequests"] == sent
        deadline = time.monotonic() + 15
        while True:
            text = requests.get(f"{base}/metrics", timeout=10).text
            total = sum(
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "yolowatch_requests_total"
            )
            if total >= sent or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert total == sent
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT count(DISTINCT writer) FROM process_totals").fetchone()[0] == 2


def test_the_api_conforms_to_its_openapi_document(tmp_path: Path) -> None:
    """schemathesis builds requests from /api/openapi.json (valid and invalid parameters, odd path values, odd
    bodies, stateful sequences; fixed seed) and sends them to a real serve with an admin key: no answer is a
    server error, every status, content type and body is the one the document gives, and every keyed route
    refuses a request without the key."""
    with run_server(["--db", str(tmp_path / "fuzz.db")], env={"YOLOWATCH_API_KEY": KEY}) as base:
        with EXAMPLE.open("rb") as image:
            assert requests.post(f"{base}/predict", files={"file": image}, timeout=60).status_code == 200
        checks = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
        result = subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "run", f"{base}/api/openapi.json", "--url", base,
             "--checks", f"{checks},ignored_auth", "-H", f"Authorization: Bearer {KEY}",
             "--max-examples", "25", "--seed", "7", "--no-color"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:]
        generated = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
        assert generated and int(generated.group(1)) == int(generated.group(2)) > 300, result.stdout[-1500:]
        assert requests.get(f"{base}/health", timeout=10).status_code == 200  # and the server is still up
