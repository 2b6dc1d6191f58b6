"""The admin router, built from one table of operations that also writes its OpenAPI document.

`admin_router(store, monitors=[...], keys=KeyCheck([...]))` returns a Starlette `Router` that any app
can mount. Every `/api` route needs the bearer key when keys are configured; `/metrics` is open unless
`metrics_need_key`. A refused request gets a JSON `{"error": ...}` and a WARNING log line; an unknown
path under the router gets a JSON 404 too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from yolowatch.admin.endpoints import Admin
from yolowatch.admin.openapi import Operation, Param, openapi_document
from yolowatch.admin.params import (
    DEFAULT_SAMPLE_LIMIT,
    MAX_CLASS_LENGTH,
    MAX_HOST_LENGTH,
    MAX_LOG_LIMIT,
    MAX_SAMPLE_LIMIT,
    MAX_VERSION_LENGTH,
)
from yolowatch.admin.views import golden_health_json, health_json
from yolowatch.alerts import SILENCE_STATES
from yolowatch.asgi.auth import KeyCheck, unauthorized
from yolowatch.asgi.headers import SecurityHeaders
from yolowatch.errors import RequestError, json_error
from yolowatch.framesample import SAMPLE_RULES
from yolowatch.health import StateThresholds
from yolowatch.metrics import RANGES
from yolowatch.monitor import Monitor
from yolowatch.records import SEVERITY_LEVELS
from yolowatch.store import Store

log = logging.getLogger("yolowatch.admin")

Endpoint = Callable[[Request], Awaitable[Response]]
DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard"

DEPLOYMENT = Param("deployment", "path", {"type": "string"}, "the deployment's id")
ARCHIVED = Param("archived", "query", {"type": "boolean", "default": False}, "include archived deployments")
VERSION = Param(
    "version", "query", {"type": "string", "minLength": 1, "maxLength": MAX_VERSION_LENGTH},
    "one model version (as /signals lists them); the whole deployment when absent",
)  # fmt: skip
SILENCE = Param("id", "path", {"type": "string"}, "the silence's id")
HOST = Param(
    "host", "query", {"type": "string", "minLength": 1, "maxLength": MAX_HOST_LENGTH},
    "only this host's requests (a host of /api/fleet); all hosts when absent",
)  # fmt: skip


def _range(default: str) -> Param:
    return Param("range", "query", {"enum": list(RANGES), "default": default}, "time range")


def _window_params() -> tuple[Param, ...]:
    return tuple(
        Param(
            f"{side}{edge}", "query", {"type": "integer", "minimum": 0}, f"{side} window {edge.lower()}, epoch seconds"
        )
        for side in ("baseline", "current")
        for edge in ("Start", "End")
    )


def operations(metrics_need_key: bool = False) -> list[Operation]:
    """Every admin operation, in the order the document lists them."""
    d = "/api/deployments/{deployment}"
    return [
        Operation("GET", "/api/monitoring", "overview", "Overview of every deployment over 24h", {200: "Overview"},
                  (ARCHIVED,)),
        Operation("GET", "/api/deployments", "list_deployments", "What is monitored",
                  {200: "Deployments"}, (ARCHIVED,)),
        Operation("GET", d, "get_deployment", "One deployment, with its live snapshot", {200: "DeploymentDetail"},
                  (DEPLOYMENT,)),
        Operation("PATCH", d, "update_deployment", "Pause, resume or archive its monitor; set its snapshot window",
                  {200: "DeploymentDetail"}, (DEPLOYMENT,), body="DeploymentPatch"),
        Operation("GET", "/api/fleet", "fleet",
                  "Processes, each deployment's hosts (request share, percentiles, health) and regions for the map",
                  {200: "Fleet"},
                  (_range("1h"),)),
        Operation("GET", f"{d}/metrics", "metrics", "Summary and sparkline over a range, of the fleet or one host",
                  {200: "Metrics"}, (
            DEPLOYMENT,
            _range("24h"),
            Param("sparkline", "query", {"type": "boolean", "default": False}, "include 60-100 points"),
            HOST,
        )),
        Operation("GET", f"{d}/signals", "signals",
                  "Stage times, classes, request parameters, image properties and model versions over a range",
                  {200: "Signals"}, (
            DEPLOYMENT,
            _range("24h"),
            HOST,
            VERSION,
        )),
        Operation("GET", f"{d}/compare", "compare",
                  "Two model versions side by side, and drift tests of b against a (judging a canary)",
                  {200: "Compare"}, (
            DEPLOYMENT,
            _range("24h"),
            Param("a", "query", {"type": "string", "minLength": 1}, "the version to compare against", True),
            Param("b", "query", {"type": "string", "minLength": 1}, "the version under test (the canary)", True),
        )),
        Operation("GET", f"{d}/logs", "logs", "Request logs, newest first", {200: "Logs"}, (
            DEPLOYMENT,
            Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_LOG_LIMIT, "default": 50},
                  "page size"),
            Param("severity", "query", {"type": "string"}, "comma-separated: " + ", ".join(SEVERITY_LEVELS)),
            Param("traceId", "query", {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"},
                  "one W3C trace's entries (its 32 hex digits)"),
            Param("pageToken", "query", {"type": "string"}, "nextPageToken of the previous page"),
        )),
        Operation("GET", f"{d}/health", "health", "Latest health probe", {200: "Health"}, (DEPLOYMENT,)),
        Operation("POST", f"{d}/health/check", "check_health", "Probe now (this process's deployments only)",
                  {200: "Health", 409: "Error"}, (DEPLOYMENT,)),
        Operation("GET", f"{d}/drift", "drift",
                  "KS drift tests of confidence and box size, current window against the baseline",
                  {200: "Drift", 409: "Error", 501: "Error"}, (DEPLOYMENT, *_window_params(), VERSION)),
        Operation("GET", f"{d}/baseline", "baseline", "The drift baseline window, pinned or default",
                  {200: "Baseline"}, (DEPLOYMENT, VERSION)),
        Operation("PUT", f"{d}/baseline", "baseline",
                  "Pin the drift baseline (epoch seconds or ISO 8601), of the deployment or one model version",
                  {200: "Baseline"}, (DEPLOYMENT, VERSION), body="BaselineWindow"),
        Operation("DELETE", f"{d}/baseline", "baseline", "Unpin: back to the first 7 days of traffic",
                  {200: "Baseline"}, (DEPLOYMENT, VERSION)),
        Operation("GET", f"{d}/holdout", "holdout", "The holdout mAP series", {200: "Holdout"}, (DEPLOYMENT,)),
        Operation("GET", f"{d}/golden", "golden",
                  "Golden-image checks over a range: pass rates, and what differed in the latest runs",
                  {200: "Golden"}, (DEPLOYMENT, _range("24h"))),
        Operation("GET", f"{d}/samples", "samples",
                  "Sampled production frames (--sample-dir): the newest, filtered by rule or class, and counts of all",
                  {200: "Samples"}, (
            DEPLOYMENT,
            Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_SAMPLE_LIMIT,
                                     "default": DEFAULT_SAMPLE_LIMIT}, "how many frames, newest first"),
            Param("rule", "query", {"enum": ["", *SAMPLE_RULES]}, "only frames kept by this rule (empty: all)"),
            Param("class", "query", {"type": "string", "maxLength": MAX_CLASS_LENGTH},
                  "only frames with a detection of this class (empty: all)"),
        )),
        Operation("GET", f"{d}/samples/{{sample}}/image", "sample_image", "A sampled frame's image, as it was uploaded",
                  {200: "image"}, (DEPLOYMENT, Param("sample", "path", {"type": "string"}, "the frame's id"))),
        Operation("GET", "/api/alerts", "alerts", "Alert rule states and notifications, newest first",
                  {200: "Alerts"}, (Param("deployment", "query", {"type": "string"}, "only this deployment"),)),
        Operation("GET", "/api/alerts/rules", "list_rules", "Every alert rule, from the config or the API",
                  {200: "Rules"}),
        Operation("POST", "/api/alerts/rules", "create_rule", "Create an alert rule (stored: every process applies it)",
                  {201: "Rule", 409: "Error"}, body="RuleInput"),
        Operation("DELETE", "/api/alerts/rules/{name}", "delete_rule", "Delete a rule created through the API",
                  {204: None, 404: "Error", 409: "Error"}, (Param("name", "path", {"type": "string"}),)),
        Operation("POST", "/api/alerts/ack", "acknowledge",
                  "Acknowledge a pending or firing alert (who, and a comment); cleared when it resolves",
                  {200: "AlertStatus", 404: "Error", 409: "Error"}, body="AckInput"),
        Operation("GET", "/api/silences", "list_silences",
                  "Silences: active, pending, and those that ended in the last five days",
                  {200: "Silences"}, (Param("state", "query", {"enum": list(SILENCE_STATES)}, "only this state"),)),
        Operation("POST", "/api/silences", "create_silence",
                  "Silence the alerts that all matchers match, for a time: they change state but send nothing",
                  {201: "Silence"}, body="SilenceInput"),
        Operation("GET", "/api/silences/{id}", "get_silence", "One silence", {200: "Silence", 404: "Error"},
                  (SILENCE,)),
        Operation("DELETE", "/api/silences/{id}", "expire_silence",
                  "Expire a silence now (it stays listed as expired)", {200: "Silence", 404: "Error"}, (SILENCE,)),
        Operation("GET", "/api/openapi.json", "openapi", "This document", {200: "OpenAPI"}),
        Operation("GET", "/metrics", "prometheus", "Prometheus text exposition", {200: "text"},
                  needs_key=metrics_need_key),
    ]  # fmt: skip


HEALTH_OPERATION = Operation(
    "GET",
    "/health",
    "own_health",
    "This process's deployment: 200 healthy, 503 not",
    {200: "Health", 503: "Health"},
    needs_key=False,
)


def admin_document(metrics_need_key: bool = False) -> dict[str, Any]:
    """The OpenAPI document of the admin router (and of `/health`, which serve and sidecar put beside it)."""
    return openapi_document([*operations(metrics_need_key), HEALTH_OPERATION])


def guarded(endpoint: Endpoint, keys: KeyCheck, need_key: bool = True) -> Endpoint:
    """Key check, then the endpoint; a RequestError becomes its JSON answer and a WARNING line."""

    async def guarded_endpoint(request: Request) -> Response:
        if need_key and not keys.allows(request.headers):
            log.warning("%s %s refused with 401: no valid API key", request.method, request.url.path)
            return unauthorized("the admin API")
        try:
            return await endpoint(request)
        except RequestError as exc:
            log.warning("%s %s refused with %d: %s", request.method, request.url.path, exc.status, exc.message)
            return json_error(exc.status, exc.message, exc.headers)

    return guarded_endpoint


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """Unknown admin paths answer JSON like every other refusal (a client parses one shape of error)."""
    if scope["type"] == "http":
        await json_error(404, f"no admin route {scope['path']}; see /api/openapi.json")(scope, receive, send)


def admin_router(
    store: Store,
    *,
    monitors: Iterable[Monitor] = (),
    keys: KeyCheck | Iterable[str] = (),
    thresholds: StateThresholds | None = None,
    metrics_need_key: bool = False,
) -> Router:
    """The admin routes (`/api/...`, `/metrics`, `/dashboard`) over `store`; `monitors` are this process's
    deployments (their health checks and alert rules)."""
    check = keys if isinstance(keys, KeyCheck) else KeyCheck(keys)
    admin = Admin(store, monitors, check, thresholds or StateThresholds(), metrics_need_key)
    table = operations(metrics_need_key)
    document = admin_document(metrics_need_key)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    handlers: dict[str, Endpoint] = {"openapi": openapi}
    routes: list[BaseRoute] = [
        Route(op.path, guarded(handlers.get(op.handler) or getattr(admin, op.handler), check, op.needs_key),
              methods=[op.method])
        for op in table
    ]  # fmt: skip
    routes += [
        Route("/dashboard", lambda request: RedirectResponse("/dashboard/"), methods=["GET"]),
        # The page itself holds no data and needs no key; it asks for one when the API does.
        Mount("/dashboard", app=SecurityHeaders(StaticFiles(directory=DASHBOARD, html=True))),
    ]
    return Router(routes=routes, default=not_found)


def own_health_endpoint(monitor: Monitor) -> Endpoint:
    """`GET /health` for this process's deployment: the latest probe from memory (and, when asked, the latest golden
    run), 200 or 503, no key."""

    async def health(request: Request) -> Response:
        checker = monitor.health
        result = checker.latest if checker is not None else None
        body = health_json(result, checker.checking if checker is not None else False)
        healthy = result is not None and result.healthy
        golden = monitor.golden.latest if monitor.golden is not None and monitor.golden_in_health else None
        if golden is not None:  # asked for (--golden-in-health); before the first run, the probe alone answers
            body["golden"] = golden_health_json(golden)
            if not golden.ok:
                body["healthy"] = healthy = False
        return JSONResponse(body, status_code=200 if healthy else 503)

    return health
