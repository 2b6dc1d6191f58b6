"""The pieces `serve` and `sidecar` share: routing beside the admin side, the monitor, the keys.

Nothing here imports the predict app (OpenCV, ultralytics), so the sidecar runs on the light install.
"""

from __future__ import annotations

import time

from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from yolowatch.admin import admin_router, own_health_endpoint
from yolowatch.alerts import Rule, Sink, default_rules, load_rules_file, log_sink, webhook_sink
from yolowatch.auth import KeyCheck, load_keys
from yolowatch.config import Settings
from yolowatch.health import HealthSchedule, Probe
from yolowatch.middleware import WatchMiddleware
from yolowatch.monitor import Monitor
from yolowatch.recorder import Clock
from yolowatch.store import Store

ADMIN_PREFIX = "/api/"


class Dispatch:
    """Route by path to the admin side or the served app; lifespan goes to the served app."""

    def __init__(self, app: ASGIApp, admin: ASGIApp, health: ASGIApp) -> None:
        self.app = app
        self.admin = admin
        self.health = health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == "/health":
                await self.health(scope, receive, send)
                return
            if path.startswith(ADMIN_PREFIX) or path == "/metrics" or path.startswith("/dashboard"):
                await self.admin(scope, receive, send)
                return
        await self.app(scope, receive, send)


def health_schedule(settings: Settings) -> HealthSchedule:
    return HealthSchedule(
        timeout_s=settings.health_timeout_s,
        healthy_every_s=settings.health_interval_s,
        unhealthy_every_s=settings.health_retry_s,
    )


def scaled_clock(scale: float, anchor: float = 0.0) -> Clock:
    """time.time, or (scale != 1) a clock that runs `scale` times faster from `anchor` (0: now)."""
    if scale == 1:
        return time.time
    if scale <= 0:
        raise ValueError(f"time_scale must be positive; got {scale}")
    start = anchor or time.time()
    return lambda: start + (time.time() - start) * scale


def alert_rules(settings: Settings) -> list[Rule] | None:
    """The defaults (unless alerts are off), with the rules file over them; ValueError for a bad file."""
    rules = default_rules(settings.latency_budget_ms) if settings.alerts else []
    if settings.alert_rules_file:
        rules = load_rules_file(settings.alert_rules_file, rules)
    return rules or None


def create_monitor(
    settings: Settings, probe: Probe | None = None, endpoint: str | None = None, model: str | None = None
) -> Monitor:
    clock = scaled_clock(settings.time_scale, settings.time_anchor)
    store = Store(
        settings.db,
        metrics_retention_days=settings.metrics_retention_days,
        logs_retention_days=settings.logs_retention_days,
        clock=clock,
    )
    return Monitor(
        store,
        settings.deployment,
        model=model,
        endpoint=endpoint or f"http://{settings.host}:{settings.port}/predict",
        region=settings.region or None,
        clock=clock,
        latency_budget_ms=settings.latency_budget_ms,
        info_logs_per_second=settings.info_logs_per_second,
        detection_parses_per_second=settings.detection_parses_per_second,
        probe=probe,
        health_schedule=health_schedule(settings),
        alert_rules=alert_rules(settings),
        alert_sinks=alert_sinks(settings),
        # Other writers' rows of a closed minute are in within two of their one-second flushes.
        alert_settle_s=max(5.0, 2.0 * settings.time_scale),
    )


def alert_sinks(settings: Settings) -> dict[str, Sink]:
    sinks: dict[str, Sink] = {"log": log_sink}
    if settings.alert_webhook:
        admin_port = settings.admin_port if settings.upstream else settings.port  # where the dashboard is
        sinks["webhook"] = webhook_sink(settings.alert_webhook, f"http://{settings.host}:{admin_port}")
    return sinks


def admin_keys(settings: Settings) -> KeyCheck:
    return KeyCheck(load_keys(settings.api_key, settings.api_key_file))


def monitored_app(app: ASGIApp, monitor: Monitor, settings: Settings) -> ASGIApp:
    """`app` with the admin API, `/health` and `/metrics` beside it, all inside WatchMiddleware."""
    admin = admin_router(
        monitor.store, monitors=[monitor], keys=admin_keys(settings), metrics_need_key=settings.metrics_need_key
    )
    health = Router(routes=[Route("/health", own_health_endpoint(monitor), methods=["GET"])])
    return WatchMiddleware(Dispatch(app, admin, health), monitor=monitor)
