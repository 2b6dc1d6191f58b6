"""What makes two windows comparable: the request parameters their predictions ran with.

YOLO drops every detection below the `conf` each client sends, so the stored confidence histogram is cut
off at that floor; a client that moves from conf=0.25 to conf=0.5 shifts the confidence distribution, the mean
confidence and the detection rate at once, with the model and the world unchanged. `imgsz` moves confidences
and box sizes the same way. These pure functions read the parameters each window recorded (`Bucket.params`,
counts per `params_key`), say whether and how they changed, and cut confidence histograms at a common floor,
so that the checks compare like with like and report a parameter change as what it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from yolowatch.records import CONFIDENCE_BINS, parse_params_key

PARAM_NAMES = ("conf", "iou", "imgsz")


def dominant(params: Mapping[str, int]) -> str | None:
    """The parameters most predictions of a window ran with (ties: the first key in sorted order)."""
    if not params:
        return None
    return min(params, key=lambda key: (-params[key], key))


def conf_floor(*windows: Mapping[str, int]) -> float | None:
    """The highest `conf` any prediction of the windows sent: above it no window's histogram is cut. None when
    no prediction said its conf (an upstream that does not echo its parameters)."""
    floors = [conf for params in windows for key in params if (conf := parse_params_key(key)[0]) is not None]
    return max(floors) if floors else None


def floors_differ(*windows: Mapping[str, int]) -> bool:
    """Whether the windows' predictions ran at more than one conf (then their histograms are cut differently)."""
    return len({parse_params_key(key)[0] for params in windows for key in params} - {None}) > 1


def imgsz_values(params: Mapping[str, int]) -> set[int]:
    return {imgsz for key in params if (imgsz := parse_params_key(key)[2]) is not None}


def above_floor(confidence_hist: Sequence[int], floor: float | None) -> list[int]:
    """The histogram with the bins below `floor` emptied: from the first bin that lies wholly at or above it."""
    if floor is None:
        return list(confidence_hist)
    first = min(CONFIDENCE_BINS, math.ceil(round(floor * CONFIDENCE_BINS, 6)))
    return [0] * first + list(confidence_hist[first:])


def binned_mean(confidence_hist: Sequence[int]) -> float | None:
    """The mean of a confidence histogram from its bin centres (within half a bin, 0.005, of the true mean)."""
    total = sum(confidence_hist)
    if not total:
        return None
    return sum((k + 0.5) / CONFIDENCE_BINS * count for k, count in enumerate(confidence_hist)) / total


def share_above(confidence_hist: Sequence[int], floor: float | None) -> float | None:
    """The share of a window's detections at or above `floor` (None: no detections)."""
    total = sum(confidence_hist)
    return sum(above_floor(confidence_hist, floor)) / total if total else None


@dataclass(frozen=True)
class ParamsChange:
    """The parameters of two windows: the ones most predictions used on each side, what differs between them,
    when the current side's parameters first appeared, and what the checks do about it."""

    changed: bool
    reason: str
    baseline: str | None
    current: str | None
    differences: tuple[str, ...]
    since_s: int | None
    conf_floor: float | None  # the floor the confidence checks compared above, when the floors differ
    imgsz_differs: bool


def params_change(baseline: Mapping[str, int], current: Mapping[str, int], since_s: int | None = None) -> ParamsChange:
    """Compare the windows' parameters (`since_s`: when the current parameters were first seen, if known)."""
    before, after = dominant(baseline), dominant(current)
    differences: list[str] = []
    if before is not None and after is not None and before != after:
        old, new = parse_params_key(before), parse_params_key(after)
        differences = [
            f"{name} from {_shown(a)} to {_shown(b)}"
            for name, a, b in zip(PARAM_NAMES, old, new, strict=True)
            if a != b
        ]
    sizes_before, sizes_after = imgsz_values(baseline), imgsz_values(current)
    imgsz_differs = bool(sizes_before and sizes_after and sizes_before != sizes_after)
    differ = floors_differ(baseline, current)
    floor = conf_floor(baseline, current) if differ else None
    if differences:
        reason = "clients changed " + ", ".join(differences)
    elif before is None or after is None:
        reason = (
            "the responses do not say their parameters"
            if before is None and after is None
            else ("only one window's responses say their parameters")
        )
    else:
        reason = f"unchanged ({after})"
    if differ:
        reason += f"; confidences compared above conf {floor:g}, where neither window is cut"
    if imgsz_differs:
        reason += (
            f"; imgsz {_sizes(sizes_before)} vs {_sizes(sizes_after)}: confidences and box sizes are not comparable"
        )
    return ParamsChange(bool(differences), reason, before, after, tuple(differences), since_s, floor, imgsz_differs)


def _shown(value: float | None) -> str:
    return "unknown" if value is None else f"{value:g}"


def _sizes(sizes: set[int]) -> str:
    return "/".join(str(size) for size in sorted(sizes))
