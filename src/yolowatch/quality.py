"""Drift and change checks: pure functions from histograms and minute counts to verdicts.

The per-minute buckets keep fixed-bin histograms (100 confidence bins, 100 log-spaced box-size bins),
so any window can be compared with any other without the raw values. The KS statistic is the
largest gap between the two binned CDFs (at most the raw statistic, and within 0.02 of it on
realistic data: tests/test_quality.py); the p-value is scipy's asymptotic two-sample distribution,
as `scipy.stats.ks_2samp(method="asymp")` computes it. scipy (the yolo extra) is imported inside
`ks_from_histograms` only, so the middleware install stays light.

At live-traffic sample sizes a p-value alone flags shifts nobody cares about, so drift needs
p < alpha AND statistic >= min_statistic AND enough samples on both sides. Reading the windows
from the store is `signals.py`'s job; the admin API turns these records into its JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from yolowatch.comparable import ParamsChange, above_floor, binned_mean, params_change, share_above
from yolowatch.records import AREA_EDGES, CONFIDENCE_BINS, IMAGE_EDGES, IMAGE_PROPERTIES, IMAGE_TOP, Bucket, MinuteCount

DAY_S = 86400
HOUR_S = 3600


@dataclass(frozen=True)
class DriftRule:
    alpha: float = 0.01
    min_statistic: float = 0.1
    # Below ~500 a side the binned statistic can stray past 0.02 from the raw one (tests/test_quality.py).
    min_samples: int = 500
    # Image properties are one sample per image, not per detection: a camera gone dark shows in 100 images.
    min_images: int = 100


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


@dataclass(frozen=True)
class Window:
    """[start_s, end_s) in epoch seconds."""

    start_s: int
    end_s: int


@dataclass(frozen=True)
class DriftSignal:
    """One KS test (confidence or box size), its verdict under the rule, and whether the rule's effect-size and
    sample gates pass (a tiny shift or a thin sample is not drift, however small its p-value)."""

    signal: str
    drifted: bool
    reason: str
    result: KsResult
    gated: bool
    comparable: bool = True  # False: the windows ran with parameters that move this distribution by themselves


@dataclass(frozen=True)
class VolumeChange:
    flagged: bool
    reason: str
    baseline_per_minute: float | None
    current_per_minute: float | None
    low_for_minutes: int


@dataclass(frozen=True)
class ConfidenceChange:
    flagged: bool
    reason: str
    current: float | None
    baseline_mean: float | None = None
    baseline_sigma: float | None = None
    sigmas: float | None = None


@dataclass(frozen=True)
class Histograms:
    """Bin edges and the two windows' counts of one distribution."""

    edges: list[float]
    baseline: list[int]
    current: list[int]


@dataclass(frozen=True)
class DriftReport:
    deployment: str
    baseline: Window
    current: Window
    rule: DriftRule
    signals: tuple[DriftSignal, ...]
    volume: VolumeChange
    confidence: ConfidenceChange
    histograms: dict[str, Histograms]
    params: ParamsChange | None = None

    @property
    def drifted(self) -> bool:
        return any(signal.drifted for signal in self.signals)

    def signal(self, name: str) -> DriftSignal:
        return next(signal for signal in self.signals if signal.signal == name)


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


def drift_signal(name: str, result: KsResult, rule: DriftRule, not_comparable: str = "") -> DriftSignal:
    """The KS verdict; `not_comparable` says why the windows cannot be compared on this signal (no verdict)."""
    if not_comparable:
        return DriftSignal(name, False, f"not comparable: {not_comparable}", result, False, comparable=False)
    drifted, reason = verdict(result, rule)
    samples = min(result.n_baseline, result.n_current)
    gated = result.statistic >= rule.min_statistic and samples >= rule.min_samples
    return DriftSignal(name, drifted, reason, result, gated)


def volume_change(
    baseline: Mapping[int, MinuteCount],
    recent: Sequence[MinuteCount],
    rule: ChangeRule,
    kept: tuple[float, float] = (1.0, 1.0),
) -> VolumeChange:
    """Detections per minute in the last closed minutes (a minute without traffic counts as 0) against the
    baseline's mean over its minutes with traffic. `kept`: the share of (baseline, current) detections above the
    common conf floor when the windows ran at different confs, so both sides count only what both could see."""
    active = [counts.detections for counts in baseline.values() if counts.requests > 0]
    expected = sum(active) / len(active) * kept[0] if active else None
    low_for = 0
    if expected:
        for counts in reversed(recent):
            if counts.detections * kept[1] >= (1 - rule.drop) * expected:
                break
            low_for += 1
    flagged = expected is not None and low_for >= rule.minutes
    current = sum(counts.detections for counts in recent) / len(recent) if recent else None
    if expected is None:
        reason = "no baseline traffic"
    elif flagged:
        reason = f"below {1 - rule.drop:.0%} of the baseline's {expected:.1f} detections a minute for {low_for} minutes"
    else:
        reason = f"{low_for} of the last {len(recent)} minutes below {1 - rule.drop:.0%} of the baseline"
    return VolumeChange(flagged, reason, expected, current, low_for)


def confidence_change(
    baseline: Mapping[int, MinuteCount], recent: Sequence[MinuteCount], rule: ChangeRule
) -> ConfidenceChange:
    """Mean confidence of the last closed minutes against the spread of the baseline's per-minute means."""
    means = np.array([c.confidence_sum / c.confidence_count for c in baseline.values() if c.confidence_count > 0])
    count = sum(c.confidence_count for c in recent)
    current = sum(c.confidence_sum for c in recent) / count if count else None
    if len(means) < 2 or current is None:
        return ConfidenceChange(
            False, "needs at least two baseline minutes with detections and detections now", current
        )
    mean, sigma = float(means.mean()), float(means.std(ddof=1))
    z = (current - mean) / sigma if sigma > 0 else (0.0 if current == mean else float("inf"))
    return ConfidenceChange(
        flagged=abs(z) > rule.sigmas,
        reason=f"{z:+.1f} sigma from the baseline's per-minute means (the rule: beyond {rule.sigmas:g})",
        current=current,
        baseline_mean=mean,
        baseline_sigma=sigma,
        sigmas=z if np.isfinite(z) else None,
    )


def truncated_confidence_change(
    baseline: Mapping[int, MinuteCount], buckets: tuple[Bucket, Bucket], floor: float, rule: ChangeRule
) -> ConfidenceChange:
    """The mean-confidence check when the windows ran at different confs: both means above the common floor, from
    the histograms (bin centres); the spread is the baseline's per-minute one (wider than the cut means', so the
    check errs towards silence)."""
    means = np.array([c.confidence_sum / c.confidence_count for c in baseline.values() if c.confidence_count > 0])
    mean = binned_mean(above_floor(buckets[0].confidence_hist, floor))
    current = binned_mean(above_floor(buckets[1].confidence_hist, floor))
    if len(means) < 2 or mean is None or current is None:
        return ConfidenceChange(False, f"needs detections above conf {floor:g} in both windows", current)
    sigma = float(means.std(ddof=1))
    z = (current - mean) / sigma if sigma > 0 else (0.0 if current == mean else float("inf"))
    return ConfidenceChange(
        flagged=abs(z) > rule.sigmas,
        reason=f"above conf {floor:g} (the windows ran at different confs): {z:+.1f} sigma from the baseline "
        f"(the rule: beyond {rule.sigmas:g})",
        current=current,
        baseline_mean=mean,
        baseline_sigma=sigma,
        sigmas=z if np.isfinite(z) else None,
    )


def image_signals(
    before: Bucket, after: Bucket, rule: DriftRule
) -> tuple[tuple[DriftSignal, ...], dict[str, Histograms]]:
    """KS tests of the image properties either window measured (brightness, contrast, sharpness, aspect, size)."""
    signals, histograms = [], {}
    for name in IMAGE_PROPERTIES:
        if name not in before.image and name not in after.image:
            continue
        empty = [0] * (len(IMAGE_EDGES[name]) + 1)
        counts = before.image.get(name, empty), after.image.get(name, empty)
        signals.append(drift_signal(name, ks_from_histograms(*counts), replace(rule, min_samples=rule.min_images)))
        edges = [0.0, *(float(f"{edge:.6g}") for edge in IMAGE_EDGES[name]), IMAGE_TOP[name]]
        histograms[name] = Histograms(edges, list(counts[0]), list(counts[1]))
    return tuple(signals), histograms


def compare_windows(
    deployment: str,
    windows: tuple[Window, Window],
    buckets: tuple[Bucket, Bucket],
    baseline_minutes: Mapping[int, MinuteCount],
    recent: Sequence[MinuteCount],
    rule: DriftRule,
    change: ChangeRule,
    params_since_s: int | None = None,
) -> DriftReport:
    """KS tests of confidence, box size and image properties (current window vs baseline), the volume and
    confidence checks, and the request parameters of both windows. Where the parameters differ, the confidence
    checks compare above the common conf floor, and a different imgsz leaves confidence and box size without a
    verdict: a parameter change is reported as one, not as drift."""
    before, after = buckets
    params = params_change(before.params, after.params, params_since_s)
    floor = params.conf_floor
    size_reason = "the windows ran at different imgsz" if params.imgsz_differs else ""
    box_reason = size_reason or (f"the windows ran at different confs (up to {floor:g})" if floor is not None else "")
    confidence_counts = above_floor(before.confidence_hist, floor), above_floor(after.confidence_hist, floor)
    kept = (share_above(before.confidence_hist, floor) or 1.0, share_above(after.confidence_hist, floor) or 1.0)
    images, image_histograms = image_signals(before, after, rule)
    return DriftReport(
        deployment=deployment,
        baseline=windows[0],
        current=windows[1],
        rule=rule,
        signals=(
            drift_signal("confidence", ks_from_histograms(*confidence_counts), rule, size_reason),
            drift_signal("boxSize", ks_from_histograms(before.area_hist, after.area_hist), rule, box_reason),
            *images,
        ),
        volume=volume_change(baseline_minutes, recent, change, kept),
        confidence=(
            confidence_change(baseline_minutes, recent, change)
            if floor is None
            else truncated_confidence_change(baseline_minutes, buckets, floor, change)
        ),
        histograms={
            "confidence": Histograms(
                [round(k / CONFIDENCE_BINS, 4) for k in range(CONFIDENCE_BINS + 1)],
                before.confidence_hist,
                after.confidence_hist,
            ),
            "boxSize": Histograms(
                [0.0, *(float(f"{edge:.6g}") for edge in AREA_EDGES), 1.0], before.area_hist, after.area_hist
            ),
            **image_histograms,
        },
        params=params,
    )


def default_windows(
    first_traffic_s: int, pinned: tuple[int, int] | None, now_s: float, days: int = 7
) -> tuple[Window, Window]:
    """Baseline: the window the user pinned, else the first `days` days of traffic; current: the last `days`
    days through the hour in progress, after the baseline ends (empty while the deployment is younger)."""
    baseline = Window(*pinned) if pinned else Window(first_traffic_s, first_traffic_s + days * DAY_S)
    now = int(now_s)
    end = now - now % HOUR_S + HOUR_S
    return baseline, Window(max(baseline.end_s, end - days * DAY_S), end)
