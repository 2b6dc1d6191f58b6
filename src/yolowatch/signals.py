"""Quality and alert signals read from the store: drift windows and reports, and each closed minute's figures.

The store holds the numbers, `quality` and `metrics` judge them; this module fetches what they need
and hands over plain records, so neither the store nor the checks know about each other.
"""

from __future__ import annotations

import functools
import logging
import time

from yolowatch._types import Clock
from yolowatch.alerts import Evaluator, Rule, Sink
from yolowatch.comparable import above_floor, binned_mean, conf_floor, dominant, floors_differ, share_above
from yolowatch.metrics import bucket_metrics, minute_figures
from yolowatch.quality import ChangeRule, DriftReport, DriftRule, Window, compare_windows, default_windows
from yolowatch.records import NO_TRAFFIC, Bucket, MinuteCount
from yolowatch.store import Store

log = logging.getLogger("yolowatch.alerts")

# A golden run older than this at a minute's end says nothing about that minute (the checks stopped).
GOLDEN_STALE_S = 600
MINUTE_METRICS = ("p50_ms", "p95_ms", "p99_ms", "error_rate", "request_rate", "detection_rate", "mean_confidence")


async def drift_windows(
    store: Store, deployment: str, days: int = 7, version: str | None = None
) -> tuple[Window, Window] | None:
    """The pinned (or default: first `days` days) baseline and the current window; None while there is no traffic.
    With a model version, that version's pinned baseline (the default is the deployment's)."""
    first = await store.first_traffic_s(deployment)
    if first is None:
        return None
    pinned = await store.pinned_baseline(deployment, version) if version is not None else None
    return default_windows(first, pinned or await store.pinned_baseline(deployment), store.clock(), days)


async def recent_minutes(store: Store, deployment: str, minutes: int) -> list[MinuteCount]:
    """The last `minutes` closed minutes, oldest first, zeros where nothing was recorded."""
    now = int(store.clock())
    end = now - now % 60
    counts = await store.minute_counts(deployment, end - minutes * 60, end)
    return [counts.get(start, NO_TRAFFIC) for start in range(end - minutes * 60, end, 60)]


async def drift_report(
    store: Store,
    deployment: str,
    rule: DriftRule,
    baseline: Window,
    current: Window,
    change: ChangeRule | None = None,
    version: str | None = None,
) -> DriftReport:
    """KS tests of confidence, box size and image properties, current window vs baseline, the volume and
    confidence checks, and the request parameters of both (with when the current ones first appeared). With a
    model version, of that version's requests only (its per-minute checks are left out: minute sums are kept per
    deployment, not per version)."""
    change = change or ChangeRule()
    before = await store.window(deployment, baseline.start_s, baseline.end_s, signals=True)
    after = await store.window(deployment, current.start_s, current.end_s, signals=True)
    if version is not None:
        before, after = (bucket.versions.get(version) or Bucket(deployment, 0, 0) for bucket in (before, after))
        baseline_minutes: dict[int, MinuteCount] = {}
        recent: list[MinuteCount] = []
    else:
        baseline_minutes = await store.minute_counts(deployment, baseline.start_s, baseline.end_s)
        recent = await recent_minutes(store, deployment, change.minutes)
    since = None
    now_params = dominant(after.params)
    if now_params is not None and now_params != dominant(before.params):
        since = await store.params_first_seen(deployment, now_params, current.start_s, current.end_s)
    return compare_windows(
        deployment, (baseline, current), (before, after), baseline_minutes, recent, rule, change, since
    )


async def minute_values(
    store: Store, deployment: str, minute_start: int, rules: list[Rule]
) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """The value of each metric the rules read at this closed minute, and their baselines where a rule compares
    with one. A minute without traffic has no latency, error rate or confidence (no data is not a breach) but a
    request rate and detection rate of 0 (a pause is a drop)."""
    wanted = {rule.metric for rule in rules}
    changes = {rule.metric for rule in rules if rule.comparison in ("drop", "rise")}
    values: dict[str, float | None] = {}
    baselines: dict[str, float | None] = {}
    windows = await drift_windows(store, deployment)
    if wanted & set(MINUTE_METRICS):
        # Detection figures are compared like with like: that needs the minute's and the baseline's parameters.
        detail = bool(wanted & {"detection_rate", "mean_confidence"})
        minute = await store.minute(deployment, minute_start, signals=detail)
        metrics = bucket_metrics(minute)
        values.update(minute_figures(metrics))
        detections = float(minute.detections)
        baseline_rate = base = None
        active: list[int] = []
        if windows is not None:
            counts = await store.minute_counts(deployment, windows[0].start_s, windows[0].end_s)
            active = [c.detections for c in counts.values() if c.requests > 0]
            baseline_rate = sum(active) / len(active) if active and sum(active) else None
            if detail or changes & set(MINUTE_METRICS):
                # The baseline's parameters and histograms, not its stage timings (the costly part to decode).
                start, end = windows[0].start_s, windows[0].end_s
                base = await store.window(deployment, start, end, detail, detail, timings=False)
            if base is not None and changes & set(MINUTE_METRICS):
                baselines.update(minute_figures(bucket_metrics(base), len(active)), detection_rate=1.0)
        if base is not None and detail and floors_differ(minute.params, base.params):
            # The minute and the baseline ran at different confs: count and average above the higher one only.
            floor = conf_floor(minute.params, base.params)
            values["mean_confidence"] = binned_mean(above_floor(minute.confidence_hist, floor))
            baselines["mean_confidence"] = binned_mean(above_floor(base.confidence_hist, floor))
            detections = float(sum(above_floor(minute.confidence_hist, floor)))
            share = share_above(base.confidence_hist, floor)
            baseline_rate = baseline_rate * share if baseline_rate and share else None
        values["detection_rate"] = None if baseline_rate is None else detections / baseline_rate
        if base is not None:
            values.update(class_values(minute, base, len(active), rules, baselines))
    if {"confidence_drift_p", "box_drift_p"} & wanted and windows is not None:
        values.update(await drift_values(store, deployment, windows))
    if {"holdout_map50", "holdout_map50_95"} & wanted:
        # The fixed holdout only: a set of recent frames changes with every export, so it has no baseline.
        runs = [run for run in await store.holdout_runs(deployment) if run["details"].get("set") != "recent"]
        if runs:
            latest = runs[-1]
            first = next(run for run in runs if run["digest"] == latest["digest"])  # same holdout set
            for metric in ("map50", "map50_95"):
                values[f"holdout_{metric}"] = latest[metric]
                baselines[f"holdout_{metric}"] = first[metric]
    if "golden_pass_rate" in wanted:
        values["golden_pass_rate"] = await golden_value(store, deployment, minute_start + 60)
    return values, baselines


async def golden_value(store: Store, deployment: str, minute_end: int) -> float | None:
    """The pass rate of the newest golden run before the minute's end (a run that could not be made: 0); None
    without a recent run."""
    run = await store.latest_golden(deployment, before_ms=minute_end * 1000 - 1)
    if run is None or run.checked_ms < (minute_end - GOLDEN_STALE_S) * 1000:
        return None
    return run.pass_rate or 0.0


def class_values(
    minute: Bucket, base: Bucket, baseline_minutes: int, rules: list[Rule], baselines: dict[str, float | None]
) -> dict[str, float | None]:
    """The figures of class-scoped rules, keyed `metric[class]`: the class's detections this minute against its
    baseline rate (detections per baseline minute with traffic), and its mean confidence (baselines filled in)."""
    values: dict[str, float | None] = {}
    for name in sorted({rule.class_name for rule in rules if rule.class_name}):
        count = minute.classes.get(name, 0)
        base_count = base.classes.get(name, 0)
        rate = base_count / baseline_minutes if baseline_minutes and base_count else None
        values[f"detection_rate[{name}]"] = None if rate is None else count / rate
        baselines[f"detection_rate[{name}]"] = 1.0
        values[f"mean_confidence[{name}]"] = minute.class_confidence.get(name, 0.0) / count if count else None
        baselines[f"mean_confidence[{name}]"] = (
            base.class_confidence.get(name, 0.0) / base_count if base_count else None
        )
    return values


async def drift_values(store: Store, deployment: str, windows: tuple[Window, Window]) -> dict[str, float | None]:
    """Each KS test's p-value where the drift rule's effect-size and sample gates pass (else None)."""
    try:
        import scipy.stats  # noqa: F401  (the KS distribution; in the yolo extra)
    except ImportError:
        log.warning("drift alert rules need scipy (pip install 'yolowatch[yolo]'); skipped")
        return {}
    report = await drift_report(store, deployment, DriftRule(), *windows)
    return {
        metric: signal.result.p_value if signal.gated else None
        for metric, signal in (
            ("confidence_drift_p", report.signal("confidence")),
            ("box_drift_p", report.signal("boxSize")),
        )
    }


def alert_evaluator(
    store: Store, rules: list[Rule], sinks: dict[str, Sink], clock: Clock = time.monotonic
) -> Evaluator:
    """An evaluator that reads each closed minute's figures from `store` (the one it keeps its state in)."""
    return Evaluator(store, rules, sinks, functools.partial(minute_values, store), clock)
