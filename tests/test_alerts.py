"""Alert rules: Prometheus semantics on a fake clock, persistence across restarts, Alertmanager-shaped webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from conftest import FakeClock, free_port
from yolowatch.alerts import AlertState, Evaluator, Rule, alertmanager_payload, default_rules, step, webhook_sink
from yolowatch.recorder import Recorder
from yolowatch.store import Store, StoreWriter

pytestmark = pytest.mark.anyio

ERRORS = Rule("HighErrorRate", "error_rate", "above", 0.01, for_s=300, severity="critical", runbook="read the logs")


def _run(rule: Rule, values: list[float | None], keep: AlertState | None = None) -> tuple[list[str], list[str]]:
    """Step a rule once a minute through `values`: the states after each step and the notifications made."""
    state = keep or AlertState(rule.name, "d")
    states, notes = [], []
    for minute, value in enumerate(values, start=1):
        notification = step(rule, state, minute * 60, value)
        states.append(state.state)
        if notification is not None:
            notes.append(f"{notification.status}@{minute}")
    return states, notes


def test_pending_fires_after_the_whole_duration_and_resolves() -> None:
    states, notes = _run(ERRORS, [0.0, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.0, 0.0])
    assert states == ["inactive", "pending", "pending", "pending", "pending", "pending", "firing", "inactive",
                      "inactive"]  # fmt: skip
    assert notes == ["firing@7", "resolved@8"]  # held from minute 2; 300 s later, at minute 7, it fires


def test_pending_resets_when_the_condition_fails() -> None:
    states, notes = _run(ERRORS, [0.2, 0.2, 0.2, 0.0, 0.2, 0.2, 0.2, 0.2, 0.2])
    assert notes == [] and states[3] == "inactive" and states[-1] == "pending"  # the clock restarted at minute 5


def test_keep_firing_rides_out_a_flap() -> None:
    flappy = Rule("Flappy", "error_rate", "above", 0.01, for_s=0, keep_firing_s=120)
    _, notes = _run(flappy, [0.2, 0.0, 0.2, 0.0, 0.0, 0.0])
    assert notes == ["firing@1", "resolved@5"]  # one dip of a minute does not resolve; two minutes past it does


def test_no_data_is_not_a_breach_and_rules_are_checked() -> None:
    assert _run(ERRORS, [None] * 10)[1] == []
    with pytest.raises(ValueError, match="metric must be one of"):
        Rule("x", "temperature", "above", 1)
    assert {r.name for r in default_rules()} >= {"HighP95Latency", "HighErrorRate", "DetectionRateDrop"}
    assert all(r.runbook for r in default_rules())


class Receiver(BaseHTTPRequestHandler):
    """A real local webhook receiver: keeps every JSON body; answers 500 while `failing`."""

    bodies: ClassVar[list[dict]] = []
    failing: ClassVar[bool] = False

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        if Receiver.failing:
            self.send_response(500)
        else:
            Receiver.bodies.append(body)
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.bodies, Receiver.failing = [], False
    server = HTTPServer(("127.0.0.1", free_port()), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


async def test_restart_neither_loses_a_resolved_notification_nor_repeats_a_firing_one(
    tmp_path: Path, clock: FakeClock, receiver: str
) -> None:
    path = tmp_path / "alerts.db"

    def evaluator(store: Store) -> Evaluator:
        return Evaluator(store, [ERRORS], sinks={"webhook": webhook_sink(receiver, "http://127.0.0.1:8000")})

    store = Store(path, clock=clock)
    first = evaluator(store)
    for minute in range(1, 8):  # errors from minute 1: fires at minute 6
        await first.evaluate("prod", minute * 60, {"error_rate": 0.2})
    assert await first.deliver() == 1
    Receiver.failing = True  # the receiver is down when the alert resolves
    assert [n.status for n in await first.evaluate("prod", 8 * 60, {"error_rate": 0.0})] == ["resolved"]
    assert await first.deliver() == 0
    await store.close()  # "restart"

    Receiver.failing = False
    store = Store(path, clock=clock)
    second = evaluator(store)
    assert await second.deliver() == 1  # the resolved notification was kept, and goes now
    assert await second.deliver() == 0  # and only once
    statuses = [body["status"] for body in Receiver.bodies]
    assert statuses == ["firing", "resolved"]  # the firing one was not sent again after the restart
    body = Receiver.bodies[0]
    assert body["version"] == "4" and body["receiver"] == "yolowatch"
    alert = body["alerts"][0]
    assert alert["labels"] == {"alertname": "HighErrorRate", "deployment": "prod", "severity": "critical"}
    assert alert["annotations"]["runbook"] == "read the logs" and alert["endsAt"].startswith("0001")
    assert set(body) >= {"groupKey", "groupLabels", "commonLabels", "commonAnnotations", "externalURL", "alerts"}
    assert Receiver.bodies[1]["alerts"][0]["endsAt"].startswith("1970-01-01T00:08")
    states = await store.alert_states("prod")
    assert states["HighErrorRate"].state == "inactive"
    await store.close()


async def test_state_survives_a_restart_mid_pending(tmp_path: Path, clock: FakeClock) -> None:
    """Pending for 3 minutes, restart, 2 more minutes of errors: it fires on time, not 5 minutes later."""
    path = tmp_path / "pending.db"
    store = Store(path, clock=clock)
    for minute in range(1, 4):
        await Evaluator(store, [ERRORS], sinks={}).evaluate("prod", minute * 60, {"error_rate": 0.2})
    await store.close()
    store = Store(path, clock=clock)
    made = []
    for minute in range(4, 7):
        made += await Evaluator(store, [ERRORS], sinks={}).evaluate("prod", minute * 60, {"error_rate": 0.2})
    assert [(n.status, n.starts_at) for n in made] == [("firing", 60)]
    await store.close()


def test_payload_groups_like_alertmanager() -> None:
    from yolowatch.alerts import Notification

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


async def test_rules_read_closed_minutes_from_the_store(tmp_path: Path, clock: FakeClock) -> None:
    """Half the requests failing, minute after minute, in real stored buckets: HighErrorRate fires once, on time."""
    clock.now -= clock.now % 60
    store = Store(tmp_path / "m.db", clock=clock)
    writer = StoreWriter(store, Recorder(clock=clock), "w")
    evaluator = Evaluator(store, default_rules(), sinks={})
    fired = []
    for minute in range(8):
        start = await _failing_minute(writer, clock)
        fired += [(minute, n.rule, n.status) for n in await evaluator.evaluate_closed_minute("prod", start)]
    assert fired == [(5, "HighErrorRate", "firing")]  # breached from the first minute; 300 s later it fires
    quiet = await evaluator.evaluate_closed_minute("prod", int(clock.now))  # a minute with no traffic at all
    # As in Prometheus, no data is no breach: with no series left, the alert resolves.
    assert [(n.rule, n.status) for n in quiet] == [("HighErrorRate", "resolved")]
    await store.close()


def test_alerts_route_lists_rules_and_history(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient

    from yolowatch.admin import admin_router
    from yolowatch.monitor import Monitor

    monitor = Monitor(tmp_path / "r.db", "prod", alert_rules=default_rules())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await monitor.store.close()

    app = Starlette(routes=[Mount("/", admin_router(monitor.store, monitors=[monitor]))], lifespan=lifespan)
    with TestClient(app) as client:
        body = client.get("/api/alerts").json()
    assert [r["rule"] for r in body["rules"]] == ["HighP95Latency", "HighErrorRate", "DetectionRateDrop"]
    assert {r["state"] for r in body["rules"]} == {"inactive"} and body["history"] == []


async def test_two_processes_on_one_database_notify_once(tmp_path: Path, clock: FakeClock, receiver: str) -> None:
    """Two evaluators on one file (as `serve --workers 2` runs them) evaluate each minute once and send once."""
    clock.now -= clock.now % 60
    path = tmp_path / "shared.db"
    stores = [Store(path, clock=clock), Store(path, clock=clock)]
    writer = StoreWriter(stores[0], Recorder(clock=clock), "w")
    sink = {"webhook": webhook_sink(receiver)}
    evaluators = [Evaluator(store, [ERRORS], sinks=sink) for store in stores]
    made = []
    for _ in range(7):
        start = await _failing_minute(writer, clock)
        for batch in await asyncio.gather(*(e.evaluate_closed_minute("prod", start) for e in evaluators)):
            made += batch
        await asyncio.gather(*(e.deliver() for e in evaluators))
    assert [n.status for n in made] == ["firing"]
    assert [body["status"] for body in Receiver.bodies] == ["firing"]
    for store in stores:
        await store.close()
