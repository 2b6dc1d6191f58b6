"""End to end: a real `serve` with the real demo model and real uploads, on a clock 60 times faster than real
time (a second of traffic is a minute of monitoring): a client's conf change is reported as one and not as
drift, the drifted split is flagged at unchanged parameters, per-class counts match the responses, and a second
model file under the same deployment becomes a second version that the comparison shows beside the first."""

from __future__ import annotations

import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from helpers import WebhookReceiver, run_server, wait_until
from yolowatch.config import default_model_path
from yolowatch.demo.traffic import upload_for

SCALE = 60.0
PER_PHASE = 250  # uploads at least: the KS tests need 500 detections a side within the minutes compared
PHASE_S = 9.0  # and at least this long (nine server minutes), whatever this machine's speed
# A raised conf lifts the mean confidence (the weak detections are cut): what the rise rule would take for a
# change of the model or the images; darker, blurrier images lower it.
RULES = """
[[rule]]
name = "MeanConfidenceRise"
metric = "mean_confidence"
comparison = "rise"
threshold = 0.03
for = "3m"
runbook = "Mean confidence 0.03 above the baseline's for 3 minutes"

[[rule]]
name = "MeanConfidenceDrop"
metric = "mean_confidence"
comparison = "drop"
threshold = 0.03
for = "3m"
runbook = "Mean confidence 0.03 below the baseline's for 3 minutes"
"""


class Phases:
    """Uploads to a serve, in phases; per-class counts from the responses; each phase's server-clock window."""

    def __init__(self, base: str, anchor: float) -> None:
        self.base = base
        self.anchor = anchor
        self.classes: Counter[str] = Counter()
        self.sent: Counter[float] = Counter()  # uploads per conf
        self.session = requests.Session()

    def server_s(self, real: float) -> int:
        return int(self.anchor + (real - self.anchor) * SCALE)

    def burst(self, threads: int, each: int) -> None:
        """Normal uploads from `threads` clients at once (conf 0.25): a queue forms at the model thread."""

        def client(offset: int) -> list[str]:
            names = []
            with requests.Session() as session:
                for index in range(each):
                    name, data, content_type = upload_for("normal", offset * each + index)
                    response = session.post(f"{self.base}/predict", files={"file": (name, data, content_type)},
                                            data={"conf": "0.25", "imgsz": "320"}, timeout=60)  # fmt: skip
                    assert response.status_code == 200, response.text
                    names += [result["name"] for result in response.json()["images"][0]["results"]]
            return names

        with ThreadPoolExecutor(threads) as pool:
            for names in pool.map(client, range(threads)):
                self.classes.update(names)
        self.sent[0.25] += threads * each

    def send(self, mode: str, conf: float, count: int = PER_PHASE, seconds: float = PHASE_S) -> tuple[int, int]:
        """At least `count` uploads of the mode at `conf`, for at least `seconds` (imgsz 320: what the demo model
        was trained at); the whole server-clock minutes they covered, a minute of margin each side."""
        started = time.time()
        index = 0
        while index < count or time.time() - started < seconds:
            name, data, content_type = upload_for(mode, index)
            response = self.session.post(
                f"{self.base}/predict",
                files={"file": (name, data, content_type)},
                data={"conf": str(conf), "imgsz": "320"},
                timeout=30,
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["metadata"]["params"] == {"conf": conf, "iou": 0.7, "imgsz": 320}
            self.classes.update(result["name"] for result in body["images"][0]["results"])
            self.sent[conf] += 1
            index += 1
        first = self.server_s(started) // 60 * 60 + 60
        last = self.server_s(time.time()) // 60 * 60 - 60
        assert last - first >= 300 or not seconds, "a phase must cover at least five whole minutes of server time"
        return first, last


def _drift(api: str, baseline: tuple[int, int], current: tuple[int, int]) -> dict:
    params = {"baselineStart": baseline[0], "baselineEnd": baseline[1],
              "currentStart": current[0], "currentEnd": current[1]}  # fmt: skip
    report = requests.get(f"{api}/deployments/e2e/drift", params=params, timeout=30).json()
    return {**report, "by": {signal["signal"]: signal for signal in report["signals"]}}


def _fired(api: str, rule: str) -> list[dict]:
    history = requests.get(f"{api}/alerts", params={"deployment": "e2e"}, timeout=10).json()["history"]
    return [entry for entry in history if entry["rule"] == rule and entry["status"] == "firing"]


def _signals_of(api: str, requests_sent: int) -> dict:
    """The signals endpoint over 6h, once the writer has stored every request sent (it flushes each second)."""

    def stored() -> dict:
        return requests.get(f"{api}/deployments/e2e/signals", params={"range": "6h"}, timeout=30).json()

    def complete(body: dict) -> bool:
        return sum(row["requests"] for row in body["versions"]) == requests_sent

    return wait_until(stored, f"all {requests_sent} requests to be stored", accept=complete, timeout_s=15)


def _second_model(path: Path) -> Path:
    """The demo weights saved again (a new file, a new digest): what a retrained model looks like to a server."""
    from yolowatch.yolo.offline import prepare_ultralytics

    prepare_ultralytics()
    from ultralytics import YOLO

    YOLO(str(default_model_path())).save(str(path))
    return path


@pytest.mark.slow
def test_parameter_change_drift_classes_and_versions(tmp_path: Path, receiver: WebhookReceiver) -> None:
    """conf 0.25 -> 0.5 on normal images: no confidence drift, no mean-confidence alert, the change reported;
    the drifted split at conf 0.25: confidence, brightness and sharpness drift (and the alert does fire);
    per-class counts equal the responses'; a second model file is a second version, compared side by side."""
    anchor = time.time()
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    env = {
        "YOLOWATCH_TIME_SCALE": str(SCALE),
        "YOLOWATCH_TIME_ANCHOR": str(anchor),
        "YOLOWATCH_ALERT_WEBHOOK": receiver.url,
    }
    db = str(tmp_path / "e2e.db")
    args = ["--db", db, "--deployment", "e2e", "--alert-rules", str(rules)]
    with run_server(args, env=env) as base:
        api = f"{base}/api"
        phases = Phases(base, anchor)
        normal_low = phases.send("normal", 0.25)
        pinned = requests.put(
            f"{api}/deployments/e2e/baseline", json={"start": normal_low[0], "end": normal_low[1]}, timeout=10
        )
        assert pinned.status_code == 200, pinned.text
        normal_high = phases.send("normal", 0.5)
        # Every minute of the conf-0.5 phase evaluated (alerts run a few server seconds behind the writer).
        time.sleep(2)
        assert _fired(api, "MeanConfidenceRise") == [] and _fired(api, "MeanConfidenceDrop") == []
        assert _fired(api, "DetectionRateDrop") == []

        changed = _drift(api, normal_low, normal_high)
        assert changed["params"]["changed"] is True, changed["params"]
        assert changed["params"]["differences"] == ["conf from 0.25 to 0.5"]
        assert changed["params"]["confFloor"] == 0.5
        since = changed["params"]["since"]
        assert since is not None and normal_high[0] - 120 <= since <= normal_high[0] + 60
        confidence = changed["by"]["confidence"]
        assert confidence["comparable"] and not confidence["drifted"], confidence
        assert min(confidence["baselineSamples"], confidence["currentSamples"]) >= 500, confidence
        assert not changed["by"]["boxSize"]["comparable"]
        mean = next(change for change in changed["changes"] if change["signal"] == "meanConfidence")
        assert mean["flagged"] is False, mean

        drifted = phases.send("drifted", 0.25)
        wait_until(lambda: _fired(api, "MeanConfidenceDrop"), "the drifted phase to fire MeanConfidenceDrop",
                   timeout_s=30)  # fmt: skip
        moved = _drift(api, normal_low, drifted)
        assert moved["params"]["changed"] is False, moved["params"]
        for signal in ("confidence", "brightness", "sharpness"):
            assert moved["by"][signal]["drifted"] is True, moved["by"][signal]
        same = _drift(api, normal_low, (normal_high[0], normal_high[1]))["by"]
        assert same["brightness"]["drifted"] is False and same["sharpness"]["drifted"] is False

        phases.burst(threads=12, each=15)  # a few seconds of 12 clients at once
        signals = _signals_of(api, phases.sent.total())
        assert {row["name"]: row["detections"] for row in signals["classes"]} == dict(phases.classes)
        saturation = signals["saturation"]
        assert saturation["queueMax"] >= 4 and saturation["inFlightMax"] >= 4, saturation  # 12 clients, 1 model
        assert saturation["cpuPercent"] > 10 and saturation["rssMaxBytes"] > 100 * 2**20, saturation
        assert saturation["gpuUtilizationPercent"] is None and saturation["gpuMemoryMaxBytes"] is None  # no GPU here
        metrics = requests.get(f"{base}/metrics", timeout=10).text
        rss = re.search(r'^yolowatch_process_resident_memory_bytes\{deployment="e2e"\} (\S+)$', metrics, re.M)
        assert rss is not None and float(rss.group(1)) > 100 * 2**20
        stages = {row["stage"]: row for row in signals["stages"]}
        assert set(stages) == {"decode", "queue", "preprocess", "inference", "postprocess"}
        assert all(row["count"] == phases.sent.total() for row in stages.values())
        assert {(row["conf"], row["imgsz"]): row["predictions"] for row in signals["params"]} == {
            (conf, 320): count for conf, count in phases.sent.items()
        }
        first_version = signals["versions"][0]["version"]
        assert first_version.startswith("shapes-yolo.pt@") and len(signals["versions"]) == 1

    second = _second_model(tmp_path / "shapes-yolo-v2.pt")
    with run_server([*args, "--model", str(second)], env=env) as base:
        api = f"{base}/api"
        Phases(base, anchor).send("normal", 0.25, 60, seconds=0)
        signals = _signals_of(api, phases.sent.total() + 60)
        versions = {row["version"]: row["requests"] for row in signals["versions"]}
        second_version = next(name for name in versions if name != first_version)
        assert second_version.startswith("shapes-yolo-v2.pt@")
        assert versions == {first_version: phases.sent.total(), second_version: 60}
        compare = requests.get(
            f"{api}/deployments/e2e/compare",
            params={"range": "6h", "a": first_version, "b": second_version},
            timeout=30,
        ).json()
        assert compare["a"]["version"] == first_version and compare["b"]["version"] == second_version
        assert compare["a"]["summary"]["requests"] == phases.sent.total()
        assert compare["b"]["summary"]["requests"] == 60
        assert compare["b"]["stages"] and compare["b"]["classes"]
        assert {signal["signal"] for signal in compare["drift"]["signals"]} >= {"confidence", "brightness"}
        print(f"conf change: {changed['params']['reason']}\ndrifted: {moved['by']['confidence']['reason']}")
