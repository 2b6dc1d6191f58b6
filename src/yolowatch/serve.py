"""What `yolowatch serve` runs: the bundled predict app, wrapped by WatchMiddleware and its store."""

from __future__ import annotations

from starlette.types import ASGIApp

from yolowatch.config import Settings
from yolowatch.middleware import WatchMiddleware
from yolowatch.monitor import Monitor
from yolowatch.predict import create_predict_app
from yolowatch.store import Store


def create_monitor(settings: Settings) -> Monitor:
    store = Store(
        settings.db,
        metrics_retention_days=settings.metrics_retention_days,
        logs_retention_days=settings.logs_retention_days,
    )
    return Monitor(
        store,
        settings.deployment,
        model=settings.model.name,
        endpoint=f"http://{settings.host}:{settings.port}/predict",
        latency_budget_ms=settings.latency_budget_ms,
        info_logs_per_second=settings.info_logs_per_second,
        detection_parses_per_second=settings.detection_parses_per_second,
    )


def create_serve_app(settings: Settings, monitor: Monitor | None = None) -> ASGIApp:
    monitor = monitor if monitor is not None else create_monitor(settings)
    return WatchMiddleware(create_predict_app(settings), monitor=monitor)
