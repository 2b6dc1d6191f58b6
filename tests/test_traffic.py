"""`yolowatch traffic`: plans, pacing on a fake clock, and a real run against a real serve."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from helpers import FakeClock, wait_until
from yolowatch.demo.traffic import Phase, _ticks, parse_plan, upload_for
from yolowatch.yolo.uploads import decode_image


def test_plans_parse_and_bad_ones_say_what_is_allowed() -> None:
    """A plan is MODE:SECONDS phases; an unknown mode, a missing or zero duration say what is wrong."""
    assert parse_plan("normal:60, drifted:30,pause:5") == [Phase("normal", 60), Phase("drifted", 30), Phase("pause", 5)]
    for bad, message in (("loud:5", "unknown mode 'loud'"), ("normal", "give seconds"), ("normal:0", "more than 0")):
        with pytest.raises(ValueError, match=message):
            parse_plan(bad)


def test_ticks_keep_the_rate_and_skip_what_a_slow_answer_missed() -> None:
    """Ticks come at the rate on the fake clock; those a slow answer missed are skipped, not sent in a burst."""
    clock = FakeClock(0)
    assert len(list(_ticks(Phase("normal", 1), 10, clock, clock.advance))) == 10
    clock = FakeClock(0)
    ticks = []
    for index in _ticks(Phase("normal", 2), 10, clock, clock.advance):
        ticks.append(index)
        if index == 3:
            clock.advance(1.0)  # a one-second answer: ten ticks are gone, not sent in a burst afterwards
    assert ticks == [0, 1, 2, 3, *range(13, 20)]


def test_uploads_of_each_mode() -> None:
    """Drifted uploads are decodable images; malformed ones are text, a truncated image, or empty."""
    name, body, _ = upload_for("drifted", 3)
    assert name.startswith("holdout-drifted") and decode_image(body, 10**8).shape[2] == 3
    malformed = [upload_for("malformed", i)[1] for i in range(3)]
    assert malformed[0].startswith(b"this is not") and malformed[2] == b"" and len(malformed[1]) == 600


@pytest.mark.slow
def test_a_planned_run_against_serve_is_recorded_as_sent(serve: Callable[..., str], tmp_path: Path) -> None:
    """A planned run against a real serve prints only its own progress, and the server recorded exactly what it
    sent and refused; form fields go with every image; a bad --param is a usage error."""
    base = serve("--db", str(tmp_path / "t.db"))
    result = subprocess.run(
        [sys.executable, "-m", "yolowatch", "traffic", "--url", f"{base}/predict",
         "--plan", "normal:2,malformed:1,pause:1,drifted:1", "--rate", "4", "--count", "40"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Regression: httpx logged "HTTP Request: POST ..." at INFO for every request, drowning the progress.
    assert "HTTP Request" not in result.stdout + result.stderr and result.stderr == ""
    last = result.stdout.strip().splitlines()[-1]
    sent, ok, refused, failed = map(int, re.search(r"sent (\d+): (\d+) ok, (\d+) refused, (\d+) failed", last).groups())
    assert "[drifted]" in last and failed == 0 and ok + refused == sent
    assert 1 <= refused <= 4 and ok >= 6
    overview = wait_until(
        lambda: requests.get(f"{base}/api/monitoring", timeout=10).json(),
        f"the {sent} requests to be written",
        accept=lambda overview: overview["totalRequests"] >= sent,
    )
    assert overview["totalRequests"] == sent
    assert overview["errorRate"] == pytest.approx(refused / sent)
    # Form fields go with every image: an out-of-range imgsz is refused by the server, each time.
    fielded = subprocess.run(
        [sys.executable, "-m", "yolowatch", "traffic", "--url", f"{base}/predict", "--plan", "normal:1",
         "--rate", "3", "--param", "imgsz=5000"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert fielded.returncode == 0 and re.search(r"sent 3: 0 ok, 3 refused", fielded.stdout), fielded.stdout
    verbose = subprocess.run(
        [sys.executable, "-m", "yolowatch", "traffic", "--url", f"{base}/predict", "--plan", "normal:1",
         "--rate", "2", "--verbose"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert verbose.returncode == 0 and verbose.stderr.count("HTTP Request: POST") == 2, verbose.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "yolowatch", "traffic", "--param", "imgsz"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "NAME=VALUE" in bad.stderr
