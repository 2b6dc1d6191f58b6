"""The admin router: JSON (camelCase) over the store for dashboards, scripts and uptime checkers.

`admin_router(store, monitors=[...], keys=KeyCheck([...]))` returns a Starlette `Router` that any
app can mount. Every `/api` route needs the bearer key when keys are configured; `/metrics` is
open unless `metrics_need_key`. Bad parameters get a 400 (404 for an unknown deployment) whose
`error` says what is allowed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yolowatch.alerts import Evaluator, Rule, rule_from_json, rule_json
from yolowatch.auth import KeyCheck, unauthorized
from yolowatch.errors import RequestError, json_error
from yolowatch.exporters import CONTENT_TYPE, exposition
from yolowatch.health import StateThresholds, deployment_state, health_json, iso_time
from yolowatch.monitor import Monitor
from yolowatch.quality import DriftRule, Window, default_windows, drift_report, parse_time
from yolowatch.recorder import SEVERITY_LEVELS, SEVERITY_NAMES, Bucket
from yolowatch.store import MONITOR_STATES, RANGE_NAMES, RANGES, SNAPSHOT_WINDOWS, Store, bucket_metrics

log = logging.getLogger("yolowatch.admin")

MAX_LOG_LIMIT = 200
DEFAULT_LOG_LIMIT = 50
OVERVIEW_RANGE = "24h"

Endpoint = Callable[[Request], Awaitable[Response]]


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def camel_keys(values: dict[str, Any]) -> dict[str, Any]:
    return {camel(key): value for key, value in values.items()}


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {key: round(value, 6) if isinstance(value, float) else value for key, value in values.items()}


# -- page tokens: opaque to clients, signed so a forged or garbled one is refused -----------------------


def encode_page_token(secret: bytes, deployment: str, severities: list[str], cursor: tuple[int, int]) -> str:
    payload = json.dumps({"d": deployment, "s": severities, "t": cursor[0], "i": cursor[1]}, separators=(",", ":"))
    body = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=")
    signature = base64.urlsafe_b64encode(hmac.new(secret, body, hashlib.sha256).digest()[:18])
    return f"{body.decode()}.{signature.decode()}"


def decode_page_token(secret: bytes, token: str, deployment: str, severities: list[str]) -> tuple[int, int]:
    """The cursor inside a token made by `encode_page_token` for the same query; RequestError(400) otherwise."""
    refused = RequestError(400, "pageToken is not valid: pass the nextPageToken of the previous page unchanged")
    body, _, signature = token.partition(".")
    expected = base64.urlsafe_b64encode(hmac.new(secret, body.encode(), hashlib.sha256).digest()[:18]).decode()
    if not body or not hmac.compare_digest(signature.encode(), expected.encode()):  # bytes: any text is refused
        raise refused
    try:
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        cursor = (int(payload["t"]), int(payload["i"]))
    except (ValueError, KeyError, TypeError):
        raise refused from None
    if payload.get("d") != deployment or payload.get("s") != severities:
        raise RequestError(400, "pageToken belongs to another query: keep the same deployment and severity filter")
    return cursor


# -- parameters ---------------------------------------------------------------------------------------


def parse_range(request: Request, default: str = "24h") -> str:
    value = request.query_params.get("range", default)
    if value not in RANGES:
        raise RequestError(400, f"range must be one of {RANGE_NAMES}; got {value!r}")
    return value


def parse_bool(request: Request, name: str, default: bool = False) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise RequestError(400, f"{name} must be true or false; got {value!r}")


def parse_limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LOG_LIMIT
    if not re.fullmatch(r"\d{1,6}", raw) or not 1 <= int(raw) <= MAX_LOG_LIMIT:
        raise RequestError(400, f"limit must be an integer from 1 to {MAX_LOG_LIMIT}; got {raw!r}")
    return int(raw)


def parse_severities(request: Request) -> list[str]:
    raw = request.query_params.get("severity")
    if raw is None or not raw.strip():
        return []
    names = {part.strip().upper() for part in raw.split(",") if part.strip()}
    unknown = sorted(names - SEVERITY_LEVELS.keys())
    if unknown:
        allowed = ", ".join(SEVERITY_LEVELS)
        raise RequestError(400, f"unknown severity {', '.join(unknown)}: use a comma-separated list of {allowed}")
    return sorted(names, key=SEVERITY_LEVELS.__getitem__)


def parse_window(request: Request, name: str) -> Window | None:
    """`{name}Start` and `{name}End` (epoch seconds), both or neither."""
    start, end = request.query_params.get(f"{name}Start"), request.query_params.get(f"{name}End")
    if start is None and end is None:
        return None
    if start is None or end is None or not re.fullmatch(r"\d{1,12}", start) or not re.fullmatch(r"\d{1,12}", end):
        raise RequestError(400, f"give {name}Start and {name}End together, as epoch seconds")
    if int(end) <= int(start):
        raise RequestError(400, f"{name}End must be after {name}Start")
    return Window(int(start), int(end))


async def json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise RequestError(400, "the body must be JSON") from None


def parse_window_body(body: Any) -> tuple[int, int]:
    """`{"start": ..., "end": ...}`, each epoch seconds or ISO 8601, end after start."""
    if not isinstance(body, dict) or "start" not in body or "end" not in body:
        raise RequestError(400, 'give {"start": ..., "end": ...} as epoch seconds or ISO 8601 times')
    try:
        start, end = parse_time(body["start"]), parse_time(body["end"])
    except ValueError as exc:
        raise RequestError(400, str(exc)) from None
    if end <= start:
        raise RequestError(400, "end must be after start")
    return start, end


# -- JSON shapes ------------------------------------------------------------------------------------------


def alert_state_json(deployment: str, rule: Rule | None, configured: list[Rule], state: Any) -> dict[str, Any]:
    """One rule's state for one deployment (a rule this process does not run shows its stored state only)."""
    return {
        **(alert_rule_json(rule, configured) if rule is not None else {"name": state.rule, "source": "elsewhere"}),
        "deployment": deployment,
        "rule": rule.name if rule is not None else state.rule,
        "forSeconds": rule.for_s if rule is not None else None,
        "state": state.state if state is not None else "inactive",
        "activeSince": state.active_since if state is not None else None,
        "value": state.value if state is not None else None,
    }


def alert_rule_json(rule: Rule, configured: list[Rule]) -> dict[str, Any]:
    """A rule in the API's shape, and where it comes from: "config" (defaults or file) or "api" (deletable)."""
    return {**rule_json(rule), "source": "config" if rule in configured else "api"}


def deployment_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "model": row["model"],
        "endpoint": row["endpoint"],
        "region": row["region"],
        "createdAt": iso_time(row["created_s"]),
        "state": row["state"],
        "snapshotWindow": row.get("snapshot_window", "1h"),
    }


def summary_json(metrics: dict[str, Any]) -> dict[str, Any]:
    return _rounded(camel_keys(metrics))


def log_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "timestamp": iso_time(row["ts_ms"] / 1000),
        "timestampMs": row["ts_ms"],
        "severity": SEVERITY_NAMES.get(row["severity"], str(row["severity"])),
        "method": row["method"],
        "path": row["path"],
        "status": row["status"],
        "latencyMs": round(row["latency_us"] / 1000, 3),
        "detections": row["detections"],
        "meanConfidence": None if row["mean_confidence"] is None else round(row["mean_confidence"], 4),
        "requestId": row["request_id"],
        "message": row["message"],
    }


def point_json(point: dict[str, Any]) -> dict[str, Any]:
    return _rounded(
        {
            "time": point["start_s"],
            "requests": point["requests"],
            "errorRate": point["error_rate"],
            "p50Ms": point["p50_ms"],
            "p95Ms": point["p95_ms"],
            "p99Ms": point["p99_ms"],
            "detectionsPerRequest": point["detections_per_request"],
            "meanConfidence": point["mean_confidence"],
        }
    )


# -- the router -------------------------------------------------------------------------------------------


class Admin:
    """The endpoints, sharing the store, the local monitors (for health checks) and the key check."""

    def __init__(
        self,
        store: Store,
        monitors: Iterable[Monitor],
        keys: KeyCheck,
        thresholds: StateThresholds,
        metrics_need_key: bool,
    ) -> None:
        self.store = store
        self.monitors = {monitor.deployment: monitor for monitor in monitors}
        self.keys = keys
        self.thresholds = thresholds
        self.metrics_need_key = metrics_need_key
        self.drift_rule = DriftRule()

    def guarded(self, endpoint: Endpoint, need_key: bool = True) -> Endpoint:
        """Key check, then the endpoint; a RequestError becomes its JSON answer and a WARNING line."""

        async def guarded_endpoint(request: Request) -> Response:
            if need_key and not self.keys.allows(request.headers):
                log.warning("%s %s refused with 401: no valid API key", request.method, request.url.path)
                return unauthorized("the admin API")
            try:
                return await endpoint(request)
            except RequestError as exc:
                log.warning("%s %s refused with %d: %s", request.method, request.url.path, exc.status, exc.message)
                return json_error(exc.status, exc.message, exc.headers)

        return guarded_endpoint

    async def _known(self, request: Request) -> dict[str, Any]:
        deployment_id = request.path_params["deployment"]
        row = await self.store.deployment(deployment_id)
        if row is None:
            known = ", ".join(d["id"] for d in await self.store.deployments()) or "none yet"
            raise RequestError(404, f"unknown deployment {deployment_id!r}; known: {known}")
        return row

    async def _snapshot(self, row: dict[str, Any]) -> dict[str, Any]:
        """The monitor's live snapshot: its window's figures, and the Healthy/Warning/Critical state they give."""
        window = row.get("snapshot_window") or "1h"
        now = int(self.store.clock())
        end = now - now % 60 + 60  # through the minute in progress
        bucket = await self.store.window(row["id"], end - SNAPSHOT_WINDOWS[window], end, False)
        metrics = bucket_metrics(bucket)
        return {
            "window": window,
            "requests": metrics["requests"],
            "p95LatencyMs": metrics["p95_ms"],
            "p99LatencyMs": metrics["p99_ms"],
            "errorRate": round(metrics["error_rate"], 6),
            "healthState": deployment_state(metrics["error_rate"], metrics["p99_ms"], self.thresholds),
        }

    async def _state(self, row: dict[str, Any]) -> str:
        return (await self._snapshot(row))["healthState"]

    def _health(self, deployment: str, stored: dict[str, Any]) -> dict[str, Any] | None:
        monitor = self.monitors.get(deployment)
        checker = monitor.health if monitor is not None else None
        if checker is not None:
            return health_json(checker.latest, checker.checking)
        result = stored.get(deployment)
        return None if result is None else health_json(result)

    async def overview(self, request: Request) -> Response:
        deployments = await self._listed(request)
        stored_health = await self.store.health()
        total = Bucket("", 0, 0)
        rows = []
        for row in deployments:
            bucket = await self.store.aggregate(row["id"], OVERVIEW_RANGE, distributions=False)
            total.merge(bucket)
            metrics = bucket_metrics(bucket)
            snapshot = await self._snapshot(row)
            rows.append(
                {
                    "id": row["id"],
                    "name": row["name"],
                    "region": row["region"],
                    "status": snapshot["healthState"],
                    "state": row["state"],
                    "snapshot": snapshot,
                    "requests": metrics["requests"],
                    "p95LatencyMs": metrics["p95_ms"],
                    "errorRate": round(metrics["error_rate"], 6),
                    "health": self._health(row["id"], stored_health),
                }
            )
        overall = bucket_metrics(total)
        active = sum(1 for r in rows if r["requests"] > 0 or r["health"] is not None)
        return JSONResponse(
            {
                "range": OVERVIEW_RANGE,
                "totalRequests": overall["requests"],
                "activeDeployments": active,
                "errorRate": round(overall["error_rate"], 6),
                "p95LatencyMs": overall["p95_ms"],
                "deployments": rows,
            }
        )

    async def _listed(self, request: Request) -> list[dict[str, Any]]:
        """Every deployment, archived ones only with `?archived=true`."""
        archived = parse_bool(request, "archived")
        return [row for row in await self.store.deployments() if archived or row["state"] != "archived"]

    async def list_deployments(self, request: Request) -> Response:
        return JSONResponse({"deployments": [deployment_json(row) for row in await self._listed(request)]})

    async def get_deployment(self, request: Request) -> Response:
        row = await self._known(request)
        return JSONResponse({**deployment_json(row), "snapshot": await self._snapshot(row)})

    async def update_deployment(self, request: Request) -> Response:
        """PATCH `{"state": "active"|"paused"|"archived", "snapshotWindow": "5m"|...|"1d"}` (either or both)."""
        row = await self._known(request)
        body = await json_body(request)
        allowed = {"state", "snapshotWindow"}
        if not isinstance(body, dict) or not body or set(body) - allowed:
            raise RequestError(400, 'give {"state": ..., "snapshotWindow": ...} (either or both)')
        state, window = body.get("state"), body.get("snapshotWindow")
        if state is not None and state not in MONITOR_STATES:
            raise RequestError(400, f"state must be one of {', '.join(MONITOR_STATES)}; got {state!r}")
        if window is not None and window not in SNAPSHOT_WINDOWS:
            raise RequestError(400, f"snapshotWindow must be one of {', '.join(SNAPSHOT_WINDOWS)}; got {window!r}")
        await self.store.update_deployment(row["id"], state, window)
        log.info("monitor of %s updated: %s", row["id"], body)
        row = await self._known(request)
        return JSONResponse({**deployment_json(row), "snapshot": await self._snapshot(row)})

    async def metrics(self, request: Request) -> Response:
        range_name = parse_range(request)
        sparkline = parse_bool(request, "sparkline")
        row = await self._known(request)
        summary = await self.store.summary(row["id"], range_name)
        body: dict[str, Any] = {
            "deployment": row["id"],
            "range": range_name,
            "summary": {
                **summary_json({k: v for k, v in summary.items() if k not in ("range", "start_s")}),
                "healthState": await self._state(row),
            },
        }
        if sparkline:
            body["sparkline"] = [point_json(p) for p in await self.store.series(row["id"], range_name)]
        return JSONResponse(body)

    async def logs(self, request: Request) -> Response:
        limit = parse_limit(request)
        severities = parse_severities(request)
        row = await self._known(request)
        secret = await self.store.secret()
        token = request.query_params.get("pageToken")
        before = decode_page_token(secret, token, row["id"], severities) if token else None
        page = await self.store.logs(row["id"], limit=limit, severities=severities or None, before=before)
        next_token = encode_page_token(secret, row["id"], severities, page.next_cursor) if page.next_cursor else None
        return JSONResponse({"entries": [log_json(entry) for entry in page.entries], "nextPageToken": next_token})

    async def health(self, request: Request) -> Response:
        row = await self._known(request)
        body = self._health(row["id"], await self.store.health())
        if body is None:
            body = health_json(None)
            body["lastError"] = "no health probe has run for this deployment"
        return JSONResponse(body)

    async def check_health(self, request: Request) -> Response:
        row = await self._known(request)
        monitor = self.monitors.get(row["id"])
        if monitor is None or monitor.health is None:
            raise RequestError(409, f"{row['id']} is probed by another process; ask that process's admin API")
        await monitor.health.check()
        return JSONResponse(health_json(monitor.health.latest, monitor.health.checking))

    async def drift(self, request: Request) -> Response:
        row = await self._known(request)
        baseline = parse_window(request, "baseline")
        current = parse_window(request, "current")
        try:
            import scipy.stats  # noqa: F401
        except ImportError:  # scipy is in the yolo extra; the middleware install stays without it
            raise RequestError(501, "drift tests need scipy: pip install 'yolowatch[yolo]'") from None
        if baseline is None or current is None:
            defaults = await default_windows(self.store, row["id"])
            if defaults is None:
                raise RequestError(409, f"{row['id']} has no traffic yet: nothing to compare")
            baseline, current = baseline or defaults[0], current or defaults[1]
        return JSONResponse(await drift_report(self.store, row["id"], self.drift_rule, baseline, current))

    async def baseline(self, request: Request) -> Response:
        """GET the drift baseline (pinned or default), PUT `{"start", "end"}` to pin one, DELETE to unpin."""
        row = await self._known(request)
        if request.method == "PUT":
            start, end = parse_window_body(await json_body(request))
            await self.store.pin_baseline(row["id"], (start, end))
            log.info("drift baseline of %s pinned to %s .. %s", row["id"], iso_time(start), iso_time(end))
        elif request.method == "DELETE":
            await self.store.pin_baseline(row["id"], None)
        pinned = await self.store.pinned_baseline(row["id"])
        defaults = await default_windows(self.store, row["id"])
        window = defaults[0].json() if defaults else None
        return JSONResponse({"deployment": row["id"], "pinned": pinned is not None, "baseline": window})

    async def holdout(self, request: Request) -> Response:
        row = await self._known(request)
        runs = await self.store.holdout_runs(row["id"])
        return JSONResponse(
            {
                "deployment": row["id"],
                "runs": [
                    {
                        "time": run["ts_s"],
                        "dataset": run["dataset"],
                        "digest": run["digest"],
                        "source": run["source"],
                        "map50": round(run["map50"], 5),
                        "map50to95": round(run["map50_95"], 5),
                        "images": run["images"],
                        "details": run["details"],
                    }
                    for run in runs
                ],
            }
        )

    def _configured_rules(self) -> list[Rule]:
        """The defaults or the config file's rules, as this process's monitors run them."""
        rules: dict[str, Rule] = {}
        for monitor in self.monitors.values():
            for rule in monitor.alerts.rules if monitor.alerts is not None else []:
                rules.setdefault(rule.name, rule)
        return list(rules.values())

    async def alerts(self, request: Request) -> Response:
        """Every rule's state per deployment, and the notifications made, newest first. The rules this process
        runs are listed in full; deployments watched by other processes show the states those stored."""
        deployment = request.query_params.get("deployment") or None
        configured = self._configured_rules()
        every_rule = {rule.name: rule for rule in await Evaluator(self.store, configured).all_rules()}
        stored = await self.store.alert_states(deployment)
        if deployment is not None:
            stored = {f"{deployment}\0{rule}": state for rule, state in stored.items()}
        shown: dict[tuple[str, str], dict[str, Any]] = {}
        for monitor in self.monitors.values():
            if monitor.alerts is None or deployment not in (None, monitor.deployment):
                continue
            for rule in every_rule.values():
                if rule.applies_to(monitor.deployment):
                    shown[(monitor.deployment, rule.name)] = alert_state_json(
                        monitor.deployment, rule, configured, None
                    )
        for state in stored.values():
            rule = every_rule.get(state.rule)
            shown[(state.deployment, state.rule)] = alert_state_json(state.deployment, rule, configured, state)
        rows = [shown[key] for key in sorted(shown, key=lambda key: key[0])]
        history = [camel_keys(row) for row in await self.store.alert_history(deployment)]
        return JSONResponse({"rules": rows, "history": history})

    async def list_rules(self, request: Request) -> Response:
        configured = self._configured_rules()
        rules = await Evaluator(self.store, configured).all_rules()
        return JSONResponse({"rules": [alert_rule_json(rule, configured) for rule in rules]})

    async def create_rule(self, request: Request) -> Response:
        try:
            rule = rule_from_json(await json_body(request))
        except ValueError as exc:
            raise RequestError(400, str(exc)) from None
        if any(r.name == rule.name for r in self._configured_rules()) or not await self.store.add_alert_rule(
            rule.name, rule_json(rule)
        ):
            raise RequestError(409, f"a rule named {rule.name!r} exists already; delete it first or pick another name")
        log.info("alert rule %s created through the admin API", rule.name)
        return JSONResponse(alert_rule_json(rule, []), status_code=201)

    async def delete_rule(self, request: Request) -> Response:
        name = request.path_params["name"]
        if any(r.name == name for r in self._configured_rules()):
            raise RequestError(409, f"{name!r} comes from the defaults or the rules file: change it there")
        if not await self.store.delete_alert_rule(name):
            raise RequestError(404, f"no alert rule named {name!r} was created through the API")
        log.info("alert rule %s deleted through the admin API", name)
        return Response(status_code=204)

    async def prometheus(self, request: Request) -> Response:
        body = exposition(await self.store.process_totals(), await self.store.health())
        return Response(body, media_type=CONTENT_TYPE)

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document())

    def routes(self) -> list[Route]:
        g = self.guarded
        return [
            Route("/api/monitoring", g(self.overview), methods=["GET"]),
            Route("/api/deployments", g(self.list_deployments), methods=["GET"]),
            Route("/api/deployments/{deployment}", g(self.get_deployment), methods=["GET"]),
            Route("/api/deployments/{deployment}", g(self.update_deployment), methods=["PATCH"]),
            Route("/api/deployments/{deployment}/metrics", g(self.metrics), methods=["GET"]),
            Route("/api/deployments/{deployment}/logs", g(self.logs), methods=["GET"]),
            Route("/api/deployments/{deployment}/health", g(self.health), methods=["GET"]),
            Route("/api/deployments/{deployment}/drift", g(self.drift), methods=["GET"]),
            Route("/api/deployments/{deployment}/holdout", g(self.holdout), methods=["GET"]),
            Route("/api/deployments/{deployment}/baseline", g(self.baseline), methods=["GET", "PUT", "DELETE"]),
            Route("/api/deployments/{deployment}/health/check", g(self.check_health), methods=["POST"]),
            Route("/api/alerts", g(self.alerts), methods=["GET"]),
            Route("/api/alerts/rules", g(self.list_rules), methods=["GET"]),
            Route("/api/alerts/rules", g(self.create_rule), methods=["POST"]),
            Route("/api/alerts/rules/{name}", g(self.delete_rule), methods=["DELETE"]),
            Route("/api/openapi.json", g(self.openapi), methods=["GET"]),
            Route("/metrics", g(self.prometheus, need_key=self.metrics_need_key), methods=["GET"]),
            Route("/dashboard", lambda request: RedirectResponse("/dashboard/"), methods=["GET"]),
            # The page itself holds no data and needs no key; it asks for one when the API does.
            Mount("/dashboard", app=SecurityHeaders(StaticFiles(directory=DASHBOARD, html=True))),
        ]


DASHBOARD = Path(__file__).parent / "dashboard"
# The dashboard loads nothing from elsewhere and runs no inline script: a strict policy costs nothing.
DASHBOARD_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class SecurityHeaders:
    """Adds the dashboard's Content-Security-Policy and nosniff headers to every response of `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    *message.get("headers", []),
                    (b"content-security-policy", DASHBOARD_CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def admin_router(
    store: Store,
    *,
    monitors: Iterable[Monitor] = (),
    keys: KeyCheck | Iterable[str] = (),
    thresholds: StateThresholds | None = None,
    metrics_need_key: bool = False,
) -> Router:
    """The admin routes (`/api/...` and `/metrics`) over `store`; `monitors` are this process's deployments."""
    check = keys if isinstance(keys, KeyCheck) else KeyCheck(keys)
    admin = Admin(store, monitors, check, thresholds or StateThresholds(), metrics_need_key)
    return Router(routes=admin.routes())


def own_health_endpoint(monitor: Monitor) -> Endpoint:
    """`GET /health` for this process's deployment: the latest probe from memory, 200 or 503, no key."""

    async def health(request: Request) -> Response:
        checker = monitor.health
        result = checker.latest if checker is not None else None
        body = health_json(result, checker.checking if checker is not None else False)
        return JSONResponse(body, status_code=200 if result is not None and result.healthy else 503)

    return health


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 description of the admin routes (written out: the routes are few and their shapes fixed)."""
    deployment = {"name": "deployment", "in": "path", "required": True, "schema": {"type": "string"}}
    error = {
        "description": "bad parameter",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    json_ok = {"description": "OK", "content": {"application/json": {}}}

    def op(summary: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {
            "summary": summary,
            "parameters": params or [],
            "responses": {"200": json_ok, "400": error, "401": error, "404": error},
        }

    def body(properties: dict[str, Any]) -> dict[str, Any]:
        return {"content": {"application/json": {"schema": {"type": "object", "properties": properties}}}}

    query = lambda name, schema, text: {"name": name, "in": "query", "schema": schema, "description": text}  # noqa: E731
    return {
        "openapi": "3.1.0",
        "info": {"title": "yolowatch admin API", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}}}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/monitoring": {"get": op("Overview of every deployment over 24h")},
            "/api/openapi.json": {"get": op("This document")},
            "/api/deployments": {"get": op("What is monitored")},
            "/api/deployments/{deployment}": {
                "get": op("One deployment, with its live snapshot", [deployment]),
                "patch": {
                    **op("Pause, resume or archive its monitor; set its snapshot window", [deployment]),
                    "requestBody": body(
                        {"state": {"enum": list(MONITOR_STATES)}, "snapshotWindow": {"enum": list(SNAPSHOT_WINDOWS)}}
                    ),
                },
            },
            "/api/deployments/{deployment}/metrics": {
                "get": op(
                    "Summary and sparkline over a range",
                    [
                        deployment,
                        query("range", {"enum": list(RANGES), "default": "24h"}, "time range"),
                        query("sparkline", {"type": "boolean", "default": False}, "include 60-100 points"),
                    ],
                )
            },
            "/api/deployments/{deployment}/logs": {
                "get": op(
                    "Request logs, newest first",
                    [
                        deployment,
                        query(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": MAX_LOG_LIMIT, "default": 50},
                            "page size",
                        ),
                        query("severity", {"type": "string"}, "comma-separated: " + ", ".join(SEVERITY_LEVELS)),
                        query("pageToken", {"type": "string"}, "nextPageToken of the previous page"),
                    ],
                )
            },
            "/api/deployments/{deployment}/health": {"get": op("Latest health probe", [deployment])},
            "/api/deployments/{deployment}/drift": {
                "get": op(
                    "KS drift tests of confidence and box size, current window against the baseline",
                    [deployment]
                    + [
                        query(f"{side}{edge}", {"type": "integer"}, f"{side} window {edge.lower()}, epoch seconds")
                        for side in ("baseline", "current")
                        for edge in ("Start", "End")
                    ],
                )
            },
            "/api/deployments/{deployment}/baseline": {
                "get": op("The drift baseline window, pinned or default", [deployment]),
                "put": {
                    **op("Pin the drift baseline", [deployment]),
                    "requestBody": body(
                        {"start": {"type": ["integer", "string"]}, "end": {"type": ["integer", "string"]}}
                    ),
                },
                "delete": op("Unpin: back to the first 7 days of traffic", [deployment]),
            },
            "/api/deployments/{deployment}/holdout": {"get": op("The holdout mAP series", [deployment])},
            "/api/alerts": {
                "get": op(
                    "Alert rule states and notifications, newest first",
                    [query("deployment", {"type": "string"}, "only this deployment")],
                )
            },
            "/api/alerts/rules": {
                "get": op("Every alert rule, from the config or the API"),
                "post": {**op("Create an alert rule (stored: every process applies it)"), "requestBody": body({})},
            },
            "/api/alerts/rules/{name}": {
                "delete": op(
                    "Delete a rule created through the API",
                    [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                )
            },
            "/api/deployments/{deployment}/health/check": {
                "post": op("Probe now (this process's deployments)", [deployment])
            },
            "/health": {
                "get": {
                    "summary": "This process's deployment: 200 healthy, 503 not",
                    "security": [],
                    "responses": {"200": json_ok, "503": json_ok},
                }
            },
            "/metrics": {"get": {"summary": "Prometheus text exposition", "responses": {"200": {"description": "OK"}}}},
        },
    }
