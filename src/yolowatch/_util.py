"""Small pure helpers every layer may use: times, URLs, booleans. No I/O, no yolowatch imports."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

import httpx

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
BOOL_WORDS = "true/false, 1/0, yes/no or on/off"


def parse_bool(raw: str) -> bool:
    """The one boolean vocabulary of settings, query strings and form fields; ValueError for anything else."""
    lowered = raw.strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise ValueError(f"{raw!r} is not a boolean: use {BOOL_WORDS}")


def iso_time(epoch_s: float) -> str:
    """UTC, to the millisecond, with a Z: what the admin API and the webhook bodies show."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s)) + f".{int(epoch_s * 1000) % 1000:03d}Z"


def parse_time(text: str | int) -> int:
    """Epoch seconds from epoch seconds or an ISO 8601 time (no zone: UTC); ValueError otherwise.

    A trailing Z is read as UTC on every Python: 3.10's `fromisoformat` refuses it."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a time: give epoch seconds or ISO 8601")
    stripped = text.strip()
    if stripped.isdigit():
        return int(stripped)
    if stripped[-1:] in ("Z", "z"):
        stripped = stripped[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: give epoch seconds or ISO 8601 (2026-11-01T00:00:00Z)") from None
    return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp())


def floor_to(value: float, step: int) -> int:
    """The start of the `step`-second period holding `value` (epoch seconds)."""
    whole = int(value // 1)
    return whole - whole % step


def redacted_url(url: str) -> str:
    """The URL without user:password, for messages, logs and the database."""
    try:
        return str(httpx.URL(url.rstrip("/")).copy_with(userinfo=b""))
    except httpx.InvalidURL:
        return "<an invalid URL>"


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(target: object) -> bool:
    """A database target is a PostgreSQL URL, or else an SQLite file's path."""
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def shown_db(target: object) -> str:
    """A database target as messages and logs show it: a URL's password as ***, a path as it is.

    Read by hand, not with urlsplit: a password with an unencoded / # or ? would end urlsplit's netloc early and
    be shown whole. Everything up to the last @ is the user and password; a `password=` parameter is hidden too."""
    text = str(target)
    if not is_postgres_url(text):
        return text
    scheme, rest = text.split("://", 1)
    if "@" in rest:
        userinfo, rest = rest.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        rest = f"{user}:***@{rest}" if ":" in userinfo else f"{user}@{rest}"
    shown = f"{scheme}://{rest}"
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", shown, flags=re.IGNORECASE)


def http_url(text: str, what: str, example: str) -> httpx.URL:
    """`text` as an absolute http(s) URL with a host; ValueError naming `what` and showing `example` otherwise.

    The message shows the URL without its credentials."""
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{what} must be an http(s) URL such as {example}; got {redacted_url(text)!r}")
    return url
