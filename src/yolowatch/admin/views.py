"""The admin API's JSON: the one place that turns yolowatch's records into camelCase shapes."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from yolowatch._util import iso_time
from yolowatch.admin.fleet import Fleet, FleetProcess, FleetRegion, HostTraffic
from yolowatch.alerts import Acknowledgement, Rule, Silence, matcher_json, rule_json
from yolowatch.comparable import ParamsChange
from yolowatch.quality import ConfidenceChange, DriftReport, DriftSignal, VolumeChange
from yolowatch.records import SEVERITY_NAMES, AlertState, GoldenRun, HealthResult
from yolowatch.sampleset import SampleInfo, SampleSummary


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def camel_keys(values: dict[str, Any]) -> dict[str, Any]:
    return {camel(key): value for key, value in values.items()}


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {key: round(value, 6) if isinstance(value, float) else value for key, value in values.items()}


def alert_state_json(
    deployment: str,
    rule: Rule | None,
    configured: list[Rule],
    state: AlertState | None,
    silenced_by: list[str] | None = None,
    acknowledged: Acknowledgement | None = None,
) -> dict[str, Any]:
    """One rule's state for one deployment (a rule this process does not run shows its stored state only), the
    active silences that match it now, and its acknowledgement."""
    name = rule.name if rule is not None else state.rule if state is not None else ""
    return {
        **(alert_rule_json(rule, configured) if rule is not None else {"name": name, "source": "elsewhere"}),
        "deployment": deployment,
        "rule": name,
        "forSeconds": rule.for_s if rule is not None else None,
        "state": state.state if state is not None else "inactive",
        "activeSince": state.active_since if state is not None else None,
        "value": state.value if state is not None else None,
        "silencedBy": silenced_by or [],
        "acknowledged": acknowledgement_json(acknowledged),
    }


def acknowledgement_json(ack: Acknowledgement | None) -> dict[str, Any] | None:
    return None if ack is None else {"by": ack.by, "at": iso_time(ack.at), "comment": ack.comment}


def silence_json(silence: Silence, now: float) -> dict[str, Any]:
    """Alertmanager's shape of a silence (times in ISO 8601, its state under `status`)."""
    return {
        "id": silence.id,
        "matchers": [matcher_json(matcher) for matcher in silence.matchers],
        "startsAt": iso_time(silence.starts_at),
        "endsAt": iso_time(silence.ends_at),
        "createdBy": silence.created_by,
        "comment": silence.comment,
        "createdAt": iso_time(silence.created_at),
        "updatedAt": iso_time(silence.updated_at),
        "status": {"state": silence.state(now)},
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
        "traceId": row["trace_id"],
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


def health_json(result: HealthResult | None, checking: bool = False) -> dict[str, Any]:
    """The `/health` body: `{"healthy", "status", "latencyMs"}` plus when it was checked and the last error."""
    if result is None:
        return {
            "healthy": False,
            "status": None,
            "latencyMs": None,
            "checkedAt": None,
            "lastError": "not checked yet",
            "checking": checking,
        }
    return {
        "healthy": result.healthy,
        "status": result.status,
        "latencyMs": None if result.latency_ms is None else round(result.latency_ms, 1),
        "checkedAt": iso_time(result.checked_ms / 1000),
        "lastError": result.error,
        "checking": checking,
    }


def golden_json(run: GoldenRun) -> dict[str, Any]:
    """One golden run: how many images matched their recorded answer, the worst, and what differed."""
    return {
        **golden_health_json(run),
        "worst": run.worst,
        "differences": run.differences,
        "error": run.error,
        "latencyMs": round(run.latency_ms, 1),
    }


def golden_health_json(run: GoldenRun) -> dict[str, Any]:
    """The latest golden run as the open `/health` shows it: the verdict and counts, not what differed (class names,
    boxes, the set's path stay behind the admin key, in /api/deployments/{id}/golden)."""
    rate = run.pass_rate
    return {
        "checkedAt": iso_time(run.checked_ms / 1000),
        "ok": run.ok,
        "images": run.images,
        "passed": run.passed,
        "passRate": None if rate is None else round(rate, 4),
    }


def golden_point_json(start_s: int, slot: dict[str, Any] | None) -> dict[str, Any]:
    """One point of the golden series: its runs, how many failed, the worst pass rate (null: no run)."""
    if slot is None:
        return {"time": iso_time(start_s), "runs": 0, "failing": 0, "worstPassRate": None}
    worst = slot["worst"]
    return {
        "time": iso_time(start_s),
        "runs": slot["runs"],
        "failing": slot["failing"],
        "worstPassRate": None if worst is None else round(float(worst), 4),
    }


def sample_summary_json(counted: SampleSummary) -> dict[str, Any]:
    """Counts of a deployment's kept frames: how many, their image bytes, the time they span, by rule."""
    return {
        "frames": counted.frames,
        "bytes": counted.image_bytes,
        "oldest": None if counted.oldest is None else iso_time(counted.oldest),
        "newest": None if counted.newest is None else iso_time(counted.newest),
        "byRule": dict(sorted(counted.by_rule.items())),
    }


def sample_json(info: SampleInfo, deployment: str) -> dict[str, Any]:
    """One kept frame: when, which rule kept it, what the model saw in it, and where its image is."""
    return {
        "id": info.id,
        "time": iso_time(info.ts),
        "rule": info.rule,
        "model": info.model,
        "width": info.width,
        "height": info.height,
        "detections": len(info.detections),
        "classes": _detected_classes(info),
        "image": f"/api/deployments/{quote(deployment, safe='')}/samples/{info.id}/image",
    }


def _detected_classes(info: SampleInfo) -> list[str]:
    """The distinct classes of a frame's detections: the name each detection gives, else its class id's name."""
    names = set()
    for detection in info.detections:
        name, cls = detection.get("name"), detection.get("class")
        names.add(str(name) if name is not None else info.names.get(cls, "") if isinstance(cls, int) else "")
    return sorted(name for name in names if name)


def _maybe_round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def drift_signal_json(signal: DriftSignal) -> dict[str, Any]:
    return {
        "signal": signal.signal,
        "drifted": signal.drifted,
        "reason": signal.reason,
        "ksStatistic": round(signal.result.statistic, 6),
        "pValue": signal.result.p_value,
        "baselineSamples": signal.result.n_baseline,
        "currentSamples": signal.result.n_current,
        "comparable": signal.comparable,
    }


def params_change_json(change: ParamsChange | None) -> dict[str, Any] | None:
    if change is None:
        return None
    return {
        "changed": change.changed,
        "reason": change.reason,
        "baseline": change.baseline,
        "current": change.current,
        "differences": list(change.differences),
        "since": change.since_s,
        "confFloor": change.conf_floor,
        "imgszDiffers": change.imgsz_differs,
    }


def volume_change_json(change: VolumeChange) -> dict[str, Any]:
    return {
        "signal": "detectionVolume",
        "flagged": change.flagged,
        "reason": change.reason,
        "baselinePerMinute": _maybe_round(change.baseline_per_minute, 3),
        "currentPerMinute": _maybe_round(change.current_per_minute, 3),
        "lowForMinutes": change.low_for_minutes,
    }


def confidence_change_json(change: ConfidenceChange) -> dict[str, Any]:
    return {
        "signal": "meanConfidence",
        "flagged": change.flagged,
        "reason": change.reason,
        "current": _maybe_round(change.current, 5),
        "baselineMean": _maybe_round(change.baseline_mean, 5),
        "baselineSigma": _maybe_round(change.baseline_sigma, 5),
        "sigmas": _maybe_round(change.sigmas, 3),
    }


def drift_json(report: DriftReport) -> dict[str, Any]:
    return {
        "deployment": report.deployment,
        "baseline": {"start": report.baseline.start_s, "end": report.baseline.end_s},
        "current": {"start": report.current.start_s, "end": report.current.end_s},
        "changes": [volume_change_json(report.volume), confidence_change_json(report.confidence)],
        "rule": {
            "alpha": report.rule.alpha,
            "minStatistic": report.rule.min_statistic,
            "minSamples": report.rule.min_samples,
            "minImages": report.rule.min_images,
        },
        "drifted": report.drifted,
        "params": params_change_json(report.params),
        "signals": [drift_signal_json(signal) for signal in report.signals],
        "histograms": {
            name: {"edges": histograms.edges, "baseline": histograms.baseline, "current": histograms.current}
            for name, histograms in report.histograms.items()
        },
    }


def holdout_run_json(run: dict[str, Any]) -> dict[str, Any]:
    return {
        "time": run["ts_s"],
        "dataset": run["dataset"],
        "digest": run["digest"],
        "source": run["source"],
        "map50": round(run["map50"], 5),
        "map50to95": round(run["map50_95"], 5),
        "images": run["images"],
        # "holdout": the fixed labeled set; "recent": exported (and corrected) production frames
        "set": run["details"].get("set", "holdout"),
        "details": run["details"],
    }


def fleet_json(fleet: Fleet, range_name: str, now_s: int) -> dict[str, Any]:
    return {
        "range": range_name,
        "now": iso_time(now_s),
        "processes": [process_json(process) for process in fleet.processes],
        "deployments": [
            {"id": d.id, "name": d.name, "hosts": [host_traffic_json(host) for host in d.hosts]}
            for d in fleet.deployments
        ],
        "regions": [region_json(region) for region in fleet.regions],
    }


def process_json(process: FleetProcess) -> dict[str, Any]:
    return {
        "writer": process.writer,
        "host": process.host,
        "pid": process.pid,
        "kind": process.kind,
        "region": process.region,
        "latitude": process.latitude,
        "longitude": process.longitude,
        "version": process.version,
        "startedAt": iso_time(process.started_s),
        "lastSeenAt": iso_time(process.seen_s),
        "alive": process.alive,
    }


def host_traffic_json(host: HostTraffic) -> dict[str, Any]:
    return {
        "host": host.host,
        "region": host.region,
        "processes": host.processes,
        "lastSeenAt": None if host.seen_s is None else iso_time(host.seen_s),
        "requests": host.requests,
        "share": round(host.share, 6),
        "p50LatencyMs": _maybe_round(host.p50_ms, 3),
        "p95LatencyMs": _maybe_round(host.p95_ms, 3),
        "p99LatencyMs": _maybe_round(host.p99_ms, 3),
        "errorRate": round(host.error_rate, 6),
        "serverErrorRate": round(host.server_error_rate, 6),
        "healthy": host.healthy,
    }


def region_json(region: FleetRegion) -> dict[str, Any]:
    return {
        "region": region.region,
        "latitude": region.latitude,
        "longitude": region.longitude,
        "hosts": region.hosts,
        "requests": region.requests,
        "p95LatencyMs": _maybe_round(region.p95_ms, 3),
        "healthy": region.healthy,
    }


def _rounded_rows(rows: list[dict[str, Any]], digits: int = 4) -> list[dict[str, Any]]:
    return [camel_keys({k: round(v, digits) if isinstance(v, float) else v for k, v in row.items()}) for row in rows]


def signals_json(signals: dict[str, Any]) -> dict[str, Any]:
    """The YOLO signals of a range (metrics.signal_metrics), camelCase, rounded."""
    return {
        "saturation": saturation_json(signals["saturation"]),
        "stages": _rounded_rows(signals["stages"], 3),
        "classes": _rounded_rows(signals["classes"]),
        "params": _rounded_rows(signals["params"]),
        "paramsUnknown": signals["params_unknown"],
        "image": _rounded_rows(signals["image"], 3),
        "versions": [
            {
                "version": row["version"],
                "firstSeen": row["first_seen_s"],  # the start of the first and last period it answered in
                "lastSeen": row["last_seen_s"],
                **summary_json({k: v for k, v in row.items() if k not in ("version", "first_seen_s", "last_seen_s")}),
            }
            for row in signals["versions"]
        ],
    }


def saturation_json(figures: dict[str, float | None]) -> dict[str, float | None]:
    return camel_keys({name: _maybe_round(value, 3) for name, value in figures.items()})


def signal_point_json(point: dict[str, Any]) -> dict[str, Any]:
    return {
        "start": point["start_s"],
        "stages": {stage: _maybe_round(ms, 3) for stage, ms in point["stages"].items()},
        "saturation": saturation_json(point["saturation"]),
    }
