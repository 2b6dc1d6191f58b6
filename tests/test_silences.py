"""Silences and acknowledgements, as Alertmanager has them: label matchers over an alert's labels for a time; a
silenced alert changes state but sends nothing (through a real store and a real webhook receiver, across a
restart); an acknowledgement is recorded, shown, and cleared when the alert resolves."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from helpers import FakeClock, WebhookReceiver
from yolowatch.admin import admin_router
from yolowatch.alerts import Evaluator, Matcher, Rule, alert_labels, rule_json, silence_from_json
from yolowatch.records import Notification
from yolowatch.signals import alert_evaluator
from yolowatch.sinks import webhook_sink
from yolowatch.store import Store

pytestmark = pytest.mark.anyio

ERRORS = Rule("HighErrorRate", "error_rate", "above", 0.01, for_s=60, severity="critical", runbook="read the logs")
SILENCE = {
    "matchers": [{"name": "alertname", "value": "HighErrorRate"}, {"name": "deployment", "value": "prod"}],
    "duration": "1h",
    "createdBy": "ops@example.com",
    "comment": "deploying the fix for the 500s",
}
PERSON = alert_labels("PersonDrop", "prod", "warning", "person")
ERRORS_PROD = alert_labels("HighErrorRate", "prod", "critical")


@pytest.mark.parametrize(
    ("matcher", "labels", "matches"),
    [
        (Matcher("alertname", "HighErrorRate"), ERRORS_PROD, True),
        (Matcher("alertname", "HighError"), ERRORS_PROD, False),  # equality is of the whole value
        (Matcher("deployment", "prod", is_equal=False), ERRORS_PROD, False),
        (Matcher("deployment", "staging", is_equal=False), ERRORS_PROD, True),
        (Matcher("alertname", "High.*", is_regex=True), ERRORS_PROD, True),
        (Matcher("alertname", "Error.*", is_regex=True), ERRORS_PROD, False),  # anchored at the start...
        (Matcher("deployment", "pro", is_regex=True), ERRORS_PROD, False),  # ...and at the end
        (Matcher("deployment", "prod|edge", is_regex=True), ERRORS_PROD, True),  # each branch whole
        (Matcher("deployment", "prod-.*", is_regex=True, is_equal=False), alert_labels("A", "prod-eu"), False),
        (Matcher("deployment", "prod-.*", is_regex=True, is_equal=False), alert_labels("A", "edge"), True),
        (Matcher("severity", "critical"), ERRORS_PROD, True),
        (Matcher("class", "person"), PERSON, True),
        (Matcher("class", "person"), ERRORS_PROD, False),  # no class label: it reads as empty
        (Matcher("class", ""), ERRORS_PROD, True),
        (Matcher("class", "", is_equal=False), PERSON, True),
        (Matcher("class", "per.*|car", is_regex=True), PERSON, True),
    ],
)
def test_matchers_compare_whole_label_values(matcher: Matcher, labels: dict[str, str], matches: bool) -> None:
    """Equal, not equal, and fully anchored regexes, over alertname, deployment, severity and class (a label an
    alert lacks reads as empty, as in Alertmanager)."""
    assert matcher.matches(labels) is matches


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"matchers": []}, "matchers must be a list of 1 to 16"),
        ({"matchers": [{"name": "instance", "value": "x"}]}, "name must be one of alertname, deployment, severity"),
        ({"matchers": [{"name": "alertname"}]}, "a matcher is an object"),
        ({"matchers": [{"name": "alertname", "value": "A", "isRegex": "yes"}]}, "isRegex must be true or false"),
        ({"matchers": [{"name": "alertname", "value": "A", "op": "="}]}, "unknown matcher field op"),
        ({"matchers": [{"name": "alertname", "value": "(", "isRegex": True}]}, "not a valid regular expression"),
        ({"matchers": [{"name": "alertname", "value": "(a+)+b", "isRegex": True}]}, "must not repeat a group"),
        ({"matchers": [{"name": "alertname", "value": ".*.*.*.*x", "isRegex": True}]}, "at most 3 quantifiers"),
        ({"matchers": [{"name": "deployment", "value": "(a*b*|c)d*e*", "isRegex": True}]}, "at most 3 quantifiers"),
        # Alternatives multiply the work: counted in all, not per branch (this one took 5.5 s on 64 characters).
        (
            {"matchers": [{"name": "alertname", "value": "(?:.*|.*|.*)" * 3 + "!", "isRegex": True}]},
            "at most 4 quantifiers",
        ),
        ({"matchers": [{"name": "alertname", "value": "x" * 257}]}, "0 to 256 characters"),
        ({"matchers": [{"name": "alertname", "value": ".*", "isRegex": True}]}, "matches every alert"),
        ({"matchers": [{"name": "deployment", "value": "prod", "isEqual": False}]}, "matches every alert"),
        ({"duration": None}, "duration must be seconds or a duration"),
        ({"duration": "soon"}, "duration must be seconds or a duration"),
        ({"duration": 0}, "duration must be positive"),
        ({"duration": "400d"}, "within 366 days"),
        ({"endsAt": "2020-01-01T00:00:00Z"}, "give endsAt (a time) or duration"),
        ({"startsAt": "tomorrow"}, "startsAt: 'tomorrow' is not a time"),
        ({"createdBy": ""}, "createdBy must be text of 1 to 100 characters"),
        ({"createdBy": "   "}, "createdBy must be text"),
        ({"comment": "line one\nline two"}, "without control characters"),
        ({"comment": "x" * 1001}, "comment must be text of 1 to 1000"),
        ({"id": "mine"}, "unknown silence field id"),
    ],
)
def test_a_bad_silence_is_refused_saying_what_is_wrong(change: dict[str, Any], says: str) -> None:
    """Each bad field of a silence is refused with a sentence that names it and what is allowed."""
    with pytest.raises(ValueError, match=said(says)):
        silence_from_json({**SILENCE, **change}, 1_800_000_000)


def said(text: str) -> str:
    return "".join("\\" + c if c in ".()[]*+?|{}^$" else c for c in text)


def test_silence_times_and_the_regexes_that_are_allowed() -> None:
    """A start in the past is now; endsAt before the start, or with duration too, is refused; alternatives of
    prefixes, classes and bounded repeats are fine regexes."""
    now = 1_800_000_000
    silence = silence_from_json({**SILENCE, "startsAt": now - 3600}, now)
    assert (silence.starts_at, silence.ends_at, silence.state(now)) == (now, now + 3600, "active")
    pending = silence_from_json({**SILENCE, "startsAt": "2027-01-16T08:00:00Z", "duration": 7200}, now)
    assert pending.state(now) == "pending" and pending.ends_at - pending.starts_at == 7200
    without_duration = {key: value for key, value in SILENCE.items() if key != "duration"}
    with pytest.raises(ValueError, match="endsAt must be after startsAt"):
        silence_from_json({**without_duration, "endsAt": now - 1}, now)
    assert silence_from_json({**without_duration, "endsAt": now + 60}, now).ends_at == now + 60
    for pattern in ("High.*|Golden.*|Slow.*|Error.*", "(prod|staging)-(eu|us)-.*", "[a-z]+-[0-9]{1,3}", r"\(.+\)"):
        matcher = {"name": "deployment", "value": pattern, "isRegex": True}
        assert silence_from_json({**SILENCE, "matchers": [matcher]}, now).matchers[0].value == pattern


@contextlib.asynccontextmanager
async def api(store: Store, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The admin API over `store`, in-process, on the test's own event loop."""
    app = Starlette(routes=[Mount("/", admin_router(store, **options))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as client:
        yield client


def _evaluator(store: Store, receiver: WebhookReceiver, clock: FakeClock) -> Evaluator:
    return alert_evaluator(store, [ERRORS], sinks={"webhook": webhook_sink(receiver.url)}, clock=clock)


async def _minute(evaluator: Evaluator, clock: FakeClock, error_rate: float) -> list[str]:
    """One more closed minute at this error rate: the statuses of the notifications it made."""
    clock.advance(60)
    return [n.status for n in await evaluator.evaluate("prod", int(clock()), {"error_rate": error_rate})]


async def test_a_silenced_alert_fires_but_sends_nothing_even_after_a_restart(
    make_store: Callable[..., Store], clock: FakeClock, receiver: WebhookReceiver
) -> None:
    """The issue's guarantee: under a matching silence the alert still goes pending and firing (shown as silenced),
    nothing reaches the receiver, a restart sends nothing either; after the silence expires the next transitions
    (resolved, then a new firing) are sent."""
    store = make_store("silenced.db")
    async with api(store) as client:
        created = await client.post("/api/silences", json=SILENCE)
        assert created.status_code == 201
        silence = created.json()
    evaluator = _evaluator(store, receiver, clock)
    assert await _minute(evaluator, clock, 0.2) == []  # pending
    assert await _minute(evaluator, clock, 0.2) == ["firing"]  # the state moves as usual
    assert await evaluator.deliver() == 0
    assert (await store.alert_states("prod"))["HighErrorRate"].state == "firing"
    async with api(store) as client:
        alerts = (await client.get("/api/alerts")).json()
    (row,) = alerts["rules"]
    assert (row["state"], row["silencedBy"]) == ("firing", [silence["id"]])
    assert [(h["status"], h["silencedBy"]) for h in alerts["history"]] == [("firing", [silence["id"]])]
    await store.close()  # "restart"

    store = make_store("silenced.db")
    evaluator = _evaluator(store, receiver, clock)
    assert await evaluator.deliver() == 0
    assert await _minute(evaluator, clock, 0.2) == []  # still firing, still silenced
    clock.advance(3600)  # the silence has ended
    assert await evaluator.deliver() == 0  # what it silenced stays unsent: it was silenced when made
    assert receiver.attempts == 0
    assert await _minute(evaluator, clock, 0.0) == ["resolved"]
    assert await evaluator.deliver() == 1
    assert await _minute(evaluator, clock, 0.2) == []
    assert await _minute(evaluator, clock, 0.2) == ["firing"]
    assert await evaluator.deliver() == 1
    assert [(b["status"], b["alerts"][0]["labels"]["alertname"]) for b in receiver.bodies] == [
        ("resolved", "HighErrorRate"),
        ("firing", "HighErrorRate"),
    ]
    async with api(store) as client:
        alerts = (await client.get("/api/alerts")).json()
        assert alerts["rules"][0]["silencedBy"] == []
        assert [h["silencedBy"] for h in alerts["history"]] == [[], [], [silence["id"]]]
        expired = (await client.get("/api/silences?state=expired")).json()["silences"]
    assert [s["id"] for s in expired] == [silence["id"]]


async def test_a_silence_made_before_sending_stops_what_no_sink_has_sent(
    make_store: Callable[..., Store], clock: FakeClock, receiver: WebhookReceiver
) -> None:
    """Silences are checked again at send time: a notification made before the silence, not sent yet, is marked
    silenced and never sent (nor after a restart); one that a sink has sent already still goes to the others."""
    store = make_store("late.db")
    logged: list[Notification] = []

    async def log_sink(notifications: list[Notification]) -> None:
        logged.extend(notifications)

    sinks = {"log": log_sink, "webhook": webhook_sink(receiver.url)}
    evaluator = alert_evaluator(store, [ERRORS], sinks=sinks, clock=clock)
    await _minute(evaluator, clock, 0.2)
    assert await _minute(evaluator, clock, 0.2) == ["firing"]  # no silence yet: an ordinary notification
    silence = silence_from_json(SILENCE, int(clock()))
    await store.add_silence(silence)
    assert await evaluator.deliver() == 0 and logged == [] and receiver.attempts == 0
    (firing,) = await store.alert_history("prod")
    assert firing["silenced_by"] == [silence.id]
    await store.close()
    store = make_store("late.db")
    assert await alert_evaluator(store, [ERRORS], sinks=sinks, clock=clock).deliver() == 0

    # The next one is logged while the webhook is down; then a silence begins: a log line reached nobody, so the
    # webhook never gets it (the store's tests show one that a real channel sent going to every channel).
    await store.expire_silence(silence.id)
    evaluator = alert_evaluator(store, [ERRORS], sinks=sinks, clock=clock)
    receiver.failing = True
    assert await _minute(evaluator, clock, 0.0) == ["resolved"]
    assert await evaluator.deliver() == 1 and [n.status for n in logged] == ["resolved"]
    await store.add_silence(silence_from_json(SILENCE, int(clock())))
    receiver.failing = False
    clock.advance(1)  # the webhook's retry pause
    assert await evaluator.deliver() == 0
    assert receiver.bodies == [] and len(logged) == 1


async def test_silences_are_pending_then_active_then_expired(
    make_store: Callable[..., Store], clock: FakeClock
) -> None:
    """A silence that starts later is pending (and silences nothing), active from its start, expired from its end
    or once expired through the API; expired silences stay listed, and a pending one expired never starts."""
    store = make_store("states.db")
    async with api(store) as client:
        later = await client.post("/api/silences", json={**SILENCE, "startsAt": int(clock()) + 600})
        assert later.status_code == 201 and later.json()["status"] == {"state": "pending"}
        silence_id = later.json()["id"]
        assert await store.active_silences() == []
        clock.advance(600)
        assert [s.id for s in await store.active_silences()] == [silence_id]
        assert (await client.get(f"/api/silences/{silence_id}")).json()["status"]["state"] == "active"
        clock.advance(3600)
        assert (await client.get(f"/api/silences/{silence_id}")).json()["status"]["state"] == "expired"
        assert await store.active_silences() == []

        other = (await client.post("/api/silences", json=SILENCE)).json()
        pending = (await client.post("/api/silences", json={**SILENCE, "startsAt": int(clock()) + 60})).json()
        states = {s["id"]: s["status"]["state"] for s in (await client.get("/api/silences")).json()["silences"]}
        assert states == {other["id"]: "active", pending["id"]: "pending", silence_id: "expired"}
        expired = await client.delete(f"/api/silences/{other['id']}")
        assert expired.status_code == 200 and expired.json()["status"]["state"] == "expired"
        assert (await client.delete(f"/api/silences/{pending['id']}")).json()["status"]["state"] == "expired"
        clock.advance(120)  # the pending one's old start: it never begins
        assert await store.active_silences() == []
        listed = (await client.get("/api/silences?state=expired")).json()["silences"]
        assert {s["id"] for s in listed} == {silence_id, other["id"], pending["id"]}
        assert (await client.get("/api/silences?state=active")).json()["silences"] == []


async def _firing_rule_store(store: Store) -> Evaluator:
    """`store` knowing deployment 'prod' and the rule (made through the API, so every process knows it)."""
    await store.register_deployment("prod")
    await store.add_alert_rule(ERRORS.name, rule_json(ERRORS))
    return alert_evaluator(store, [ERRORS], sinks={})


async def test_an_acknowledgement_is_recorded_shown_and_cleared_when_the_alert_resolves(
    make_store: Callable[..., Store], clock: FakeClock
) -> None:
    """Acknowledging a pending or firing alert records who, when and what they said, shown in /api/alerts; it
    lasts while the alert fires and is cleared when it resolves, so the next firing needs a new one. An alert that
    is quiet answers 409, an unknown rule or deployment 404, a bad body 400."""
    store = make_store("ack.db")
    evaluator = await _firing_rule_store(store)
    ack = {"rule": "HighErrorRate", "deployment": "prod", "by": "ana", "comment": "<b>looking</b> at the GPU"}
    async with api(store) as client:
        quiet = await client.post("/api/alerts/ack", json=ack)
        assert quiet.status_code == 409 and "not firing or pending" in quiet.json()["error"]
        for change in ({"rule": "Nope"}, {"deployment": "nowhere"}):
            unknown = await client.post("/api/alerts/ack", json={**ack, **change})
            assert unknown.status_code == 404 and "no alert" in unknown.json()["error"]
        for change, says in (
            ({"by": ""}, "by must be text of 1 to 100"),
            ({"by": "ana\x00"}, "without control characters"),
            ({"when": "now"}, "unknown field when"),
        ):
            bad = await client.post("/api/alerts/ack", json={**ack, **change})
            assert bad.status_code == 400 and says in bad.json()["error"]
        assert (await client.post("/api/alerts/ack", content=b"[1]")).status_code == 400

        await _minute(evaluator, clock, 0.2)  # pending
        answered = await client.post("/api/alerts/ack", json=ack)
        assert answered.status_code == 200
        shown = answered.json()
        assert shown["state"] == "pending" and shown["rule"] == "HighErrorRate" and shown["source"] == "api"
        assert shown["acknowledged"] == {"by": "ana", "at": "2027-01-15T08:01:00.000Z", "comment": ack["comment"]}
        assert await _minute(evaluator, clock, 0.2) == ["firing"]
        (row,) = (await client.get("/api/alerts?deployment=prod")).json()["rules"]
        assert row["state"] == "firing" and row["acknowledged"]["by"] == "ana"
        assert await _minute(evaluator, clock, 0.0) == ["resolved"]
        (row,) = (await client.get("/api/alerts")).json()["rules"]
        assert row["state"] == "inactive" and row["acknowledged"] is None
        assert (await client.post("/api/alerts/ack", json=ack)).status_code == 409
        await _minute(evaluator, clock, 0.2)
        assert await _minute(evaluator, clock, 0.2) == ["firing"]
        (row,) = (await client.get("/api/alerts")).json()["rules"]
        assert row["state"] == "firing" and row["acknowledged"] is None  # a new firing needs a new ack
        again = await client.post("/api/alerts/ack", json={**ack, "by": "bo", "comment": ""})
        assert again.json()["acknowledged"]["by"] == "bo" and again.json()["acknowledged"]["comment"] == ""
