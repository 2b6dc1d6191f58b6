"""The admin API's endpoints: JSON (camelCase, through `views`) over the store, for dashboards, scripts and
uptime checkers. Each raises `RequestError` for what it refuses; `routes` turns that into the JSON answer."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from yolowatch._util import iso_time
from yolowatch.admin.fleet import fleet_view
from yolowatch.admin.params import (
    DEFAULT_SAMPLE_LIMIT,
    MAX_SAMPLE_LIMIT,
    decode_page_token,
    encode_page_token,
    json_body,
    parse_bool,
    parse_class_name,
    parse_host,
    parse_limit,
    parse_range,
    parse_sample_rule,
    parse_severities,
    parse_silence_state,
    parse_trace_id,
    parse_version,
    parse_window,
    parse_window_body,
)
from yolowatch.admin.samples import SampleShelf
from yolowatch.admin.views import (
    alert_rule_json,
    alert_state_json,
    camel_keys,
    deployment_json,
    drift_json,
    drift_signal_json,
    fleet_json,
    golden_json,
    golden_point_json,
    health_json,
    holdout_run_json,
    log_json,
    params_change_json,
    point_json,
    sample_json,
    sample_summary_json,
    signal_point_json,
    signals_json,
    silence_json,
    summary_json,
)
from yolowatch.alerts import (
    Acknowledgement,
    Rule,
    Silence,
    ack_from_json,
    alert_labels,
    all_rules,
    rule_from_json,
    rule_json,
    silence_from_json,
    silenced_by,
)
from yolowatch.asgi.auth import KeyCheck
from yolowatch.errors import RequestError
from yolowatch.exporters import CONTENT_TYPE, exposition
from yolowatch.health import StateThresholds, deployment_state
from yolowatch.metrics import bucket_metrics, merged, range_points, signal_metrics
from yolowatch.monitor import Monitor
from yolowatch.quality import ChangeRule, DriftRule, Window, compare_windows
from yolowatch.records import MONITOR_STATES, SNAPSHOT_WINDOWS, AlertState, Bucket
from yolowatch.sampleset import MEDIA_TYPES, SampleInfo, SampleSummary, sample_image
from yolowatch.signals import drift_report, drift_windows
from yolowatch.store import Store
from yolowatch.store.buckets import UNKNOWN_HOST

# A user's upload, served from the admin origin: cached by this browser only, never sniffed or run as a page.
SAMPLE_IMAGE_HEADERS = {
    "Cache-Control": "private, max-age=3600",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
GOLDEN_RUNS_SHOWN = 60  # the newest runs of a range shown in full (what differed)

log = logging.getLogger("yolowatch.admin")

OVERVIEW_RANGE = "24h"
SILENCE_ID = re.compile(r"[0-9A-Za-z-]{1,64}")


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
        self.sample_shelf = SampleShelf()

    async def _known(self, request: Request) -> dict[str, Any]:
        deployment_id = request.path_params["deployment"]
        row = await self.store.deployment(deployment_id)
        if row is None:
            known = ", ".join(d["id"] for d in await self.store.deployments()) or "none yet"
            raise RequestError(404, f"unknown deployment {deployment_id!r}; known: {known}")
        return row

    async def _snapshot(self, row: dict[str, Any], host: str | None = None) -> dict[str, Any]:
        """The monitor's live snapshot: its window's figures (the fleet's, or one host's), and the
        Healthy/Warning/Critical state they give."""
        window = row.get("snapshot_window") or "1h"
        now = int(self.store.clock())
        end = now - now % 60 + 60  # through the minute in progress
        start = end - SNAPSHOT_WINDOWS[window]
        if host is None:
            bucket = await self.store.window(row["id"], start, end, False)
        else:
            bucket = (await self.store.host_windows(row["id"], start, end)).get(host) or merged(())
        metrics = bucket_metrics(bucket)
        return {
            "window": window,
            "requests": metrics["requests"],
            "p95LatencyMs": metrics["p95_ms"],
            "p99LatencyMs": metrics["p99_ms"],
            "errorRate": round(metrics["error_rate"], 6),
            "healthState": deployment_state(metrics["error_rate"], metrics["p99_ms"], self.thresholds),
        }

    async def _state(self, row: dict[str, Any], host: str | None = None) -> str:
        return str((await self._snapshot(row, host))["healthState"])

    async def _known_host(self, request: Request) -> str | None:
        """The `host` asked for, if any: one that a process registered, or the rows of unregistered writers."""
        host = parse_host(request)
        if host is None:
            return None
        hosts = sorted({process["host"] for process in await self.store.fleet_processes()})
        if host not in hosts and host != UNKNOWN_HOST:
            raise RequestError(404, f"unknown host {host!r}; known: {', '.join(hosts) or 'none yet'}")
        return host

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
        buckets = []
        rows = []
        for row in deployments:
            bucket = await self.store.aggregate(row["id"], OVERVIEW_RANGE, distributions=False)
            buckets.append(bucket)
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
        overall = bucket_metrics(merged(buckets))
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
        if state is not None and (not isinstance(state, str) or state not in MONITOR_STATES):
            raise RequestError(400, f"state must be one of {', '.join(MONITOR_STATES)}; got {state!r}")
        if window is not None and (not isinstance(window, str) or window not in SNAPSHOT_WINDOWS):
            raise RequestError(400, f"snapshotWindow must be one of {', '.join(SNAPSHOT_WINDOWS)}; got {window!r}")
        await self.store.update_deployment(row["id"], state, window)
        log.info("monitor of %s updated: %s", row["id"], body)
        row = await self._known(request)
        return JSONResponse({**deployment_json(row), "snapshot": await self._snapshot(row)})

    async def metrics(self, request: Request) -> Response:
        range_name = parse_range(request)
        sparkline = parse_bool(request, "sparkline")
        row = await self._known(request)
        host = await self._known_host(request)
        summary = await self.store.summary(row["id"], range_name, host)
        body: dict[str, Any] = {
            "deployment": row["id"],
            "range": range_name,
            "host": host,
            "summary": {
                **summary_json({k: v for k, v in summary.items() if k not in ("range", "start_s")}),
                "healthState": await self._state(row, host),
            },
        }
        if sparkline:
            body["sparkline"] = [point_json(p) for p in await self.store.series(row["id"], range_name, host)]
        return JSONResponse(body)

    def _known_version(self, request: Request, name: str, bucket: Bucket) -> str | None:
        version = request.query_params.get(name)
        if version is None:
            return None
        if version not in bucket.versions:
            known = ", ".join(sorted(bucket.versions)) or "none in this range"
            raise RequestError(404, f"unknown model version {version!r} for {name}; known: {known}")
        return version

    async def signals(self, request: Request) -> Response:
        """Stages, classes, request parameters, image properties and model versions over a range."""
        range_name = parse_range(request)
        row = await self._known(request)
        host = await self._known_host(request)
        version = parse_version(request)
        read = await self.store.signals(row["id"], range_name, host)
        if version is not None:
            self._known_version(request, "version", read.total)
            read = await self.store.signals(row["id"], range_name, host, version)
        return JSONResponse(
            {
                "deployment": row["id"],
                "range": range_name,
                "host": host,
                "version": version,
                **signals_json(signal_metrics(read.total, read.seen)),
                "series": [signal_point_json(point) for point in read.series],
            }
        )

    async def compare(self, request: Request) -> Response:
        """Two model versions side by side over a range, and the drift tests of `b` against `a` (a canary against
        the version it may replace)."""
        range_name = parse_range(request)
        row = await self._known(request)
        now = int(self.store.clock())
        points = range_points(range_name, now)
        window = Window(points.first_s, points.end_s)
        everything = await self.store.window(row["id"], window.start_s, window.end_s, signals=True)
        names = [self._known_version(request, side, everything) for side in ("a", "b")]
        if names[0] is None or names[1] is None:
            shown = ", ".join(sorted(everything.versions)) or "none in this range"
            raise RequestError(400, f"give two model versions as a and b; versions in this range: {shown}")
        a, b = everything.versions[names[0]], everything.versions[names[1]]
        sides = [
            {"version": name, "summary": summary_json(bucket_metrics(side)), **signals_json(signal_metrics(side))}
            for name, side in zip(names, (a, b), strict=True)
        ]
        body: dict[str, Any] = {"deployment": row["id"], "range": range_name, "a": sides[0], "b": sides[1]}
        try:
            import scipy.stats  # noqa: F401
        except ImportError:
            body["drift"] = None  # the KS tests need the yolo extra; the side-by-side figures do not
        else:
            report = compare_windows(row["id"], (window, window), (a, b), {}, [], self.drift_rule, ChangeRule())
            body["drift"] = {
                "drifted": report.drifted,
                "params": params_change_json(report.params),
                "signals": [drift_signal_json(signal) for signal in report.signals],
            }
        return JSONResponse(body)

    async def fleet(self, request: Request) -> Response:
        """The processes, each deployment's hosts and the regions over a range (default 1h): the fleet view."""
        range_name = parse_range(request, "1h")
        now = int(self.store.clock())
        points = range_points(range_name, now)
        start, end = points.first_s, points.end_s
        deployments = [row for row in await self.store.deployments() if row["state"] != "archived"]
        windows = [(row, await self.store.host_windows(row["id"], start, end, points.tier_s)) for row in deployments]
        fleet = fleet_view(await self.store.fleet_processes(), windows, now, start)
        return JSONResponse(fleet_json(fleet, range_name, now))

    async def logs(self, request: Request) -> Response:
        limit = parse_limit(request)
        severities = parse_severities(request)
        trace_id = parse_trace_id(request)
        row = await self._known(request)
        secret = await self.store.secret()
        token = request.query_params.get("pageToken")
        before = decode_page_token(secret, token, row["id"], severities, trace_id) if token else None
        page = await self.store.logs(
            row["id"], limit=limit, severities=severities or None, before=before, trace_id=trace_id
        )
        cursor = page.next_cursor
        next_token = encode_page_token(secret, row["id"], severities, cursor, trace_id) if cursor else None
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
        version = parse_version(request)
        try:
            import scipy.stats  # noqa: F401
        except ImportError:  # scipy is in the yolo extra; the middleware install stays without it
            raise RequestError(501, "drift tests need scipy: pip install 'yolowatch[yolo]'") from None
        if baseline is None or current is None:
            defaults = await drift_windows(self.store, row["id"], version=version)
            if defaults is None:
                raise RequestError(409, f"{row['id']} has no traffic yet: nothing to compare")
            baseline, current = baseline or defaults[0], current or defaults[1]
        report = await drift_report(self.store, row["id"], self.drift_rule, baseline, current, version=version)
        return JSONResponse({**drift_json(report), "version": version})

    async def baseline(self, request: Request) -> Response:
        """GET the drift baseline (pinned or default), PUT `{"start", "end"}` to pin one, DELETE to unpin."""
        row = await self._known(request)
        version = parse_version(request)
        if request.method == "PUT":
            start, end = parse_window_body(await json_body(request))
            await self.store.pin_baseline(row["id"], (start, end), version)
            shown = row["id"] if version is None else f"{row['id']} version {version}"
            log.info("drift baseline of %s pinned to %s .. %s", shown, iso_time(start), iso_time(end))
        elif request.method == "DELETE":
            await self.store.pin_baseline(row["id"], None, version)
        pinned = await self.store.pinned_baseline(row["id"], version)
        defaults = await drift_windows(self.store, row["id"], version=version)
        window = {"start": defaults[0].start_s, "end": defaults[0].end_s} if defaults else None
        body = {"deployment": row["id"], "version": version, "pinned": pinned is not None, "baseline": window}
        return JSONResponse(body)

    async def holdout(self, request: Request) -> Response:
        row = await self._known(request)
        runs = await self.store.holdout_runs(row["id"])
        return JSONResponse(
            {
                "deployment": row["id"],
                "runs": [holdout_run_json(run) for run in runs],
            }
        )

    async def golden(self, request: Request) -> Response:
        """The golden-image runs over a range: a point per step (runs, failing runs, the worst pass rate), the
        latest runs in full (what differed), and whether this process runs the checks."""
        range_name = parse_range(request)
        row = await self._known(request)
        points = range_points(range_name, self.store.clock())
        slots = await self.store.golden_slots(row["id"], points.first_s * 1000, points.step_s * 1000, points.count)
        runs = await self.store.golden_runs(row["id"], points.first_s * 1000, points.end_s * 1000, GOLDEN_RUNS_SHOWN)
        monitor = self.monitors.get(row["id"])
        checker = monitor.golden if monitor is not None else None
        latest = checker.latest if checker is not None and checker.latest is not None else (runs[-1] if runs else None)
        return JSONResponse(
            {
                "deployment": row["id"],
                "range": range_name,
                "checked": checker is not None,
                "set": str(checker.directory) if checker is not None else None,
                "latest": golden_json(latest) if latest is not None else None,
                "runs": [golden_json(run) for run in runs],
                "series": [
                    golden_point_json(points.first_s + index * points.step_s, slots.get(index))
                    for index in range(points.count)
                ],
            }
        )

    def _sample_directory(self, deployment: str) -> tuple[Path | None, bool]:
        """Where the deployment's frames are kept (its sampler's --sample-dir, else this process's: other processes
        may write there), and whether this process samples it."""
        monitor = self.monitors.get(deployment)
        if monitor is not None and monitor.sampler is not None:
            return monitor.sampler.directory, True
        others = [m.sampler.directory for m in self.monitors.values() if m.sampler is not None]
        return (others[0] if others else None), False

    async def samples(self, request: Request) -> Response:
        """The newest kept frames (filtered by rule and class), and counts of every frame the deployment has kept."""
        limit = parse_limit(request, DEFAULT_SAMPLE_LIMIT, MAX_SAMPLE_LIMIT)
        rule = parse_sample_rule(request)
        class_name = parse_class_name(request)
        row = await self._known(request)
        directory, enabled = self._sample_directory(row["id"])
        counted = SampleSummary(frames=0, image_bytes=0, oldest=None, newest=None, by_rule={})
        shown: list[SampleInfo] = []
        if directory is not None:
            counted, shown = await asyncio.to_thread(
                self.sample_shelf.read, directory, row["id"], limit=limit, rule=rule, class_name=class_name
            )
        return JSONResponse(
            {
                "deployment": row["id"],
                "enabled": enabled,
                "summary": sample_summary_json(counted),
                "samples": [sample_json(info, row["id"]) for info in shown],
            }
        )

    async def sample_image(self, request: Request) -> Response:
        """A kept frame's image, as it was uploaded. Only an id of the sampler's shape names a file (no path)."""
        row = await self._known(request)
        sample_id = request.path_params["sample"]
        directory, _ = self._sample_directory(row["id"])
        path = None if directory is None else await asyncio.to_thread(sample_image, directory, row["id"], sample_id)
        try:
            data = None if path is None else await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:  # deleted (retention, the disk cap) since it was found
            data = None
        if path is None or data is None:
            raise RequestError(404, f"no kept frame {sample_id!r} of {row['id']}; GET its /samples for the ids")
        media_type = MEDIA_TYPES[path.suffix.lstrip(".")]
        return Response(data, media_type=media_type, headers=SAMPLE_IMAGE_HEADERS)

    def _configured_rules(self) -> list[Rule]:
        """The defaults or the config file's rules, as this process's monitors run them."""
        rules: dict[str, Rule] = {}
        for monitor in self.monitors.values():
            for rule in monitor.alerts.rules if monitor.alerts is not None else []:
                rules.setdefault(rule.name, rule)
        return list(rules.values())

    async def alerts(self, request: Request) -> Response:
        """Every rule's state per deployment (with the active silences that match it and its acknowledgement), and
        the notifications made, newest first."""
        deployment = request.query_params.get("deployment") or None
        history = [camel_keys(row) for row in await self.store.alert_history(deployment)]
        return JSONResponse({"rules": await self._alert_rows(deployment), "history": history})

    async def _alert_rows(self, deployment: str | None) -> list[dict[str, Any]]:
        """The rules this process runs, listed in full; deployments watched by other processes show the states
        those stored."""
        configured = self._configured_rules()
        every_rule = {rule.name: rule for rule in await all_rules(self.store, configured)}
        stored = await self.store.alert_states(deployment)
        if deployment is not None:
            stored = {f"{deployment}\0{rule}": state for rule, state in stored.items()}
        pairs: dict[tuple[str, str], AlertState | None] = {}
        for monitor in self.monitors.values():
            if monitor.alerts is None or deployment not in (None, monitor.deployment):
                continue
            for rule in every_rule.values():
                if rule.applies_to(monitor.deployment):
                    pairs[(monitor.deployment, rule.name)] = None
        for state in stored.values():
            pairs[(state.deployment, state.rule)] = state
        silences = await self.store.active_silences()
        acks = await self.store.acknowledgements(deployment)
        return [
            alert_state_json(
                name, every_rule.get(rule), configured, state,
                silenced_by(silences, _labels(name, rule, every_rule.get(rule))), acks.get((name, rule)),
            )
            for (name, rule), state in sorted(pairs.items(), key=lambda item: item[0][0])
        ]  # fmt: skip

    async def acknowledge(self, request: Request) -> Response:
        """Acknowledge a pending or firing alert: who, when, and what they said; it lasts until the alert resolves.
        Answers the alert as /api/alerts shows it."""
        try:
            rule_name, deployment, by, comment = ack_from_json(await json_body(request))
        except ValueError as exc:
            raise RequestError(400, str(exc)) from None
        ack = Acknowledgement(by, int(self.store.clock()), comment)
        state = await self.store.acknowledge(rule_name, deployment, ack)
        if state is None:
            rule = next((r for r in await all_rules(self.store, self._configured_rules()) if r.name == rule_name), None)
            if rule is None or not rule.applies_to(deployment) or await self.store.deployment(deployment) is None:
                raise RequestError(404, f"no alert {rule_name!r} for deployment {deployment!r}; see /api/alerts")
        if state in (None, "inactive"):
            raise RequestError(409, f"{rule_name} for {deployment} is not firing or pending: nothing to acknowledge")
        log.info("alert %s for %s acknowledged by %s: %s", rule_name, deployment, by, comment)
        return JSONResponse(next(row for row in await self._alert_rows(deployment) if row["rule"] == rule_name))

    async def create_silence(self, request: Request) -> Response:
        now = int(self.store.clock())
        try:
            silence = silence_from_json(await json_body(request), now)
        except ValueError as exc:
            raise RequestError(400, str(exc)) from None
        await self.store.add_silence(silence)
        log.info("silence %s created by %s until %s: %s", silence.id, silence.created_by, iso_time(silence.ends_at),
                 silence.comment)  # fmt: skip
        return JSONResponse(silence_json(silence, now), status_code=201)

    async def list_silences(self, request: Request) -> Response:
        """Active silences first (soonest to end first), then pending ones (soonest to start), then those that
        ended in the last five days (latest first)."""
        wanted = parse_silence_state(request)
        now = self.store.clock()
        order = {"active": 0, "pending": 1, "expired": 2}

        def key(silence: Silence) -> tuple[int, int]:
            state = silence.state(now)
            when = {"active": silence.ends_at, "pending": silence.starts_at, "expired": -silence.ends_at}[state]
            return order[state], when

        listed = sorted((s for s in await self.store.silences() if wanted in (None, s.state(now))), key=key)
        return JSONResponse({"silences": [silence_json(silence, now) for silence in listed]})

    async def get_silence(self, request: Request) -> Response:
        silence = await self.store.silence(_silence_id(request))
        if silence is None:
            raise RequestError(404, f"no silence {request.path_params['id']!r}; see /api/silences")
        return JSONResponse(silence_json(silence, self.store.clock()))

    async def expire_silence(self, request: Request) -> Response:
        """End a silence now (Alertmanager's DELETE); it stays listed as expired for five days."""
        silence = await self.store.expire_silence(_silence_id(request))
        if silence is None:
            raise RequestError(404, f"no silence {request.path_params['id']!r}; see /api/silences")
        log.info("silence %s expired through the admin API", silence.id)
        return JSONResponse(silence_json(silence, self.store.clock()))

    async def list_rules(self, request: Request) -> Response:
        configured = self._configured_rules()
        rules = await all_rules(self.store, configured)
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
        body = exposition(await self.store.process_totals(), await self.store.health(), now_s=self.store.clock())
        return Response(body, media_type=CONTENT_TYPE)


def _labels(deployment: str, name: str, rule: Rule | None) -> dict[str, str]:
    """An alert's labels; a rule this process does not know gives its name and deployment only."""
    return (
        alert_labels(name, deployment, rule.severity, rule.class_name)
        if rule is not None
        else alert_labels(name, deployment)
    )


def _silence_id(request: Request) -> str:
    """The path's silence id, or "" (no silence has it) when it cannot be one: a uuid-like word."""
    value = str(request.path_params["id"])
    return value if SILENCE_ID.fullmatch(value) else ""
