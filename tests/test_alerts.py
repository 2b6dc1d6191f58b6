"""Alert rules: Prometheus semantics on a fake clock, persistence across restarts, Alertmanager-shaped webhooks."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from helpers import FakeClock, WebhookReceiver, admin_client
from yolowatch.alerts import Evaluator, Rule, advance, default_rules, load_rules_file, rule_from_json, rule_json
from yolowatch.monitor import Monitor
from yolowatch.recorder import Recorder
from yolowatch.records import AlertState
from yolowatch.signals import alert_evaluator
from yolowatch.sinks import alertmanager_payload, webhook_sink
from yolowatch.store import Store, StoreWriter

pytestmark = pytest.mark.anyio

ERRORS = Rule("HighErrorRate", "error_rate", "above", 0.01, for_s=300, severity="critical", runbook="read the logs")
# The README's class-scoped example: detections of person below half their baseline rate for 10 minutes.
PERSON_DROP = {"name": "PersonDrop", "metric": "detection_rate", "class": "person", "comparison": "below",
               "threshold": 0.5, "for": "10m"}  # fmt: skip


def _run(rule: Rule, values: list[float | None], keep: AlertState | None = None) -> tuple[list[str], list[str]]:
    """Step a rule once a minute through `values`: the states after each step and the notifications made."""
    state = keep or AlertState(rule.name, "d")
    states, notes = [], []
    for minute, value in enumerate(values, start=1):
        notification = advance(rule, state, minute * 60, value)
        states.append(state.state)
        if notification is not None:
            notes.append(f"{notification.status}@{minute}")
    return states, notes


def test_pending_fires_after_the_whole_duration_and_resolves() -> None:
    """A breach held for the rule's whole `for` fires once, then resolves the minute it ends."""
    states, notes = _run(ERRORS, [0.0, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.0, 0.0])
    assert states == ["inactive", "pending", "pending", "pending", "pending", "pending", "firing", "inactive",
                      "inactive"]  # fmt: skip
    assert notes == ["firing@7", "resolved@8"]  # held from minute 2; 300 s later, at minute 7, it fires


def test_pending_resets_when_the_condition_fails() -> None:
    """One good minute while pending starts the wait over: nothing fires."""
    states, notes = _run(ERRORS, [0.2, 0.2, 0.2, 0.0, 0.2, 0.2, 0.2, 0.2, 0.2])
    assert notes == [] and states[3] == "inactive" and states[-1] == "pending"  # the clock restarted at minute 5


def test_keep_firing_rides_out_a_flap() -> None:
    """With keep_firing, a short dip does not resolve the alert; a longer one does."""
    flappy = Rule("Flappy", "error_rate", "above", 0.01, for_s=0, keep_firing_s=120)
    _, notes = _run(flappy, [0.2, 0.0, 0.2, 0.0, 0.0, 0.0])
    assert notes == ["firing@1", "resolved@5"]  # one dip of a minute does not resolve; two minutes past it does


def test_no_data_is_not_a_breach_and_rules_are_checked() -> None:
    """Minutes without data never fire; a rule on an unknown metric is refused; every default rule has a runbook."""
    assert _run(ERRORS, [None] * 10)[1] == []
    with pytest.raises(ValueError, match="metric must be one of"):
        Rule("x", "temperature", "above", 1)
    assert {r.name for r in default_rules()} >= {"HighP95Latency", "HighErrorRate", "DetectionRateDrop"}
    assert all(r.runbook for r in default_rules())


async def test_restart_neither_loses_a_resolved_notification_nor_repeats_a_firing_one(
    make_store: Callable[..., Store], receiver: WebhookReceiver
) -> None:
    """A resolved notification that could not be sent goes after a restart, once; the firing one is not repeated;
    both have Alertmanager's shape."""

    def evaluator(store: Store) -> Evaluator:
        sink = webhook_sink(receiver.url, "http://127.0.0.1:8000")
        return alert_evaluator(store, [ERRORS], sinks={"webhook": sink})

    store = make_store("alerts.db")
    first = evaluator(store)
    for minute in range(1, 8):  # errors from minute 1: fires at minute 6
        await first.evaluate("prod", minute * 60, {"error_rate": 0.2})
    assert await first.deliver() == 1
    receiver.failing = True  # the receiver is down when the alert resolves
    assert [n.status for n in await first.evaluate("prod", 8 * 60, {"error_rate": 0.0})] == ["resolved"]
    assert await first.deliver() == 0
    await store.close()  # "restart"

    receiver.failing = False
    store = make_store("alerts.db")
    second = evaluator(store)
    assert await second.deliver() == 1  # the resolved notification was kept, and goes now
    assert await second.deliver() == 0  # and only once
    statuses = [body["status"] for body in receiver.bodies]
    assert statuses == ["firing", "resolved"]  # the firing one was not sent again after the restart
    body = receiver.bodies[0]
    assert body["version"] == "4" and body["receiver"] == "yolowatch"
    alert = body["alerts"][0]
    assert alert["labels"] == {"alertname": "HighErrorRate", "deployment": "prod", "severity": "critical"}
    assert alert["annotations"]["runbook"] == "read the logs" and alert["endsAt"].startswith("0001")
    assert set(body) >= {"groupKey", "groupLabels", "commonLabels", "commonAnnotations", "externalURL", "alerts"}
    assert receiver.bodies[1]["alerts"][0]["endsAt"].startswith("1970-01-01T00:08")
    states = await store.alert_states("prod")
    assert states["HighErrorRate"].state == "inactive"


async def test_a_sink_that_is_down_is_retried_with_a_pause_and_logged_once(
    make_store: Callable[..., Store], clock: FakeClock, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression (the backoff read time.monotonic, so this test slept): the pause runs on the injected clock."""
    caplog.set_level(logging.INFO, logger="yolowatch.alerts")
    store = make_store("down.db")
    now = Rule("AnyError", "error_rate", "above", 0.0, for_s=0)
    with_secret = receiver.url.replace("http://", "http://ops:hook-secret@")  # never shown in a log line
    evaluator = alert_evaluator(store, [now], sinks={"webhook": webhook_sink(with_secret)}, clock=clock)
    await evaluator.evaluate("prod", 60, {"error_rate": 0.5})
    receiver.failing = True
    assert await evaluator.deliver() == 0 and receiver.attempts == 1
    for _ in range(5):  # the delivery loop runs every second; a dead receiver is not hammered, nor the log
        assert await evaluator.deliver() == 0
    assert receiver.attempts == 1 and caplog.text.count("alert sink webhook failed") == 1
    assert "answered 500" in caplog.text and "hook-secret" not in caplog.text
    receiver.failing = False
    clock.advance(0.9)  # the first pause is one second: not over yet
    assert await evaluator.deliver() == 0 and receiver.attempts == 1
    clock.advance(0.1)
    assert await evaluator.deliver() == 1 and [b["status"] for b in receiver.bodies] == ["firing"]
    assert "alert sink webhook delivers again" in caplog.text


async def test_state_survives_a_restart_mid_pending(make_store: Callable[..., Store]) -> None:
    """Pending for 3 minutes, restart, 2 more minutes of errors: it fires on time, not 5 minutes later."""
    store = make_store("pending.db")
    for minute in range(1, 4):
        await alert_evaluator(store, [ERRORS], sinks={}).evaluate("prod", minute * 60, {"error_rate": 0.2})
    await store.close()
    store = make_store("pending.db")
    made = []
    for minute in range(4, 7):
        made += await alert_evaluator(store, [ERRORS], sinks={}).evaluate("prod", minute * 60, {"error_rate": 0.2})
    assert [(n.status, n.starts_at) for n in made] == [("firing", 60)]


def test_payload_groups_like_alertmanager() -> None:
    """Notifications of one rule go as one Alertmanager group with common labels and a fingerprint per alert."""
    from yolowatch.records import Notification

    body = alertmanager_payload(
        [Notification("A", "prod", "firing", 60, None, 0.5, "warning", "r"),
         Notification("A", "edge", "resolved", 60, 120, 0.0, "warning", "r")]
    )  # fmt: skip
    assert body["status"] == "firing" and body["commonLabels"] == {"alertname": "A", "severity": "warning"}
    assert body["groupLabels"] == {"alertname": "A"} and len({a["fingerprint"] for a in body["alerts"]}) == 2


async def _failing_minute(writer: StoreWriter, clock: FakeClock) -> int:
    """Record one minute in which half of 20 requests fail, write it, and return the minute's start."""
    start = int(clock.now)
    for i in range(20):
        writer.recorder.record_request("prod", "POST", "/predict", 500 if i % 2 else 200, 1000, "r")
    clock.advance(60)
    assert await writer.flush()
    return start


async def test_rules_read_closed_minutes_from_the_store(make_store: Callable[..., Store], clock: FakeClock) -> None:
    """Half the requests failing, minute after minute, in real stored buckets: HighErrorRate fires once, on time."""
    clock.now -= clock.now % 60
    store = make_store("m.db")
    writer = StoreWriter(store, Recorder(clock=clock), "w")
    evaluator = alert_evaluator(store, default_rules(), sinks={})
    fired = []
    for minute in range(8):
        start = await _failing_minute(writer, clock)
        fired += [(minute, n.rule, n.status) for n in await evaluator.evaluate_closed_minute("prod", start)]
    assert fired == [(5, "HighErrorRate", "firing")]  # breached from the first minute; 300 s later it fires
    quiet = await evaluator.evaluate_closed_minute("prod", int(clock.now))  # a minute with no traffic at all
    # As in Prometheus, no data is no breach: with no series left, the alert resolves.
    assert [(n.rule, n.status) for n in quiet] == [("HighErrorRate", "resolved")]


def _admin_client(path: str) -> tuple[Monitor, TestClient]:
    """A monitor running the default rules, and a test client of its admin router (the store closes with it)."""
    monitor = Monitor(path, "prod", alert_rules=default_rules())
    return monitor, admin_client(monitor.store, monitors=[monitor])


def test_alerts_route_lists_rules_and_history(database: Callable[[str], str]) -> None:
    """/api/alerts lists every default rule, all inactive, and an empty history."""
    _, client = _admin_client(database("r.db"))
    with client:
        body = client.get("/api/alerts").json()
    assert [r["rule"] for r in body["rules"]] == [r.name for r in default_rules()]
    assert "DetectionRateDrop" in [r["rule"] for r in body["rules"]]
    assert {r["state"] for r in body["rules"]} == {"inactive"} and body["history"] == []


async def test_two_processes_on_one_database_notify_once(
    make_store: Callable[..., Store], clock: FakeClock, receiver: WebhookReceiver
) -> None:
    """Two evaluators on one file (as `serve --workers 2` runs them) evaluate each minute once and send once."""
    clock.now -= clock.now % 60
    stores = [make_store("shared.db"), make_store("shared.db")]
    writer = StoreWriter(stores[0], Recorder(clock=clock), "w")
    sink = {"webhook": webhook_sink(receiver.url)}
    evaluators = [alert_evaluator(store, [ERRORS], sinks=sink) for store in stores]
    made = []
    for _ in range(7):
        start = await _failing_minute(writer, clock)
        for batch in await asyncio.gather(*(e.evaluate_closed_minute("prod", start) for e in evaluators)):
            made += batch
        await asyncio.gather(*(e.deliver() for e in evaluators))
    assert [n.status for n in made] == ["firing"]
    assert [body["status"] for body in receiver.bodies] == ["firing"]


def test_rules_from_json_say_what_is_wrong() -> None:
    """A rule from JSON takes durations in words or seconds; each bad field is refused, saying what is wrong."""
    rule = rule_from_json({"name": "SlowP99", "metric": "p99_ms", "comparison": "above", "threshold": 800,
                           "for": "10m", "keepFiring": 120, "every": "1h", "severity": "critical"})  # fmt: skip
    assert (rule.for_s, rule.keep_firing_s, rule.every_s, rule.severity) == (600, 120, 3600, "critical")
    for body, says in (
        ({"name": "x", "metric": "p99_ms", "comparison": "above"}, "needs threshold"),
        ({"name": "x", "metric": "p99_ms", "comparison": "around", "threshold": 1}, "comparison must be one of"),
        ({"name": "x", "metric": "p99_ms", "comparison": "above", "threshold": "high"}, "threshold must be a number"),
        ({"name": "x", "metric": "p99_ms", "comparison": "above", "threshold": 1, "for": "soon"}, "duration"),
        ({"name": "x", "metric": "p99_ms", "comparison": "above", "threshold": 1, "every": 90}, "whole number"),
        ({"name": "x y", "metric": "p99_ms", "comparison": "above", "threshold": 1}, "name must be"),
        ({"name": "x", "metric": "p99_ms", "comparison": "above", "threshold": 1, "colour": 1}, "unknown rule field"),
        ([1, 2], "is an object"),
    ):
        with pytest.raises(ValueError, match=says):
            rule_from_json(body)


def test_drop_compares_with_the_baseline_and_weekly_rules_wait_for_their_minute() -> None:
    """Drop and rise compare with the baseline (none: no breach); a weekly rule is due only at its minute."""
    drop = Rule("MapDrop", "holdout_map50_95", "drop", 0.01, for_s=0, every_s=7 * 86400)
    assert drop.holds(0.80, baseline=0.82) and not drop.holds(0.815, baseline=0.82)
    assert not drop.holds(0.5, baseline=None)  # nothing to compare with yet
    rise = Rule("Up", "p95_ms", "rise", 100.0)
    assert rise.holds(350.0, baseline=200.0) and not rise.holds(250.0, baseline=200.0)
    monday = 1_794_182_400  # 2026-11-09T00:00:00Z, a Monday
    assert drop.due(monday) and drop.due(monday + 7 * 86400)
    assert not drop.due(monday + 60) and not drop.due(monday + 3 * 86400)  # a Thursday: the epoch's weekday


def test_a_rules_file_adds_replaces_or_drops_defaults(tmp_path: Path) -> None:
    """A rules file replaces a default by name and adds new rules, `defaults = false` drops the rest, and a bad file
    names the rule or the file."""
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[rule]]\nname = "HighErrorRate"\nmetric = "error_rate"\ncomparison = "above"\nthreshold = 0.05\n'
        'for = "2m"\nrunbook = "five per cent for two minutes"\n\n'
        '[[rule]]\nname = "SlowP99"\nmetric = "p99_ms"\ncomparison = "above"\nthreshold = 900\n'
    )
    rules = {r.name: r for r in load_rules_file(path, default_rules())}
    assert rules["HighErrorRate"].threshold == 0.05 and rules["HighErrorRate"].for_s == 120
    assert "SlowP99" in rules and "HighP95Latency" in rules
    path.write_text("defaults = false\n" + path.read_text())
    assert [r.name for r in load_rules_file(path, default_rules())] == ["HighErrorRate", "SlowP99"]
    path.write_text('[[rule]]\nname = "Bad"\nmetric = "temperature"\ncomparison = "above"\nthreshold = 1\n')
    with pytest.raises(ValueError, match="rule 1: metric must be one of"):
        load_rules_file(path, [])
    path.write_text("[[rule]\n")
    with pytest.raises(ValueError, match=r"rules\.toml"):
        load_rules_file(path, [])


async def test_the_holdout_rule_fires_when_map_falls_a_point(
    make_store: Callable[..., Store], clock: FakeClock
) -> None:
    """The weekly HoldoutMapDrop rule stays quiet for half a point, fires for three points down, resolves after."""
    week = 7 * 86400
    clock.now -= (clock.now - 4 * 86400) % week  # a Monday, 00:00 UTC
    store = make_store("h.db")
    await store.register_deployment("prod")
    evaluator = alert_evaluator(store, [r for r in default_rules() if r.name == "HoldoutMapDrop"], sinks={})
    scores = [("clean", "d1", 0.90), ("clean", "d1", 0.895), ("clean", "d1", 0.87), ("clean", "d1", 0.90)]
    made = []
    for name, digest, score in scores:
        result = {"map50": score + 0.05, "map50_95": score, "images": 200, "details": {}}
        await store.save_holdout("prod", name, digest, "model:x.pt", result)
        clock.advance(week)
        made += [n.status for n in await evaluator.evaluate_closed_minute("prod", int(clock.now) - 60)]
    assert made == ["firing", "resolved"]  # 0.5 points down: quiet; 3 points down: fires; back: resolves


def test_rules_are_created_listed_and_deleted_through_the_api(database: Callable[[str], str]) -> None:
    """API rules live in the file (every process applies them); deleting a firing one resolves it."""
    monitor, client = _admin_client(database("r.db"))
    flaky = {"name": "AnyError", "metric": "error_rate", "comparison": "above", "threshold": 0, "for": 0,
             "runbook": "one failure is one too many"}  # fmt: skip
    with client:
        created = client.post("/api/alerts/rules", json=flaky)
        assert created.status_code == 201 and created.json()["source"] == "api" and created.json()["for"] == 0
        assert client.post("/api/alerts/rules", json=flaky).status_code == 409  # names are unique
        clash = client.post("/api/alerts/rules", json={**flaky, "name": "HighErrorRate"})
        assert clash.status_code == 409 and "exists" in clash.json()["error"]
        bad = client.post("/api/alerts/rules", json={**flaky, "metric": "temperature"})
        assert bad.status_code == 400 and "metric must be one of" in bad.json()["error"]
        listed = {r["name"]: r["source"] for r in client.get("/api/alerts/rules").json()["rules"]}
        assert listed == {**{r.name: "config" for r in default_rules()}, "AnyError": "api"}
        assert "AnyError" in [r["rule"] for r in client.get("/api/alerts").json()["rules"]]
        # The new rule is applied like the configured ones: a failing minute fires it.
        assert client.portal.call(_fire_any_error, monitor) == [("AnyError", "firing")]
        assert client.delete("/api/alerts/rules/HighErrorRate").status_code == 409  # lives in the config
        assert client.delete("/api/alerts/rules/Nope").status_code == 404
        assert client.delete("/api/alerts/rules/AnyError").status_code == 204
        history = client.get("/api/alerts").json()["history"]
        assert [(h["rule"], h["status"]) for h in history] == [("AnyError", "resolved"), ("AnyError", "firing")]
        assert "AnyError" not in [r["name"] for r in client.get("/api/alerts/rules").json()["rules"]]


async def _fire_any_error(monitor: Monitor) -> list[tuple[str, str]]:
    """Record a failing request, write it, and evaluate its minute: the notifications that made."""
    assert monitor.alerts is not None
    now = int(monitor.clock())
    start = now - now % 60 - 60
    monitor.recorder.record_request("prod", "POST", "/predict", 500, 1000, "r")
    assert await monitor.writer.flush()
    made = await monitor.alerts.evaluate_closed_minute("prod", start + 60)
    return [(n.rule, n.status) for n in made]


def test_the_readme_rules_example_loads(tmp_path: Path) -> None:
    """The README's rules.toml example loads, adding its two rules (one scoped to a class) to the defaults."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "rules.toml").write_text(example)
    rules = {r.name: r for r in load_rules_file(tmp_path / "rules.toml", default_rules())}
    slow = rules["SlowP99"]
    assert (slow.for_s, slow.keep_firing_s, slow.every_s, slow.deployment) == (600, 120, 60, "prod")
    person = rules["PersonDrop"]
    assert (person.class_name, person.key, person.threshold, person.for_s) == (
        "person",
        "detection_rate[person]",
        0.5,
        600,
    )
    assert len(rules) == len(default_rules()) + 2


async def test_without_scipy_the_drift_rule_is_skipped_and_the_others_still_run(
    make_store: Callable[..., Store],
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The light install (no yolo extra) has no scipy: at midnight the daily drift rule is skipped, not fatal."""
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # as if not installed: importing it raises
    clock.now -= clock.now % 86400
    clock.now -= 60
    store = make_store("light.db")
    writer = StoreWriter(store, Recorder(clock=clock), "w")
    start = await _failing_minute(writer, clock)
    evaluator = alert_evaluator(store, default_rules(), sinks={})
    assert await evaluator.evaluate_closed_minute("prod", start) == []
    states = await store.alert_states("prod")
    assert states["HighErrorRate"].state == "pending" and "ConfidenceDrift" not in states
    assert "drift alert rules need scipy" in caplog.text


async def test_the_next_minute_waits_for_the_last_one_to_be_saved(
    make_store: Callable[..., Store], clock: FakeClock
) -> None:
    """Two processes catching up at once: while one evaluates minute n (claimed, not yet saved), the other cannot
    claim n+1 (it would read states from before n); once n is finished it can. A claim whose process died (never
    finished) stops blocking after two minutes; a minute is never claimed twice."""
    a, b = make_store("claims.db"), make_store("claims.db")
    key, n = "alerts-evaluated:prod", 1_800_000_000
    assert await a.claim_minute(key, n)
    assert not await b.claim_minute(key, n + 60)  # n is still being evaluated
    assert not await b.claim_minute(key, n)  # and n is taken
    await a.finish_minute(key, n)
    assert await b.claim_minute(key, n + 60)
    assert not await a.claim_minute(key, n + 60)
    clock.advance(119)  # b "dies" without finishing n+60
    assert not await a.claim_minute(key, n + 120)
    clock.advance(2)
    assert await a.claim_minute(key, n + 120)


def test_a_class_scoped_rule_round_trips_and_bad_classes_are_refused() -> None:
    """A rule with "class" reads its metric as `metric[class]` and survives a JSON round trip; a class on a metric
    that has none, or a bad class name, is refused saying why."""
    rule = rule_from_json(PERSON_DROP)
    assert (rule.class_name, rule.key, rule.for_s) == ("person", "detection_rate[person]", 600)
    assert rule_json(rule)["class"] == "person" and rule_from_json(rule_json(rule)) == rule
    assert "class" not in rule_json(ERRORS) and ERRORS.key == "error_rate"
    assert Rule("LowCarConfidence", "mean_confidence", "below", 0.4, class_name="car").key == "mean_confidence[car]"
    for change, says in (
        ({"metric": "p95_ms", "comparison": "above", "threshold": 500}, "class applies only to metric detection_rate"),
        ({"class": ""}, "class must not be empty"),
        ({"class": "x" * 129}, "1 to 128 characters"),
        ({"class": "person\n"}, "without control characters"),
        ({"class": "   "}, "class must be a class name"),
        ({"class": 7}, "class must be a string"),
    ):
        with pytest.raises(ValueError, match=says):
            rule_from_json({**PERSON_DROP, **change})
    assert rule_from_json({**PERSON_DROP, "class": "traffic light"}).key == "detection_rate[traffic light]"


async def test_a_class_scoped_rule_fires_on_its_class_while_the_deployment_is_fine(
    make_store: Callable[..., Store], clock: FakeClock
) -> None:
    """PersonDrop fires on `detection_rate[person]` at a fifth of its baseline; DetectionRateDrop, reading the
    deployment's detection rate (at its baseline), stays quiet."""
    clock.now -= clock.now % 60
    store = make_store("class.db")
    asked: list[list[str]] = []

    async def values(
        deployment: str, minute_start: int, rules: list[Rule]
    ) -> tuple[dict[str, float | None], dict[str, float | None]]:
        asked.append(sorted(rule.key for rule in rules))
        return {"detection_rate": 1.0, "detection_rate[person]": 0.2}, {"detection_rate[person]": 1.0}

    rules = [rule_from_json(PERSON_DROP), *(r for r in default_rules() if r.name == "DetectionRateDrop")]
    evaluator = Evaluator(store, rules, {}, values)
    made = []
    for minute in range(12):
        start = int(clock.now) + minute * 60
        made += [(minute, n.rule, n.status, n.value) for n in await evaluator.evaluate_closed_minute("prod", start)]
    assert made == [(10, "PersonDrop", "firing", 0.2)]  # held from minute 0; 600 s later it fires
    assert asked[0] == ["detection_rate", "detection_rate[person]"]
    states = await store.alert_states("prod")
    assert states["DetectionRateDrop"].state == "inactive" and states["PersonDrop"].value == 0.2
    # The stored notification, and what a webhook receiver gets, carry the class as a label.
    (stored,) = await store.undelivered("webhook")
    assert stored.class_name == "person"
    labels = alertmanager_payload([stored])["alerts"][0]["labels"]
    assert labels == {"alertname": "PersonDrop", "deployment": "prod", "severity": "warning", "class": "person"}


def test_an_infinite_duration_is_refused_not_a_server_error() -> None:
    """Regression (JSON's Infinity reached int() and raised OverflowError, a 500): a non-finite duration is a
    ValueError that says so."""
    for value in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match="finite number of seconds"):
            rule_from_json({"name": "x", "metric": "p99_ms", "comparison": "above", "threshold": 1, "for": value})
