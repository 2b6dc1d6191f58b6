"""Drift on stored histograms: agreement with scipy's ks_2samp on the raw values, and false-alarm rates."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from scipy.stats import ks_2samp

from yolowatch.quality import (
    ChangeRule,
    DriftRule,
    KsResult,
    confidence_change,
    ks_from_histograms,
    verdict,
    volume_change,
)
from yolowatch.records import AREA_BIN_COUNT, CONFIDENCE_BINS, MinuteCount, area_bin, confidence_bin

RULE = DriftRule()


def confidence_histogram(values: np.ndarray) -> list[int]:
    counts = [0] * CONFIDENCE_BINS
    for value in values:
        counts[confidence_bin(float(value))] += 1
    return counts


def area_histogram(values: np.ndarray) -> list[int]:
    counts = [0] * AREA_BIN_COUNT
    for value in values:
        counts[area_bin(float(value))] += 1
    return counts


def _raw(a: np.ndarray, b: np.ndarray) -> KsResult:
    result = ks_2samp(a, b, method="asymp")
    return KsResult(float(result.statistic), float(result.pvalue), len(a), len(b))


# Realistic detector confidences (clustered high, a tail of weak ones) and box sizes (log-normal areas).
def confidences(rng: np.random.Generator, n: int, a: float, b: float) -> np.ndarray:
    return np.clip(rng.beta(a, b, n), 0.25, 1.0)  # a predict endpoint's conf threshold cuts the low end


def areas(rng: np.random.Generator, n: int, median: float, sigma: float = 1.0) -> np.ndarray:
    return np.clip(rng.lognormal(np.log(median), sigma, n), 1e-6, 1.0)


SCENARIOS = [
    ("same", lambda r, n: confidences(r, n, 8, 2), lambda r, n: confidences(r, n, 8, 2)),
    ("darker scenes", lambda r, n: confidences(r, n, 8, 2), lambda r, n: confidences(r, n, 5, 2.5)),
    ("slight shift", lambda r, n: confidences(r, n, 8, 2), lambda r, n: confidences(r, n, 7.5, 2)),
    ("smaller boxes", lambda r, n: areas(r, n, 0.02), lambda r, n: areas(r, n, 0.008)),
    ("same boxes", lambda r, n: areas(r, n, 0.02), lambda r, n: areas(r, n, 0.02)),
]


@pytest.mark.parametrize(("name", "baseline", "current"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
@pytest.mark.parametrize("n", [500, 5000])
def test_binned_test_agrees_with_ks_2samp_on_raw_values(name: str, baseline, current, n: int) -> None:  # type: ignore[no-untyped-def]
    """Statistic within 0.02 of scipy's on the raw values, and the same drift verdict."""
    rng = np.random.default_rng(zlib.crc32(f"{name}/{n}".encode()))
    a, b = baseline(rng, n), current(rng, n)
    histogram = area_histogram if "boxes" in name else confidence_histogram
    ours = ks_from_histograms(histogram(a), histogram(b))
    theirs = _raw(a, b)
    assert (ours.n_baseline, ours.n_current) == (n, n)
    assert abs(ours.statistic - theirs.statistic) <= 0.02, (ours, theirs)
    if not _near_the_line(theirs):
        assert verdict(ours, RULE)[0] == verdict(theirs, RULE)[0], (ours, theirs)


def _near_the_line(result: KsResult) -> bool:
    """Within the 0.02 the binned statistic may differ by, or a factor 3 of alpha: either verdict is fair there
    (no bin count removes that band: a case can always sit exactly on the threshold)."""
    return abs(result.statistic - RULE.min_statistic) <= 0.02 or RULE.alpha / 3 <= result.p_value <= RULE.alpha * 3


def test_the_scenarios_exercise_both_verdicts_away_from_the_line() -> None:
    """The agreement test above is not vacuous: most scenarios are clearly drift or clearly not."""
    verdicts = []
    for name, baseline, current in SCENARIOS:
        rng = np.random.default_rng(zlib.crc32(f"{name}/5000".encode()))
        raw = _raw(baseline(rng, 5000), current(rng, 5000))
        if not _near_the_line(raw):
            verdicts.append(verdict(raw, RULE)[0])
    assert len(verdicts) >= 4 and True in verdicts and False in verdicts


def test_drifted_scenario_is_flagged_and_the_same_one_is_not() -> None:
    """Confidences from a shifted distribution are flagged as drift; more from the same one are not."""
    rng = np.random.default_rng(7)
    base = confidence_histogram(confidences(rng, 3000, 8, 2))
    assert verdict(ks_from_histograms(base, confidence_histogram(confidences(rng, 3000, 5, 2.5))), RULE)[0]
    assert not verdict(ks_from_histograms(base, confidence_histogram(confidences(rng, 3000, 8, 2))), RULE)[0]


def test_baseline_against_itself_alarms_at_most_about_alpha() -> None:
    """400 pairs of samples of one distribution: p < 0.01 in about 1 % of them (binning only makes it rarer);
    with the effect-size condition, none is called drift."""
    rng = np.random.default_rng(11)
    significant = drifted = 0
    trials = 400
    for _ in range(trials):
        result = ks_from_histograms(
            confidence_histogram(confidences(rng, 1000, 8, 2)), confidence_histogram(confidences(rng, 1000, 8, 2))
        )
        significant += result.p_value < RULE.alpha
        drifted += verdict(result, RULE)[0]
    assert significant / trials <= 0.025  # alpha is 0.01; 0.025 leaves room for the binomial spread of 400 trials
    assert drifted == 0


def test_a_trivial_shift_in_a_huge_sample_is_significant_but_not_drift() -> None:
    """The known trap: 200,000 detections a side make a 0.02 KS shift 'significant'. The rule says no."""
    rng = np.random.default_rng(3)
    result = ks_from_histograms(
        confidence_histogram(confidences(rng, 200_000, 8, 2)), confidence_histogram(confidences(rng, 200_000, 7.8, 2))
    )
    drifted, reason = verdict(result, RULE)
    assert result.p_value < 1e-6 and result.statistic < RULE.min_statistic
    assert not drifted and "small" in reason


def test_too_few_samples_is_never_drift() -> None:
    """However different, 60 samples a side are too few to call drift, and the reason says so."""
    rng = np.random.default_rng(5)
    result = ks_from_histograms(
        confidence_histogram(confidences(rng, 60, 8, 2)), confidence_histogram(confidences(rng, 60, 2, 5))
    )
    drifted, reason = verdict(result, RULE)
    assert result.statistic > 0.5 and not drifted and "too few samples (60" in reason


def _baseline_minutes(rng: np.random.Generator, minutes: int = 200) -> dict[int, MinuteCount]:
    """Steady traffic: 10 requests and about 40 detections a minute, mean confidence about 0.80."""
    counts = {}
    for m in range(minutes):
        detections = int(rng.integers(35, 46))
        mean = float(rng.normal(0.80, 0.02))
        counts[m * 60] = MinuteCount(10, detections, mean * detections, detections)
    return counts


def _minutes(detections: list[int], confidence: float = 0.8) -> list[MinuteCount]:
    return [MinuteCount(10 if d else 0, d, confidence * d, d) for d in detections]


def test_detection_volume_drop_must_last_the_whole_duration() -> None:
    """A detection volume drop is flagged only once it lasts the whole ten minutes; with no baseline it says so."""
    baseline = _baseline_minutes(np.random.default_rng(1))
    rule = ChangeRule()
    paused = volume_change(baseline, _minutes([0] * 10), rule)
    assert paused.flagged is True and paused.low_for_minutes == 10
    assert paused.baseline_per_minute is not None and paused.baseline_per_minute > 35
    nine = volume_change(baseline, _minutes([40] + [5] * 9), rule)
    assert nine.flagged is False and nine.low_for_minutes == 9  # pending, not yet sustained
    recovered = volume_change(baseline, _minutes([5] * 9 + [40]), rule)
    assert recovered.flagged is False and recovered.low_for_minutes == 0
    assert volume_change({}, _minutes([0] * 10), rule).reason == "no baseline traffic"


def test_mean_confidence_shift_beyond_two_sigma() -> None:
    """A mean confidence more than two sigmas off the baseline is flagged; a usual one, or silence, is not."""
    baseline = _baseline_minutes(np.random.default_rng(2))
    rule = ChangeRule()
    lower = confidence_change(baseline, _minutes([40] * 10, confidence=0.70), rule)
    assert lower.flagged is True and lower.sigmas is not None and lower.sigmas < -2
    usual = confidence_change(baseline, _minutes([40] * 10, confidence=0.805), rule)
    assert usual.flagged is False and usual.sigmas is not None and abs(usual.sigmas) < 2
    silent = confidence_change(baseline, _minutes([0] * 10), rule)
    assert silent.flagged is False and "needs" in silent.reason
