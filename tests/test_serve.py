"""`yolowatch serve` as a user runs it: real uvicorn processes on 127.0.0.1 with the real model (one of them
watched by the network guard), and the admin API's smoke tests where the process and the network matter."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from helpers import run_server, wait_until
from images import shapes_jpeg, ultralytics_asset
from yolowatch.demo.shapes import sample_image

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).parents[1] / "examples" / "shapes.jpg"
KEY = "test-admin-key-7f3c"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One server for the module, started under the network guard; yields (base URL, violations file)."""
    violations = tmp_path_factory.mktemp("netguard") / "violations.txt"
    with run_server(["--max-upload-mb", "1"], violations=violations) as base_url:
        yield base_url, violations


def test_predicts_shapes_and_real_photos(served: tuple[str, Path]) -> None:
    """A shapes image, bus.jpg and zidane.jpg all get detections JSON over real HTTP."""
    base_url, _ = served
    for name, data in [
        ("shapes.jpg", shapes_jpeg(3)[0]),
        ("bus.jpg", ultralytics_asset("bus.jpg").read_bytes()),
        ("zidane.jpg", ultralytics_asset("zidane.jpg").read_bytes()),
    ]:
        response = httpx.post(f"{base_url}/predict", files={"file": (name, data)}, data={"conf": "0.25"}, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["images"][0]["shape"][0] > 0
    shapes = httpx.post(f"{base_url}/predict", files={"file": ("s.jpg", shapes_jpeg(3)[0])}, timeout=60).json()
    assert shapes["images"][0]["results"], "shapes image should have detections"


def test_concurrent_requests_get_the_same_answers_as_sequential(served: tuple[str, Path]) -> None:
    """Eight requests in flight at once give exactly the detections each gets alone (one model, one thread)."""
    base_url, _ = served
    images = [shapes_jpeg(i)[0] for i in range(8)]

    def results(body: dict) -> list:
        return body["images"][0]["results"]

    sequential = [
        results(httpx.post(f"{base_url}/predict", files={"file": ("a.jpg", d)}, timeout=60).json()) for d in images
    ]

    async def all_at_once() -> list:
        async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
            responses = await asyncio.gather(*(client.post("/predict", files={"file": ("a.jpg", d)}) for d in images))
        return [results(r.json()) for r in responses]

    assert asyncio.run(all_at_once()) == sequential


def test_chunked_oversized_upload_is_cut_off(served: tuple[str, Path]) -> None:
    """An upload with no Content-Length that passes the 1 MiB limit is refused with 413 while streaming."""
    base_url, _ = served
    boundary = "yolowatchboundary"

    def body() -> Iterator[bytes]:
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n\r\n'.encode()
        for _ in range(64):  # 4 MiB in 64 KiB chunks
            yield b"\xff" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    response = httpx.post(f"{base_url}/predict", content=body(), headers=headers, timeout=60)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]
    assert httpx.get(f"{base_url}/health", timeout=10).status_code == 200


def test_serving_opened_no_outside_connection(served: tuple[str, Path]) -> None:
    """Start-up, model load and predictions made no DNS lookup or connection beyond loopback."""
    base_url, violations = served
    assert (
        httpx.post(f"{base_url}/predict", files={"file": ("a.jpg", shapes_jpeg(0)[0])}, timeout=60).status_code == 200
    )
    assert not violations.exists() or violations.read_text() == ""


def test_health_routes_and_the_registered_deployment(served: tuple[str, Path]) -> None:
    """/health answers the first probe's tiny inference (not the model's load), Check now probes again, and the
    deployment is registered with the model's name and its predict endpoint."""
    base_url, _ = served
    own = requests.get(f"{base_url}/health", timeout=10)
    assert own.status_code == 200
    body = own.json()
    assert body["healthy"] is True and body["status"] == 200 and body["latencyMs"] > 0 and body["lastError"] is None
    assert body["latencyMs"] < 1000  # the first probe's tiny inference only: the model's load (seconds) is not counted
    before = requests.get(f"{base_url}/api/deployments/demo/health", timeout=10).json()["checkedAt"]
    checked = requests.post(f"{base_url}/api/deployments/demo/health/check", timeout=60).json()
    assert checked["healthy"] is True and checked["checkedAt"] > before
    one = requests.get(f"{base_url}/api/deployments/demo", timeout=10).json()
    assert one["model"] == "shapes-yolo.pt" and one["endpoint"].endswith("/predict") and one["state"] == "active"


def test_readme_curl_example_against_serve(served: tuple[str, Path]) -> None:
    """The README's `curl -F` line, as a user would paste it, gets detections from the bundled model."""
    base_url, _ = served
    result = subprocess.run(
        ["curl", "-sS", "-F", f"file=@{EXAMPLE}", "-F", "conf=0.25", f"{base_url}/predict"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    body = json.loads(result.stdout)
    assert body["images"][0]["results"] and body["metadata"]["model"] == "shapes-yolo.pt"


def _requests_total(base_url: str) -> float:
    """The sum of every yolowatch_requests_total sample that /metrics shows."""
    text = requests.get(f"{base_url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "yolowatch_requests_total"
    )


def test_keys_guard_the_admin_api_and_never_reach_logs_or_database(tmp_path: Path) -> None:
    """A keyed serve refuses the admin API without its key and takes it with it, leaves /health, /metrics and the
    predict route open, counts only the predict request as traffic, and writes the key to neither its log nor its
    database."""
    db, output = tmp_path / "keyed.db", tmp_path / "server.log"
    auth = {"Authorization": f"Bearer {KEY}"}
    with run_server(["--db", str(db), "--log-level", "debug"], env={"YOLOWATCH_API_KEY": KEY}, output=output) as base:
        url = f"{base}/api/monitoring"
        missing = requests.get(url, timeout=10)
        assert missing.status_code == 401 and "Bearer" in missing.json()["error"]
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = requests.get(url, headers={"Authorization": "Bearer not-the-key"}, timeout=10)
        assert wrong.status_code == 401
        assert requests.get(url, headers=auth, timeout=10).status_code == 200
        assert requests.get(f"{base}/health", timeout=10).status_code == 200  # probes need no key
        assert requests.get(f"{base}/metrics", timeout=10).status_code == 200  # open unless closed by a setting
        with EXAMPLE.open("rb") as image:
            ok = requests.post(f"{base}/predict", files={"file": image}, headers=auth, timeout=60)
        assert ok.status_code == 200  # the predict route has no key of its own unless one is set
        wait_until(
            lambda: requests.get(f"{base}/api/deployments/demo/logs", headers=auth, timeout=10).json()["entries"],
            "the predict request's log entry to be written",
        )
        overview = requests.get(url, headers=auth, timeout=10).json()
        assert overview["totalRequests"] == 1  # probes, /metrics and admin calls are not the deployment's traffic
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("keyed.db*"))
    assert stored and KEY.encode() not in stored
    assert KEY not in output.read_text()
    assert "yolowatch: uvloop event loop, httptools HTTP parser" in output.read_text()  # the stack, named at start
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT count(*) FROM logs").fetchone()[0] >= 1


def test_predict_key_guards_predict_only(serve: Callable[..., str]) -> None:
    """With a predict key set, /predict answers 401 without it and 200 with it, while the admin API stays open."""
    base = serve(env={"YOLOWATCH_PREDICT_API_KEY": "predict-key"})
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


def test_serve_with_two_workers_counts_every_request_once(serve: Callable[..., str], tmp_path: Path) -> None:
    """`serve --workers 2`: two processes, one port, one database; the API and /metrics add both up."""
    db = tmp_path / "workers.db"
    base = serve("--db", str(db), "--workers", "2")
    image = sample_image(1, "val", 1)[0]
    served_by: set[str] = set()
    sent = 0

    def both_workers_answered() -> bool:
        """Send one prediction; true once ten were sent and both workers have answered one."""
        nonlocal sent
        response = requests.post(f"{base}/predict", files={"file": ("s.jpg", image)}, timeout=60)
        sent += 1  # every answer counts as traffic, a 503 of a worker still loading its model too
        if response.status_code != 503:
            assert response.status_code == 200
            served_by.add(response.headers["x-request-id"][:12])  # request ids start with a per-process prefix
        return sent >= 10 and len(served_by) == 2

    wait_until(both_workers_answered, "both workers to answer", timeout_s=60, every_s=0.1)
    overview = wait_until(
        lambda: requests.get(f"{base}/api/monitoring", timeout=10).json(),
        f"{sent} requests in the overview",
        accept=lambda overview: overview["totalRequests"] >= sent,
    )
    assert overview["totalRequests"] == sent
    total = wait_until(
        lambda: _requests_total(base), f"{sent} requests in /metrics", accept=lambda total: total >= sent
    )
    assert total == sent
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT count(DISTINCT writer) FROM process_totals").fetchone()[0] == 2


def test_the_api_conforms_to_its_openapi_document(serve: Callable[..., str], tmp_path: Path) -> None:
    """schemathesis builds requests from /api/openapi.json (valid and invalid parameters, odd path values, odd
    bodies, stateful sequences; fixed seed) and sends them to a real serve with an admin key: no answer is a
    server error, every status, content type and body is the one the document gives, and every keyed route
    refuses a request without the key."""
    base = serve("--db", str(tmp_path / "fuzz.db"), env={"YOLOWATCH_API_KEY": KEY})
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
