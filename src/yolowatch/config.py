"""Settings: one frozen object, built from defaults, `YOLOWATCH_*` variables and CLI flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

MiB = 1024 * 1024


def default_model_path() -> Path:
    # The path only: importing yolowatch.demo would pull in OpenCV, which the light install lacks.
    return Path(__file__).resolve().parent / "demo" / "shapes-yolo.pt"


@dataclass(frozen=True)
class Settings:
    """What a yolowatch process runs with. Every field can be set as YOLOWATCH_<FIELD> (upper case)."""

    host: str = "127.0.0.1"
    port: int = 8000
    model: Path = field(default_factory=default_model_path)
    deployment: str = "demo"
    db: Path = Path("yolowatch.db")
    latency_budget_ms: float = 500.0
    metrics_retention_days: float = 30.0
    logs_retention_days: float = 7.0
    # INFO request logs kept per second and deployment; the rest are counted, not stored. WARNING+ are all kept.
    info_logs_per_second: int = 200
    # Predict responses whose detections are read per second; past it a spread-out sample is read (and the rest
    # counted), so a saturated server spends its time serving. Detections per request stay unbiased. 0: read all.
    detection_parses_per_second: int = 500
    region: str = ""  # a label shown with the deployment (e.g. "eu-west-1"); nothing is done with it
    # Admin API keys: YOLOWATCH_API_KEY, and/or a file with one key per line. Unset: the admin API is open,
    # and serve/sidecar refuse a non-loopback host unless --allow-no-auth.
    api_key: str = field(default="", repr=False)  # never printed with the settings
    api_key_file: str = ""
    predict_api_key: str = field(default="", repr=False)  # the predict route's own bearer key; unset: open
    metrics_need_key: bool = False  # /metrics is open by default so Prometheus can scrape it
    allow_no_auth: bool = False
    # The sidecar: the predict server it fronts, its health path, how long a request may take there,
    # and the port of the admin side (/health, /api/..., /metrics), apart from the proxied traffic.
    upstream: str = ""
    health_path: str = "/health"
    probe_image: str = ""  # set: probe with a real POST of this image to probe_path instead of GET health_path
    probe_path: str = "/predict"
    upstream_timeout_s: float = 60.0
    admin_port: int = 8001
    alerts: bool = True  # the default alert rules (README, "Alerts"), to the log
    # Also POST Alertmanager-shaped notifications here; the URL may hold a password, so it is never printed.
    alert_webhook: str = field(default="", repr=False)
    alert_rules_file: str = ""  # a TOML file of [[rule]] tables, over the defaults (see README, "Alerts")
    # For demos and tests: the monitor's clock runs this many times faster than real time from time_anchor
    # (epoch seconds; 0: when the process starts), so minute-long alert windows pass in seconds.
    time_scale: float = 1.0
    time_anchor: float = 0.0
    health_timeout_s: float = 55.0
    health_interval_s: float = 60.0  # between probes while healthy
    health_retry_s: float = 20.0  # between probes while unhealthy
    log_level: str = "info"
    log_format: str = "text"  # or "json": one JSON object per line, for container log collectors
    max_upload_bytes: int = 20 * MiB
    # 40 megapixels is well above any camera frame a detector is fed (8K is 33 MP) and keeps
    # one decoded BGR image under ~120 MB, so a decompression bomb is refused before decoding.
    max_image_pixels: int = 40_000_000

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given fields replaced; `None` values mean "not given" and are ignored."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def settings_from_env(env: Mapping[str, str] | None = None, base: Settings | None = None) -> Settings:
    """Read YOLOWATCH_* variables, converting each to its field's type; raises ValueError naming the variable."""
    env = os.environ if env is None else env
    base = Settings() if base is None else base
    overrides: dict[str, Any] = {}
    for f in fields(Settings):
        name = f"YOLOWATCH_{f.name.upper()}"
        if name not in env:
            continue
        raw = env[name]
        current = getattr(base, f.name)
        try:
            overrides[f.name] = _parse_bool(raw) if isinstance(current, bool) else type(current)(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not a valid {type(current).__name__}") from None
    return base.with_overrides(**overrides)


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The YOLOWATCH_* variables that `settings_from_env` turns back into these settings (for worker processes)."""
    env = {}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        env[f"YOLOWATCH_{f.name.upper()}"] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return env


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(raw)
