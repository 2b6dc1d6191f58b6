"""Drift on stored histograms: agreement with scipy's ks_2samp on the raw values, and false-alarm rates."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from scipy.stats import ks_2samp

from yolowatch.quality import (
    ChangeRule,
    DriftReport,
    DriftRule,
    KsResult,
    Window,
    compare_windows,
    confidence_change,
    ks_from_histograms,
    verdict,
    volume_change,
)
from yolowatch.records import (
    AREA_BIN_COUNT,
    CONFIDENCE_BINS,
    Bucket,
    DetectionSummary,
    MinuteCount,
    area_bin,
    confidence_bin,
    params_key,
)

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


def _window(values: np.ndarray, box_areas: np.ndarray, conf: float | None, imgsz: int = 640) -> Bucket:
    """A window's bucket from raw confidences and box sizes, cut at `conf` as YOLO cuts them, with its parameters
    (None: the responses did not say them)."""
    bucket = Bucket("d", 0, 0)
    kept = values >= (conf or 0.0)
    bucket.confidence_hist = confidence_histogram(values[kept])
    bucket.area_hist = area_histogram(box_areas[kept])
    bucket.confidence_count = int(kept.sum())
    bucket.confidence_sum = float(values[kept].sum())
    if conf is not None:
        bucket.params = {params_key(conf, 0.7, imgsz): 1000}
    return bucket


def _compare(before: Bucket, after: Bucket) -> DriftReport:
    baseline = _baseline_minutes(np.random.default_rng(3))
    return compare_windows("d", (Window(0, 1), Window(1, 2)), (before, after), baseline, _minutes([40] * 10), RULE,
                           ChangeRule())  # fmt: skip


def test_a_conf_change_is_reported_as_one_not_as_drift() -> None:
    """The same model and images at conf 0.25 and then 0.5: confidence compared above 0.5 shows no drift, box size
    is not comparable, the mean-confidence check stays quiet, and the change is reported; without the parameters
    the very same histograms are flagged (what every other tool reports)."""
    rng = np.random.default_rng(11)
    raw = rng.beta(4, 2.5, 20_000)  # many detections between 0.25 and 0.5: the cut moves the distribution a lot
    small_when_weak = np.clip(0.002 + 0.05 * raw**2 * rng.lognormal(0, 0.3, raw.size), 1e-6, 1.0)
    before = _window(raw[:10_000], small_when_weak[:10_000], 0.25)
    after = _window(raw[10_000:], small_when_weak[10_000:], 0.5)
    report = _compare(before, after)
    assert report.params is not None and report.params.changed and report.params.conf_floor == 0.5
    assert "conf from 0.25 to 0.5" in report.params.reason
    confidence, box = report.signal("confidence"), report.signal("boxSize")
    assert confidence.comparable and not confidence.drifted, confidence
    assert not box.comparable and not box.drifted and box.reason.startswith("not comparable")
    assert not report.confidence.flagged, report.confidence
    assert not report.drifted

    # The same detections with no parameters in the responses: the cut looks like drift.
    cut = raw[10_000:] >= 0.5
    blind = _compare(
        _window(raw[:10_000], small_when_weak[:10_000], None),
        _window(raw[10_000:][cut], small_when_weak[10_000:][cut], None),
    )
    assert blind.params is not None and not blind.params.changed
    assert blind.signal("confidence").drifted and blind.signal("boxSize").drifted


def test_real_drift_at_unchanged_parameters_is_still_flagged() -> None:
    """At the same conf, darker scenes (lower confidences) are drift, and nothing says the parameters changed."""
    rng = np.random.default_rng(12)
    before = _window(confidences(rng, 5000, 8, 2), areas(rng, 5000, 0.02), 0.25)
    after = _window(confidences(rng, 5000, 5, 2.5), areas(rng, 5000, 0.02), 0.25)
    report = _compare(before, after)
    assert report.params is not None and not report.params.changed
    assert report.signal("confidence").drifted and report.signal("confidence").comparable


def test_image_properties_are_tested_for_drift() -> None:
    """Darker images drift in brightness; a property measured the same on both sides does not."""
    rng = np.random.default_rng(13)
    before, after = Bucket("d", 0, 0), Bucket("d", 0, 0)
    for bucket, brightness in ((before, rng.normal(120, 20, 2000)), (after, rng.normal(70, 20, 2000))):
        for value, sharp in zip(brightness, rng.lognormal(np.log(300), 0.5, 2000), strict=True):
            measured = {"brightness": float(value), "sharpness": float(sharp)}
            bucket.add_detections(DetectionSummary(1, 0, (), (), (), (), (), (), (measured,)))
    report = _compare(before, after)
    assert report.signal("brightness").drifted
    assert not report.signal("sharpness").drifted
    assert report.histograms["brightness"].edges[0] == 0.0 and len(report.histograms["brightness"].baseline) == 64
