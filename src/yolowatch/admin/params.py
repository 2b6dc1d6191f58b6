"""Reading what a request asks for: query parameters, JSON bodies and page tokens, each refused with a 400 that
says what is allowed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any

from starlette.requests import Request

from yolowatch._util import BOOL_WORDS, parse_time
from yolowatch._util import parse_bool as parse_boolean
from yolowatch.alerts import SILENCE_STATES
from yolowatch.errors import RequestError
from yolowatch.framesample import SAMPLE_RULES
from yolowatch.metrics import RANGE_NAMES, RANGES
from yolowatch.quality import Window
from yolowatch.records import SEVERITY_LEVELS

MAX_LOG_LIMIT = 200
DEFAULT_LOG_LIMIT = 50
MAX_HOST_LENGTH = 255


def parse_silence_state(request: Request) -> str | None:
    """`state`: only the silences in this state now (active, pending or expired); None for all of them."""
    value = request.query_params.get("state")
    if value is not None and value not in SILENCE_STATES:
        raise RequestError(400, f"state must be one of {', '.join(SILENCE_STATES)}; got {value!r}")
    return value


def parse_range(request: Request, default: str = "24h") -> str:
    value = request.query_params.get("range", default)
    if value not in RANGES:
        raise RequestError(400, f"range must be one of {RANGE_NAMES}; got {value!r}")
    return value


def parse_host(request: Request) -> str | None:
    """`host`: one host of the fleet (as the fleet view names it), or None for all of them."""
    value = request.query_params.get("host")
    if value is None:
        return None
    if not value or len(value) > MAX_HOST_LENGTH or not value.isprintable():
        raise RequestError(400, f"host must be a host name from /api/fleet (1 to {MAX_HOST_LENGTH} characters)")
    return value


MAX_VERSION_LENGTH = 160  # a model name (128) and its digest


def parse_version(request: Request) -> str | None:
    """`version`: one model version (as /signals lists them), or None for the whole deployment."""
    version = request.query_params.get("version")
    if version is None:
        return None
    if not version.strip() or len(version) > MAX_VERSION_LENGTH:
        raise RequestError(400, f"version must be a model version of 1 to {MAX_VERSION_LENGTH} characters")
    return version


def parse_bool(request: Request, name: str, default: bool = False) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        return parse_boolean(value)
    except ValueError:
        raise RequestError(400, f"{name} must be {BOOL_WORDS}; got {value!r}") from None


def parse_limit(request: Request, default: int = DEFAULT_LOG_LIMIT, maximum: int = MAX_LOG_LIMIT) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not re.fullmatch(r"\d{1,6}", raw) or not 1 <= int(raw) <= maximum:
        raise RequestError(400, f"limit must be an integer from 1 to {maximum}; got {raw!r}")
    return int(raw)


MAX_SAMPLE_LIMIT = 200
DEFAULT_SAMPLE_LIMIT = 24
MAX_CLASS_LENGTH = 128


def parse_sample_rule(request: Request) -> str | None:
    """`rule`: frames kept by one sampling rule; absent or empty: every rule."""
    rule = request.query_params.get("rule") or None
    if rule is not None and rule not in SAMPLE_RULES:
        raise RequestError(400, f"rule must be one of {', '.join(SAMPLE_RULES)} (or empty for all); got {rule!r}")
    return rule


def parse_class_name(request: Request) -> str | None:
    """`class`: frames with a detection of this class name; absent or empty: every frame."""
    name = request.query_params.get("class") or None
    if name is not None and (len(name) > MAX_CLASS_LENGTH or not name.isprintable()):
        raise RequestError(400, f"class must be a class name of at most {MAX_CLASS_LENGTH} printable characters")
    return name


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


def parse_trace_id(request: Request) -> str | None:
    """`traceId`: a W3C trace id (32 hex digits, not all zero), as the logs show it; absent or empty: any."""
    raw = request.query_params.get("traceId")
    if not raw:
        return None
    trace_id = raw.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{32}", trace_id) or trace_id == "0" * 32:
        raise RequestError(400, "traceId must be a W3C trace id: 32 hex digits, not all zero")
    return trace_id


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


# Page tokens: opaque to clients, signed so a forged or garbled one is refused.


def encode_page_token(
    secret: bytes, deployment: str, severities: list[str], cursor: tuple[int, int], trace_id: str | None = None
) -> str:
    query: dict[str, Any] = {"d": deployment, "s": severities, "t": cursor[0], "i": cursor[1]}
    if trace_id is not None:
        query["r"] = trace_id
    payload = json.dumps(query, separators=(",", ":"))
    body = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=")
    signature = base64.urlsafe_b64encode(hmac.new(secret, body, hashlib.sha256).digest()[:18])
    return f"{body.decode()}.{signature.decode()}"


def decode_page_token(
    secret: bytes, token: str, deployment: str, severities: list[str], trace_id: str | None = None
) -> tuple[int, int]:
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
    if payload.get("d") != deployment or payload.get("s") != severities or payload.get("r") != trace_id:
        raise RequestError(
            400, "pageToken belongs to another query: keep the same deployment, severity and traceId filter"
        )
    return cursor
