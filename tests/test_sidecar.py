"""`yolowatch sidecar` in front of separate upstream processes, everything over real sockets on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from helpers import free_port, running, stop_process, upstream_command, wait_until

pytestmark = pytest.mark.slow

TESTS = Path(__file__).parent
EXAMPLE = TESTS.parent / "examples" / "shapes.jpg"
FAST_HEALTH = {"YOLOWATCH_HEALTH_INTERVAL_S": "0.3", "YOLOWATCH_HEALTH_RETRY_S": "0.3"}


def _sidecar(upstream: str, port: int, admin_port: int, db: Path, *extra: str) -> list[str]:
    """The command of `yolowatch sidecar` for deployment 'edge' in front of `upstream`."""
    return [sys.executable, "-m", "yolowatch", "sidecar", "--upstream", upstream, "--port", str(port),
            "--admin-port", str(admin_port), "--db", str(db), "--deployment", "edge", *extra]  # fmt: skip


class Sidecar:
    """A running sidecar: its traffic and admin base URLs, its process, and the upstream's process and port."""

    def __init__(
        self,
        traffic: str,
        admin: str,
        process: subprocess.Popen[bytes],
        upstream: subprocess.Popen[bytes],
        upstream_port: int,
    ) -> None:
        self.traffic, self.admin, self.process = traffic, admin, process
        self.upstream, self.upstream_port = upstream, upstream_port

    def wait_for(self, path: str, check: Callable[[requests.Response], bool]) -> requests.Response:
        """The first answer of the admin port's `path` that passes `check` (the sidecar writes once a second and
        probes every 0.3 s)."""
        return wait_until(
            lambda: requests.get(f"{self.admin}{path}", timeout=10), f"{path} to answer as expected", accept=check
        )


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    """A sidecar (1 s upstream timeout, fast health checks) in front of tests/upstream_app.py."""
    upstream_port, port, admin_port = free_port(), free_port(), free_port()
    with running(upstream_command(upstream_port), f"http://127.0.0.1:{upstream_port}/health") as upstream:
        command = _sidecar(f"http://127.0.0.1:{upstream_port}", port, admin_port, tmp_path / "s.db", "--timeout-s", "1")
        with running(command, f"http://127.0.0.1:{admin_port}/health", env=FAST_HEALTH) as process:
            traffic, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
            yield Sidecar(traffic, admin, process, upstream, upstream_port)


def test_results_statuses_and_headers_pass_through(sidecar: Sidecar) -> None:
    """Bodies, statuses, headers, methods, query strings and streams pass through unchanged; the upstream's own
    /health and /api paths stay the upstream's."""
    with EXAMPLE.open("rb") as image:
        response = requests.post(f"{sidecar.traffic}/predict", files={"file": image}, data={"conf": "0.4"}, timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert body["received"] == {"bytes": EXAMPLE.stat().st_size, "conf": "0.4"}
    assert len(body["images"][0]["results"]) == 2
    assert response.headers["x-upstream"] == "yes" and response.headers["set-cookie"].startswith("session=abc")
    assert response.headers["x-request-id"]
    echoed = requests.delete(f"{sidecar.traffic}/echo/a/b?x=1&y=%20z", headers={"X-Custom": "kept"}, timeout=10)
    seen = echoed.json()
    assert (seen["method"], seen["path"], seen["query"]) == ("DELETE", "/echo/a/b", "x=1&y=%20z")
    assert seen["headers"]["x-custom"] == "kept" and seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert "proxy-connection" not in seen["headers"]
    missing = requests.get(f"{sidecar.traffic}/nowhere", timeout=10)
    assert missing.status_code == 404  # the upstream's own 404, passed through
    # The upstream's own /health and /api/... are the upstream's: nothing of the sidecar's shadows them.
    assert requests.get(f"{sidecar.traffic}/health", timeout=10).json() == {"upstream": "ok"}
    assert requests.get(f"{sidecar.traffic}/api/thing", timeout=10).json()["path"] == "/api/thing"
    streamed = requests.get(f"{sidecar.traffic}/stream", timeout=10, stream=True)
    assert b"".join(streamed.iter_content(None)) == b"chunk 0\nchunk 1\nchunk 2\n"


def test_detections_from_the_upstream_are_recorded(sidecar: Sidecar) -> None:
    """The upstream's detections are recorded and shown by the admin port, which serves nothing else."""
    for _ in range(3):
        with EXAMPLE.open("rb") as image:
            assert requests.post(f"{sidecar.traffic}/predict", files={"file": image}, timeout=30).status_code == 200
    metrics = sidecar.wait_for(
        "/api/deployments/edge/metrics?range=1h", lambda r: r.json()["summary"]["requests"] >= 3
    ).json()["summary"]
    assert metrics["requests"] == 3 and metrics["detectionsPerRequest"] == 2.0
    assert metrics["meanConfidence"] == pytest.approx(0.75)
    assert requests.get(f"{sidecar.admin}/nowhere", timeout=10).status_code == 404  # admin port: admin only


def test_a_large_upload_streams_through_without_being_held(sidecar: Sidecar) -> None:
    """64 MiB sent in chunks arrives whole; the sidecar's peak memory grows by far less than the upload."""
    chunk = hashlib.sha256(b"seed").digest() * 32768  # 1 MiB
    digest = hashlib.sha256()
    for _ in range(64):
        digest.update(chunk)

    def body() -> Iterator[bytes]:
        for _ in range(64):
            yield chunk

    def peak_kib() -> int:
        status = Path(f"/proc/{sidecar.process.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])

    before = peak_kib()
    response = requests.post(f"{sidecar.traffic}/upload", data=body(), timeout=120)
    assert response.json() == {"bytes": 64 * 1024 * 1024, "sha256": digest.hexdigest()}
    assert peak_kib() - before < 24 * 1024, "the sidecar held a large part of the upload in memory"


def test_timeout_is_504_and_an_unreachable_upstream_is_502_then_health_recovers(sidecar: Sidecar) -> None:
    """A slow upstream is a 504 and a stopped one a 502 (logged as ERROR and CRITICAL); health turns unhealthy while
    it is gone and healthy again once it is back."""
    slow = requests.get(f"{sidecar.traffic}/slow?s=3", timeout=30)
    assert slow.status_code == 504 and "did not answer within 1 s" in slow.json()["error"]
    assert sidecar.wait_for("/health", lambda r: r.status_code == 200).status_code == 200
    stop_process(sidecar.upstream)  # the fixture's upstream: stopped and gone (its port closed) on return
    down = requests.get(f"{sidecar.traffic}/echo/x", timeout=10)
    assert down.status_code == 502 and "could not be reached" in down.json()["error"]
    unhealthy = sidecar.wait_for("/health", lambda r: r.status_code == 503)
    assert unhealthy.status_code == 503 and unhealthy.json()["healthy"] is False and unhealthy.json()["lastError"]
    logs = sidecar.wait_for(
        "/api/deployments/edge/logs?severity=CRITICAL,ERROR", lambda r: len(r.json()["entries"]) >= 2
    ).json()["entries"]
    assert {(e["status"], e["severity"]) for e in logs} == {(502, "CRITICAL"), (504, "ERROR")}
    with running(upstream_command(sidecar.upstream_port), f"http://127.0.0.1:{sidecar.upstream_port}/health"):
        healthy = sidecar.wait_for("/health", lambda r: r.status_code == 200)
        assert healthy.status_code == 200 and healthy.json()["status"] == 200
        assert requests.get(f"{sidecar.traffic}/echo/again", timeout=10).status_code == 200


@pytest.mark.yolo
def test_readme_clients_through_a_sidecar_in_front_of_yolowatch_serve(
    serve: Callable[..., str], tmp_path: Path
) -> None:
    """curl -F and Python requests, as the README shows them, against the sidecar fronting a real serve."""
    upstream = serve("--db", str(tmp_path / "upstream.db"))
    port, admin_port = free_port(), free_port()
    command = _sidecar(upstream, port, admin_port, tmp_path / "side.db")
    with running(command, f"http://127.0.0.1:{admin_port}/health"):
        url = f"http://127.0.0.1:{port}/predict"
        curl = subprocess.run(
            ["curl", "-sS", "-F", f"file=@{EXAMPLE}", "-F", "conf=0.25", url],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        via_curl = json.loads(curl.stdout)
        with EXAMPLE.open("rb") as image:
            via_requests = requests.post(url, files={"file": image}, data={"conf": 0.25}, timeout=60).json()
        direct = requests.post(f"{upstream}/predict", files={"file": EXAMPLE.read_bytes()}, timeout=60).json()
        results = [r["images"][0]["results"] for r in (via_curl, via_requests, direct)]
        assert results[0] == results[1] == results[2] and len(results[0]) > 0


def test_two_processes_on_one_database_add_up_in_metrics(tmp_path: Path) -> None:
    """Two sidecars (as two workers would) share one file: either one's /metrics counts both processes."""
    upstream_port = free_port()
    ports = [(free_port(), free_port()) for _ in range(2)]
    db = tmp_path / "shared.db"
    with running(upstream_command(upstream_port), f"http://127.0.0.1:{upstream_port}/health"):
        upstream = f"http://127.0.0.1:{upstream_port}"
        with (
            running(_sidecar(upstream, *ports[0], db), f"http://127.0.0.1:{ports[0][1]}/health"),
            running(_sidecar(upstream, *ports[1], db), f"http://127.0.0.1:{ports[1][1]}/health"),
        ):
            for (port, _), count in zip(ports, (3, 5), strict=True):
                for _ in range(count):
                    assert requests.get(f"http://127.0.0.1:{port}/echo/x", timeout=10).status_code == 200

            def total(admin_port: int) -> float:
                text = requests.get(f"http://127.0.0.1:{admin_port}/metrics", timeout=10).text
                return sum(
                    sample.value
                    for family in text_string_to_metric_families(text)
                    for sample in family.samples
                    if sample.name == "yolowatch_requests_total"
                )

            wait_until(lambda: total(ports[0][1]), "both processes' totals in /metrics", accept=lambda t: t >= 8)
            assert total(ports[0][1]) == total(ports[1][1]) == 8


def test_credentials_in_the_upstream_url_never_show(tmp_path: Path) -> None:
    """user:password in --upstream reaches neither the client's error, the database nor the admin API."""
    closed, port, admin_port = free_port(), free_port(), free_port()
    db = tmp_path / "c.db"
    command = _sidecar(f"http://robot:s3cret-pw@127.0.0.1:{closed}", port, admin_port, db)
    with running(command, f"http://127.0.0.1:{admin_port}/health"):
        down = requests.get(f"http://127.0.0.1:{port}/predict", timeout=10)
        assert down.status_code == 502 and f"127.0.0.1:{closed}" in down.json()["error"]
        assert "s3cret" not in down.text
        deployment = requests.get(f"http://127.0.0.1:{admin_port}/api/deployments/edge", timeout=10).json()
        assert deployment["endpoint"] == f"http://127.0.0.1:{closed}"
        logs = f"http://127.0.0.1:{admin_port}/api/deployments/edge/logs"
        (entry,) = wait_until(lambda: requests.get(logs, timeout=10).json()["entries"], "the 502 to be written")
        assert entry["status"] == 502 and "s3cret" not in json.dumps(entry)
    assert b"s3cret" not in b"".join(path.read_bytes() for path in tmp_path.glob("c.db*"))


@pytest.mark.parametrize(("probe_path", "healthy"), [("/predict", True), ("/no-such-route", False)])
def test_probe_by_a_real_prediction(tmp_path: Path, probe_path: str, healthy: bool) -> None:
    """--probe-image POSTs an image to the upstream: healthy when it predicts, unhealthy when it cannot."""
    upstream_port, port, admin_port = free_port(), free_port(), free_port()
    with running(upstream_command(upstream_port), f"http://127.0.0.1:{upstream_port}/health") as upstream:
        command = _sidecar(
            f"http://127.0.0.1:{upstream_port}", port, admin_port, tmp_path / "p.db",
            "--probe-image", str(EXAMPLE), "--probe-path", probe_path,
        )  # fmt: skip
        with running(command, f"http://127.0.0.1:{admin_port}/health", env=FAST_HEALTH) as process:
            traffic, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
            side = Sidecar(traffic, admin, process, upstream, upstream_port)
            body = side.wait_for("/health", lambda r: r.json()["checkedAt"] is not None).json()
            assert body["healthy"] is healthy
            assert body["status"] == (200 if healthy else 404)
            overview = requests.get(f"{side.admin}/api/monitoring", timeout=10).json()
            assert overview["totalRequests"] == 0  # probes go straight to the upstream: not traffic


@pytest.mark.yolo
def test_a_sample_of_uploads_is_measured_for_image_drift(tmp_path: Path) -> None:
    """With --image-sample 0.5, every second upload is decoded off the request path and its brightness, contrast
    and sharpness recorded: half of the uploads counted, the drifted split darker and blurrier; an upload that is
    no image costs nothing but its sample. The upstream says nothing of its images."""
    from yolowatch.demo.traffic import upload_for

    upstream_port, port, admin_port = free_port(), free_port(), free_port()
    admin = f"http://127.0.0.1:{admin_port}"
    with running(upstream_command(upstream_port), f"http://127.0.0.1:{upstream_port}/health"):
        command = _sidecar(f"http://127.0.0.1:{upstream_port}", port, admin_port, tmp_path / "i.db",
                           "--image-sample", "0.5")  # fmt: skip
        with running(command, f"{admin}/health"):
            medians = {}
            for mode in ("normal", "drifted"):
                for index in range(40):
                    name, data, content_type = upload_for(mode, index)
                    files = {"file": (name, data, content_type)}
                    assert requests.post(f"http://127.0.0.1:{port}/predict", files=files, timeout=30).ok
                expected = 20 if mode == "normal" else 40

                def measured(response: requests.Response, expected: int = expected) -> bool:
                    rows = {row["property"]: row for row in response.json()["image"]}
                    return "brightness" in rows and rows["brightness"]["images"] == expected

                answer = wait_until(lambda: requests.get(f"{admin}/api/deployments/edge/signals?range=1h", timeout=10),
                                    f"{expected} measured uploads", accept=measured)  # fmt: skip
                medians[mode] = {row["property"]: row for row in answer.json()["image"]}
            text = {"file": ("notes.txt", b"not an image", "text/plain")}
            for _ in range(2):
                requests.post(f"http://127.0.0.1:{port}/predict", files=text, timeout=30)
            assert requests.get(f"{admin}/health", timeout=10).status_code == 200
    # Cumulative figures: the drifted half pulls the median down and the 5th percentile far down.
    assert medians["drifted"]["brightness"]["p5"] < medians["normal"]["brightness"]["p5"] - 20
    assert medians["drifted"]["sharpness"]["p5"] < medians["normal"]["sharpness"]["p5"] / 10


def test_golden_checks_and_sampled_frames_in_front_of_an_upstream(tmp_path: Path) -> None:
    """A golden set recorded from the upstream passes, straight to the upstream (no golden request is counted, and
    /health carries the run); with --sample-dir, the relayed uploads are kept with the upstream's detections (its
    0.6 star is in the low band), the answers relayed unchanged."""
    from yolowatch.sampleset import list_samples

    upstream_port, port, admin_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    admin = f"http://127.0.0.1:{admin_port}"
    with running(upstream_command(upstream_port), f"{upstream}/health"):
        recorded = subprocess.run(
            [sys.executable, "-m", "yolowatch", "golden", "record", "--endpoint", f"{upstream}/predict",
             "--out", str(tmp_path / "golden"), str(EXAMPLE)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert recorded.returncode == 0, recorded.stderr
        assert "circle (0.90)" in recorded.stdout and "star (0.60)" in recorded.stdout
        command = _sidecar(
            upstream, port, admin_port, tmp_path / "g.db", "--golden", str(tmp_path / "golden"),
            "--golden-every", "0.2", "--golden-in-health", "--sample-dir", str(tmp_path / "frames"),
            "--sample-low-confidence", "0.5,0.7",
        )  # fmt: skip
        with running(command, f"{admin}/health", env=FAST_HEALTH):
            golden = wait_until(
                lambda: requests.get(f"{admin}/api/deployments/edge/golden?range=1h", timeout=10).json(),
                "five golden runs",
                accept=lambda body: len(body["runs"]) >= 5,
            )
            assert golden["checked"] and all(run["ok"] for run in golden["runs"]) and golden["latest"]["passRate"] == 1
            health = requests.get(f"{admin}/health", timeout=10).json()
            assert health["healthy"] and health["golden"]["ok"]
            for _ in range(3):
                files = {"file": ("shapes.jpg", EXAMPLE.read_bytes(), "image/jpeg")}
                answer = requests.post(f"http://127.0.0.1:{port}/predict", files=files, timeout=30)
                assert answer.status_code == 200 and answer.json()["received"]["bytes"] == len(EXAMPLE.read_bytes())
            frames = wait_until(
                lambda: list_samples(tmp_path / "frames"), "the three frames", accept=lambda f: len(f) == 3
            )
            metrics = wait_until(
                lambda: requests.get(f"{admin}/api/deployments/edge/metrics?range=1h", timeout=10).json(),
                "the three requests",
                accept=lambda body: body["summary"]["requests"] >= 3,
            )
            assert metrics["summary"]["requests"] == 3  # the golden requests went to the upstream, not through us
    for frame in frames:
        assert frame.rule == "low_confidence" and frame.image.read_bytes() == EXAMPLE.read_bytes()
        assert [d["name"] for d in frame.detections] == ["circle", "star"] and frame.model == "upstream.pt"
        assert (frame.width, frame.height) == (200, 100)  # the answer's shape
    # A sidecar sees only the classes it was answered: export says which have no name, and takes the model's.
    exported = subprocess.run(
        [sys.executable, "-m", "yolowatch", "samples", "export", "--dir", str(tmp_path / "frames"),
         "--out", str(tmp_path / "ds")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert "class 1 was never named" in exported.stdout and "--names" in exported.stdout
    names = tmp_path / "classes.txt"
    names.write_text("circle\nsquare\nstar\n")
    exported = subprocess.run(
        [sys.executable, "-m", "yolowatch", "samples", "export", "--dir", str(tmp_path / "frames"),
         "--out", str(tmp_path / "ds"), "--overwrite", "--names", str(names)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    data_yaml = (tmp_path / "ds" / "data.yaml").read_text()
    assert '  0: "circle"\n  1: "square"\n  2: "star"\n' in data_yaml and "never named" not in exported.stdout
    labels = sorted((tmp_path / "ds" / "labels").glob("*.txt"))
    assert len(labels) == 3 and all(
        line.split()[0] in ("0", "2") for f in labels for line in f.read_text().split("\n") if line
    )
