"""Alert rules with Prometheus semantics, evaluated on closed minutes, with state and notifications persisted.

A rule whose condition holds becomes pending; it fires once the condition has held for the rule's whole
duration; a pending rule whose condition fails resets; a firing rule whose condition fails resolves (after
`keep_firing_s` more, against flapping). Each transition that notifies (firing, resolved) is written to the
store in the same transaction as the new state, as an undelivered notification; the sinks deliver those and
mark them delivered. So a restart re-sends what was not delivered (nothing lost) and never what was (nothing
sent twice).

Silences (Alertmanager's: label matchers, for a time) are checked twice. A notification made while an active
silence matches its alert is stored marked silenced, in the same transaction, and no sink ever sends it; one
made before a silence began and not yet sent by any sink is marked silenced when a sink comes to send it (as
Alertmanager checks at send time). Either way the alert's state moves as usual.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import re
import sys
import time
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from yolowatch._types import Clock
from yolowatch._util import parse_time
from yolowatch.records import AlertState, Notification

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI (a dependency there)
    import tomli as tomllib

log = logging.getLogger("yolowatch.alerts")

METRICS = (
    "p50_ms", "p95_ms", "p99_ms", "error_rate", "request_rate", "detection_rate", "mean_confidence",
    "confidence_drift_p", "box_drift_p", "holdout_map50", "holdout_map50_95", "golden_pass_rate",
)  # fmt: skip
# The metrics whose firing rules mean the traffic has moved: frame sampling keeps a larger share while one fires.
DRIFT_METRICS = frozenset({"confidence_drift_p", "box_drift_p", "mean_confidence", "detection_rate"})
# above/below: the value against the threshold; drop/rise: the value's change from its baseline against it.
COMPARISONS = ("above", "below", "drop", "rise")
# The metrics a rule may scope to one class: computed over that class's detections only.
CLASS_METRICS = ("detection_rate", "mean_confidence")
CLASS_NAME_MAX = 128
MINUTE_S = 60
MONDAY_S = 4 * 86400  # 1970-01-05, the first Monday of the epoch
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    comparison: str
    threshold: float
    for_s: int = 300
    keep_firing_s: int = 0
    severity: str = "warning"  # or "critical"
    runbook: str = ""
    every_s: int = MINUTE_S  # evaluated on minutes that end on a multiple of this (1 day: 00:00 UTC; 1 week: Mondays)
    deployment: str = ""  # only this deployment; empty: every deployment
    class_name: str = ""  # only this class's detections (JSON "class"); empty: all of them

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", self.name):
            raise ValueError(f"name must be a word of letters, digits, _ . - (up to 64); got {self.name!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}; got {self.metric!r}")
        if self.comparison not in COMPARISONS:
            raise ValueError(f"comparison must be one of {', '.join(COMPARISONS)}; got {self.comparison!r}")
        if self.severity not in ("warning", "critical"):
            raise ValueError(f"severity must be warning or critical; got {self.severity!r}")
        if self.for_s < 0 or self.keep_firing_s < 0:
            raise ValueError("for and keepFiring must not be negative")
        if self.every_s < MINUTE_S or self.every_s % MINUTE_S:
            raise ValueError(f"every must be a whole number of minutes; got {self.every_s} s")
        if not math.isfinite(self.threshold):
            raise ValueError("threshold must be a finite number")
        if self.class_name:
            _check_class(self.class_name, self.metric)

    @property
    def key(self) -> str:
        """What the rule reads in a minute's values and baselines: the metric, or `metric[class]` for one class."""
        return f"{self.metric}[{self.class_name}]" if self.class_name else self.metric

    def holds(self, value: float | None, baseline: float | None = None) -> bool:
        if value is None:
            return False
        if self.comparison == "above":
            return value > self.threshold
        if self.comparison == "below":
            return value < self.threshold
        if baseline is None:
            return False  # no baseline yet: nothing to compare with
        change = value - baseline
        return -change > self.threshold if self.comparison == "drop" else change > self.threshold

    def due(self, minute_end: int) -> bool:
        """On minutes that end on a multiple of `every_s`, counted from a Monday 00:00 UTC (so weekly is Mondays)."""
        return (minute_end - MONDAY_S) % self.every_s == 0

    def applies_to(self, deployment: str) -> bool:
        return not self.deployment or self.deployment == deployment


def _check_class(name: str, metric: str) -> None:
    if metric not in CLASS_METRICS:
        raise ValueError(f"class applies only to metric {' or '.join(CLASS_METRICS)}; got metric {metric!r}")
    if not name.strip() or len(name) > CLASS_NAME_MAX or any(unicodedata.category(c) == "Cc" for c in name):
        raise ValueError(
            f"class must be a class name of 1 to {CLASS_NAME_MAX} characters without control characters; got {name!r}"
        )


def parse_duration(value: Any, what: str) -> int:
    """Seconds from a number of seconds or a string such as "90s", "5m", "1h", "1d", "1w"."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be seconds or a duration such as 5m; got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):  # JSON's Infinity and NaN: int() would raise OverflowError, a 500
            raise ValueError(f"{what} must be a finite number of seconds; got {value!r}")
        return int(value)
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", str(value))
    if match is None:
        raise ValueError(f"{what} must be seconds or a duration such as 90s, 5m, 1h, 1d, 1w; got {value!r}")
    return int(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]


RULE_FIELDS = {"name", "metric", "comparison", "threshold", "for", "keepFiring", "every", "severity", "runbook",
               "deployment", "class"}  # fmt: skip


def rule_from_json(body: Any) -> Rule:
    """A rule from the config file's or the admin API's shape; ValueError that says what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("a rule is an object with name, metric, comparison and threshold")
    unknown = sorted(set(body) - RULE_FIELDS)
    if unknown:
        raise ValueError(f"unknown rule field {', '.join(unknown)}; fields: {', '.join(sorted(RULE_FIELDS))}")
    missing = [key for key in ("name", "metric", "comparison", "threshold") if key not in body]
    if missing:
        raise ValueError(f"a rule needs {', '.join(missing)}")
    threshold = body["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"threshold must be a number; got {threshold!r}")
    for key in ("name", "metric", "comparison", "severity", "runbook", "deployment", "class"):
        if key in body and not isinstance(body[key], str):
            raise ValueError(f"{key} must be a string")
    if body.get("class") == "":  # the Rule would read it as every class: refuse it instead
        raise ValueError('class must not be empty; leave "class" out for a rule over every class')
    return Rule(
        name=body["name"],
        metric=body["metric"],
        comparison=body["comparison"],
        threshold=float(threshold),
        for_s=parse_duration(body.get("for", 300), "for"),
        keep_firing_s=parse_duration(body.get("keepFiring", 0), "keepFiring"),
        every_s=parse_duration(body.get("every", MINUTE_S), "every"),
        severity=body.get("severity", "warning"),
        runbook=body.get("runbook", ""),
        deployment=body.get("deployment", ""),
        class_name=body.get("class", ""),
    )


def rule_json(rule: Rule) -> dict[str, Any]:
    """The shape `rule_from_json` reads. "class" only on a class-scoped rule, so the other rules this stores still
    load in a yolowatch that predates the field."""
    body: dict[str, Any] = {
        "name": rule.name,
        "metric": rule.metric,
        "comparison": rule.comparison,
        "threshold": rule.threshold,
        "for": rule.for_s,
        "keepFiring": rule.keep_firing_s,
        "every": rule.every_s,
        "severity": rule.severity,
        "runbook": rule.runbook,
        "deployment": rule.deployment,
    }
    if rule.class_name:
        body["class"] = rule.class_name
    return body


def load_rules_file(path: str | Path, defaults: list[Rule]) -> list[Rule]:
    """The rules of a TOML file (`[[rule]]` tables) over `defaults`: a rule named like a default replaces it;
    `defaults = false` at the top drops the defaults. ValueError naming the file and the rule at fault."""
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"alert rules file {path}: {exc}") from None
    unknown = sorted(set(document) - {"rule", "defaults"})
    if unknown:
        raise ValueError(f"alert rules file {path}: unknown key {', '.join(unknown)}; use [[rule]] and defaults")
    rules: dict[str, Rule] = {r.name: r for r in defaults} if document.get("defaults", True) else {}
    for index, body in enumerate(document.get("rule", []), start=1):
        try:
            rule = rule_from_json(body)
        except ValueError as exc:
            raise ValueError(f"alert rules file {path}, rule {index}: {exc}") from None
        rules[rule.name] = rule
    return list(rules.values())


def default_rules(latency_budget_ms: float = 500.0) -> list[Rule]:
    """The usual runbook."""
    return [
        Rule("HighP95Latency", "p95_ms", "above", latency_budget_ms, 300,
             runbook="P95 above the latency budget for 5 minutes: check load, batch size and the GPU"),
        Rule("HighErrorRate", "error_rate", "above", 0.01, 300, severity="critical",
             runbook="More than 1 % of requests failed for 5 minutes: read the ERROR logs of the deployment"),
        Rule("DetectionRateDrop", "detection_rate", "below", 0.5, 600,
             runbook="Detections a minute fell by half for 10 minutes: is traffic paused, or is the camera dark?"),
        Rule("ConfidenceDrift", "confidence_drift_p", "below", 0.01, 0, every_s=86400,
             runbook="Confidences moved away from the baseline (KS test, checked daily): look at recent images"),
        Rule("HoldoutMapDrop", "holdout_map50_95", "drop", 0.01, 0, every_s=7 * 86400,
             runbook="Holdout mAP50-95 fell more than 1 point below its first run: check preprocessing and weights"),
    ]  # fmt: skip


def golden_rule() -> Rule:
    """The rule added when golden-image checks run: any mismatch for 5 minutes is critical."""
    return Rule(
        "GoldenMismatch", "golden_pass_rate", "below", 1.0, 300, severity="critical",
        runbook="A golden image's answer differs from its recorded one for 5 minutes: new weights, precision, "
        "preprocessing or a library upgrade? See the Golden panel for what differed",
    )  # fmt: skip


def advance(
    rule: Rule, state: AlertState, at: int, value: float | None, baseline: float | None = None
) -> Notification | None:
    """Advance one rule's state by one evaluation at `at` (a closed minute's end); the notification it makes."""
    state.value = value
    if rule.holds(value, baseline):
        state.last_true = at
        if state.state == "inactive":
            state.state, state.active_since = "pending", at
        if state.state == "pending" and at - (state.active_since or at) >= rule.for_s:
            state.state = "firing"
            return _notification(rule, state, "firing", None)
        return None
    if state.state == "pending":
        state.state, state.active_since = "inactive", None
    elif state.state == "firing" and at - (state.last_true or at) >= rule.keep_firing_s:
        notification = _notification(rule, state, "resolved", at)
        state.state, state.active_since = "inactive", None
        return notification
    return None


def _notification(rule: Rule, state: AlertState, status: str, ends_at: int | None) -> Notification:
    return Notification(
        rule.name,
        state.deployment,
        status,
        state.active_since or 0,
        ends_at,
        state.value,
        rule.severity,
        rule.runbook,
        class_name=rule.class_name,
    )


def fingerprint(rule: str, deployment: str) -> str:
    return hashlib.sha256(f"{rule}\0{deployment}".encode()).hexdigest()[:16]


# Silences and acknowledgements, as Alertmanager has them. A silence matches alerts by their labels (alertname,
# deployment, severity, and class for a class-scoped rule) for a time: a silenced alert still changes state, but
# its notifications are stored marked silenced and no sink sends them. An acknowledgement records who looks at a
# pending or firing alert; it lasts until the alert resolves.

SILENCE_LABELS = ("alertname", "deployment", "severity", "class")
MATCHERS_MAX = 16
MATCHER_VALUE_MAX = 256
# Quantifiers in one branch of a regex, which may repeat only single characters, classes or `.` (a group may only
# be optional): no exponential backtracking, and a polynomial one bounded by a label's length to this power.
REGEX_REPEATS_MAX = 3
REGEX_QUANTIFIERS_MAX = 4  # in the whole pattern: a 256-character label is matched within milliseconds
AUTHOR_MAX = 100
COMMENT_MAX = 1000
SILENCE_HORIZON_S = 366 * 86400  # a silence starts and ends within a year (and a day) of now
SILENCE_STATES = ("active", "pending", "expired")
SILENCE_FIELDS = {"matchers", "startsAt", "endsAt", "duration", "createdBy", "comment"}
MATCHER_FIELDS = {"name", "value", "isRegex", "isEqual"}
ACK_FIELDS = {"rule", "deployment", "by", "comment"}
_QUANTIFIER = re.compile(r"[*+?]|\{(?:\d+(?:,\d*)?|,\d+)\}")


def alert_labels(rule: str, deployment: str, severity: str = "", class_name: str = "") -> dict[str, str]:
    """An alert's labels, as silences match them (the webhook sends the same): `class` only where a rule has one."""
    labels = {"alertname": rule, "deployment": deployment}
    if severity:
        labels["severity"] = severity
    if class_name:
        labels["class"] = class_name
    return labels


def notification_labels(notification: Notification) -> dict[str, str]:
    n = notification
    return alert_labels(n.rule, n.deployment, n.severity, n.class_name)


def check_text(value: Any, what: str, longest: int, shortest: int = 1) -> str:
    """`value` if it is a string of `shortest` to `longest` characters, not blank, without control characters."""
    if (
        not isinstance(value, str)
        or not shortest <= len(value) <= longest
        or (shortest and not value.strip())
        or any(unicodedata.category(c) in ("Cc", "Cs") for c in value)  # Cs: a lone surrogate, which no database takes
    ):
        raise ValueError(f"{what} must be text of {shortest} to {longest} characters without control characters")
    return value


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _check_regex(pattern: str, what: str) -> None:
    """Refuse what Python's backtracking engine could spend long on: a repeated group, more than REGEX_REPEATS_MAX
    quantifiers in one branch, or more than REGEX_QUANTIFIERS_MAX in the whole pattern (alternatives multiply the
    work: `(?:.*|.*|...)` repeated is as slow as nested quantifiers)."""
    try:
        _compiled(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ValueError(f"{what} is not a valid regular expression: {exc}") from None
    # Per open group: [quantifiers before it, in its current branch, the most in any of its branches so far].
    groups, previous, i, total = [[0, 0, 0]], "start", 0, 0
    while i < len(pattern):
        quantifier = _QUANTIFIER.match(pattern, i)
        if quantifier is not None and previous != "start":
            if previous == "quantifier" and quantifier.group() in "?+":  # lazy or possessive: part of the last one
                i += 1
                continue
            if previous == "group" and quantifier.group() != "?":
                raise ValueError(f"{what} must not repeat a group such as (...)* or (...)+: list the alternatives")
            total += 1
            if total > REGEX_QUANTIFIERS_MAX:
                raise ValueError(f"{what} may have at most {REGEX_QUANTIFIERS_MAX} quantifiers (* + ? {{}}) in all")
            top = groups[-1]
            top[1] += 1
            top[2] = max(top[2], top[1])
            if top[1] > REGEX_REPEATS_MAX:
                raise ValueError(f"{what} may have at most {REGEX_REPEATS_MAX} quantifiers (* + ? {{}}) in a branch")
            previous, i = "quantifier", quantifier.end()
            continue
        char = pattern[i]
        if char == "\\":
            previous, i = "atom", i + 2
        elif char == "[":  # a class, up to its closing bracket (one right after [ or [^ is a member)
            i += 2 if pattern.startswith("[^", i) else 1
            i += 1 if pattern.startswith("]", i) else 0
            while i < len(pattern) and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
            previous, i = "atom", i + 1
        elif char == "(":
            count = groups[-1][1]
            groups.append([count, count, count])
            previous, i = "start", i + 1
        elif char == ")" and len(groups) > 1:
            inner = groups.pop()
            top = groups[-1]
            top[1] = max(inner[1], inner[2])
            top[2] = max(top[2], top[1])
            previous, i = "group", i + 1
        elif char == "|":
            groups[-1][1] = groups[-1][0]
            previous, i = "start", i + 1
        else:
            previous, i = "atom", i + 1


@dataclass(frozen=True)
class Matcher:
    """One label matcher: the alert's label `name` equals `value` (with `is_regex`, matches it whole); `is_equal`
    False negates it. A label the alert lacks reads as empty, as in Alertmanager."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def __post_init__(self) -> None:
        if self.name not in SILENCE_LABELS:
            raise ValueError(f"a matcher's name must be one of {', '.join(SILENCE_LABELS)}; got {self.name!r}")
        check_text(self.value, f"the value of matcher {self.name}", MATCHER_VALUE_MAX, shortest=0)
        if self.is_regex:
            _check_regex(self.value, f"the regex of matcher {self.name}")

    def matches(self, labels: dict[str, str]) -> bool:
        value = labels.get(self.name, "")
        hit = _compiled(self.value).fullmatch(value) is not None if self.is_regex else value == self.value
        return hit == self.is_equal


@dataclass(frozen=True)
class Silence:
    """Alerts whose labels all `matchers` match send nothing from `starts_at` to `ends_at` (epoch seconds)."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: int
    ends_at: int
    created_by: str
    comment: str
    created_at: int = 0
    updated_at: int = 0

    def state(self, now: float) -> str:
        """pending before it starts, active until it ends, expired after."""
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def matches(self, labels: dict[str, str]) -> bool:
        return all(matcher.matches(labels) for matcher in self.matchers)


def silenced_by(silences: Sequence[Silence], labels: dict[str, str]) -> list[str]:
    """The ids of the silences (the active ones, as the store gives them) that match these labels."""
    return [silence.id for silence in silences if silence.matches(labels)]


def matcher_from_json(body: Any) -> Matcher:
    if not isinstance(body, dict) or "name" not in body or "value" not in body:
        raise ValueError('a matcher is an object such as {"name": "alertname", "value": "HighErrorRate"}')
    unknown = sorted(set(body) - MATCHER_FIELDS)
    if unknown:
        raise ValueError(f"unknown matcher field {', '.join(unknown)}; fields: {', '.join(sorted(MATCHER_FIELDS))}")
    flags = {key: body.get(key, default) for key, default in (("isRegex", False), ("isEqual", True))}
    for key, flag in flags.items():
        if not isinstance(flag, bool):
            raise ValueError(f"a matcher's {key} must be true or false")
    if not isinstance(body["name"], str):
        raise ValueError("a matcher's name must be a string")
    return Matcher(body["name"], body["value"], flags["isRegex"], flags["isEqual"])


def matcher_json(matcher: Matcher) -> dict[str, Any]:
    """The shape `matcher_from_json` reads (Alertmanager's)."""
    return {"name": matcher.name, "value": matcher.value, "isRegex": matcher.is_regex, "isEqual": matcher.is_equal}


def _silence_time(body: dict[str, Any], key: str) -> int:
    try:
        return parse_time(body[key])
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{key}: {exc}") from None


def silence_from_json(body: Any, now: int, silence_id: str = "") -> Silence:
    """A new silence from the admin API's shape (Alertmanager's, with `duration` as the alternative to `endsAt`);
    ValueError that says what is wrong. A start in the past is now, as in Alertmanager."""
    if not isinstance(body, dict):
        raise ValueError("a silence is an object with matchers, endsAt or duration, createdBy and comment")
    unknown = sorted(set(body) - SILENCE_FIELDS)
    if unknown:
        raise ValueError(f"unknown silence field {', '.join(unknown)}; fields: {', '.join(sorted(SILENCE_FIELDS))}")
    missing = [key for key in ("matchers", "createdBy", "comment") if key not in body]
    if missing:
        raise ValueError(f"a silence needs {', '.join(missing)}")
    listed = body["matchers"]
    if not isinstance(listed, list) or not 1 <= len(listed) <= MATCHERS_MAX:
        raise ValueError(f"matchers must be a list of 1 to {MATCHERS_MAX} matchers")
    matchers = tuple(matcher_from_json(matcher) for matcher in listed)
    if all(matcher.matches({}) for matcher in matchers):
        raise ValueError("at least one matcher must not match an empty label: as it is, it matches every alert")
    if ("endsAt" in body) == ("duration" in body):
        raise ValueError("give endsAt (a time) or duration (such as 2h), one of the two")
    starts = max(now, _silence_time(body, "startsAt")) if "startsAt" in body else now
    if "duration" in body:
        duration = parse_duration(body["duration"], "duration")
        if duration <= 0:
            raise ValueError(f"duration must be positive; got {body['duration']!r}")
        ends = starts + duration
    else:
        ends = _silence_time(body, "endsAt")
        if ends <= starts:
            raise ValueError("endsAt must be after startsAt and after now")
    if ends > now + SILENCE_HORIZON_S:
        raise ValueError(f"a silence must end within {SILENCE_HORIZON_S // 86400} days")
    return Silence(
        silence_id or str(uuid.uuid4()),
        matchers,
        starts,
        ends,
        check_text(body["createdBy"], "createdBy", AUTHOR_MAX),
        check_text(body["comment"], "comment", COMMENT_MAX),
        now,
        now,
    )


@dataclass(frozen=True)
class Acknowledgement:
    """Who acknowledged a pending or firing alert, when (epoch seconds), and what they said."""

    by: str
    at: int
    comment: str = ""


def ack_from_json(body: Any) -> tuple[str, str, str, str]:
    """(rule, deployment, by, comment) from `{"rule", "deployment", "by", "comment"}`; ValueError that says what is
    wrong. The comment may be left out."""
    if not isinstance(body, dict):
        raise ValueError('an acknowledgement is an object: {"rule", "deployment", "by", "comment"}')
    unknown = sorted(set(body) - ACK_FIELDS)
    if unknown:
        raise ValueError(f"unknown field {', '.join(unknown)}; fields: {', '.join(sorted(ACK_FIELDS))}")
    missing = [key for key in ("rule", "deployment", "by") if key not in body]
    if missing:
        raise ValueError(f"an acknowledgement needs {', '.join(missing)}")
    return (
        check_text(body["rule"], "rule", 64),
        check_text(body["deployment"], "deployment", MATCHER_VALUE_MAX),
        check_text(body["by"], "by", AUTHOR_MAX),
        check_text(body.get("comment", ""), "comment", COMMENT_MAX, shortest=0),
    )


# Where notifications go: a coroutine that raises when it could not deliver (they are kept and retried).
Sink = Callable[[list[Notification]], Awaitable[None]]


class MinuteValues(Protocol):
    """The figures the rules read at a closed minute, and their baselines (signals.minute_values)."""

    def __call__(
        self, deployment: str, minute_start: int, rules: list[Rule]
    ) -> Awaitable[tuple[dict[str, float | None], dict[str, float | None]]]: ...


class AlertStore(Protocol):
    """What the evaluator needs of the store: rule states, the notification outbox, and claims, all shared by
    every process on the database."""

    async def alert_rules(self) -> list[dict[str, Any]]: ...

    async def alert_states(self, deployment: str | None = None) -> dict[str, AlertState]: ...

    async def save_alerts(
        self,
        states: Sequence[AlertState],
        notifications: Sequence[Notification],
        silenced: Sequence[Sequence[str]] = (),
    ) -> None: ...

    async def active_silences(self) -> list[Silence]: ...

    async def mark_silenced(self, silenced: dict[int, list[str]]) -> list[int]: ...

    async def claim_minute(self, key: str, minute_end: int) -> bool: ...

    async def finish_minute(self, key: str, minute_end: int) -> None: ...

    async def undelivered(self, sink: str, within_s: int = 86400) -> list[Notification]: ...

    async def claim_deliveries(self, sink: str, ids: Sequence[int]) -> list[int]: ...

    async def release_deliveries(self, sink: str, ids: Sequence[int]) -> None: ...


async def all_rules(store: AlertStore, configured: list[Rule]) -> list[Rule]:
    """The configured rules (defaults or file), then those created through the API that do not share a name."""
    stored = []
    for row in await store.alert_rules():
        try:
            stored.append(rule_from_json(row))
        except ValueError as exc:  # written by a newer yolowatch, say: skip it, keep the others
            log.warning("stored alert rule %s skipped: %s", row.get("name"), exc)
    names = {rule.name for rule in configured}
    return [*configured, *(rule for rule in stored if rule.name not in names)]


@dataclass
class Evaluator:
    """Evaluates rules for deployments on closed minutes; state and notifications go through the store.

    `rules` come from the defaults or the config file; rules created through the admin API live in the store
    and are read at every evaluation, so every process sharing the database applies them. `values` reads a
    minute's figures (signals.minute_values over the same store); `clock` paces the retries of a sink that is down.
    """

    store: AlertStore
    rules: list[Rule]
    sinks: dict[str, Sink]
    values: MinuteValues
    clock: Clock = time.monotonic
    # A sink that is down is retried with a growing pause (1 s, 2 s, ... up to a minute), and logged once per outage.
    _failures: dict[str, int] = field(default_factory=dict)
    _retry_at: dict[str, float] = field(default_factory=dict)

    async def all_rules(self) -> list[Rule]:
        return await all_rules(self.store, self.rules)

    async def evaluate(
        self,
        deployment: str,
        minute_end: int,
        values: dict[str, float | None],
        baselines: dict[str, float | None] | None = None,
        rules: list[Rule] | None = None,
    ) -> list[Notification]:
        """One closed minute (ending at `minute_end`) of one deployment: advance every rule that is due, persist,
        return what fired or resolved."""
        baselines = baselines or {}
        states = await self.store.alert_states(deployment)
        made = []
        changed = []
        for rule in self.rules if rules is None else rules:
            if not (rule.applies_to(deployment) and rule.due(minute_end)):
                continue
            state = states.get(rule.name) or AlertState(rule.name, deployment)
            before = asdict(state)
            notification = advance(rule, state, minute_end, values.get(rule.key), baselines.get(rule.key))
            if asdict(state) != before:
                changed.append(state)
            if notification is not None:
                made.append(notification)
        silenced = await self._silenced(made)
        if changed or made:
            await self.store.save_alerts(changed, made, silenced)
        return made

    async def _silenced(self, made: list[Notification]) -> list[list[str]]:
        """For each notification, the active silences that match its alert (stored with it: no sink sends it)."""
        if not made:
            return []
        silences = await self.store.active_silences()
        silenced = [silenced_by(silences, notification_labels(n)) for n in made]
        for n, ids in zip(made, silenced, strict=True):
            if ids:
                log.info("alert %s %s for %s silenced by %s", n.rule, n.status.upper(), n.deployment, ", ".join(ids))
        return silenced

    async def evaluate_closed_minute(self, deployment: str, minute_start: int) -> list[Notification]:
        """Read the minute's figures and advance every due rule on them, unless another process sharing the
        database (a worker, a second sidecar) has already evaluated this minute."""
        end = minute_start + MINUTE_S
        key = f"alerts-evaluated:{deployment}"
        if not await self.store.claim_minute(key, end):
            return []
        rules = [r for r in await self.all_rules() if r.applies_to(deployment) and r.due(end)]
        made = []
        if rules:
            values, baselines = await self.values(deployment, minute_start, rules)
            made = await self.evaluate(deployment, end, values, baselines, rules)
        await self.store.finish_minute(key, end)  # not reached if it raised: the claim goes stale, then is retaken
        return made

    async def _not_silenced(self, pending: list[Notification]) -> list[Notification]:
        """Silences are checked again when sending, as Alertmanager does: a notification made before a silence
        began, that no sink has sent yet, is marked silenced now (for every sink) instead of sent."""
        silences = await self.store.active_silences() if pending else []
        matched = {
            n.id: ids for n in pending if n.id is not None and (ids := silenced_by(silences, notification_labels(n)))
        }
        if not matched:
            return pending
        marked = set(await self.store.mark_silenced(matched))
        return [n for n in pending if n.id not in marked]

    async def deliver(self) -> int:
        """Send every undelivered notification to every sink; mark each sink's deliveries. Returns how many went."""
        sent = 0
        for sink_name, sink in self.sinks.items():
            if self.clock() < self._retry_at.get(sink_name, float("-inf")):
                continue
            pending = await self._not_silenced(await self.store.undelivered(sink_name))
            claimed = set(await self.store.claim_deliveries(sink_name, [n.id for n in pending if n.id is not None]))
            mine = [n for n in pending if n.id in claimed]  # another process may be sending the rest
            if not mine:
                continue
            try:
                await sink(mine)
            except Exception as exc:  # a sink that is down gets its notifications back for the next try
                await self.store.release_deliveries(sink_name, list(claimed))
                failures = self._failures[sink_name] = self._failures.get(sink_name, 0) + 1
                self._retry_at[sink_name] = self.clock() + min(60.0, 2.0 ** (failures - 1))
                if failures == 1:
                    log.warning("alert sink %s failed (%s); %d notifications kept, retrying", sink_name, exc, len(mine))
                continue
            if self._failures.pop(sink_name, 0):
                log.info("alert sink %s delivers again", sink_name)
            sent += len(mine)
        return sent
