"""Drift: two-sample KS tests on the stored confidence and box-size histograms, current window vs baseline.

The per-minute buckets keep fixed-bin histograms (20 confidence bins, 25 log-spaced box-size bins),
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


@dataclass(frozen=True)
class Window:
    start_s: int
    end_s: int

    def json(self) -> dict[str, int]:
        return {"start": self.start_s, "end": self.end_s}


async def default_windows(store: Store, deployment: str, days: int = 7) -> tuple[Window, Window] | None:
    """Baseline: the first `days` days of traffic; current: the last `days` days, after the baseline ends.

    None while there is no traffic; the current window is empty while the deployment is younger than the baseline.
    """
    first = await store.first_traffic_s(deployment)
    if first is None:
        return None
    now = int(store.clock())
    baseline = Window(first, first + days * DAY_S)
    end = now - now % HOUR_S + HOUR_S  # through the hour in progress
    return baseline, Window(max(baseline.end_s, end - days * DAY_S), end)


async def drift_report(
    store: Store, deployment: str, rule: DriftRule, baseline: Window, current: Window
) -> dict[str, Any]:
    """KS tests of confidence and box size, current window vs baseline, from the stored hour histograms."""
    before = await store.window(deployment, baseline.start_s, baseline.end_s)
    after = await store.window(deployment, current.start_s, current.end_s)
    signals = [
        drift_json("confidence", ks_from_histograms(before.confidence_hist, after.confidence_hist), rule),
        drift_json("boxSize", ks_from_histograms(before.area_hist, after.area_hist), rule),
    ]
    return {
        "deployment": deployment,
        "baseline": baseline.json(),
        "current": current.json(),
        "rule": {"alpha": rule.alpha, "minStatistic": rule.min_statistic, "minSamples": rule.min_samples},
        "drifted": any(signal["drifted"] for signal in signals),
        "signals": signals,
        "histograms": {
            "confidence": {"baseline": before.confidence_hist, "current": after.confidence_hist},
            "boxSize": {"baseline": before.area_hist, "current": after.area_hist},
        },
    }
