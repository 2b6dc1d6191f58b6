"""The `yolowatch` command."""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import json
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import uvicorn

from yolowatch import __version__, golden, sampleset
from yolowatch._util import http_url, is_postgres_url, iso_time, parse_bool, parse_time, redacted_url, shown_db
from yolowatch.compose import alert_rules, alert_sinks, run_on, sample_rules, server_stack
from yolowatch.config import Settings, export_to_workers, settings_from_env
from yolowatch.framesample import SAMPLE_RULES
from yolowatch.logformat import configure_logging
from yolowatch.otlp import otlp_available
from yolowatch.sidecar import serve_sidecar
from yolowatch.signals import drift_windows
from yolowatch.store import STORE_ERRORS, Store

DESCRIPTION = """\
yolowatch monitors self-hosted YOLO object-detection endpoints.

Start here:
  yolowatch serve                 serve the bundled demo model on http://127.0.0.1:8000
  curl -F file=@image.jpg http://127.0.0.1:8000/predict
  open http://127.0.0.1:8000/dashboard/   the Deploy page: metrics, health, logs, predict

Every setting can also come from a YOLOWATCH_<NAME> environment variable
(for example YOLOWATCH_PORT=9000); command-line flags win over the environment.
Run 'yolowatch COMMAND --help' for the flags of one command.
"""


DB_HELP = (
    "SQLite file, or a postgresql://user:password@host:5432/db URL that a fleet of processes shares (default "
    "./yolowatch.db; a URL is better given as YOLOWATCH_DB, since flags show in process lists)"
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _bool_word(text: str) -> bool:
    try:
        return parse_bool(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be yes or no, got {text}") from None


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, got {text}")
    return value


def _monitoring_arguments(command: argparse.ArgumentParser) -> None:
    """The flags serve and sidecar share: where and how requests are recorded, and who may read them."""
    command.add_argument(
        "--db",
        help="where metrics and logs go: an " + DB_HELP,
    )
    command.add_argument(
        "--db-pool-size", type=_positive_int, help="PostgreSQL connections per process, at most (default 4)"
    )
    command.add_argument(
        "--instance", help="this host's name in the fleet view (default: the machine's hostname, a pod's name)"
    )
    command.add_argument("--deployment", help="name the requests are recorded under (default demo; sidecar: sidecar)")
    command.add_argument(
        "--latency-budget-ms", type=float, help="slower requests count as slow and log WARNING (default 500)"
    )
    command.add_argument(
        "--region",
        help="where this process runs, for the fleet map: a cloud region (eu-west-1, us-central1, westeurope), "
        "LAT,LON, or NAME@LAT,LON",
    )
    command.add_argument(
        "--api-key-file", help="file with admin API keys, one per line (or set YOLOWATCH_API_KEY; never a flag)"
    )
    command.add_argument(
        "--allow-no-auth",
        action="store_true",
        default=None,
        help="bind a non-loopback address with the admin API open to anyone who can reach it",
    )
    command.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="least severe log lines shown (default info)"
    )
    command.add_argument("--log-format", choices=["text", "json"], help="log lines as text (default) or JSON lines")
    command.add_argument(
        "--alert-rules",
        metavar="FILE",
        help="TOML file of [[rule]] tables over the default alert rules (README: Alerts)",
    )
    command.add_argument("--alert-webhook", metavar="URL", help="also POST Alertmanager-shaped notifications here")
    channels = command.add_argument_group(
        "email and chat alerts", "each channel has its own outbox: nothing lost, nothing sent twice across restarts"
    )
    channels.add_argument(
        "--smtp-url",
        metavar="URL",
        help="send alerts by email through this server: smtp://user@host:587 (STARTTLS) or smtps://user@host:465; "
        "the password from YOLOWATCH_SMTP_PASSWORD or --smtp-password-file, never the URL",
    )
    channels.add_argument("--smtp-password-file", metavar="FILE", help="a file whose first line is the SMTP password")
    channels.add_argument("--smtp-ca-file", metavar="FILE", help="trust this CA for the SMTP server's certificate")
    channels.add_argument("--alert-email-from", metavar="ADDRESS", help="the alerts' sender address")
    channels.add_argument("--alert-email-to", metavar="A,B", help="where alert emails go, comma-separated")
    channels.add_argument(
        "--alert-email-severity", metavar="LIST", help="only these severities by email: critical, warning (all)"
    )
    channels.add_argument("--alert-email-rules", metavar="LIST", help="only these rules by email (default: all)")
    channels.add_argument(
        "--alert-chat",
        metavar="URL",
        help="also post alerts to these chat webhooks, comma-separated: Slack, Discord, Microsoft Teams (by the "
        'host), else a JSON {"text"} (better as YOLOWATCH_ALERT_CHAT: the URLs hold tokens)',
    )
    channels.add_argument("--alert-chat-severity", metavar="LIST", help="only these severities to chat (all)")
    channels.add_argument("--alert-chat-rules", metavar="LIST", help="only these rules to chat (default: all)")
    command.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="export request counts, errors, detections and an exponential latency histogram to this OpenTelemetry "
        "collector over OTLP/HTTP, e.g. http://otel-collector:4318 (the standard OTEL_EXPORTER_OTLP_* variables "
        "work too); needs the otel extra: pip install 'yolowatch[otel]'",
    )
    command.add_argument("--otlp-interval", type=float, metavar="SECONDS", help="seconds between exports (10)")
    command.add_argument(
        "--otlp-traces",
        action="store_true",
        default=None,
        help="also export a span per request to the collector's /v1/traces: a client's W3C traceparent is honoured, "
        "the bundled app's stages (upload, decode, queue, preprocess, inference, postprocess) are child spans, and "
        "the trace id is kept in the request's log entry (off by default; needs the otel extra)",
    )
    command.add_argument(
        "--otlp-trace-sample",
        type=float,
        metavar="RATIO",
        help="with --otlp-traces: the share of requests traced when the caller's traceparent does not decide, "
        "0 to 1 (1: all); a caller's sampled flag is always followed",
    )
    golden = command.add_argument_group(
        "golden-image checks", "a set of images with approved answers, sent through the endpoint on a schedule"
    )
    golden.add_argument(
        "--golden",
        metavar="DIR",
        help="a golden set recorded with 'yolowatch golden record': each image is sent through the real endpoint "
        "every --golden-every seconds and its answer matched with the recorded one (class, IoU, confidence). "
        "Golden requests are not counted as traffic; a mismatch for 5 minutes fires the GoldenMismatch alert",
    )
    golden.add_argument("--golden-every", type=float, metavar="SECONDS", help="seconds between runs (default 60)")
    golden.add_argument(
        "--golden-iou", type=float, help="least IoU of a box with its recorded box (default: the set's, 0.8)"
    )
    golden.add_argument("--golden-confidence", type=float, help="most a confidence may move (default: the set's, 0.1)")
    golden.add_argument(
        "--golden-in-health",
        action="store_true",
        default=None,
        help="a failing golden run makes /health answer 503 (Kubernetes then stops sending traffic)",
    )
    samples = command.add_argument_group(
        "sampled production frames (opt-in: this stores your users' images on disk)",
        "frames kept with the model's detections as pseudo-labels, for review and retraining "
        "('yolowatch samples export' makes them an Ultralytics dataset)",
    )
    samples.add_argument("--sample-dir", metavar="DIR", help="keep sampled frames here (default: none are kept)")
    samples.add_argument(
        "--sample-low-confidence",
        metavar="LOW,HIGH",
        help="keep frames with a detection whose confidence is in [LOW, HIGH) (default 0.25,0.5; off: none)",
    )
    samples.add_argument(
        "--sample-no-detection",
        type=_bool_word,
        metavar="yes|no",
        help="keep frames with no detection (default yes)",
    )
    samples.add_argument("--sample-classes", metavar="A,B", help="keep frames with a detection of these classes")
    samples.add_argument(
        "--sample-drift-share", type=float, metavar="SHARE", help="share of frames kept while a drift alert fires (0.1)"
    )
    samples.add_argument("--sample-random-share", type=float, metavar="SHARE", help="share kept at random (0.01)")
    samples.add_argument("--sample-per-minute", type=_positive_int, metavar="N", help="at most N a minute (10)")
    samples.add_argument("--sample-per-day", type=_positive_int, metavar="N", help="at most N a day (1000)")
    samples.add_argument(
        "--sample-max-mb", type=float, metavar="MB", help="disk the frames may use; oldest dropped first (1024)"
    )
    samples.add_argument(
        "--sample-retention-days", type=float, metavar="DAYS", help="frames older than this are deleted (30)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yolowatch", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"yolowatch {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve a YOLO model's POST /predict (the bundled demo model by default)",
        description="Serve POST /predict (multipart 'file', optional conf, iou, imgsz, normalize, decimals) "
        "for an Ultralytics detection model, with GET /health, the admin API under /api/ and Prometheus "
        "GET /metrics on the same port. Binds 127.0.0.1 unless told otherwise; a non-loopback address "
        "needs an admin API key (YOLOWATCH_API_KEY or --api-key-file) or --allow-no-auth.",
    )
    serve.add_argument("--model", type=Path, help="Ultralytics .pt detection weights (default: the bundled demo model)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=_port, help="port to listen on (default 8000)")
    serve.add_argument("--max-upload-mb", type=float, help="largest accepted upload in MiB (default 20)")
    serve.add_argument("--max-image-pixels", type=_positive_int, help="largest accepted image in pixels (default 40M)")
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="worker processes on the one port, each with its own copy of the model (default 1); they share "
        "the database, and /metrics and the admin API of any worker count all of them",
    )
    _monitoring_arguments(serve)

    sidecar = commands.add_parser(
        "sidecar",
        help="monitor a predict server you cannot change, as a reverse proxy in front of it",
        description="Proxy every request on --port to --upstream (streaming both ways) and record it like serve "
        "does. The admin side (/health for probes, /api/... and /metrics) listens on --admin-port, so no route "
        "of the upstream is shadowed. An unreachable upstream is answered 502, a slow one 504. Binds 127.0.0.1 "
        "unless told otherwise; a non-loopback address needs an admin API key or --allow-no-auth.",
    )
    sidecar.add_argument("--upstream", required=True, help="the predict server's base URL, e.g. http://127.0.0.1:9000")
    sidecar.add_argument("--host", help="address to bind both ports (default 127.0.0.1)")
    sidecar.add_argument("--port", type=_port, help="traffic port, proxied to the upstream (default 8000)")
    sidecar.add_argument("--admin-port", type=_port, help="port of /health, /api/... and /metrics (default 8001)")
    sidecar.add_argument("--health-path", help="the upstream's health path, probed in the background (default /health)")
    sidecar.add_argument(
        "--probe-image",
        help="probe by POSTing this image (multipart 'file') to --probe-path instead of GET --health-path",
    )
    sidecar.add_argument(
        "--probe-path",
        help="the upstream's predict path: where --probe-image and golden images are sent, and which requests "
        "--sample-dir and --image-sample look at (default /predict)",
    )
    sidecar.add_argument(
        "--timeout-s", type=float, help="longest wait for the upstream's answer before a 504 (default 60)"
    )
    sidecar.add_argument(
        "--upstream-connections",
        type=int,
        metavar="N",
        help="keep-alive connections to the upstream, at most N at once; more concurrent requests wait for a "
        "free one, up to --timeout-s (default 100)",
    )
    sidecar.add_argument(
        "--image-sample",
        type=float,
        metavar="SHARE",
        help="decode this share of the uploads (0.1: one in ten) for their image properties (brightness, "
        "contrast, sharpness, size), off the request path; for an upstream that does not report them (the "
        "bundled app does). Needs the yolo extra (OpenCV). Default 0: none",
    )
    _monitoring_arguments(sidecar)

    traffic = commands.add_parser(
        "traffic",
        help="send demo traffic to a predict URL: normal, drifted, malformed, or pause (bounded)",
        description="Send the demo dataset's images to --url at --rate requests a second, following --plan "
        "(phases of mode:seconds; modes: normal, drifted, malformed, pause), and stop at the end of the plan or "
        "after --count requests. Prints progress once a second (and nothing per request unless --verbose). "
        "A predict key, if the endpoint needs one, is read from YOLOWATCH_PREDICT_API_KEY.",
    )
    traffic.add_argument("--verbose", action="store_true", help="also log every HTTP request the client sends")
    traffic.add_argument("--url", default="http://127.0.0.1:8000/predict", help="predict URL (default: local serve)")
    traffic.add_argument("--plan", default="normal:30", help="phases, e.g. normal:60,drifted:60,malformed:10,pause:30")
    traffic.add_argument("--rate", type=float, default=5.0, help="requests a second while sending (default 5)")
    traffic.add_argument("--count", type=_positive_int, default=1000, help="at most this many requests (default 1000)")
    traffic.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a form field sent with every image, e.g. --param imgsz=320 --param conf=0.3",
    )

    holdout = commands.add_parser(
        "holdout",
        help="score a deployment's mAP on a labeled holdout set and store it as a series",
        description="Run a YOLO dataset yaml's val split through a deployment's HTTP endpoint (--endpoint: its "
        "preprocessing is measured too) or a local model (--model, ultralytics val), compute mAP@0.5 and "
        "mAP@0.5:0.95 with ultralytics' metric code, and store the score in --db for the admin API "
        "(/api/deployments/NAME/holdout). For a weekly run: a cron line such as "
        "'0 3 * * 1 yolowatch holdout --data holdout.yaml --deployment prod --endpoint http://127.0.0.1:8000/predict'.",
    )
    holdout.add_argument("--data", type=Path, required=True, help="dataset yaml whose val split is the holdout set")
    holdout.add_argument("--deployment", required=True, help="the deployment the score is stored under")
    source = holdout.add_mutually_exclusive_group(required=True)
    source.add_argument("--endpoint", help="the deployment's predict URL, e.g. http://127.0.0.1:8000/predict")
    source.add_argument("--model", type=Path, help="a local .pt file, scored with ultralytics val")
    holdout.add_argument("--imgsz", type=_positive_int, default=640, help="inference size (default 640)")
    holdout.add_argument(
        "--recent",
        action="store_true",
        help="the set is recent production frames (exported with 'yolowatch samples export' and corrected): stored "
        "as a second series beside the fixed holdout, which the HoldoutMapDrop alert alone reads",
    )
    holdout.add_argument("--name", help="the series' name (default: the dataset's folder; with --recent: recent)")
    holdout.add_argument("--db", help="where to store the score: an " + DB_HELP)

    golden = commands.add_parser(
        "golden",
        help="record a golden set (images with approved answers) or check an endpoint against one",
        description="Golden-image checks catch what a 200 does not: new weights, FP16, a preprocessing change or a "
        "library upgrade that still answers, with different boxes. Record a few images' answers once (and look at "
        "them), then run serve or sidecar with --golden DIR: every minute each image goes through the real "
        "endpoint and its answer is matched with the recorded one.",
    )
    golden_commands = golden.add_subparsers(dest="golden_command", metavar="ACTION", required=True)
    record = golden_commands.add_parser(
        "record",
        help="send images to an endpoint and keep its answers as the approved ones",
        description="POST each image (multipart 'file', with the --param fields) to --endpoint and write the "
        "images and the answers to --out (golden.json). The answers are what the endpoint says now: look at "
        "them (the command prints them) before you trust the set. A predict key, if the endpoint needs one, is "
        "read from YOLOWATCH_PREDICT_API_KEY and never written down.",
    )
    record.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files (a handful is enough)")
    record.add_argument("--endpoint", required=True, help="the predict URL, e.g. http://127.0.0.1:8000/predict")
    record.add_argument("--out", type=Path, required=True, help="the golden set's folder (made if absent)")
    record.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a form field sent with each image"
    )
    record.add_argument("--iou", type=float, default=0.8, help="least IoU of a box with its recorded one (0.8)")
    record.add_argument("--confidence", type=float, default=0.1, help="most a confidence may move (0.1)")
    record.add_argument("--overwrite", action="store_true", help="record over an existing set in --out")
    check = golden_commands.add_parser(
        "check",
        help="run a golden set through an endpoint once; exit status 1 if an answer differs",
        description="Send each image of --golden to --endpoint (default: the endpoint it was recorded from) and "
        "say what differs from the recorded answers. Exit status 0 when every image matches, 1 when one does "
        "not: a gate for a deploy pipeline. Nothing is stored.",
    )
    check.add_argument("--golden", type=Path, required=True, metavar="DIR", help="the golden set's folder")
    check.add_argument(
        "--endpoint",
        help="the predict URL (default: the one the set was recorded from, which golden.json keeps without "
        "credentials or query string: give it here when the endpoint needs them)",
    )
    check.add_argument("--iou", type=float, help="least IoU (default: the set's)")
    check.add_argument("--confidence", type=float, help="most a confidence may move (default: the set's)")

    samples = commands.add_parser(
        "samples",
        help="list the production frames kept with --sample-dir, or export them as an Ultralytics dataset",
        description="Frames kept by serve or sidecar with --sample-dir (each with the model's detections as "
        "pseudo-labels and the rule that kept it: low_confidence, no_detection, class, drift, random). 'list' "
        "counts them; 'export' writes images/, labels/ (YOLO format) and data.yaml with the model's class names, "
        "for review in an annotation tool, then 'yolo train' or 'yolowatch holdout --recent'.",
    )
    sample_commands = samples.add_subparsers(dest="samples_command", metavar="ACTION", required=True)
    for action, text in (("list", "count the kept frames by deployment and rule"), ("export", "write a dataset")):
        command = sample_commands.add_parser(action, help=text, description=text[0].upper() + text[1:] + ".")
        command.add_argument(
            "--dir", dest="sample_dir", help="the --sample-dir of serve/sidecar (default: YOLOWATCH_SAMPLE_DIR)"
        )
        command.add_argument("--deployment", help="only this deployment's frames")
        command.add_argument("--since", help="only frames kept at or after this time (ISO 8601 or epoch seconds)")
        command.add_argument("--until", help="only frames kept before this time")
        command.add_argument("--rule", choices=SAMPLE_RULES, help="only frames kept by this rule")
        command.add_argument("--class", dest="class_name", help="only frames with a detection of this class")
        if action == "export":
            command.add_argument("--out", type=Path, required=True, help="the dataset folder (new or empty)")
            command.add_argument(
                "--names",
                type=Path,
                help="the model's class names, for data.yaml: a YOLO data.yaml, a .pt weights file (yolo extra) or a "
                "text file with one name per line. serve's frames carry them; a sidecar sees only the classes it "
                "was answered, so give them for its frames",
            )
            command.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")

    baseline = commands.add_parser(
        "baseline",
        help="pin (or clear, or show) the drift baseline window of a deployment",
        description="Drift tests compare the current window with a baseline: by default the first 7 days of "
        "traffic. Pin another window (e.g. the week after a model release) with --start and --end, as ISO 8601 "
        "times or epoch seconds; --clear goes back to the default. Kept in --db: every process and restart "
        "sees it. The admin API does the same: PUT/DELETE /api/deployments/NAME/baseline.",
    )
    baseline.add_argument("--deployment", required=True, help="the deployment whose baseline to set")
    baseline.add_argument("--start", help="baseline start, e.g. 2026-11-01T00:00:00Z")
    baseline.add_argument("--end", help="baseline end (after --start)")
    baseline.add_argument("--clear", action="store_true", help="unpin: use the first 7 days of traffic again")
    baseline.add_argument(
        "--version",
        dest="model_version",
        help="one model version's baseline (as /api/deployments/NAME/signals lists them, e.g. best.pt@1a2b3c4d5e6f); "
        "a version without one uses the deployment's",
    )
    baseline.add_argument("--db", help="the database: an " + DB_HELP)

    demo_data = commands.add_parser(
        "demo-data",
        help="write the synthetic shapes dataset (train/val/holdout/holdout-drifted)",
        description="Write the deterministic synthetic dataset the demo model is trained on: coloured shapes on "
        "noisy backgrounds, YOLO-format labels, data.yaml, holdout.yaml and holdout-drifted.yaml.",
    )
    demo_data.add_argument("--out", type=Path, default=Path("data/shapes"), help="output folder (default data/shapes)")
    demo_data.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    demo_data.add_argument(
        "--count",
        action="append",
        default=[],
        metavar="SPLIT=N",
        help="images in a split, e.g. --count train=200 (default train=1200, val/holdout/holdout-drifted=200)",
    )

    demo_model = commands.add_parser(
        "demo-model",
        help="train the demo model on the CPU from a model yaml (no download needed)",
        description="Generate the shapes dataset (unless present) and train a small YOLO from 'yolo11n.yaml' on "
        "the CPU, offline. Writes the weights and a JSON card with the training time and mAP. "
        "Takes about half an hour on 2 cores with the defaults.",
    )
    demo_model.add_argument("--out", type=Path, default=Path("shapes-yolo.pt"), help="weights file to write")
    demo_model.add_argument("--data", type=Path, default=Path("data/shapes"), help="dataset folder (made if absent)")
    demo_model.add_argument("--epochs", type=_positive_int, help="training epochs (default 25)")
    demo_model.add_argument("--imgsz", type=_positive_int, help="training image size (default 320)")
    demo_model.add_argument("--train-images", type=_positive_int, help="training images to generate (default 800)")
    return parser


class UsageError(Exception):
    """What the user asked for cannot run as given: printed as 'yolowatch: MESSAGE', exit status 2."""


def _extra(module: str, what: str) -> ModuleType:
    """A module of the `yolo` extra, or a usage error that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UsageError(
            f"{what} needs the yolo extra ({exc.name} is missing): pip install 'yolowatch[yolo]'"
        ) from None


def _parse_counts(items: Sequence[str], defaults: dict[str, int]) -> dict[str, int]:
    counts = dict(defaults)
    for item in items:
        split, _, number = item.partition("=")
        if split not in defaults or not number.isdigit():
            raise UsageError(f"--count must be SPLIT=N with SPLIT one of {', '.join(defaults)}, got {item!r}")
        counts[split] = int(number)
    return counts


def _checked(settings: Settings, command: str) -> Settings:
    """The settings, if they are fit to run `command` (the rules file included); else a usage error."""
    try:
        settings.validate(command)
        alert_rules(settings)
        alert_sinks(settings)  # an SMTP URL or a chat URL that cannot work
        if settings.otlp_endpoint or settings.otlp_traces:  # asked by name (OTEL_* alone: a warning, see compose)
            missing = otlp_available()
            if missing is not None:
                raise ValueError(f"--otlp-{'traces' if settings.otlp_traces else 'endpoint'}: {missing}")
        if settings.golden:
            golden.load_golden_set(settings.golden)
        if settings.sample_dir:
            sample_rules(settings)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return settings


def resolved_db(db: str) -> str:
    """An SQLite path made absolute (worker processes may start elsewhere); a URL as it is."""
    return db if is_postgres_url(db) else str(Path(db).resolve())


def _anchored(settings: Settings) -> Settings:
    """With a sped-up clock, one anchor for every worker process (else each would run its own time)."""
    if settings.time_scale != 1 and not settings.time_anchor:
        return settings.with_overrides(time_anchor=time.time())
    return settings


def _monitoring_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "host": args.host,
        "port": args.port,
        "db": args.db,
        "db_pool_size": args.db_pool_size,
        "instance": args.instance,
        "deployment": args.deployment,
        "latency_budget_ms": args.latency_budget_ms,
        "log_format": args.log_format,
        "region": args.region,
        "api_key_file": args.api_key_file,
        "allow_no_auth": args.allow_no_auth,
        "log_level": args.log_level,
        "alert_rules_file": args.alert_rules,
        "alert_webhook": args.alert_webhook,
        "smtp_url": args.smtp_url,
        "smtp_password_file": args.smtp_password_file,
        "smtp_ca_file": args.smtp_ca_file,
        "alert_email_from": args.alert_email_from,
        "alert_email_to": args.alert_email_to,
        "alert_email_severity": args.alert_email_severity,
        "alert_email_rules": args.alert_email_rules,
        "alert_chat": args.alert_chat,
        "alert_chat_severity": args.alert_chat_severity,
        "alert_chat_rules": args.alert_chat_rules,
        "otlp_endpoint": args.otlp_endpoint,
        "otlp_interval_s": args.otlp_interval,
        "otlp_traces": args.otlp_traces,
        "otlp_trace_sample": args.otlp_trace_sample,
        "golden": args.golden,
        "golden_every_s": args.golden_every,
        "golden_iou": args.golden_iou,
        "golden_confidence": args.golden_confidence,
        "golden_in_health": args.golden_in_health,
        "sample_dir": args.sample_dir,
        "sample_low_confidence": args.sample_low_confidence,
        "sample_no_detection": args.sample_no_detection,
        "sample_classes": args.sample_classes,
        "sample_drift_share": args.sample_drift_share,
        "sample_random_share": args.sample_random_share,
        "sample_per_minute": args.sample_per_minute,
        "sample_per_day": args.sample_per_day,
        "sample_max_mb": args.sample_max_mb,
        "sample_retention_days": args.sample_retention_days,
    }


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    serve = _extra("yolowatch.yolo.serve", "serve")
    max_upload = None if args.max_upload_mb is None else int(args.max_upload_mb * 1024 * 1024)
    settings = settings.with_overrides(
        model=args.model,
        max_upload_bytes=max_upload,
        max_image_pixels=args.max_image_pixels,
        **_monitoring_overrides(args),
    )
    settings = _anchored(_checked(settings, "serve").with_overrides(db=resolved_db(settings.db)))
    if settings.golden and not settings.golden_token:  # one token for every worker: each leaves all golden requests out
        settings = settings.with_overrides(golden_token=secrets.token_hex(16))
    configure_logging(settings.log_level, settings.log_format)
    workers = f" with {args.workers} workers" if args.workers > 1 else ""
    print(
        f"yolowatch: serving {settings.model.name} on http://{settings.host}:{settings.port}/predict{workers}, "
        f"recording deployment '{settings.deployment}' into {shown_db(settings.db)}",
        flush=True,
    )
    # yolowatch logs every request itself (logger yolowatch.requests), so uvicorn's access log is off.
    stack = server_stack()
    print(f"yolowatch: {stack.describe()}", flush=True)
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "loop": stack.loop,
        "http": stack.http,
    }
    if args.workers > 1:
        # Worker processes build their app from the environment: hand them these exact settings.
        export_to_workers(settings)
        uvicorn.run("yolowatch.yolo.serve:app_from_env", factory=True, workers=args.workers, **common)
    else:
        uvicorn.run(serve.create_serve_app(settings), **common)
    return 0


def run_sidecar(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.with_overrides(
        upstream=args.upstream,
        admin_port=args.admin_port,
        health_path=args.health_path,
        probe_image=args.probe_image,
        probe_path=args.probe_path,
        upstream_timeout_s=args.timeout_s,
        upstream_connections=args.upstream_connections,
        image_sample=args.image_sample,
        **_monitoring_overrides(args),
    )
    settings = _checked(settings, "sidecar")
    measure = _image_measure(settings) if settings.image_sample > 0 else None
    configure_logging(settings.log_level, settings.log_format)
    print(
        f"yolowatch: proxying http://{settings.host}:{settings.port} to {redacted_url(settings.upstream)}; "
        f"admin API, /health and /metrics on http://{settings.host}:{settings.admin_port}; recording deployment "
        f"'{settings.deployment}' into {shown_db(settings.db)}",
        flush=True,
    )
    stack = server_stack()
    print(f"yolowatch: {stack.describe()}", flush=True)
    run_on(stack, serve_sidecar(settings, stack, measure))
    return 0


def _image_measure(settings: Settings) -> Callable[[bytes], dict[str, float] | None]:
    """What measures a sampled upload: OpenCV's decoding and the properties, from the yolo extra."""
    imagestats = _extra("yolowatch.yolo.imagestats", "--image-sample")
    return functools.partial(imagestats.measure_upload, max_pixels=settings.max_image_pixels)


def _predict_headers(settings: Settings) -> dict[str, str] | None:
    return {"Authorization": f"Bearer {settings.predict_api_key}"} if settings.predict_api_key else None


def run_traffic(args: argparse.Namespace, settings: Settings) -> int:
    if args.verbose:
        configure_logging("debug")
    try:
        http_url(args.url, "--url", "http://127.0.0.1:8000/predict")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not 0 < args.rate <= 1000:
        raise UsageError("--rate must be more than 0 and at most 1000 requests a second")
    fields = _form_fields(args.param)
    traffic = _extra("yolowatch.demo.traffic", "traffic (it renders the demo images with OpenCV)")
    try:
        plan = traffic.parse_plan(args.plan)
    except ValueError as exc:
        raise UsageError(f"--plan: {exc}") from None
    tally = traffic.run(
        args.url,
        plan,
        args.rate,
        args.count,
        headers=_predict_headers(settings),
        fields=fields,
        report=lambda line: print(line, flush=True),
    )
    return 0 if tally.sent == 0 or tally.failures < tally.sent else 1


def run_holdout(args: argparse.Namespace, settings: Settings) -> int:
    holdout = _extra("yolowatch.yolo.holdout", "holdout")
    try:
        dataset = holdout.load_holdout(args.data)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--data: {exc}") from None
    if args.model is not None and not args.model.is_file():
        raise UsageError(f"--model {args.model} is not a file")
    if args.endpoint:
        try:
            http_url(args.endpoint, "--endpoint", "http://127.0.0.1:8000/predict")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    print(f"yolowatch: scoring {len(dataset.images)} images of {dataset.name} for '{args.deployment}'", flush=True)

    def progress(done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            print(f"  {done}/{total} images", flush=True)

    try:
        if args.endpoint:
            result = holdout.score_through_endpoint(
                dataset, args.endpoint, args.imgsz, headers=_predict_headers(settings), progress=progress
            )
            source = redacted_url(args.endpoint)
        else:
            result = holdout.score_local_model(args.data, args.model, args.imgsz)
            source = f"model:{args.model.name}"
    except (RuntimeError, OSError) as exc:
        print(f"yolowatch: {exc}", file=sys.stderr)
        return 1
    result["details"] = {**holdout.run_details(result, args.data), "set": "recent" if args.recent else "holdout"}
    name = args.name or ("recent" if args.recent else dataset.name)

    async def save() -> None:
        async with Store(args.db or settings.db) as store:
            if await store.deployment(args.deployment) is None:
                await store.register_deployment(args.deployment)
            await store.save_holdout(args.deployment, name, holdout.digest(dataset), source, result)

    try:
        asyncio.run(save())
    except STORE_ERRORS as exc:
        print(f"yolowatch: cannot store the score in {shown_db(args.db or settings.db)}: {exc}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "deployment": args.deployment,
                "dataset": name,
                "set": result["details"]["set"],
                "mAP50": round(result["map50"], 4),
                "mAP50-95": round(result["map50_95"], 4),
                "images": result["images"],
            }
        ),
        flush=True,
    )
    return 0


def _form_fields(items: Sequence[str]) -> dict[str, str]:
    fields = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--param {item!r}: give NAME=VALUE, e.g. imgsz=320")
        fields[name.strip()] = value
    return fields


def run_golden(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if args.golden_command == "record":
            tolerance = golden.Tolerance(iou=args.iou, confidence=args.confidence)
            recorded = asyncio.run(
                golden.record_golden(
                    args.endpoint,
                    args.images,
                    args.out,
                    _form_fields(args.param),
                    _predict_headers(settings),
                    tolerance,
                    overwrite=args.overwrite,
                )
            )
            for image in recorded.images:
                found = ", ".join(d.describe() for d in image.detections) or "no detection"
                print(f"  {image.file}: {found}")
            print(
                f"yolowatch: recorded {len(recorded.images)} images into {args.out}/golden.json; look at the answers "
                f"above, then: yolowatch serve --golden {args.out} (or sidecar --golden {args.out})",
                flush=True,
            )
            return 0
        the_set = golden.load_golden_set(args.golden)
        endpoint = args.endpoint or the_set.endpoint
        http_url(endpoint, "--endpoint", "http://127.0.0.1:8000/predict")

        async def check_once() -> Any:
            async with golden.HttpPoster(endpoint, _predict_headers(settings)) as post:
                checker = golden.GoldenChecker("cli", args.golden, post, iou=args.iou, confidence=args.confidence)
                return await checker.check()

        run = asyncio.run(check_once())
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if run.error:
        print(f"yolowatch: the golden check could not run: {run.error}", file=sys.stderr)
        return 1
    for name, differences in run.differences.items():
        print(f"  {name}: " + "; ".join(differences))
    print(f"yolowatch: {run.passed} of {run.images} golden images match their recorded answer", flush=True)
    return 0 if run.ok else 1


def _class_names(path: Path) -> dict[int, str]:
    """Class names from a YOLO data.yaml, a weights file or a text file of one name per line; a usage error else."""
    if not path.is_file():
        raise UsageError(f"--names {path} is not a file")
    if path.suffix == ".pt":
        _extra("yolowatch.yolo.offline", "--names with a weights file").prepare_ultralytics()
    reader = _extra("yaml", "--names with a yaml file") if path.suffix in (".yaml", ".yml") else None
    try:
        if path.suffix == ".pt":
            from ultralytics.models import YOLO

            raw: Any = YOLO(str(path)).names
        elif reader is not None:
            raw = (reader.safe_load(path.read_text()) or {}).get("names")
        else:
            raw = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        pairs = enumerate(raw) if isinstance(raw, list) else dict(raw).items()
        names = {int(cls): str(name) for cls, name in pairs}
    except Exception as exc:  # a file that is no yaml, no weights, no names: whatever the reader raised
        raise UsageError(f"--names {path}: cannot read class names ({exc})") from None
    if not names:
        raise UsageError(f"--names {path} names no class")
    return names


def run_samples(args: argparse.Namespace, settings: Settings) -> int:
    directory = args.sample_dir or settings.sample_dir
    if not directory:
        raise UsageError("give --dir (the --sample-dir that serve or sidecar keeps frames in)")
    if not Path(directory).is_dir():
        raise UsageError(f"--dir {directory} is not a folder")
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    found = sampleset.list_samples(
        Path(directory),
        deployment=args.deployment,
        since=since,
        until=until,
        rule=args.rule,
        class_name=args.class_name,
    )
    if args.samples_command == "list":
        counts = sampleset.summary(found)
        if not counts.frames:
            print(f"yolowatch: no kept frames in {directory} match")
            return 0
        print(f"{counts.frames} frames, {counts.image_bytes / 1e6:.1f} MB, {iso_time(counts.oldest or 0)} .. "
              f"{iso_time(counts.newest or 0)}")  # fmt: skip
        for deployment, rules in counts.by_deployment.items():
            shown = ", ".join(f"{rule} {count}" for rule, count in sorted(rules.items()))
            print(f"  {deployment}: {sum(rules.values())} ({shown})")
        return 0
    if not found:
        raise UsageError(f"no kept frames in {directory} match: nothing to export")
    names = _class_names(args.names) if args.names is not None else None
    try:
        result = sampleset.export_dataset(found, args.out, names=names, overwrite=args.overwrite)
    except (FileExistsError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    unnamed = [str(cls) for cls, name in result.names.items() if name == f"class{cls}" and not names]
    if unnamed:
        print(f"  note: class {', '.join(unnamed)} was never named in these frames (data.yaml calls it class<N>); "
              "give the model's names with --names")  # fmt: skip
    for sample_id, why in sorted(result.skipped.items()):
        print(f"  skipped {sample_id}: {why}")
    print(
        f"yolowatch: {result.frames} frames and {result.boxes} boxes written to {result.directory}; review and "
        f"correct the labels, then: yolo train data={result.data_yaml} (or yolowatch holdout --recent "
        f"--data {result.data_yaml} ...)",
        flush=True,
    )
    return 0


def _baseline_window(args: argparse.Namespace) -> tuple[int, int] | None:
    """The window --start/--end ask to pin (None: show, or --clear); a usage error for a half-given one."""
    if args.clear and (args.start or args.end):
        raise UsageError("give --clear alone, or --start and --end")
    if bool(args.start) != bool(args.end):
        raise UsageError("give both --start and --end (or --clear, or neither to show the baseline)")
    if not args.start:
        return None
    try:
        window = (parse_time(args.start), parse_time(args.end))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if window[1] <= window[0]:
        raise UsageError("--end must be after --start")
    return window


def run_baseline(args: argparse.Namespace, settings: Settings) -> int:
    window = _baseline_window(args)

    async def apply() -> str:
        async with Store(args.db or settings.db) as store:
            if await store.deployment(args.deployment) is None:
                known = ", ".join(d["id"] for d in await store.deployments()) or "none yet"
                raise UsageError(f"unknown deployment {args.deployment!r}; known: {known}")
            version = args.model_version
            if window is not None or args.clear:
                await store.pin_baseline(args.deployment, window, version)
            pinned = await store.pinned_baseline(args.deployment, version)
            windows = await drift_windows(store, args.deployment, version=version)
        name = args.deployment if version is None else f"{args.deployment} version {version}"
        if pinned is not None:
            return f"{name}: drift baseline {iso_time(pinned[0])} .. {iso_time(pinned[1])} (pinned)"
        if windows is None:
            return f"{name}: drift baseline: the first 7 days of traffic (default; no traffic yet)"
        start, end = windows[0].start_s, windows[0].end_s
        default = "the deployment's" if version is not None else "default: the first 7 days"
        return f"{name}: drift baseline {iso_time(start)} .. {iso_time(end)} ({default})"

    try:
        print(asyncio.run(apply()))
    except STORE_ERRORS as exc:
        print(f"yolowatch: cannot use the database {shown_db(args.db or settings.db)}: {exc}", file=sys.stderr)
        return 1
    return 0


def run_demo_data(args: argparse.Namespace) -> int:
    shapes = _extra("yolowatch.demo.shapes", "demo-data")
    data_yaml = shapes.generate_dataset(
        args.out, seed=args.seed, counts=_parse_counts(args.count, shapes.DEFAULT_COUNTS)
    )
    print(f"yolowatch: dataset written; train/val: {data_yaml}")
    return 0


def run_demo_model(args: argparse.Namespace) -> int:
    train = _extra("yolowatch.demo.train", "demo-model")
    overrides = {"epochs": args.epochs, "imgsz": args.imgsz, "train_images": args.train_images}
    config = replace(train.TrainConfig(), **{k: v for k, v in overrides.items() if v is not None})
    card = train.train_demo_model(args.out, args.data, config)
    print(json.dumps(card, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command not in ("serve", "sidecar"):
        configure_logging("info")
    try:
        # The sidecar records under "sidecar" unless told otherwise (serve's demo name would mislead).
        base = Settings(deployment="sidecar") if args.command == "sidecar" else Settings()
        try:
            settings = settings_from_env(base=base)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return _run(args, settings)
    except UsageError as exc:
        print(f"yolowatch: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        return run_serve(args, settings)
    if args.command == "sidecar":
        return run_sidecar(args, settings)
    if args.command == "traffic":
        return run_traffic(args, settings)
    if args.command == "holdout":
        return run_holdout(args, settings)
    if args.command == "baseline":
        return run_baseline(args, settings)
    if args.command == "golden":
        return run_golden(args, settings)
    if args.command == "samples":
        return run_samples(args, settings)
    if args.command == "demo-data":
        return run_demo_data(args)
    return run_demo_model(args)


if __name__ == "__main__":
    sys.exit(main())
