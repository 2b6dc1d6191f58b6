"""Where alert notifications go: the log, and a webhook with Alertmanager's body (any of its receivers take it).

A sink is a coroutine over a batch of notifications that raises when it could not deliver; the
evaluator then keeps them undelivered and retries with backoff (alerts.Evaluator.deliver).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from yolowatch._util import iso_time, redacted_url
from yolowatch.alerts import Sink, fingerprint
from yolowatch.records import Notification

log = logging.getLogger("yolowatch.alerts")


def _iso(epoch_s: int | None) -> str:
    return iso_time(epoch_s) if epoch_s else "0001-01-01T00:00:00Z"


def alertmanager_payload(notifications: list[Notification], external_url: str = "") -> dict[str, Any]:
    """Prometheus Alertmanager's webhook body (version 4), so any Alertmanager receiver can take it."""
    alerts: list[dict[str, Any]] = [
        {
            "status": n.status,
            "labels": {
                "alertname": n.rule,
                "deployment": n.deployment,
                "severity": n.severity,
                **({"class": n.class_name} if n.class_name else {}),
            },
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


async def log_sink(notifications: list[Notification]) -> None:
    for n in notifications:
        level = logging.CRITICAL if n.severity == "critical" and n.status == "firing" else logging.WARNING
        scope = f"{n.deployment}, class {n.class_name}" if n.class_name else n.deployment
        log.log(level, "alert %s %s for %s (value %s): %s", n.rule, n.status.upper(), scope, n.value, n.runbook)


def webhook_sink(url: str, external_url: str = "", timeout_s: float = 10.0) -> Sink:
    """POST the Alertmanager-shaped body; an error raises, so the notifications stay undelivered and are retried."""
    shown = redacted_url(url)  # errors name the receiver without its user:password

    async def send(notifications: list[Notification]) -> None:
        try:
            async with httpx.AsyncClient(timeout=timeout_s) as client:
                response = await client.post(url, json=alertmanager_payload(notifications, external_url))
        except httpx.HTTPError as exc:
            raise RuntimeError(f"{type(exc).__name__} sending to {shown}") from None
        if response.status_code >= 300:
            raise RuntimeError(f"{shown} answered {response.status_code}")

    return send
