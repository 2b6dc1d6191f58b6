"""Drift from the stored hour histograms: 14 days of recorded traffic (a fake clock), through the admin API."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from starlette.testclient import TestClient

from helpers import FakeClock, admin_client, detection_summary, record_busy_hours, record_fortnight
from yolowatch.alerts import default_rules
from yolowatch.recorder import Recorder
from yolowatch.signals import alert_evaluator
from yolowatch.store import Store

DAY = 86400
YOLOWATCH = [sys.executable, "-m", "yolowatch"]


async def _record_two_weeks(path: str, clock: FakeClock) -> None:
    """Days 0-6 normal for both deployments; days 7-13 drifted for 'drifting' only. 80 requests a day each."""
    await record_fortnight(path, clock, steady=("steady",), drifting=("drifting",), idle=("quiet",))


@pytest.fixture
def client(database: Callable[[str], str]) -> TestClient:
    """An admin client (not yet entered) over two weeks of recorded traffic (on each backend); each `with` block
    closes its store."""
    clock = FakeClock(1_800_000_000 - 1_800_000_000 % DAY)
    path = database("drift.db")
    asyncio.run(_record_two_weeks(path, clock))
    return admin_client(Store(path, clock=clock))  # fresh connections, for the test client's own event loop


def test_drifted_confidence_and_box_sizes_are_flagged(client: TestClient) -> None:
    """The deployment whose second week drifted is flagged for confidence and box size, with the sample counts of
    the default windows."""
    with client:
        report = client.get("/api/deployments/drifting/drift").json()
    assert report["baseline"]["end"] - report["baseline"]["start"] == 7 * DAY
    assert report["current"]["start"] >= report["baseline"]["end"]
    signals = {s["signal"]: s for s in report["signals"]}
    assert report["drifted"] is True
    for name in ("confidence", "boxSize"):
        assert signals[name]["drifted"] is True, signals[name]
        assert signals[name]["pValue"] < 0.01 and signals[name]["ksStatistic"] >= 0.1
        # Baseline: days 0-6. Current: the last 168 hours, which hold days 8-13 (day 7 fell just outside).
        assert (signals[name]["baselineSamples"], signals[name]["currentSamples"]) == (7 * 80 * 4, 6 * 80 * 4)
    assert sum(report["histograms"]["confidence"]["current"]) == 6 * 80 * 4


def test_steady_traffic_is_not_flagged(client: TestClient) -> None:
    """Steady traffic is not flagged as drift; only its silent last ten minutes flag the detection volume."""
    with client:
        report = client.get("/api/deployments/steady/drift").json()
    assert report["drifted"] is False
    assert all(s["ksStatistic"] < 0.1 for s in report["signals"])
    # Its last ten minutes had no traffic at all (the fake schedule is one busy minute a day): volume flags that.
    changes = {c["signal"]: c for c in report["changes"]}
    assert changes["detectionVolume"]["flagged"] is True and changes["detectionVolume"]["lowForMinutes"] == 10
    assert changes["meanConfidence"]["flagged"] is False


def test_pinned_windows_and_bad_ones(client: TestClient) -> None:
    """Windows given in the query are used as given; half a window, a backwards one, a deployment with no traffic
    (409) and an unknown one (404) are refused."""
    start = 1_800_000_000 - 1_800_000_000 % DAY
    with client:
        # Two windows of normal traffic from the drifting deployment's first week: no drift.
        pinned = client.get(
            "/api/deployments/drifting/drift",
            params={"baselineStart": start, "baselineEnd": start + 3 * DAY,
                    "currentStart": start + 3 * DAY, "currentEnd": start + 7 * DAY},
        ).json()  # fmt: skip
        assert "drifted" in pinned, pinned
        assert pinned["drifted"] is False and pinned["baseline"] == {"start": start, "end": start + 3 * DAY}
        lone = client.get("/api/deployments/drifting/drift", params={"baselineStart": start})
        assert lone.status_code == 400 and "together" in lone.json()["error"]
        backwards = client.get(
            "/api/deployments/drifting/drift", params={"currentStart": start + 10, "currentEnd": start}
        )
        assert backwards.status_code == 400 and "after" in backwards.json()["error"]
        assert client.get("/api/deployments/quiet/drift").status_code == 409
        assert client.get("/api/deployments/nope/drift").status_code == 404


def test_a_pinned_baseline_persists_and_moves_the_comparison(
    client: TestClient, database: Callable[[str], str]
) -> None:
    """A baseline pinned through the API moves the comparison, survives in the file for the CLI to show and clear,
    and bad pins are refused without changing it."""
    start = 1_800_000_000 - 1_800_000_000 % DAY
    url = "/api/deployments/drifting/baseline"
    current = {"currentStart": start + 10 * DAY, "currentEnd": start + 14 * DAY}
    with client:
        default = client.get(url).json()
        assert default == {
            "deployment": "drifting",
            "version": None,  # the deployment's own, not one model version's
            "pinned": False,
            "baseline": {"start": start, "end": start + 7 * DAY},
        }
        assert client.get("/api/deployments/drifting/drift", params=current).json()["drifted"] is True
        # Pin the first drifted days as the baseline (ISO times work as well as epoch seconds): no drift now.
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 7 * DAY))
        pinned = client.put(url, json={"start": iso, "end": start + 10 * DAY})
        assert pinned.status_code == 200 and pinned.json()["baseline"] == {
            "start": start + 7 * DAY,
            "end": start + 10 * DAY,
        }
        assert client.get("/api/deployments/drifting/drift", params=current).json()["drifted"] is False
        for body, says in (
            ({"start": 5}, "start"),
            ({"start": 9, "end": 3}, "after"),
            ({"start": "soon", "end": 1}, "ISO"),
        ):
            refused = client.put(url, json=body)
            assert refused.status_code == 400 and says in refused.json()["error"], refused.json()
        assert client.put(url, content=b"{nope").status_code == 400
        assert client.get(url).json()["pinned"] is True  # the refused calls changed nothing
    # Kept in the file: another process (the CLI) sees the pin, and can clear it.
    db = database("drift.db")
    shown = subprocess.run([*YOLOWATCH, "baseline", "--deployment", "drifting", "--db", str(db)],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert "(pinned)" in shown.stdout
    cleared = subprocess.run([*YOLOWATCH, "baseline", "--deployment", "drifting", "--db", str(db), "--clear"],
                             capture_output=True, text=True, check=True)  # fmt: skip
    assert "default" in cleared.stdout
    with client:
        assert client.get(url).json()["pinned"] is False
        assert client.get("/api/deployments/drifting/drift", params=current).json()["drifted"] is True
    bad = subprocess.run(
        [*YOLOWATCH, "baseline", "--deployment", "nope", "--db", str(db)], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown deployment" in bad.stderr


def test_the_daily_drift_rule_fires_for_drift_only(database: Callable[[str], str]) -> None:
    """The default ConfidenceDrift rule, evaluated at midnight on the stored histograms, fires for the deployment
    whose confidences moved and stays quiet for the steady one; at any other minute it is not evaluated."""
    clock = FakeClock(1_800_000_000 - 1_800_000_000 % DAY)
    path = database("drift.db")
    asyncio.run(_record_two_weeks(path, clock))

    async def evaluate() -> dict[str, list[tuple[str, str]]]:
        store = Store(path, clock=clock)
        evaluator = alert_evaluator(store, [r for r in default_rules() if r.name == "ConfidenceDrift"], sinks={})
        made = {}
        for name in ("steady", "drifting"):
            noon = int(clock.now) - int(clock.now) % DAY - DAY // 2
            assert await evaluator.evaluate_closed_minute(name, noon - 60) == []  # not due at noon
            midnight = int(clock.now) - int(clock.now) % DAY
            made[name] = [(n.rule, n.status) for n in await evaluator.evaluate_closed_minute(name, midnight - 60)]
        states = await store.alert_states("drifting")
        await store.close()
        assert states["ConfidenceDrift"].value is not None and states["ConfidenceDrift"].value < 0.01
        return made

    assert asyncio.run(evaluate()) == {"steady": [], "drifting": [("ConfidenceDrift", "firing")]}


async def _record_canary(path: str, clock: FakeClock) -> None:
    """Fourteen days of 'canary': model a.pt answers normally throughout; from day 7, b.pt answers half the
    requests with drifted detections (a canary that sees the world worse)."""
    rng = np.random.default_rng(17)

    def request(recorder: Recorder, day: int, index: int) -> None:
        canary = day >= 7 and index % 2 == 1
        summary = replace(detection_summary(rng, canary), model="b.pt@bbbb" if canary else "a.pt@aaaa")
        recorder.record_request("canary", "POST", "/predict", 200, 60_000 if canary else 50_000, "c", summary)

    await record_busy_hours(path, clock, ("canary",), request)


def test_model_versions_side_by_side_with_a_baseline_each(database: Callable[[str], str]) -> None:
    """Two model versions: /signals lists both, /compare puts them side by side and flags the canary's drift
    against the incumbent, ?version= drift-tests one version alone, and a baseline pinned for one version is
    that version's only."""
    clock = FakeClock(1_800_000_000 - 1_800_000_000 % DAY)
    path = database("canary.db")
    asyncio.run(_record_canary(path, clock))
    start = 1_800_000_000 - 1_800_000_000 % DAY
    with admin_client(Store(path, clock=clock)) as client:
        versions = client.get("/api/deployments/canary/signals", params={"range": "30d"}).json()["versions"]
        assert {row["version"]: row["requests"] for row in versions} == {"a.pt@aaaa": 14 * 80 - 7 * 40,
                                                                          "b.pt@bbbb": 7 * 40}  # fmt: skip
        compare = client.get("/api/deployments/canary/compare", params={"range": "30d", "a": "a.pt@aaaa",
                                                                           "b": "b.pt@bbbb"}).json()  # fmt: skip
        assert compare["a"]["summary"]["p50Ms"] == pytest.approx(50, rel=0.01)
        assert compare["b"]["summary"]["p50Ms"] == pytest.approx(60, rel=0.01)
        signals = {s["signal"]: s for s in compare["drift"]["signals"]}
        assert compare["drift"]["drifted"] and signals["confidence"]["drifted"] and signals["boxSize"]["drifted"]
        unknown = client.get("/api/deployments/canary/compare", params={"a": "a.pt@aaaa", "b": "c.pt"})
        assert unknown.status_code == 404 and "a.pt@aaaa" in unknown.json()["error"]

        assert client.get("/api/deployments/canary/drift").json()["drifted"] is True  # b's detections mixed in
        incumbent = client.get("/api/deployments/canary/drift", params={"version": "a.pt@aaaa"}).json()
        assert incumbent["version"] == "a.pt@aaaa" and incumbent["drifted"] is False

        pinned = client.put("/api/deployments/canary/baseline", params={"version": "b.pt@bbbb"},
                            json={"start": start + 7 * DAY, "end": start + 10 * DAY})  # fmt: skip
        assert pinned.status_code == 200 and pinned.json()["pinned"] is True
        assert client.get("/api/deployments/canary/baseline").json()["pinned"] is False
        canary = client.get("/api/deployments/canary/drift", params={"version": "b.pt@bbbb"}).json()
        assert canary["baseline"] == {"start": start + 7 * DAY, "end": start + 10 * DAY}
        confidence = next(s for s in canary["signals"] if s["signal"] == "confidence")
        assert confidence["baselineSamples"] == 3 * 40 * 4 and confidence["drifted"] is False
