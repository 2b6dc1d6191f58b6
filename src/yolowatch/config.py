"""Settings: one frozen object, built from defaults, `YOLOWATCH_*` variables and CLI flags, that checks itself.

This is the only module that reads yolowatch's environment variables; everything else is handed a
`Settings`. `validate` says in one sentence what is wrong with a combination before anything binds a port.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from yolowatch._util import http_url, is_postgres_url, parse_bool, shown_db

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

MiB = 1024 * 1024
# The OpenTelemetry SDK's own variables: either one set turns the OTLP export on (the SDK reads them itself).
OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")


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
    # An SQLite file's path (one host), or a postgresql://user:password@host:5432/db URL that every process of a
    # fleet shares. Never printed with the settings: the URL may hold a password (messages show it as ***).
    db: str = field(default="yolowatch.db", repr=False)
    db_pool_size: int = 4  # PostgreSQL connections per process, at most (the writer's and the admin API's reads)
    # The host this process reports in the fleet view (default: the machine's hostname; a pod's name in Kubernetes).
    instance: str = ""
    latency_budget_ms: float = 500.0
    metrics_retention_days: float = 30.0
    logs_retention_days: float = 7.0
    # INFO request logs kept per second and deployment; the rest are counted, not stored. WARNING+ are all kept.
    info_logs_per_second: int = 200
    # Predict responses whose detections are read per second; past it a spread-out sample is read (and the rest
    # counted), so a saturated server spends its time serving. Detections per request stay unbiased. 0: read all.
    detection_parses_per_second: int = 500
    # Where this process runs, for the fleet map: a cloud region (eu-west-1, us-central1, westeurope), LAT,LON, or
    # NAME@LAT,LON (yolowatch.regions); also shown with the deployment. Unset, or a name it does not know: no pin.
    region: str = ""
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
    probe_path: str = "/predict"  # the upstream's predict path (probe image, golden images, sampled uploads)
    upstream_timeout_s: float = 60.0
    # Keep-alive connections to the upstream, at most this many at once; more concurrent requests wait for one.
    upstream_connections: int = 100
    # The share of uploads the sidecar decodes for their image properties (0: none; needs the yolo extra).
    image_sample: float = 0.0
    admin_port: int = 8001
    # Golden-image checks: a folder recorded with `yolowatch golden record`; every golden_every_s seconds each image
    # is sent through the real endpoint and its answer matched with the recorded one (class, IoU, confidence).
    golden: str = ""
    golden_every_s: float = 60.0
    golden_iou: float = 0.0  # the least IoU of a box with its recorded one; 0: the set's own (golden.json)
    golden_confidence: float = 0.0  # the most a confidence may move; 0: the set's own (golden.json)
    golden_in_health: bool = False  # a failing golden run makes /health answer 503
    # Marks the golden requests a serve process sends itself, so they are not counted as traffic; made at start
    # (shared by `--workers N`'s processes through the environment), never printed.
    golden_token: str = field(default="", repr=False)
    # Sampled production frames (opt-in: this stores users' images): kept with the model's detections as
    # pseudo-labels, by rules (a detection whose confidence is in the low band "LOW,HIGH", no detection, classes of
    # interest, a share while drift is flagged, a random share), within caps; `yolowatch samples export` makes
    # them a dataset.
    sample_dir: str = ""
    sample_low_confidence: str = "0.25,0.5"  # "" or "off": no low-confidence rule
    sample_no_detection: bool = True
    sample_classes: str = ""  # comma-separated class names
    sample_drift_share: float = 0.1
    sample_random_share: float = 0.01
    sample_per_minute: int = 10
    sample_per_day: int = 1000
    sample_max_mb: float = 1024.0
    sample_retention_days: float = 30.0
    alerts: bool = True  # the default alert rules (README, "Alerts"), to the log
    # Also POST Alertmanager-shaped notifications here; the URL may hold a password, so it is never printed.
    alert_webhook: str = field(default="", repr=False)
    alert_rules_file: str = ""  # a TOML file of [[rule]] tables, over the defaults (see README, "Alerts")
    # Email: an SMTP server (smtp://user@host:587 with STARTTLS, smtps://user@host:465; ?starttls=false only for a
    # local relay), its password from YOLOWATCH_SMTP_PASSWORD or a file (never in the URL, never printed).
    smtp_url: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_password_file: str = ""
    smtp_ca_file: str = ""  # trust this CA for a private relay (certificates are always verified)
    alert_email_from: str = ""
    alert_email_to: str = ""  # comma-separated addresses
    alert_email_severity: str = ""  # comma-separated: only these severities by email (empty: all)
    alert_email_rules: str = ""  # comma-separated: only these rules by email (empty: all)
    # Chat: Slack, Discord or Microsoft Teams incoming webhooks (or any JSON {"text"} receiver), comma-separated;
    # their tokens are in the URLs, so they are never printed.
    alert_chat: str = field(default="", repr=False)
    alert_chat_severity: str = ""
    alert_chat_rules: str = ""
    # OpenTelemetry: export request counts, errors, detections and an exponential latency histogram to a collector
    # over OTLP/HTTP (the otel extra). On with an endpoint (the collector's base URL), or when the standard
    # OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_METRICS_ENDPOINT variables are set (the SDK reads them).
    otlp: bool = False
    otlp_endpoint: str = ""
    otlp_interval_s: float = 10.0
    # Traces, when asked: a span per sampled request (a client's traceparent honoured, its decision followed) and
    # the bundled app's stages as child spans, to the same collector's /v1/traces; the trace id in the log entry.
    # The ratio is the share of requests without a caller's decision that are traced (0 to 1).
    otlp_traces: bool = False
    otlp_trace_sample: float = 1.0
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

    def admin_keys(self) -> tuple[str, ...]:
        """The admin API keys: `api_key`, plus one per non-blank, non-# line of `api_key_file`."""
        return load_keys(self.api_key, self.api_key_file)

    def predict_keys(self) -> tuple[str, ...]:
        return load_keys(self.predict_api_key)

    def validate(self, command: str) -> None:
        """ValueError saying what is wrong for `command` (serve or sidecar) and what is allowed; None if nothing."""
        if command == "serve" and not self.model.is_file():
            raise ValueError(f"model weights not found: {self.model}")
        if command == "sidecar":
            http_url(self.upstream, "--upstream", "http://127.0.0.1:9000")
            if self.port == self.admin_port:
                raise ValueError(f"--port and --admin-port are both {self.port}; give them different ports")
            if self.probe_image and not Path(self.probe_image).is_file():
                raise ValueError(f"--probe-image {self.probe_image} is not a file")
        if self.db_pool_size < 1:
            raise ValueError(f"--db-pool-size must be at least 1; got {self.db_pool_size}")
        if is_postgres_url(self.db):
            netloc = urlsplit(self.db).netloc
            if "@" in self.db.split("://", 1)[1] and "@" not in netloc:
                raise ValueError(
                    f"--db {shown_db(self.db)}: a / # or ? in the user or password must be percent-encoded "
                    "(%2F %23 %3F)"
                )
            if not urlsplit(self.db).hostname:
                raise ValueError(f"--db {shown_db(self.db)} names no host: use postgresql://user:password@host:5432/db")
        if not 0 <= self.image_sample <= 1:
            raise ValueError(f"--image-sample must be between 0 and 1 (a share of uploads); got {self.image_sample}")
        if self.otlp_interval_s <= 0:
            raise ValueError(f"--otlp-interval must be positive seconds; got {self.otlp_interval_s:g}")
        if self.otlp_endpoint:
            http_url(self.otlp_endpoint, "--otlp-endpoint", "http://otel-collector:4318")
        if not 0.0 <= self.otlp_trace_sample <= 1.0:
            raise ValueError(
                f"--otlp-trace-sample must be a share between 0 and 1 (0.1: one request in ten); "
                f"got {self.otlp_trace_sample:g}"
            )
        if self.golden_every_s <= 0:
            raise ValueError(f"--golden-every must be positive seconds; got {self.golden_every_s:g}")
        if not 0 <= self.golden_iou <= 1 or not 0 <= self.golden_confidence <= 1:
            raise ValueError("--golden-iou and --golden-confidence must be between 0 and 1 (0: the set's own)")
        if self.golden_in_health and not self.golden:
            raise ValueError("--golden-in-health needs --golden DIR (a set recorded with yolowatch golden record)")
        if self.upstream_connections < 1:
            raise ValueError(f"--upstream-connections must be at least 1; got {self.upstream_connections}")
        if self.upstream_timeout_s <= 0:
            raise ValueError(f"--timeout-s must be positive; got {self.upstream_timeout_s:g}")
        for name in ("port", "admin_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ValueError(f"{name} must be between 0 and 65535; got {getattr(self, name)}")
        if self.time_scale <= 0:
            raise ValueError(f"YOLOWATCH_TIME_SCALE must be positive; got {self.time_scale}")
        if self.log_format not in ("text", "json"):
            raise ValueError(f"log format must be text or json; got {self.log_format!r}")
        if self.alert_webhook:
            http_url(self.alert_webhook, "--alert-webhook", "http://receiver.internal:5001/hook")
        if self.smtp_url and not (self.alert_email_from and self.alert_email_to):
            raise ValueError("--smtp-url needs --alert-email-from and --alert-email-to (who sends, who receives)")
        if (self.alert_email_to or self.alert_email_from) and not self.smtp_url:
            raise ValueError("--alert-email-to needs --smtp-url (the SMTP server that sends it)")
        for name in ("alert_email_severity", "alert_chat_severity"):
            unknown = set(split_list(getattr(self, name))) - {"warning", "critical"}
            if unknown:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} takes warning and/or critical; got {', '.join(sorted(unknown))}")
        self._validate_keys()

    def _validate_keys(self) -> None:
        """A public address needs an admin key (or an explicit --allow-no-auth); a key file must hold one."""
        try:
            keys = self.admin_keys()
        except OSError as exc:
            raise ValueError(f"cannot read the API key file {self.api_key_file}: {exc.strerror or exc}") from None
        if self.api_key_file and not keys:
            raise ValueError(f"the API key file {self.api_key_file} holds no key")
        if not (keys or self.allow_no_auth or is_loopback(self.host)):
            raise ValueError(
                f"refusing to bind {self.host} with no admin API key: anyone who can reach it could read your "
                "logs and metrics. Set YOLOWATCH_API_KEY (or --api-key-file), or pass --allow-no-auth if the "
                "network is already protected."
            )


def split_list(text: str) -> list[str]:
    """A comma-separated setting's items, stripped, without empty ones."""
    return [item.strip() for item in text.split(",") if item.strip()]


def load_keys(key: str | None = None, key_file: str | Path | None = None) -> tuple[str, ...]:
    """The configured keys: one from a setting, plus one per non-blank, non-# line of a key file."""
    keys = [key.strip()] if key and key.strip() else []
    if key_file:
        for line in Path(key_file).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                keys.append(line)
    return tuple(keys)


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def settings_from_env(env: Mapping[str, str] | None = None, base: Settings | None = None) -> Settings:
    """Read YOLOWATCH_* variables, converting each to its field's type; raises ValueError naming the variable."""
    env = os.environ if env is None else env
    base = Settings() if base is None else base
    overrides: dict[str, Any] = {}
    for f in fields(Settings):
        name = f"YOLOWATCH_{f.name.upper()}"
        if not env.get(name, "").strip():  # unset, or set to nothing (VAR= in a compose file): the default
            continue
        raw = env[name]
        current = getattr(base, f.name)
        try:
            overrides[f.name] = parse_bool(raw) if isinstance(current, bool) else type(current)(raw)
        except ValueError:
            kind = "boolean (true/false, 1/0, yes/no, on/off)" if isinstance(current, bool) else type(current).__name__
            raise ValueError(f"{name}={raw!r} is not a valid {kind}") from None
    if any(env.get(name, "").strip() for name in OTLP_ENDPOINT_VARIABLES):
        overrides.setdefault("otlp", True)  # the standard variables turn the export on, as they do for any OTel SDK
    return base.with_overrides(**overrides)


def export_to_workers(settings: Settings) -> None:
    """Put these settings in this process's environment, where `serve --workers N`'s worker processes (started
    by uvicorn, each building its app with `settings_from_env`) find them."""
    os.environ.update(settings_to_env(settings))


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The YOLOWATCH_* variables that `settings_from_env` turns back into these settings (for worker processes)."""
    env = {}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        env[f"YOLOWATCH_{f.name.upper()}"] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return env
