"""`yolowatch holdout`: the demo model scored on clean and drifted holdout sets, through the endpoint and val."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from helpers import run_server
from yolowatch.demo.shapes import generate_dataset
from yolowatch.demo.train import DEMO_WEIGHTS

pytestmark = pytest.mark.slow


def _holdout(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "yolowatch", "holdout", *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("holdout") / "shapes"
    generate_dataset(root, counts={"holdout": 40, "holdout-drifted": 40})
    return root


def test_endpoint_and_val_agree_and_the_drop_is_stored(data: Path, database: Callable[[str], str]) -> None:
    """Scored through the endpoint and by ultralytics' val, the model agrees, loses points on the drifted set, and
    every run is stored (on each backend)."""
    db = database("h.db")
    scores = {}
    with run_server(["--db", str(db)]) as base:
        for split in ("holdout", "holdout-drifted"):
            for how in (["--endpoint", f"{base}/predict"], ["--model", str(DEMO_WEIGHTS)]):
                done = _holdout(["--data", str(data / f"{split}.yaml"), "--deployment", "demo", "--imgsz", "320",
                                 "--db", str(db), *how])  # fmt: skip
                assert done.returncode == 0, done.stderr
                assert "40/40 images" in done.stdout or how[0] == "--model"
                scores[(split, how[0])] = json.loads(done.stdout.strip().splitlines()[-1])
        runs = requests.get(f"{base}/api/deployments/demo/holdout", timeout=10).json()["runs"]
    clean, drifted = scores[("holdout", "--endpoint")], scores[("holdout-drifted", "--endpoint")]
    # Through the HTTP endpoint the model scores what ultralytics' own val scores on the same images.
    assert clean["mAP50-95"] == pytest.approx(scores[("holdout", "--model")]["mAP50-95"], abs=0.01)
    assert clean["mAP50-95"] > 0.8
    assert clean["mAP50-95"] - drifted["mAP50-95"] > 0.1  # the drifted scenes cost the model points
    assert scores[("holdout", "--model")]["mAP50-95"] - scores[("holdout-drifted", "--model")]["mAP50-95"] > 0.1
    assert [(r["dataset"], r["source"].startswith("http")) for r in runs] == [
        ("holdout", True), ("holdout", False), ("holdout-drifted", True), ("holdout-drifted", False)
    ]  # fmt: skip
    assert runs[0]["map50to95"] == pytest.approx(clean["mAP50-95"], abs=1e-4)
    assert runs[0]["digest"] != runs[2]["digest"] and runs[0]["details"]["imgsz"] == 320
    assert runs[0]["details"]["versions"]["ultralytics"]


def test_bad_arguments_are_refused_clearly(tmp_path: Path) -> None:
    """A missing data file, one with no val split, or neither --endpoint nor --model is a usage error (status 2)."""
    missing = _holdout(["--data", str(tmp_path / "nope.yaml"), "--deployment", "d", "--model", str(DEMO_WEIGHTS)])
    assert missing.returncode == 2 and "--data" in missing.stderr
    (tmp_path / "empty.yaml").write_text("names: [a]\n")
    no_split = _holdout(["--data", str(tmp_path / "empty.yaml"), "--deployment", "d", "--model", str(DEMO_WEIGHTS)])
    assert no_split.returncode == 2 and "no 'val'" in no_split.stderr
    both = _holdout(["--data", "x.yaml", "--deployment", "d"])
    assert both.returncode == 2 and "--endpoint" in both.stderr
