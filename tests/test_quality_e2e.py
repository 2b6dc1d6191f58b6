"""End to end: a real `serve` with the real demo model, real `yolowatch traffic`, a real webhook receiver.

The server's clock runs 60 times faster than real time (YOLOWATCH_TIME_SCALE, anchored at a time the test
knows), so a second of traffic is a minute of monitoring: the five-minute error-rate rule goes pending, fires
and resolves in seconds, with no sleeps of minutes and nothing mocked.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from helpers import WebhookReceiver, run_server, wait_until

SCALE = 60.0
PLAN = [("normal", 15), ("normal", 15), ("drifted", 15), ("malformed", 10), ("normal", 10)]


def _minute_window(anchor: float, started: float, ended: float) -> tuple[int, int]:
    """The whole server-clock minutes inside [started, ended] (real seconds), one minute of margin each side."""

    def server(real: float) -> float:
        return anchor + (real - anchor) * SCALE

    first = int(server(started)) // 60 * 60 + 120
    last = int(server(ended)) // 60 * 60 - 60
    assert last - first >= 600, "each phase must cover at least ten whole minutes of server time"
    return first, last


class TrafficRun:
    """`yolowatch traffic` in the background; when each phase ended, read from its own progress lines."""

    def __init__(self, url: str, *params: str) -> None:
        plan = ",".join(f"{mode}:{seconds}" for mode, seconds in PLAN)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "yolowatch", "traffic", "--url", url, "--plan", plan, "--rate", "40",
             "--count", "5000", *(f"--param={p}" for p in params)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.started = time.time()
        self.phase_ends: list[float] = []
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if "(end of " in line:
                self.phase_ends.append(time.time())

    def finish(self) -> int:
        """Wait for the run to end (kill it if it will not); its exit status."""
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            self.reader.join(timeout=10)
            assert self.process.stdout is not None
            self.process.stdout.close()

    def phase(self, index: int) -> tuple[float, float]:
        return (self.started if index == 0 else self.phase_ends[index - 1]), self.phase_ends[index]


@pytest.mark.slow
def test_drift_is_flagged_and_the_error_alert_fires_and_resolves(tmp_path: Path, receiver: WebhookReceiver) -> None:
    """Under planned traffic on a 60x clock, HighErrorRate goes pending, fires and resolves on the rule's schedule
    with Alertmanager-shaped webhooks, and drift is flagged for the drifted phase only."""
    anchor = time.time()
    env = {
        "YOLOWATCH_TIME_SCALE": str(SCALE),
        "YOLOWATCH_TIME_ANCHOR": str(anchor),
        "YOLOWATCH_ALERT_WEBHOOK": receiver.url,
    }
    with run_server(["--db", str(tmp_path / "e2e.db"), "--deployment", "e2e"], env=env) as base:
        api = f"{base}/api"
        # imgsz 320: the size the demo model was trained at (and four times less work than 640 on this CPU).
        traffic = TrafficRun(f"{base}/predict", "imgsz=320")
        try:
            seen_states = _watch_error_alert(api, traffic, receiver)
        finally:
            status = traffic.finish()
        assert status == 0, "".join(traffic.lines[-5:])
        assert len(traffic.phase_ends) == len(PLAN), traffic.lines

        # The error-rate alert went through the whole cycle, on the rule's own schedule.
        assert seen_states[:4] == ["inactive", "pending", "firing", "inactive"], seen_states
        history = requests.get(f"{api}/alerts", params={"deployment": "e2e"}, timeout=10).json()["history"]
        errors = [h for h in reversed(history) if h["rule"] == "HighErrorRate"]
        assert [h["status"] for h in errors] == ["firing", "resolved"]
        assert errors[0]["startsAt"] + 300 <= errors[0]["createdS"]  # pending for the full five minutes first

        # The webhook got Alertmanager's shape: version 4, grouped, labels and annotations on every alert.
        sent = [(a["labels"]["alertname"], a["status"]) for b in receiver.bodies for a in b["alerts"]]
        assert ("HighErrorRate", "firing") in sent and ("HighErrorRate", "resolved") in sent
        for body in receiver.bodies:
            assert body["version"] == "4" and body["receiver"] == "yolowatch" and body["groupKey"]
            assert body["status"] in ("firing", "resolved") and body["alerts"]
            for alert in body["alerts"]:
                assert {"alertname", "deployment", "severity"} <= set(alert["labels"])
                assert alert["labels"]["deployment"] == "e2e" and alert["annotations"]["runbook"]
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", alert["startsAt"])
                assert len(alert["fingerprint"]) == 16

        # Drift: normal vs normal is not flagged; normal vs drifted flags confidence with p < 0.01.
        normal_a = _minute_window(anchor, *traffic.phase(0))
        normal_b = _minute_window(anchor, *traffic.phase(1))
        drifted = _minute_window(anchor, *traffic.phase(2))

        def drift(current: tuple[int, int]) -> dict[str, dict]:
            params = {"baselineStart": normal_a[0], "baselineEnd": normal_a[1],
                      "currentStart": current[0], "currentEnd": current[1]}  # fmt: skip
            report = requests.get(f"{api}/deployments/e2e/drift", params=params, timeout=30).json()
            return {s["signal"]: s for s in report["signals"]}

        same = drift(normal_b)["confidence"]
        assert min(same["baselineSamples"], same["currentSamples"]) >= 500, same
        assert same["drifted"] is False, same
        moved = drift(drifted)["confidence"]
        print(f"normal vs normal: {same}\nnormal vs drifted: {moved}\nerror alert states: {seen_states}")
        assert moved["drifted"] is True and moved["pValue"] < 0.01 and moved["ksStatistic"] >= 0.1, moved


def _watch_error_alert(api: str, traffic: TrafficRun, receiver: WebhookReceiver) -> list[str]:
    """HighErrorRate's states, as /api/alerts showed them while the traffic ran, until the traffic ended and the
    receiver got its resolved notification."""
    seen: list[str] = []

    def ended_and_resolved() -> bool:
        """Note the state /api/alerts shows now (when it changed); true once the run is over and resolved."""
        rules = requests.get(f"{api}/alerts", params={"deployment": "e2e"}, timeout=10).json()["rules"]
        state = next(r["state"] for r in rules if r["rule"] == "HighErrorRate")
        if not seen or seen[-1] != state:
            seen.append(state)
        resolved = [b for b in receiver.bodies if b["status"] == "resolved"
                    and any(a["labels"]["alertname"] == "HighErrorRate" for a in b["alerts"])]  # fmt: skip
        return traffic.process.poll() is not None and bool(resolved)

    timeout_s = sum(seconds for _, seconds in PLAN) + 90
    try:
        wait_until(ended_and_resolved, "the traffic to end and HighErrorRate to resolve", timeout_s=timeout_s,
                   every_s=0.25)  # fmt: skip
    except AssertionError as exc:
        raise AssertionError(f"{exc}; HighErrorRate's states so far: {seen}") from None
    return seen
