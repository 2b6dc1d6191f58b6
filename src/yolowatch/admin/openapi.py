"""The admin API described once: operations (method, path, parameters, every status, body schemas), from
which `routes` builds the routing and this module the OpenAPI 3.1 document, so the two cannot drift apart.

Statuses an operation answers besides its own are derived from its shape: 401 when it needs the key,
400 when it reads parameters or a body, 404 when its path names a deployment. Schemas are JSON Schema
2020-12 (what OpenAPI 3.1 uses); `null` is allowed exactly where the endpoint can answer it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yolowatch.alerts import (
    AUTHOR_MAX,
    COMMENT_MAX,
    COMPARISONS,
    MATCHER_VALUE_MAX,
    MATCHERS_MAX,
    METRICS,
    SILENCE_LABELS,
    SILENCE_STATES,
)
from yolowatch.framesample import SAMPLE_RULES
from yolowatch.metrics import RANGES
from yolowatch.records import IMAGE_PROPERTIES, MONITOR_STATES, SEVERITY_LEVELS, SNAPSHOT_WINDOWS, STAGES
from yolowatch.sampleset import MEDIA_TYPES

Schema = dict[str, Any]
JSON = "application/json"
PROMETHEUS_TEXT = "text/plain"


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], optional: tuple[str, ...] = ()) -> Schema:
    """An object whose properties are all present (but `optional`); other properties may appear."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
    }


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
HEALTH_STATES = ("healthy", "warning", "critical")
DURATION: Schema = {
    "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^\s*\d+\s*[smhdw]?\s*$"}]
}
TIME: Schema = {"anyOf": [INTEGER, STRING]}

SCHEMAS: dict[str, Schema] = {
    "Error": obj({"error": STRING}),
    "Health": obj(
        {
            "healthy": BOOLEAN,
            "status": nullable(INTEGER),
            "latencyMs": nullable(NUMBER),
            "checkedAt": nullable(STRING),
            "lastError": nullable(STRING),
            "checking": BOOLEAN,
            # GET /health with --golden-in-health, once a golden run has been made (what differed: /golden)
            "golden": obj(
                {"checkedAt": STRING, "ok": BOOLEAN, "images": INTEGER, "passed": INTEGER, "passRate": nullable(NUMBER)}
            ),
        },
        optional=("golden",),
    ),
    "GoldenRun": obj(
        {
            "checkedAt": STRING,
            "ok": BOOLEAN,
            "images": INTEGER,
            "passed": INTEGER,
            "passRate": nullable(NUMBER),
            "worst": nullable(STRING),
            "differences": {"type": "object", "additionalProperties": {"type": "array", "items": STRING}},
            "error": nullable(STRING),
            "latencyMs": NUMBER,
        }
    ),
    "Golden": obj(
        {
            "deployment": STRING,
            "range": {"enum": list(RANGES)},
            "checked": BOOLEAN,
            "set": nullable(STRING),
            "latest": nullable(ref("GoldenRun")),
            "runs": {"type": "array", "items": ref("GoldenRun")},
            "series": {
                "type": "array",
                "items": obj({"time": STRING, "runs": INTEGER, "failing": INTEGER, "worstPassRate": nullable(NUMBER)}),
            },
        }
    ),
    "Snapshot": obj(
        {
            "window": {"enum": list(SNAPSHOT_WINDOWS)},
            "requests": INTEGER,
            "p95LatencyMs": nullable(NUMBER),
            "p99LatencyMs": nullable(NUMBER),
            "errorRate": NUMBER,
            "healthState": {"enum": list(HEALTH_STATES)},
        }
    ),
    "Deployment": obj(
        {
            "id": STRING,
            "name": STRING,
            "model": nullable(STRING),
            "endpoint": nullable(STRING),
            "region": nullable(STRING),
            "createdAt": STRING,
            "state": {"enum": list(MONITOR_STATES)},
            "snapshotWindow": {"enum": list(SNAPSHOT_WINDOWS)},
        }
    ),
    "Deployments": obj({"deployments": {"type": "array", "items": ref("Deployment")}}),
    "DeploymentDetail": {"allOf": [ref("Deployment"), obj({"snapshot": ref("Snapshot")})]},
    "Overview": obj(
        {
            "range": STRING,
            "totalRequests": INTEGER,
            "activeDeployments": INTEGER,
            "errorRate": NUMBER,
            "p95LatencyMs": nullable(NUMBER),
            "deployments": {
                "type": "array",
                "items": obj(
                    {
                        "id": STRING,
                        "name": STRING,
                        "region": nullable(STRING),
                        "status": {"enum": list(HEALTH_STATES)},
                        "state": {"enum": list(MONITOR_STATES)},
                        "snapshot": ref("Snapshot"),
                        "requests": INTEGER,
                        "p95LatencyMs": nullable(NUMBER),
                        "errorRate": NUMBER,
                        "health": nullable(ref("Health")),
                    }
                ),
            },
        }
    ),
    "Metrics": obj(
        {
            "deployment": STRING,
            "range": {"enum": list(RANGES)},
            "host": nullable(STRING),
            "summary": obj(
                {
                    "requests": INTEGER,
                    "errors": INTEGER,
                    "clientErrors": INTEGER,
                    "serverErrors": INTEGER,
                    "errorRate": NUMBER,
                    "slow": INTEGER,
                    "p50Ms": nullable(NUMBER),
                    "p95Ms": nullable(NUMBER),
                    "p99Ms": nullable(NUMBER),
                    "meanLatencyMs": nullable(NUMBER),
                    "predictions": INTEGER,
                    "detectionsPerRequest": nullable(NUMBER),
                    "meanConfidence": nullable(NUMBER),
                    "healthState": {"enum": list(HEALTH_STATES)},
                }
            ),
            "sparkline": {
                "type": "array",
                "items": obj(
                    {
                        "time": INTEGER,
                        "requests": INTEGER,
                        "errorRate": NUMBER,
                        "p50Ms": nullable(NUMBER),
                        "p95Ms": nullable(NUMBER),
                        "p99Ms": nullable(NUMBER),
                        "detectionsPerRequest": nullable(NUMBER),
                        "meanConfidence": nullable(NUMBER),
                    }
                ),
            },
        },
        optional=("sparkline",),
    ),
    "Fleet": obj(
        {
            "range": {"enum": list(RANGES)},
            "now": STRING,
            "processes": {
                "type": "array",
                "items": obj(
                    {
                        "writer": STRING,
                        "host": STRING,
                        "pid": INTEGER,
                        "kind": STRING,
                        "region": nullable(STRING),
                        "latitude": nullable(NUMBER),
                        "longitude": nullable(NUMBER),
                        "version": STRING,
                        "startedAt": STRING,
                        "lastSeenAt": STRING,
                        "alive": BOOLEAN,
                    }
                ),
            },
            "deployments": {
                "type": "array",
                "items": obj(
                    {
                        "id": STRING,
                        "name": STRING,
                        "hosts": {
                            "type": "array",
                            "items": obj(
                                {
                                    "host": STRING,
                                    "region": nullable(STRING),
                                    "processes": INTEGER,
                                    "lastSeenAt": nullable(STRING),
                                    "requests": INTEGER,
                                    "share": NUMBER,
                                    "p50LatencyMs": nullable(NUMBER),
                                    "p95LatencyMs": nullable(NUMBER),
                                    "p99LatencyMs": nullable(NUMBER),
                                    "errorRate": NUMBER,
                                    "serverErrorRate": NUMBER,
                                    "healthy": BOOLEAN,
                                }
                            ),
                        },
                    }
                ),
            },
            "regions": {
                "type": "array",
                "items": obj(
                    {
                        "region": STRING,
                        "latitude": nullable(NUMBER),
                        "longitude": nullable(NUMBER),
                        "hosts": INTEGER,
                        "requests": INTEGER,
                        "p95LatencyMs": nullable(NUMBER),
                        "healthy": BOOLEAN,
                    }
                ),
            },
        }
    ),
    "Logs": obj(
        {
            "entries": {
                "type": "array",
                "items": obj(
                    {
                        "id": INTEGER,
                        "timestamp": STRING,
                        "timestampMs": INTEGER,
                        "severity": {"enum": list(SEVERITY_LEVELS)},
                        "method": STRING,
                        "path": STRING,
                        "status": INTEGER,
                        "latencyMs": NUMBER,
                        "detections": nullable(INTEGER),
                        "meanConfidence": nullable(NUMBER),
                        "requestId": STRING,
                        "traceId": nullable(STRING),
                        "message": STRING,
                    }
                ),
            },
            "nextPageToken": nullable(STRING),
        }
    ),
    "Window": obj({"start": INTEGER, "end": INTEGER}),
    "Drift": obj(
        {
            "deployment": STRING,
            "version": nullable(STRING),
            "baseline": ref("Window"),
            "current": ref("Window"),
            "changes": {
                "type": "array",
                "items": obj(
                    {"signal": {"enum": ["detectionVolume", "meanConfidence"]}, "flagged": BOOLEAN, "reason": STRING}
                ),
            },
            "rule": obj({"alpha": NUMBER, "minStatistic": NUMBER, "minSamples": INTEGER, "minImages": INTEGER}),
            "drifted": BOOLEAN,
            "signals": {
                "type": "array",
                "items": obj(
                    {
                        "signal": {"enum": ["confidence", "boxSize", *IMAGE_PROPERTIES]},
                        "drifted": BOOLEAN,
                        "reason": STRING,
                        "ksStatistic": NUMBER,
                        "pValue": NUMBER,
                        "baselineSamples": INTEGER,
                        "currentSamples": INTEGER,
                        "comparable": BOOLEAN,
                    }
                ),
            },
            "params": nullable(ref("ParamsChange")),
            "histograms": {
                "type": "object",
                "additionalProperties": obj(
                    {
                        "edges": {"type": "array", "items": NUMBER},
                        "baseline": {"type": "array", "items": INTEGER},
                        "current": {"type": "array", "items": INTEGER},
                    }
                ),
            },
        }
    ),
    "Baseline": obj(
        {"deployment": STRING, "version": nullable(STRING), "pinned": BOOLEAN, "baseline": nullable(ref("Window"))}
    ),
    "ParamsChange": obj(
        {
            "changed": BOOLEAN,
            "reason": STRING,
            "baseline": nullable(STRING),
            "current": nullable(STRING),
            "differences": {"type": "array", "items": STRING},
            "since": nullable(INTEGER),
            "confFloor": nullable(NUMBER),
            "imgszDiffers": BOOLEAN,
        }
    ),
    "Saturation": obj(
        {
            name: nullable(NUMBER)
            for name in (
                "inFlightMean",
                "inFlightMax",
                "queueMean",
                "queueMax",
                "cpuPercent",
                "rssMaxBytes",
                "gpuUtilizationPercent",
                "gpuMemoryMaxBytes",
            )
        }
    ),
    "SignalFigures": obj(
        {
            "saturation": ref("Saturation"),
            "stages": {
                "type": "array",
                "items": obj(
                    {
                        "stage": {"enum": list(STAGES)},
                        "count": INTEGER,
                        "p50Ms": NUMBER,
                        "p95Ms": NUMBER,
                        "p99Ms": NUMBER,
                        "meanMs": NUMBER,
                    }
                ),
            },
            "classes": {
                "type": "array",
                "items": obj(
                    {
                        "name": STRING,
                        "detections": INTEGER,
                        "share": NUMBER,
                        "perRequest": nullable(NUMBER),
                        "meanConfidence": nullable(NUMBER),
                    }
                ),
            },
            "params": {
                "type": "array",
                "items": obj(
                    {
                        "conf": nullable(NUMBER),
                        "iou": nullable(NUMBER),
                        "imgsz": nullable(INTEGER),
                        "predictions": INTEGER,
                        "share": NUMBER,
                    }
                ),
            },
            "paramsUnknown": INTEGER,
            "image": {
                "type": "array",
                "items": obj(
                    {
                        "property": {"enum": list(IMAGE_PROPERTIES)},
                        "images": INTEGER,
                        "p5": nullable(NUMBER),
                        "p50": nullable(NUMBER),
                        "p95": nullable(NUMBER),
                    }
                ),
            },
            "versions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["version", "requests"],
                    "properties": {
                        "version": STRING,
                        "requests": INTEGER,
                        "firstSeen": nullable(INTEGER),
                        "lastSeen": nullable(INTEGER),
                    },
                },
            },
        }
    ),
    "Signals": {
        "allOf": [
            ref("SignalFigures"),
            obj(
                {
                    "deployment": STRING,
                    "range": {"enum": list(RANGES)},
                    "host": nullable(STRING),
                    "version": nullable(STRING),
                    "series": {
                        "type": "array",
                        "items": obj(
                            {
                                "start": INTEGER,
                                "stages": obj({stage: nullable(NUMBER) for stage in STAGES}),
                                "saturation": ref("Saturation"),
                            }
                        ),
                    },
                }
            ),
        ]
    },
    "VersionSide": {"allOf": [ref("SignalFigures"), obj({"version": STRING, "summary": {"type": "object"}})]},
    "Compare": obj(
        {
            "deployment": STRING,
            "range": {"enum": list(RANGES)},
            "a": ref("VersionSide"),
            "b": ref("VersionSide"),
            "drift": nullable(
                obj(
                    {
                        "drifted": BOOLEAN,
                        "params": nullable(ref("ParamsChange")),
                        "signals": {"type": "array", "items": {"type": "object"}},
                    }
                )
            ),
        }
    ),
    "Holdout": obj(
        {
            "deployment": STRING,
            "runs": {
                "type": "array",
                "items": obj(
                    {
                        "time": INTEGER,
                        "dataset": STRING,
                        "digest": STRING,
                        "source": STRING,
                        "map50": NUMBER,
                        "map50to95": NUMBER,
                        "images": INTEGER,
                        "set": {"enum": ["holdout", "recent"]},
                        "details": {"type": "object"},
                    }
                ),
            },
        }
    ),
    "Samples": obj(
        {
            "deployment": STRING,
            "enabled": BOOLEAN,
            "summary": obj(
                {
                    "frames": INTEGER,
                    "bytes": INTEGER,
                    "oldest": nullable(STRING),
                    "newest": nullable(STRING),
                    "byRule": {"type": "object", "additionalProperties": INTEGER},
                }
            ),
            "samples": {
                "type": "array",
                "items": obj(
                    {
                        "id": STRING,
                        "time": STRING,
                        "rule": {"enum": list(SAMPLE_RULES)},
                        "model": nullable(STRING),
                        "width": INTEGER,
                        "height": INTEGER,
                        "detections": INTEGER,
                        "classes": {"type": "array", "items": STRING},
                        "image": STRING,
                    }
                ),
            },
        }
    ),
    "RuleInput": {
        **obj(
            {
                "name": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"},
                "metric": {"enum": list(METRICS)},
                "comparison": {"enum": list(COMPARISONS)},
                "threshold": NUMBER,
                "for": DURATION,
                "keepFiring": DURATION,
                "every": DURATION,
                "severity": {"enum": ["warning", "critical"]},
                "runbook": STRING,
                "deployment": STRING,
                "class": {"type": "string", "minLength": 1, "maxLength": 128},
            },
            optional=("for", "keepFiring", "every", "severity", "runbook", "deployment", "class"),
        ),
        "additionalProperties": False,
    },
    "Rule": obj(
        {
            "name": STRING,
            "metric": {"enum": list(METRICS)},
            "comparison": {"enum": list(COMPARISONS)},
            "threshold": NUMBER,
            "for": INTEGER,
            "keepFiring": INTEGER,
            "every": INTEGER,
            "severity": {"enum": ["warning", "critical"]},
            "runbook": STRING,
            "deployment": STRING,
            "class": STRING,
            "source": {"enum": ["config", "api"]},
        },
        optional=("class",),
    ),
    "Rules": obj({"rules": {"type": "array", "items": ref("Rule")}}),
    "AlertStatus": obj(
        {
            "name": STRING,
            "source": {"enum": ["config", "api", "elsewhere"]},
            "deployment": STRING,
            "rule": STRING,
            "forSeconds": nullable(INTEGER),
            "state": {"enum": ["inactive", "pending", "firing"]},
            "activeSince": nullable(INTEGER),
            "value": nullable(NUMBER),
            # The active silences that match the alert now: a notification it made now would not be sent.
            "silencedBy": {"type": "array", "items": STRING},
            "acknowledged": nullable(obj({"by": STRING, "at": STRING, "comment": STRING})),
        }
    ),
    "Alerts": obj(
        {
            "rules": {"type": "array", "items": ref("AlertStatus")},
            "history": {
                "type": "array",
                "items": obj(
                    {
                        "id": INTEGER,
                        "rule": STRING,
                        "deployment": STRING,
                        "status": {"enum": ["firing", "resolved"]},
                        "startsAt": INTEGER,
                        "endsAt": nullable(INTEGER),
                        "value": nullable(NUMBER),
                        "severity": STRING,
                        "runbook": STRING,
                        "createdS": INTEGER,
                        "className": STRING,
                        "silencedBy": {"type": "array", "items": STRING},  # not sent: these silences matched it
                    }
                ),
            },
        }
    ),
    "AckInput": {
        **obj(
            {
                "rule": {"type": "string", "minLength": 1, "maxLength": 64},
                "deployment": {"type": "string", "minLength": 1, "maxLength": MATCHER_VALUE_MAX},
                "by": {"type": "string", "minLength": 1, "maxLength": AUTHOR_MAX},
                "comment": {"type": "string", "maxLength": COMMENT_MAX},
            },
            optional=("comment",),
        ),
        "additionalProperties": False,
    },
    "Matcher": {
        **obj(
            {
                "name": {"enum": list(SILENCE_LABELS)},
                "value": {"type": "string", "maxLength": MATCHER_VALUE_MAX},
                "isRegex": {"type": "boolean", "default": False},
                "isEqual": {"type": "boolean", "default": True},
            },
            optional=("isRegex", "isEqual"),
        ),
        "additionalProperties": False,
    },
    "SilenceInput": {
        **obj(
            {
                "matchers": {"type": "array", "items": ref("Matcher"), "minItems": 1, "maxItems": MATCHERS_MAX},
                "startsAt": TIME,
                "endsAt": TIME,
                "duration": DURATION,
                "createdBy": {"type": "string", "minLength": 1, "maxLength": AUTHOR_MAX},
                "comment": {"type": "string", "minLength": 1, "maxLength": COMMENT_MAX},
            },
            optional=("startsAt", "endsAt", "duration"),
        ),
        "additionalProperties": False,
    },
    "Silence": obj(
        {
            "id": STRING,
            "matchers": {"type": "array", "items": ref("Matcher")},
            "startsAt": STRING,
            "endsAt": STRING,
            "createdBy": STRING,
            "comment": STRING,
            "createdAt": STRING,
            "updatedAt": STRING,
            "status": obj({"state": {"enum": list(SILENCE_STATES)}}),
        }
    ),
    "Silences": obj({"silences": {"type": "array", "items": ref("Silence")}}),
    "DeploymentPatch": {
        "type": "object",
        "properties": {"state": {"enum": list(MONITOR_STATES)}, "snapshotWindow": {"enum": list(SNAPSHOT_WINDOWS)}},
        "minProperties": 1,
        "additionalProperties": False,
    },
    "BaselineWindow": {**obj({"start": TIME, "end": TIME}), "additionalProperties": False},
    "OpenAPI": {"type": "object"},
}


@dataclass(frozen=True)
class Param:
    name: str
    location: str  # "path" or "query"
    schema: Schema
    description: str = ""
    required: bool = False  # a path parameter always is


@dataclass(frozen=True)
class Operation:
    """One method on one path: who handles it (an `Admin` method's name), what it takes, what it answers.

    `answers` maps each status the handler itself returns on success (and refusals other than the derived
    400/401/404) to the name of its body schema: None for no body, "text" for Prometheus' text format, "image" for
    image bytes."""

    method: str
    path: str
    handler: str
    summary: str
    answers: dict[int, str | None]
    params: tuple[Param, ...] = ()
    body: str | None = None
    needs_key: bool = True

    def statuses(self) -> dict[int, str | None]:
        """Every status this operation can answer, with its body schema's name."""
        statuses = dict(self.answers)
        if self.needs_key:
            statuses[401] = "Error"
        if any(p.location == "query" for p in self.params) or self.body is not None:
            statuses[400] = "Error"
        if "{deployment}" in self.path:
            statuses[404] = "Error"
        return dict(sorted(statuses.items()))


def _response(status: int, schema: str | None) -> dict[str, Any]:
    description = {200: "OK", 201: "Created", 204: "No content", 400: "Bad parameter or body", 401: "No valid key",
                   404: "Not found", 409: "Conflict", 501: "Not available in this install",
                   503: "Unhealthy"}.get(status, "")  # fmt: skip
    if schema is None:
        return {"description": description}
    if schema == "text":
        return {"description": description, "content": {PROMETHEUS_TEXT: {"schema": STRING}}}
    if schema == "image":  # bytes: OpenAPI 3.1 describes binary content by its media types alone
        return {"description": description, "content": {media_type: {} for media_type in MEDIA_TYPES.values()}}
    return {"description": description, "content": {JSON: {"schema": ref(schema)}}}


def _operation(op: Operation) -> dict[str, Any]:
    document: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{op.method.lower()}_{op.handler}",
        "parameters": [
            {
                "name": p.name,
                "in": p.location,
                "required": p.location == "path" or p.required,
                "schema": p.schema,
                **({"description": p.description} if p.description else {}),
            }
            for p in op.params
        ],
        "responses": {str(status): _response(status, schema) for status, schema in op.statuses().items()},
    }
    if op.body is not None:
        document["requestBody"] = {"required": True, "content": {JSON: {"schema": ref(op.body)}}}
    if not op.needs_key:
        document["security"] = []
    return document


def openapi_document(operations: list[Operation]) -> dict[str, Any]:
    """OpenAPI 3.1 for the given operations (the admin router's own table)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "yolowatch admin API", "version": "1"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": SCHEMAS},
        "security": [{"bearer": []}],
        "paths": paths,
    }
