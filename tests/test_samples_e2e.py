"""Sampled production frames end to end: a real serve with `--sample-dir`, real traffic (normal, then drifted until
a drift-like alert fires), a 60x clock. The kept frames follow the rules and the per-minute cap; `yolowatch samples
export` makes them a dataset that ultralytics' own dataset code loads with the labels the endpoint answered, and
`yolo val` runs on it; `yolowatch holdout --recent` scores it as a second series. A sample directory on a full or
read-only file system fails no request and is logged once."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from helpers import run_server, wait_until
from yolowatch.config import default_model_path
from yolowatch.demo.traffic import upload_for
from yolowatch.sampleset import list_samples

SCALE = 60.0
PER_MINUTE = 3
LOW = (0.25, 0.4)
RULES = """
[[rule]]
name = "MeanConfidenceDrop"
metric = "mean_confidence"
comparison = "drop"
threshold = 0.03
for = "2m"
runbook = "darker, blurrier images: look at the sampled frames"
"""


class Traffic:
    """Uploads to a serve; each upload's answer by the sha256 of its bytes (the kept frame is those bytes)."""

    def __init__(self, base: str, anchor: float) -> None:
        self.base = base
        self.anchor = anchor
        self.answers: dict[str, list[dict[str, Any]]] = {}
        self.session = requests.Session()

    def server_s(self, real: float) -> float:
        return self.anchor + (real - self.anchor) * SCALE

    def send(self, mode: str, until: Any, at_least_s: float) -> tuple[float, float]:
        """Uploads of the mode until `until()` holds and at least `at_least_s` have passed; the server-clock
        window they covered."""
        started = time.time()
        index = 0
        while time.time() - started < at_least_s or not until():
            name, data, kind = upload_for(mode, index)
            response = self.session.post(
                f"{self.base}/predict", files={"file": (name, data, kind)}, data={"imgsz": "320"}, timeout=30
            )
            assert response.status_code == 200, response.text
            self.answers[hashlib.sha256(data).hexdigest()] = response.json()["images"][0]["results"]
            index += 1
            assert time.time() - started < 90, f"{mode} traffic ran 90 s without its condition"
        return self.server_s(started), self.server_s(time.time())


def _firing_since(api: str) -> float | None:
    history = requests.get(f"{api}/alerts", params={"deployment": "cam"}, timeout=10).json()["history"]
    fired = [entry for entry in history if entry["rule"] == "MeanConfidenceDrop" and entry["status"] == "firing"]
    return min(entry["startsAt"] for entry in fired) if fired else None


def _kept(samples: Path, rule: str) -> int:
    """Frames kept so far by `rule` (written on the sampler's thread moments after each answer)."""
    return sum(info.rule == rule for info in list_samples(samples)) if samples.is_dir() else 0


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "yolowatch", *args], capture_output=True, text=True, timeout=300)


def _rows(detections: list[dict[str, Any]], width: int, height: int) -> list[tuple[float, ...]]:
    """(class, cx, cy, w, h) normalised, sorted: what a YOLO label line holds."""
    rows = []
    for d in detections:
        box = d["box"]
        rows.append(
            (
                d["class"],
                (box["x1"] + box["x2"]) / 2 / width,
                (box["y1"] + box["y2"]) / 2 / height,
                (box["x2"] - box["x1"]) / width,
                (box["y2"] - box["y1"]) / height,
            )
        )
    return sorted(rows)


@pytest.mark.slow
def test_frames_follow_the_rules_and_caps_and_export_as_a_dataset(tmp_path: Path) -> None:
    anchor = time.time()
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    samples = tmp_path / "samples"
    env = {"YOLOWATCH_TIME_SCALE": str(SCALE), "YOLOWATCH_TIME_ANCHOR": str(anchor)}
    args = [
        "--db", str(tmp_path / "cam.db"), "--deployment", "cam", "--alert-rules", str(rules),
        "--sample-dir", str(samples), "--sample-per-minute", str(PER_MINUTE), "--sample-random-share", "0",
        "--sample-drift-share", "1", "--sample-low-confidence", f"{LOW[0]},{LOW[1]}",
    ]  # fmt: skip
    with run_server(args, env=env) as base:
        api = f"{base}/api"
        traffic = Traffic(base, anchor)
        normal = traffic.send("normal", lambda: True, at_least_s=6)
        pinned = requests.put(
            f"{api}/deployments/cam/baseline", json={"start": int(normal[0]) + 60, "end": int(normal[1])}, timeout=10
        )
        assert pinned.status_code == 200, pinned.text
        traffic.send("drifted", lambda: _firing_since(api) is not None, at_least_s=3)
        fired = _firing_since(api)
        assert fired is not None
        # Minutes while the drift flag is up, until two drift frames are kept (the low band takes most of each
        # minute's cap first: how many drift frames fit in a fixed time depends on the machine's speed).
        drifted = traffic.send("drifted", lambda: _kept(samples, "drift") >= 2, at_least_s=4)
        # The frames are written on the sampler's thread within moments of each answer.
        count = wait_until(lambda: len(list_samples(samples)), "the kept frames to be written", accept=lambda n: n > 0)
        time.sleep(1)
        assert len(list_samples(samples)) >= count

    kept = list_samples(samples)
    # Every kept frame is an upload, with exactly the detections its answer had.
    for info in kept:
        digest = hashlib.sha256(info.image.read_bytes()).hexdigest()
        assert digest in traffic.answers, info.id
        assert list(info.detections) == traffic.answers[digest], info.id
        assert info.deployment == "cam" and info.model is not None and info.model.startswith("shapes-yolo.pt@")
        assert info.params == {"conf": 0.25, "iou": 0.7, "imgsz": 320}
    # The rules, in their order: a detection in the low band; else no detection; else drift (while it fired).
    for info in kept:
        low = any(LOW[0] <= d["confidence"] < LOW[1] for d in info.detections)
        if info.rule == "low_confidence":
            assert low, info
        elif info.rule == "no_detection":
            assert not info.detections, info
        else:
            assert info.rule == "drift" and not low and info.detections, info
            # the flag goes up when the alert loop sees the firing state, a server minute or two after it fired
            assert info.ts >= fired, (info.ts, fired)
    by_rule = Counter(info.rule for info in kept)
    assert by_rule["drift"] >= 2, by_rule
    assert by_rule["low_confidence"] >= 1, by_rule
    # The cap: at most PER_MINUTE a server minute, and the traffic was far more than that.
    per_minute = Counter(int(info.ts // 60) for info in kept)
    assert max(per_minute.values()) <= PER_MINUTE, per_minute
    assert len(traffic.answers) > 3 * len(kept)
    assert drifted[1] > fired

    listed = _run_cli("samples", "list", "--dir", str(samples))
    assert listed.returncode == 0, listed.stderr
    assert f"{len(kept)} frames" in listed.stdout and f"drift {by_rule['drift']}" in listed.stdout

    dataset = tmp_path / "recent"
    exported = _run_cli("samples", "export", "--dir", str(samples), "--out", str(dataset), "--deployment", "cam")
    assert exported.returncode == 0, exported.stderr
    _check_with_ultralytics(dataset, kept)

    # The exported set as a second labeled set: its series sits beside the fixed holdout's.
    with run_server(["--db", str(tmp_path / "cam.db"), "--deployment", "cam"]) as base:
        scored = _run_cli(
            "holdout", "--data", str(dataset / "data.yaml"), "--deployment", "cam", "--endpoint", f"{base}/predict",
            "--imgsz", "320", "--recent", "--db", str(tmp_path / "cam.db"),
        )  # fmt: skip
        assert scored.returncode == 0, scored.stderr
        result = json.loads(scored.stdout.strip().splitlines()[-1])
        assert result["set"] == "recent" and result["dataset"] == "recent" and result["images"] == len(kept)
        # The pseudo-labels are the model's own answers at conf 0.25: it agrees with them almost entirely.
        assert result["mAP50"] > 0.9
        runs = requests.get(f"{base}/api/deployments/cam/holdout", timeout=10).json()["runs"]
        assert [(run["set"], run["dataset"]) for run in runs] == [("recent", "recent")]


def _check_with_ultralytics(dataset: Path, kept: list[Any]) -> None:
    """ultralytics' dataset code loads the export with the labels the endpoint answered; `val` runs on it."""
    from yolowatch.yolo.offline import prepare_ultralytics

    prepare_ultralytics()
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.models import YOLO

    data = check_det_dataset(str(dataset / "data.yaml"))
    model = YOLO(str(default_model_path()))
    assert data["names"] == model.names
    built = build_yolo_dataset(get_cfg(overrides={"imgsz": 320, "workers": 0}), data["val"], 4, data, mode="val")
    loaded = {Path(label["im_file"]).stem: label for label in built.labels}
    assert set(loaded) == {info.id for info in kept}
    for info in kept:
        label = loaded[info.id]
        got = sorted((int(c), *map(float, xywh)) for c, xywh in zip(label["cls"][:, 0], label["bboxes"], strict=True))
        want = _rows(list(info.detections), info.width, info.height)
        assert len(got) == len(want), info.id
        for a, b in zip(got, want, strict=True):
            assert a[0] == b[0] and np.allclose(a[1:], b[1:], atol=1e-5), (info.id, a, b)
    seen: list[int] = []
    model.add_callback("on_val_end", lambda validator: seen.append(validator.seen))
    model.val(data=str(dataset / "data.yaml"), imgsz=320, batch=4, device="cpu", plots=False, workers=0,
              verbose=False, project=str(dataset.parent / "runs"), name="val")  # fmt: skip
    assert seen == [len(kept)]


@contextlib.contextmanager
def _broken_sample_dir(root: Path, how: str) -> Iterator[Path]:
    """A sample directory on a real full or read-only tmpfs (we may mount: root), else a file in the way."""
    mountpoint = root / how
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)], capture_output=True)
    if mounted.returncode != 0:  # not root here: a path that cannot be a folder is a bad sample directory too
        (root / f"{how}-file").write_text("in the way")
        yield root / f"{how}-file"
        return
    try:
        if how == "full":
            with (mountpoint / "filler").open("wb", buffering=0) as filler, contextlib.suppress(OSError):
                while True:
                    filler.write(b"\xff" * 4096)
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(mountpoint)], check=True)
        yield mountpoint
    finally:
        subprocess.run(["umount", "--lazy", str(mountpoint)], check=True)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["full", "readonly"])
def test_a_full_or_read_only_sample_dir_fails_no_request(tmp_path: Path, how: str) -> None:
    log = tmp_path / "serve.log"
    with _broken_sample_dir(tmp_path, how) as directory:
        args = ["--sample-dir", str(directory), "--sample-per-minute", "100", "--sample-random-share", "1"]
        with run_server(args, output=log) as base:
            for index in range(12):
                name, data, kind = upload_for("normal", index)
                response = requests.post(f"{base}/predict", files={"file": (name, data, kind)}, timeout=30)
                assert response.status_code == 200, response.text
            health = requests.get(f"{base}/health", timeout=10)
            assert health.status_code == 200
            time.sleep(0.5)  # the sampler's thread has tried each frame
    lines = [line for line in log.read_text().splitlines() if "sampled frames are not being saved" in line]
    assert len(lines) == 1, lines
    assert "WARNING" in lines[0] and str(directory) in lines[0]
