"""Nothing yolowatch runs reaches the network: validation and training under the guard, and the guard itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import NETGUARD
from yolowatch.demo.shapes import generate_dataset
from yolowatch.demo.train import DEMO_WEIGHTS

pytestmark = pytest.mark.slow


def guarded(code: str, violations: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(NETGUARD), str(violations), "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_the_guard_catches_lookups_and_connections(tmp_path: Path) -> None:
    """A DNS lookup and a raw connect to a public address are recorded and blocked; loopback is not."""
    violations = tmp_path / "v.txt"
    code = """
import socket
for attempt in (lambda: socket.getaddrinfo("example.com", 80), lambda: socket.socket().connect(("192.0.2.1", 80))):
    try:
        attempt()
    except OSError:
        pass
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen()
socket.create_connection(server.getsockname(), timeout=1).close()
"""
    result = guarded(code, violations)
    assert result.returncode == 0, result.stderr
    assert violations.read_text().splitlines() == ["socket.getaddrinfo 'example.com'", "socket.connect '192.0.2.1'"]


def test_ultralytics_unprepared_would_reach_out(tmp_path: Path) -> None:
    """Importing ultralytics without prepare_ultralytics() tries the network: this is what the guard protects."""
    violations = tmp_path / "v.txt"
    env = {k: v for k, v in __import__("os").environ.items() if k != "YOLO_OFFLINE"}
    result = guarded("import ultralytics", violations, env=env)
    assert result.returncode == 0, result.stderr
    assert violations.exists() and violations.read_text().strip()


def test_val_and_train_stay_offline(tmp_path: Path) -> None:
    """model.val on a holdout and one tiny training epoch make no outside connection."""
    generate_dataset(tmp_path / "data", counts={"train": 8, "val": 4, "holdout": 4, "holdout-drifted": 4})
    violations = tmp_path / "v.txt"
    code = f"""
from pathlib import Path
from yolowatch.yolo.holdout import val_metrics
m = val_metrics(Path({str(DEMO_WEIGHTS)!r}), Path({str(tmp_path / "data" / "holdout.yaml")!r}), imgsz=320)
assert 0 <= m["mAP50-95"] <= 1, m
from yolowatch.yolo.offline import prepare_ultralytics
prepare_ultralytics()
from ultralytics import YOLO
YOLO("yolo11n.yaml").train(data={str(tmp_path / "data" / "data.yaml")!r}, epochs=1, imgsz=64, batch=4, workers=0,
    device="cpu", plots=False, amp=False, project={str(tmp_path / "runs")!r}, name="t", exist_ok=True, verbose=False)
print("done")
"""
    result = guarded(code, violations)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "done" in result.stdout
    assert not violations.exists() or violations.read_text() == ""
