"""Drift: two-sample KS tests on the stored confidence and box-size histograms, current window vs baseline.

The per-minute buckets keep fixed-bin histograms (100 confidence bins, 100 log-spaced box-size bins),
so any window can be compared with any other without the raw values. The KS statistic is the
largest gap between the two binned CDFs (at most the raw statistic, and within 0.02 of it on
realistic data: tests/test_quality.py); the p-value is scipy's asymptotic two-sample distribution,
as `scipy.stats.ks_2samp(method="asymp")` computes it. scipy is imported here only, so the
middleware install stays light.

At live-traffic sample sizes a p-value alone flags shifts nobody cares about, so drift needs
p < alpha AND statistic >= min_statistic AND enough samples on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from yolowatch.recorder import AREA_EDGES, CONFIDENCE_BINS

if TYPE_CHECKING:
    from yolowatch.store import Store

DAY_S = 86400
HOUR_S = 3600


@dataclass(frozen=True)
class DriftRule:
    alpha: float = 0.01
    min_statistic: float = 0.1
    # Below ~500 a side the binned statistic can stray past 0.02 from the raw one (tests/test_quality.py).
    min_samples: int = 500


@dataclass(frozen=True)
class ChangeRule:
    """Detection volume down more than `drop` for `minutes` closed minutes; mean confidence over those minutes
    more than `sigmas` standard deviations of the baseline's per-minute means away from their mean."""

    drop: float = 0.5
    minutes: int = 10
    sigmas: float = 2.0


@dataclass(frozen=True)
class KsResult:
    statistic: float
    p_value: float
    n_baseline: int
    n_current: int


def ks_from_histograms(baseline: Sequence[int], current: Sequence[int]) -> KsResult:
    """KS statistic and p-value of two samples given as counts over the same bins."""
    from scipy.stats import kstwo

    a = np.asarray(baseline, dtype=float)
    b = np.asarray(current, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"histograms have {a.size} and {b.size} bins")
    n1, n2 = int(a.sum()), int(b.sum())
    if n1 == 0 or n2 == 0:
        return KsResult(0.0, 1.0, n1, n2)
    statistic = float(np.max(np.abs(np.cumsum(a) / n1 - np.cumsum(b) / n2)))
    effective_n = round(n1 * n2 / (n1 + n2))
    return KsResult(statistic, float(kstwo.sf(statistic, effective_n)), n1, n2)


def verdict(result: KsResult, rule: DriftRule) -> tuple[bool, str]:
    """(drifted, why) under the rule's three conditions."""
    smallest = min(result.n_baseline, result.n_current)
    if smallest < rule.min_samples:
        return False, f"too few samples ({smallest}; the rule needs {rule.min_samples} on each side)"
    if result.p_value >= rule.alpha:
        return False, f"p = {result.p_value:.3g} is not below {rule.alpha:g}"
    if result.statistic < rule.min_statistic:
        return False, (
            f"significant (p = {result.p_value:.3g}) but small: KS {result.statistic:.3f} < {rule.min_statistic:g}"
        )
    return True, f"KS {result.statistic:.3f} >= {rule.min_statistic:g} with p = {result.p_value:.3g}"


def drift_json(name: str, result: KsResult, rule: DriftRule) -> dict[str, Any]:
    drifted, reason = verdict(result, rule)
    return {
        "signal": name,
        "drifted": drifted,
        "reason": reason,
        "ksStatistic": round(result.statistic, 6),
        "pValue": result.p_value,
        "baselineSamples": result.n_baseline,
        "currentSamples": result.n_current,
    }


def parse_time(text: str | int) -> int:
    """Epoch seconds from epoch seconds or an ISO 8601 time (a time without a zone is UTC); ValueError otherwise."""
    from datetime import datetime, timezone

    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a time: give epoch seconds or ISO 8601")
    if text.strip().isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a time: give epoch seconds or ISO 8601 (2026-11-01T00:00:00Z)") from None
    return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp())


@dataclass(frozen=True)
class Window:
    start_s: int
    end_s: int

    def json(self) -> dict[str, int]:
        return {"start": self.start_s, "end": self.end_s}


async def default_windows(store: Store, deployment: str, days: int = 7) -> tuple[Window, Window] | None:
    """Baseline: the window the user pinned, else the first `days` days of traffic; current: the last `days` days,
    after the baseline ends.

    None while there is no traffic; the current window is empty while the deployment is younger than the baseline.
    """
    pinned = await store.pinned_baseline(deployment)
    first = await store.first_traffic_s(deployment)
    if first is None:
        return None
    now = int(store.clock())
    baseline = Window(*pinned) if pinned else Window(first, first + days * DAY_S)
    end = now - now % HOUR_S + HOUR_S  # through the hour in progress
    return baseline, Window(max(baseline.end_s, end - days * DAY_S), end)


MinuteCounts = dict[int, tuple[int, int, float, int]]  # minute -> (requests, detections, conf sum, conf count)


def volume_change(
    baseline: MinuteCounts, recent: list[tuple[int, int, float, int]], rule: ChangeRule
) -> dict[str, Any]:
    """Detections per minute in the last closed minutes (a minute without traffic counts as 0) against the
    baseline's mean over its minutes with traffic."""
    active = [counts[1] for counts in baseline.values() if counts[0] > 0]
    expected = sum(active) / len(active) if active else None
    low_for = 0
    if expected:
        for counts in reversed(recent):
            if counts[1] >= (1 - rule.drop) * expected:
                break
            low_for += 1
    flagged = expected is not None and low_for >= rule.minutes
    current = sum(counts[1] for counts in recent) / len(recent) if recent else None
    if expected is None:
        reason = "no baseline traffic"
    elif flagged:
        reason = f"below {1 - rule.drop:.0%} of the baseline's {expected:.1f} detections a minute for {low_for} minutes"
    else:
        reason = f"{low_for} of the last {len(recent)} minutes below {1 - rule.drop:.0%} of the baseline"
    return {
        "signal": "detectionVolume",
        "flagged": flagged,
        "reason": reason,
        "baselinePerMinute": None if expected is None else round(expected, 3),
        "currentPerMinute": None if current is None else round(current, 3),
        "lowForMinutes": low_for,
    }


def confidence_change(
    baseline: MinuteCounts, recent: list[tuple[int, int, float, int]], rule: ChangeRule
) -> dict[str, Any]:
    """Mean confidence of the last closed minutes against the spread of the baseline's per-minute means."""
    means = np.array([c[2] / c[3] for c in baseline.values() if c[3] > 0])
    count = sum(c[3] for c in recent)
    current = sum(c[2] for c in recent) / count if count else None
    result: dict[str, Any] = {"signal": "meanConfidence", "flagged": False, "current": current}
    if len(means) < 2 or current is None:
        result["reason"] = "needs at least two baseline minutes with detections and detections now"
        return result
    mean, sigma = float(means.mean()), float(means.std(ddof=1))
    z = (current - mean) / sigma if sigma > 0 else (0.0 if current == mean else float("inf"))
    result.update(
        baselineMean=round(mean, 5),
        baselineSigma=round(sigma, 5),
        current=round(current, 5),
        sigmas=round(z, 3) if np.isfinite(z) else None,
        flagged=abs(z) > rule.sigmas,
        reason=f"{z:+.1f} sigma from the baseline's per-minute means (the rule: beyond {rule.sigmas:g})",
    )
    return result


async def recent_minutes(store: Store, deployment: str, minutes: int) -> list[tuple[int, int, float, int]]:
    """The last `minutes` closed minutes, oldest first, zeros where nothing was recorded."""
    now = int(store.clock())
    end = now - now % 60
    counts = await store.minute_counts(deployment, end - minutes * 60, end)
    return [counts.get(start, (0, 0, 0.0, 0)) for start in range(end - minutes * 60, end, 60)]


async def drift_report(
    store: Store, deployment: str, rule: DriftRule, baseline: Window, current: Window, change: ChangeRule | None = None
) -> dict[str, Any]:
    """KS tests of confidence and box size, current window vs baseline, from the stored histograms."""
    before = await store.window(deployment, baseline.start_s, baseline.end_s)
    after = await store.window(deployment, current.start_s, current.end_s)
    signals = [
        drift_json("confidence", ks_from_histograms(before.confidence_hist, after.confidence_hist), rule),
        drift_json("boxSize", ks_from_histograms(before.area_hist, after.area_hist), rule),
    ]
    change = change or ChangeRule()
    baseline_minutes = await store.minute_counts(deployment, baseline.start_s, baseline.end_s)
    recent = await recent_minutes(store, deployment, change.minutes)
    return {
        "deployment": deployment,
        "baseline": baseline.json(),
        "current": current.json(),
        "changes": [
            volume_change(baseline_minutes, recent, change),
            confidence_change(baseline_minutes, recent, change),
        ],
        "rule": {"alpha": rule.alpha, "minStatistic": rule.min_statistic, "minSamples": rule.min_samples},
        "drifted": any(signal["drifted"] for signal in signals),
        "signals": signals,
        "histograms": {
            "confidence": {
                "edges": [round(k / CONFIDENCE_BINS, 4) for k in range(CONFIDENCE_BINS + 1)],
                "baseline": before.confidence_hist,
                "current": after.confidence_hist,
            },
            "boxSize": {
                "edges": [0.0, *(float(f"{edge:.6g}") for edge in AREA_EDGES), 1.0],
                "baseline": before.area_hist,
                "current": after.area_hist,
            },
        },
    }
