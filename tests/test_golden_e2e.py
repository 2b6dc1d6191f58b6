"""Golden-image checks end to end: answers recorded from the demo model with `yolowatch golden record`; then a
serve of a changed model under the same deployment fails the check (the GoldenMismatch alert fires through a real
webhook receiver, /health says so), and the original model passes it again (the alert resolves). Real servers,
the real model, a 60x clock (a minute of monitoring is a second here); golden requests are never counted."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from helpers import WebhookReceiver, run_server, wait_until
from yolowatch.config import default_model_path
from yolowatch.demo.traffic import upload_for
from yolowatch.sampleset import list_samples


def _changed_model(path: Path) -> Path:
    """The demo weights with the box head's last layers nudged: what a bad retrain or a precision change looks like
    to a client (the same classes, boxes that moved, confidences that shifted)."""
    from yolowatch.yolo.offline import prepare_ultralytics

    prepare_ultralytics()
    import torch
    from ultralytics import YOLO

    model = YOLO(str(default_model_path()))
    head = model.model.model[-1]  # type: ignore[union-attr, index]
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for branch in head.cv2:  # the box regression branch of each scale
            weight = branch[-1].weight
            weight.add_(torch.randn(weight.shape, generator=generator) * weight.std() * 0.5)
    model.save(str(path))
    return path


def _alerts(receiver: WebhookReceiver, status: str) -> list[dict]:
    return [
        alert
        for body in receiver.bodies
        for alert in body["alerts"]
        if alert["labels"]["alertname"] == "GoldenMismatch" and alert["status"] == status
    ]


def _sent(base: str, count: int) -> None:
    for index in range(count):
        name, data, kind = upload_for("normal", index)
        response = requests.post(
            f"{base}/predict", files={"file": (name, data, kind)}, data={"imgsz": "320"}, timeout=30
        )
        assert response.status_code == 200


def _requests(base: str) -> int:
    body = requests.get(f"{base}/api/deployments/prod/metrics", params={"range": "1h"}, timeout=10).json()
    return int(body["summary"]["requests"])


@pytest.mark.slow
def test_golden_check_fails_on_a_changed_model_alerts_and_resolves(tmp_path: Path, receiver: WebhookReceiver) -> None:
    images = []
    for index in range(4):
        name, data, _ = upload_for("normal", index)
        images.append(tmp_path / name)
        images[-1].write_bytes(data)
    golden = tmp_path / "golden"
    db = str(tmp_path / "golden.db")
    env = {"YOLOWATCH_TIME_SCALE": "60"}
    common = ["--db", db, "--deployment", "prod", "--alert-webhook", receiver.url]

    with run_server(common, env=env) as base:
        recorded = subprocess.run(
            [sys.executable, "-m", "yolowatch", "golden", "record", "--endpoint", f"{base}/predict",
             "--out", str(golden), "--param", "imgsz=320", *map(str, images)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert recorded.returncode == 0, recorded.stderr
        assert "recorded 4 images" in recorded.stdout
        # Recording goes through the plain endpoint: those four are traffic like any other.
        before = wait_until(lambda: _requests(base), "the recording's requests to be stored", accept=lambda n: n == 4)
    written = json.loads((golden / "golden.json").read_text())
    assert [image["file"] for image in written["images"]] == [path.name for path in images]
    assert sum(len(image["detections"]) for image in written["images"]) >= 4  # the demo images hold shapes
    assert written["fields"] == {"imgsz": "320"}

    golden_args = [*common, "--golden", str(golden), "--golden-every", "1", "--golden-in-health"]
    changed = _changed_model(tmp_path / "shapes-yolo-retrained.pt")
    # Every upload is kept as a sampled frame (a random share of 1): the golden images must not be.
    sampling = ["--sample-dir", str(tmp_path / "frames"), "--sample-random-share", "1", "--sample-per-minute", "1000"]
    with run_server([*golden_args, "--model", str(changed), *sampling], env=env) as base:
        # Not the recorded answers: the check fails, /health says so, and after five (server) minutes the alert fires.
        health = wait_until(
            lambda: requests.get(f"{base}/health", timeout=10),
            "a failing golden run in /health",
            accept=lambda r: "golden" in r.json() and not r.json()["golden"]["ok"],
            timeout_s=60,
        )
        assert health.status_code == 503 and not health.json()["healthy"]
        failing = health.json()["golden"]
        assert failing["passed"] < failing["images"] == 4 and "differences" not in failing  # details need the key
        _sent(base, 3)
        fired = wait_until(lambda: _alerts(receiver, "firing"), "GoldenMismatch to fire", timeout_s=60)
        assert fired[0]["labels"]["severity"] == "critical" and fired[0]["labels"]["deployment"] == "prod"
        panel = requests.get(f"{base}/api/deployments/prod/golden", params={"range": "1h"}, timeout=10).json()
        assert panel["latest"]["passed"] < 4 and any(not run["ok"] for run in panel["runs"])
        latest = panel["latest"]
        assert latest["worst"] in latest["differences"]
        assert any("moved" in text or "missing" in text or "confidence" in text
                   for texts in latest["differences"].values() for text in texts)  # fmt: skip
        # Dozens of golden requests went through the endpoint; only the three sent above are traffic.
        assert len(panel["runs"]) >= 5
        wait_until(lambda: _requests(base), "the three requests to be stored", accept=lambda n: n >= before + 3)
        assert _requests(base) == before + 3
        assert len(list_samples(tmp_path / "frames")) == 3  # the three uploads, none of the golden images

    with run_server(golden_args, env=env) as base:  # the original model: the answers match again
        health = wait_until(
            lambda: requests.get(f"{base}/health", timeout=10),
            "a passing golden run in /health",
            accept=lambda r: r.json().get("golden", {}).get("ok"),
            timeout_s=60,
        )
        assert health.status_code == 200 and health.json()["golden"]["passRate"] == 1.0
        wait_until(lambda: _alerts(receiver, "resolved"), "GoldenMismatch to resolve", timeout_s=60)
        time.sleep(2)  # a few more golden runs: still nothing counted as traffic
        assert _requests(base) == before + 3
    assert len(_alerts(receiver, "firing")) == 1
