"""The pieces `serve` and `sidecar` share: routing beside the admin side, the monitor, the keys.

Nothing here imports the predict app (OpenCV, ultralytics), so the sidecar runs on the light install.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NamedTuple

from starlette.routing import Route, Router
from starlette.types import ASGIApp

from yolowatch._types import Clock
from yolowatch.admin import admin_router, own_health_endpoint
from yolowatch.alerts import Rule, Sink, default_rules, golden_rule, load_rules_file
from yolowatch.asgi.auth import KeyCheck
from yolowatch.asgi.middleware import WatchMiddleware
from yolowatch.asgi.routes import HEALTH_PATH, Dispatch
from yolowatch.config import MiB, Settings, split_list
from yolowatch.framesample import FrameSampler, SampleCaps, SampleRules
from yolowatch.golden import GoldenChecker, HttpPoster
from yolowatch.health import HealthSchedule, Probe
from yolowatch.monitor import Monitor
from yolowatch.otlp import OtlpMetrics, OtlpTraces, otlp_available
from yolowatch.records import ProcessInfo
from yolowatch.regions import parse_region
from yolowatch.sinks import chat_sink, email_sink, log_sink, parse_smtp_url, routed, webhook_sink
from yolowatch.store import Store

log = logging.getLogger("yolowatch")


class ServerStack(NamedTuple):
    """uvicorn's event loop and HTTP parser: uvloop and httptools where their wheels exist (uvicorn[standard]),
    else asyncio and h11, which cost several times more per request (benchmarks/README.md)."""

    loop: str
    http: str

    @property
    def fast(self) -> bool:
        return self == ("uvloop", "httptools")

    def describe(self) -> str:
        text = f"{self.loop} event loop, {self.http} HTTP parser"
        return text if self.fast else text + " (slower: install uvloop and httptools, e.g. uvicorn[standard])"


def server_stack() -> ServerStack:
    has = importlib.util.find_spec
    return ServerStack("uvloop" if has("uvloop") else "asyncio", "httptools" if has("httptools") else "h11")


def run_on(stack: ServerStack, main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on the stack's event loop (the sidecar runs its two uvicorn servers itself)."""
    if stack.loop == "uvloop":
        import uvloop  # in uvicorn[standard]; not on every platform

        uvloop.run(main)
    else:
        asyncio.run(main)


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
    if settings.alerts and settings.golden:
        rules.append(golden_rule())
    if settings.alert_rules_file:
        rules = load_rules_file(settings.alert_rules_file, rules)
    return rules or None


def this_process(settings: Settings, kind: str, clock: Clock) -> ProcessInfo:
    """How this process appears in the fleet view."""
    try:
        version = importlib.metadata.version("yolowatch")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        version = ""
    region = None
    if settings.region:
        try:
            region = parse_region(settings.region)
        except ValueError as exc:  # a label of the user's own (as --region was before the map): kept, not pinned
            log.warning("--region %s has no place on the fleet map: %s", settings.region, exc)
    return ProcessInfo(
        settings.instance or socket.gethostname(),
        os.getpid(),
        kind,
        region=region.name if region else settings.region or None,
        latitude=region.latitude if region else None,
        longitude=region.longitude if region else None,
        version=version,
        started_s=int(clock()),
    )


def create_monitor(
    settings: Settings,
    probe: Probe | None = None,
    endpoint: str | None = None,
    model: str | None = None,
    kind: str = "serve",
    queue_depth: Callable[[], int] | None = None,
    golden_url: str | None = None,
) -> Monitor:
    """One deployment's monitor from the settings. `golden_url` is where golden images go (serve: its own predict
    route, the requests marked with the token; the sidecar: the upstream, past the proxy); default: `endpoint`."""
    clock = scaled_clock(settings.time_scale, settings.time_anchor)
    store = Store(
        settings.db,
        metrics_retention_days=settings.metrics_retention_days,
        logs_retention_days=settings.logs_retention_days,
        clock=clock,
        pool_size=settings.db_pool_size,
    )
    token = (settings.golden_token or secrets.token_hex(16)) if settings.golden and kind == "serve" else None
    golden = None
    if settings.golden:
        headers = {"X-Yolowatch-Golden": token} if token else {}
        if settings.predict_api_key and kind == "serve":
            headers["Authorization"] = f"Bearer {settings.predict_api_key}"
        golden = GoldenChecker(
            settings.deployment,
            Path(settings.golden),
            HttpPoster(golden_url or own_predict_url(settings), headers),
            every_s=settings.golden_every_s,
            clock=clock,
            iou=settings.golden_iou or None,
            confidence=settings.golden_confidence or None,
        )
    monitor = Monitor(
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
        process=this_process(settings, kind, clock),
        queue_depth=queue_depth,
        golden=golden,
        golden_in_health=settings.golden_in_health,
        golden_token=token,
        sampler=frame_sampler(settings, clock),
    )
    if settings.otlp or settings.otlp_endpoint:
        missing = otlp_available()
        if missing is not None:  # only the OTEL_* variables asked (--otlp-endpoint without the extra is refused)
            log.warning("OTLP export is off: %s", missing)
        else:
            monitor.otlp = OtlpMetrics(
                monitor.recorder,
                settings.deployment,
                endpoint=settings.otlp_endpoint or None,  # None: the SDK reads OTEL_EXPORTER_OTLP_* itself
                interval_s=settings.otlp_interval_s,
                model=model,
                instance_id=monitor.writer.writer_id,
            )
    if settings.otlp_traces:
        missing = otlp_available()
        if missing is not None:  # YOLOWATCH_OTLP_TRACES without the extra (the flag is refused at the command line)
            log.warning("OTLP traces are off: %s", missing)
            return monitor
        monitor.traces = OtlpTraces(
            monitor.recorder,
            settings.deployment,
            ratio=settings.otlp_trace_sample,
            routes=("/predict", settings.probe_path),  # serve's predict route; the sidecar's upstream's
            endpoint=settings.otlp_endpoint or None,  # None: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / _ENDPOINT
            model=model,
            instance_id=monitor.writer.writer_id,
        )
    return monitor


def own_predict_url(settings: Settings) -> str:
    """This serve process's predict route, as the process itself reaches it (a wildcard bind: over loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(settings.host, settings.host)
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{host}:{settings.port}/predict"


def sample_rules(settings: Settings) -> tuple[SampleRules, SampleCaps]:
    """The frame-sampling rules and caps the settings ask for; ValueError saying which setting is wrong."""
    band: tuple[float, float] | None = None
    low = settings.sample_low_confidence.strip().lower()
    if low not in ("", "off", "none"):
        parts = low.split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            band = (float(parts[0]), float(parts[1]))
        except ValueError:
            raise ValueError(
                "--sample-low-confidence must be LOW,HIGH (e.g. 0.25,0.5) or off; "
                f"got {settings.sample_low_confidence!r}"
            ) from None
    rules = SampleRules(
        low_confidence=band,
        no_detection=settings.sample_no_detection,
        classes=frozenset(name.strip() for name in settings.sample_classes.split(",") if name.strip()),
        drift_share=settings.sample_drift_share,
        random_share=settings.sample_random_share,
    )
    caps = SampleCaps(
        per_minute=settings.sample_per_minute,
        per_day=settings.sample_per_day,
        max_bytes=int(settings.sample_max_mb * MiB),
        retention_days=settings.sample_retention_days,
    )
    return rules, caps


def frame_sampler(settings: Settings, clock: Clock) -> FrameSampler | None:
    """The sampler of production frames, when --sample-dir asks for one (on the monitor's clock)."""
    if not settings.sample_dir:
        return None
    rules, caps = sample_rules(settings)
    return FrameSampler(Path(settings.sample_dir), settings.deployment, rules, caps, clock=clock)


def alert_sinks(settings: Settings) -> dict[str, Sink]:
    """Where notifications go: the log, and the webhook, email and chat channels the settings name (each with its
    own outbox deliveries, by name: a channel added later gets the last day's undelivered notifications).
    ValueError for a channel that cannot work as given."""
    sinks: dict[str, Sink] = {"log": log_sink}
    admin_port = settings.admin_port if settings.upstream else settings.port  # where the dashboard is
    dashboard = f"http://{settings.host}:{admin_port}"
    if settings.alert_webhook:
        sinks["webhook"] = webhook_sink(settings.alert_webhook, dashboard)
    if settings.smtp_url:
        smtp = parse_smtp_url(settings.smtp_url, password=smtp_password(settings), ca_file=settings.smtp_ca_file)
        email = email_sink(smtp, settings.alert_email_from, split_list(settings.alert_email_to), dashboard)
        sinks["email"] = routed(
            email,
            severities=frozenset(split_list(settings.alert_email_severity)) or None,
            rules=frozenset(split_list(settings.alert_email_rules)) or None,
        )
    for url in split_list(settings.alert_chat):
        name = "chat-" + hashlib.sha256(url.encode()).hexdigest()[:8]  # stable, and no token in the name
        sinks[name] = routed(
            chat_sink(url, dashboard),
            severities=frozenset(split_list(settings.alert_chat_severity)) or None,
            rules=frozenset(split_list(settings.alert_chat_rules)) or None,
        )
    return sinks


def smtp_password(settings: Settings) -> str:
    """YOLOWATCH_SMTP_PASSWORD, or the first line of --smtp-password-file."""
    if settings.smtp_password_file:
        try:
            lines = Path(settings.smtp_password_file).read_text().splitlines()
        except OSError as exc:
            raise ValueError(
                f"cannot read --smtp-password-file {settings.smtp_password_file}: {exc.strerror}"
            ) from None
        return lines[0].strip() if lines else ""
    return settings.smtp_password


def admin_keys(settings: Settings) -> KeyCheck:
    return KeyCheck(settings.admin_keys())


def health_router(monitor: Monitor) -> Router:
    """`GET /health` of this process's deployment."""
    return Router(routes=[Route(HEALTH_PATH, own_health_endpoint(monitor), methods=["GET"])])


def admin_app(monitor: Monitor, settings: Settings) -> Router:
    return admin_router(
        monitor.store, monitors=[monitor], keys=admin_keys(settings), metrics_need_key=settings.metrics_need_key
    )


def monitored_app(app: ASGIApp, monitor: Monitor, settings: Settings) -> ASGIApp:
    """`app` with the admin API, `/health` and `/metrics` beside it, all inside WatchMiddleware."""
    return WatchMiddleware(Dispatch(app, admin_app(monitor, settings), health_router(monitor)), monitor=monitor)
