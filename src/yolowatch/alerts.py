"""Alert rules with Prometheus semantics, evaluated on closed minutes, with state and notifications persisted.

A rule whose condition holds becomes pending; it fires once the condition has held for the rule's whole
duration; a pending rule whose condition fails resets; a firing rule whose condition fails resolves (after
`keep_firing_s` more, against flapping). Each transition that notifies (firing, resolved) is written to the
store in the same transaction as the new state, as an undelivered notification; the sinks deliver those and
mark them delivered. So a restart re-sends what was not delivered (nothing lost) and never what was (nothing
sent twice).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger("yolowatch.alerts")

METRICS = ("p50_ms", "p95_ms", "p99_ms", "error_rate", "request_rate", "detection_rate", "mean_confidence")
COMPARISONS = ("above", "below")


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    comparison: str
    threshold: float
    for_s: int = 300
    keep_firing_s: int = 0
    severity: str = "warning"  # or "critical"
    runbook: str = ""

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}; got {self.metric!r}")
        if self.comparison not in COMPARISONS:
            raise ValueError(f"comparison must be above or below; got {self.comparison!r}")
        if self.severity not in ("warning", "critical"):
            raise ValueError(f"severity must be warning or critical; got {self.severity!r}")
        if self.for_s < 0 or self.keep_firing_s < 0:
            raise ValueError("for_s and keep_firing_s must not be negative")

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        return value > self.threshold if self.comparison == "above" else value < self.threshold


def default_rules(latency_budget_ms: float = 500.0) -> list[Rule]:
    """The usual runbook (the drift and holdout rules come with the quality signals' scheduler)."""
    return [
        Rule("HighP95Latency", "p95_ms", "above", latency_budget_ms, 300,
             runbook="P95 above the latency budget for 5 minutes: check load, batch size and the GPU"),
        Rule("HighErrorRate", "error_rate", "above", 0.01, 300, severity="critical",
             runbook="More than 1 % of requests failed for 5 minutes: read the ERROR logs of the deployment"),
        Rule("DetectionRateDrop", "detection_rate", "below", 0.5, 600,
             runbook="Detections a minute fell by half for 10 minutes: is traffic paused, or is the camera dark?"),
    ]  # fmt: skip


@dataclass
class AlertState:
    """One rule for one deployment. `state` is inactive, pending or firing."""

    rule: str
    deployment: str
    state: str = "inactive"
    active_since: int | None = None  # when the condition started holding (pending or firing)
    last_true: int | None = None
    value: float | None = None


@dataclass(frozen=True)
class Notification:
    rule: str
    deployment: str
    status: str  # firing or resolved
    starts_at: int
    ends_at: int | None
    value: float | None
    severity: str
    runbook: str
    id: int | None = None


def step(rule: Rule, state: AlertState, at: int, value: float | None) -> Notification | None:
    """Advance one rule's state by one evaluation at `at` (a closed minute's end); the notification it makes."""
    state.value = value
    if rule.holds(value):
        state.last_true = at
        if state.state == "inactive":
            state.state, state.active_since = "pending", at
        if state.state == "pending" and at - (state.active_since or at) >= rule.for_s:
            state.state = "firing"
            return _notification(rule, state, "firing", None)
        return None
    if state.state == "pending":
        state.state, state.active_since = "inactive", None
    elif state.state == "firing" and at - (state.last_true or at) >= rule.keep_firing_s:
        notification = _notification(rule, state, "resolved", at)
        state.state, state.active_since = "inactive", None
        return notification
    return None


def _notification(rule: Rule, state: AlertState, status: str, ends_at: int | None) -> Notification:
    return Notification(
        rule.name, state.deployment, status, state.active_since or 0, ends_at, state.value, rule.severity, rule.runbook
    )


def fingerprint(rule: str, deployment: str) -> str:
    return hashlib.sha256(f"{rule}\0{deployment}".encode()).hexdigest()[:16]


def _iso(epoch_s: int | None) -> str:
    from yolowatch.health import iso_time

    return iso_time(epoch_s) if epoch_s else "0001-01-01T00:00:00Z"


def alertmanager_payload(notifications: list[Notification], external_url: str = "") -> dict[str, Any]:
    """Prometheus Alertmanager's webhook body (version 4), so any Alertmanager receiver can take it."""
    alerts = [
        {
            "status": n.status,
            "labels": {"alertname": n.rule, "deployment": n.deployment, "severity": n.severity},
            "annotations": {"runbook": n.runbook, "value": "" if n.value is None else f"{n.value:.6g}"},
            "startsAt": _iso(n.starts_at),
            "endsAt": _iso(n.ends_at),
            "generatorURL": f"{external_url}/dashboard/",
            "fingerprint": fingerprint(n.rule, n.deployment),
        }
        for n in notifications
    ]
    status = "firing" if any(n.status == "firing" for n in notifications) else "resolved"
    common = {k: v for k, v in alerts[0]["labels"].items() if all(a["labels"].get(k) == v for a in alerts)}
    return {
        "version": "4",
        "groupKey": "{}:" + json.dumps(common, sort_keys=True),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "yolowatch",
        "groupLabels": {"alertname": common["alertname"]} if "alertname" in common else {},
        "commonLabels": common,
        "commonAnnotations": {
            k: v for k, v in alerts[0]["annotations"].items() if all(a["annotations"].get(k) == v for a in alerts)
        },
        "externalURL": external_url,
        "alerts": alerts,
    }


Sink = Callable[[list[Notification]], Awaitable[None]]


async def log_sink(notifications: list[Notification]) -> None:
    for n in notifications:
        level = logging.CRITICAL if n.severity == "critical" and n.status == "firing" else logging.WARNING
        log.log(level, "alert %s %s for %s (value %s): %s", n.rule, n.status.upper(), n.deployment, n.value, n.runbook)


def webhook_sink(url: str, external_url: str = "", timeout_s: float = 10.0) -> Sink:
    """POST the Alertmanager-shaped body; an error raises, so the notifications stay undelivered and are retried."""

    async def send(notifications: list[Notification]) -> None:
        import httpx

        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.post(url, json=alertmanager_payload(notifications, external_url))
            response.raise_for_status()

    return send


@dataclass
class Evaluator:
    """Evaluates rules for deployments on closed minutes; state and notifications go through the store."""

    store: Any  # yolowatch.store.Store
    rules: list[Rule]
    sinks: dict[str, Sink] = field(default_factory=lambda: {"log": log_sink})

    async def evaluate(self, deployment: str, minute_end: int, values: dict[str, float | None]) -> list[Notification]:
        """One closed minute (ending at `minute_end`) of one deployment: step every rule, persist, return what fired
        or resolved."""
        states = await self.store.alert_states(deployment)
        made = []
        changed = []
        for rule in self.rules:
            state = states.get(rule.name) or AlertState(rule.name, deployment)
            before = asdict(state)
            notification = step(rule, state, minute_end, values.get(rule.metric))
            if asdict(state) != before:
                changed.append(state)
            if notification is not None:
                made.append(notification)
        if changed or made:
            await self.store.save_alerts(changed, made)
        return made

    async def evaluate_closed_minute(self, deployment: str, minute_start: int) -> list[Notification]:
        """Read the minute's figures from the store and step every rule on them, unless another process sharing
        the database (a worker, a second sidecar) has already evaluated this minute."""
        if not await self.store.claim_minute(f"alerts-evaluated:{deployment}", minute_start + 60):
            return []
        values = await minute_values(self.store, deployment, minute_start)
        return await self.evaluate(deployment, minute_start + 60, values)

    async def deliver(self) -> int:
        """Send every undelivered notification to every sink; mark each sink's deliveries. Returns how many went."""
        sent = 0
        for sink_name, sink in self.sinks.items():
            pending = await self.store.undelivered(sink_name)
            claimed = set(await self.store.claim_deliveries(sink_name, [n.id for n in pending if n.id is not None]))
            mine = [n for n in pending if n.id in claimed]  # another process may be sending the rest
            if not mine:
                continue
            try:
                await sink(mine)
            except Exception as exc:  # a sink that is down gets its notifications back for the next try
                await self.store.release_deliveries(sink_name, list(claimed))
                log.warning("alert sink %s failed (%s); %d notifications kept for retry", sink_name, exc, len(mine))
                continue
            sent += len(mine)
        return sent


async def minute_values(store: Any, deployment: str, minute_start: int) -> dict[str, float | None]:
    """Each rule metric over one closed minute. A minute without traffic has no latency, error rate or confidence
    (no data is not a breach) but a request rate and detection rate of 0 (a pause is a drop)."""
    from yolowatch.quality import default_windows
    from yolowatch.store import bucket_metrics

    metrics = bucket_metrics(await store.minute(deployment, minute_start))
    requests = metrics["requests"]
    baseline_rate = None
    windows = await default_windows(store, deployment)
    if windows is not None:
        counts = await store.minute_counts(deployment, windows[0].start_s, windows[0].end_s)
        active = [c[1] for c in counts.values() if c[0] > 0]
        baseline_rate = sum(active) / len(active) if active and sum(active) else None
    detections = metrics["detections_per_request"] * metrics["predictions"] if metrics["predictions"] else 0.0
    return {
        "p50_ms": metrics["p50_ms"],
        "p95_ms": metrics["p95_ms"],
        "p99_ms": metrics["p99_ms"],
        "error_rate": metrics["error_rate"] if requests else None,
        "request_rate": requests / 60,
        "detection_rate": None if baseline_rate is None else detections / baseline_rate,
        "mean_confidence": metrics["mean_confidence"],
    }
