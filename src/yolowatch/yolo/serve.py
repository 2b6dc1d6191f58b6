"""What `yolowatch serve` runs: the bundled predict app, the admin API, `/health` and `/metrics` on one port.

WatchMiddleware (records the predict traffic; skips /health, /metrics, /api/*, /dashboard*)
  └─ Dispatch:  /health → this deployment's latest probe
                /api/*, /metrics, /dashboard* → the admin router (the dashboard: static files)
                everything else (and lifespan) → the predict app (behind its own key, if set)
"""

from __future__ import annotations

from starlette.types import ASGIApp

from yolowatch.asgi.auth import KeyCheck, RequireKey
from yolowatch.compose import create_monitor, monitored_app
from yolowatch.config import Settings, settings_from_env
from yolowatch.logformat import configure_logging
from yolowatch.monitor import Monitor
from yolowatch.yolo.predict import Detector, create_predict_app


def app_from_env() -> ASGIApp:
    """The `uvicorn --factory` entry of each `serve --workers N` process: settings from YOLOWATCH_* variables."""
    settings = settings_from_env()
    configure_logging(settings.log_level, settings.log_format)
    return create_serve_app(settings)


def create_serve_app(settings: Settings, monitor: Monitor | None = None) -> ASGIApp:
    detector = Detector(settings.model)
    if monitor is None:
        monitor = create_monitor(
            settings, probe=detector.probe, model=settings.model.name, queue_depth=lambda: detector.queued
        )
    sampler = monitor.sampler
    drifting = (lambda: monitor.drifting) if sampler is not None else None
    predict: ASGIApp = create_predict_app(settings, detector, sampler, drifting)
    predict_keys = KeyCheck(settings.predict_keys())
    if predict_keys.enabled:
        predict = RequireKey(predict, predict_keys)
    return monitored_app(predict, monitor, settings)
