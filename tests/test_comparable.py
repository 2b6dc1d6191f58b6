"""Request parameters decide what two windows can be compared on: conf floors, imgsz, and the change itself."""

from __future__ import annotations

import pytest

from yolowatch.comparable import above_floor, binned_mean, conf_floor, dominant, params_change, share_above
from yolowatch.records import CONFIDENCE_BINS, params_key, parse_params_key


def test_params_key_round_trips_with_unknowns() -> None:
    """A key names each parameter, "?" where the response did not say it, and parses back."""
    assert params_key(0.25, 0.7, 640) == "conf=0.25 iou=0.7 imgsz=640"
    assert parse_params_key(params_key(0.5, None, 320)) == (0.5, None, 320)
    assert parse_params_key("garbage") == (None, None, None)


def test_dominant_and_floor() -> None:
    """The parameters most predictions used win; the floor is the highest conf any of the windows sent."""
    before = {params_key(0.25, 0.7, 640): 90, params_key(0.4, 0.7, 640): 10}
    after = {params_key(0.5, 0.7, 640): 100}
    assert dominant(before) == params_key(0.25, 0.7, 640)
    assert conf_floor(before) == 0.4 and conf_floor(before, after) == 0.5
    assert conf_floor({}) is None and dominant({}) is None


@pytest.mark.parametrize("floor, first", [(0.25, 25), (0.5, 50), (0.255, 26), (None, 0)])
def test_above_floor_keeps_only_bins_wholly_above(floor: float | None, first: int) -> None:
    """Bins that hold values below the floor are emptied; a floor inside a bin empties that bin too."""
    cut = above_floor([1] * CONFIDENCE_BINS, floor)
    assert cut == [0] * first + [1] * (CONFIDENCE_BINS - first)
    assert share_above([1] * CONFIDENCE_BINS, floor) == pytest.approx((CONFIDENCE_BINS - first) / CONFIDENCE_BINS)


def test_binned_mean_is_within_half_a_bin() -> None:
    """The mean from bin centres is within 0.005 of the values' own mean."""
    values = [0.31, 0.55, 0.552, 0.9, 0.97]
    hist = [0] * CONFIDENCE_BINS
    for value in values:
        hist[int(value * CONFIDENCE_BINS)] += 1
    mean = binned_mean(hist)
    assert mean is not None and abs(mean - sum(values) / len(values)) <= 0.005
    assert binned_mean([0] * CONFIDENCE_BINS) is None


def test_a_conf_change_is_reported_with_the_floor_it_compares_above() -> None:
    """conf 0.25 -> 0.5 is a change, said in words, and the checks compare above 0.5."""
    change = params_change({params_key(0.25, 0.7, 640): 50}, {params_key(0.5, 0.7, 640): 50}, 1_700_000_000)
    assert change.changed and change.differences == ("conf from 0.25 to 0.5",)
    assert change.conf_floor == 0.5 and not change.imgsz_differs and change.since_s == 1_700_000_000
    assert change.reason.startswith("clients changed conf from 0.25 to 0.5")


def test_an_imgsz_change_makes_the_windows_not_comparable() -> None:
    """imgsz 640 -> 320 is reported, and flagged as moving confidences and box sizes by itself."""
    change = params_change({params_key(0.25, 0.7, 640): 50}, {params_key(0.25, 0.7, 320): 50})
    assert change.changed and change.imgsz_differs and change.conf_floor is None
    assert "imgsz 640 vs 320" in change.reason


def test_unchanged_or_unknown_parameters() -> None:
    """The same parameters are no change; responses that never say theirs give no change and say so."""
    same = params_change({params_key(0.25, 0.7, 640): 5}, {params_key(0.25, 0.7, 640): 9})
    assert not same.changed and same.conf_floor is None and same.reason.startswith("unchanged")
    unknown = params_change({}, {})
    assert not unknown.changed and "do not say" in unknown.reason
