"""A predict response body to a `DetectionSummary`: what the model saw, for the quality signals.

Reads the Ultralytics endpoint shape (`{"images": [{"shape", "results": [...]}]}`)
and a bare list of result dicts (`Results.summary()`); anything else gives None,
never an error, because the wrapped app is not ours to judge.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import orjson

from yolowatch.records import IMAGE_PROPERTIES, STAGES, DetectionSummary

MAX_MODEL_CHARS = 128
_MEASURED = frozenset(IMAGE_PROPERTIES) - {"aspect", "megapixels"}  # the rest comes from the shape
_STAGE_NAMES = frozenset(STAGES)
_LARGEST = 1e15  # larger (or inf, nan: the comparison fails) is no measurement


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _box_area(box: Any, shape: Any) -> float | None:
    """Normalized area, using the image shape [H, W]; boxes already in 0-1 need no shape."""
    if not isinstance(box, dict):
        return None
    x1, y1, x2, y2 = (_number(box.get(k)) for k in ("x1", "y1", "x2", "y2"))
    if x1 is None or y1 is None or x2 is None or y2 is None:
        return None
    area = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    if isinstance(shape, (list, tuple)) and len(shape) >= 2:
        height, width = _number(shape[0]), _number(shape[1])
        if height and width and height > 0 and width > 0:
            return min(1.0, area / (height * width))
    if max(x1, y1, x2, y2) <= 1.0:  # normalized boxes
        return min(1.0, area)
    return None


def _is_result(item: Any) -> bool:
    return isinstance(item, dict) and _number(item.get("confidence")) is not None


_NUMBER_TYPES = {float, int}  # exact types: bool is refused


class _Unusual(Exception):
    """A result group the fast path does not take; the careful path reads it instead."""


def _read_group_fast(results: list[Any], shape: Any) -> Group:
    """The common case, well-formed Ultralytics results with a shape, at a fraction of the careful path's cost."""
    try:
        height, width = shape
        if type(height) not in _NUMBER_TYPES or type(width) not in _NUMBER_TYPES or height <= 0 or width <= 0:
            raise _Unusual
        scale = 1.0 / (height * width)
        confidences, areas, class_ids, names = [], [], [], []
        for item in results:
            confidence, box, cls, name = item["confidence"], item["box"], item["class"], item["name"]
            x1, y1, x2, y2 = box["x1"], box["y1"], box["x2"], box["y2"]
            if (
                type(confidence) not in _NUMBER_TYPES
                or not 0.0 <= confidence <= 1.0
                or type(cls) is not int
                or type(name) is not str
                or type(x1) not in _NUMBER_TYPES
                or type(y1) not in _NUMBER_TYPES
                or type(x2) not in _NUMBER_TYPES
                or type(y2) not in _NUMBER_TYPES
            ):
                raise _Unusual
            confidences.append(float(confidence))
            areas.append(min(1.0, max(0.0, x2 - x1) * max(0.0, y2 - y1) * scale))
            class_ids.append(cls)
            names.append(name)
    except (_Unusual, KeyError, TypeError, ValueError, ZeroDivisionError):
        raise _Unusual from None
    if not all(map(math.isfinite, areas)):
        raise _Unusual
    return confidences, areas, class_ids, names, confidences


Group = tuple[list[float], list[float], list[int], list[str], list[float]]


def _read_group_carefully(results: list[Any], shape: Any) -> Group:
    confidences: list[float] = []
    areas: list[float] = []
    class_ids: list[int] = []
    names: list[str] = []
    class_confidences: list[float] = []
    for item in results:
        if not _is_result(item):
            continue
        confidences.append(float(item["confidence"]))
        area = _box_area(item.get("box"), shape)
        if area is not None:
            areas.append(area)
        cls = item.get("class")
        if isinstance(cls, int) and not isinstance(cls, bool):
            class_ids.append(cls)
            name = item.get("name")
            names.append(name if isinstance(name, str) else str(cls))
            class_confidences.append(confidences[-1])
    return confidences, areas, class_ids, names, class_confidences


def summarize_results(
    groups: list[tuple[list[Any], Any]], images: Sequence[dict[str, Any]] = (), metadata: Any = None
) -> DetectionSummary:
    """Summarize (results, shape) pairs, one per image; items that are not result dicts are skipped. `images`
    (the response's image objects) and `metadata` give the stage times, image properties, parameters and model
    where the response says them."""
    confidences: list[float] = []
    areas: list[float] = []
    class_ids: list[int] = []
    names: list[str] = []
    class_confidences: list[float] = []
    for results, shape in groups:
        try:
            group = _read_group_fast(results, shape)
        except _Unusual:
            group = _read_group_carefully(results, shape)
        confidences += group[0]
        areas += group[1]
        class_ids += group[2]
        names += group[3]
        class_confidences += group[4]
    stages = tuple(times for image in images if (times := stage_times(image.get("speed"))))
    properties = tuple(found for image in images if (found := image_properties(image)))
    metadata = metadata if isinstance(metadata, dict) else {}
    return DetectionSummary(
        len(groups),
        len(confidences),
        tuple(confidences),
        tuple(areas),
        tuple(class_ids),
        tuple(names),
        tuple(class_confidences),
        stages,
        properties,
        request_params(metadata.get("params")),
        model_version(metadata),
    )


def _kept(values: dict[Any, Any], names: frozenset[str]) -> dict[str, float]:
    """The named entries that are finite numbers >= 0, as floats (in C but for the comprehension itself)."""
    return {
        name: float(value)
        for name, value in values.items()
        if name in names and type(value) in _NUMBER_TYPES and 0 <= value < _LARGEST
    }


def stage_times(speed: Any) -> dict[str, float]:
    """Milliseconds per known stage from an Ultralytics `speed` object (other keys, and non-numbers, skipped)."""
    return _kept(speed, _STAGE_NAMES) if type(speed) is dict else {}


def image_properties(image: dict[str, Any]) -> dict[str, float]:
    """Aspect ratio and megapixels from the image's `shape` [H, W], and brightness, contrast and sharpness from
    its `properties` when the app measured them."""
    measured = image.get("properties")
    found = _kept(measured, _MEASURED) if type(measured) is dict else {}
    shape = image.get("shape")
    if type(shape) is list and len(shape) >= 2:
        height, width = shape[0], shape[1]
        if (
            type(height) in _NUMBER_TYPES
            and type(width) in _NUMBER_TYPES
            and 0 < height < _LARGEST
            and 0 < width < _LARGEST
        ):
            found["aspect"] = width / height
            found["megapixels"] = width * height / 1e6
    return found


def request_params(params: Any) -> tuple[float | None, float | None, int | None] | None:
    """(conf, iou, imgsz) as the response's metadata echoes them; None when it says none of them."""
    if not isinstance(params, dict):
        return None
    conf, iou, imgsz = (_number(params.get(name)) for name in ("conf", "iou", "imgsz"))
    if conf is None and iou is None and imgsz is None:
        return None
    return conf, iou, None if imgsz is None else int(imgsz)


def version_name(name: str) -> str | None:
    """A model name as a version key: whitespace collapsed, control characters dropped, at most 128 characters."""
    if len(name) <= MAX_MODEL_CHARS and name.isprintable() and name.strip() == name and "  " not in name:
        return name or None  # the usual name, checked in C
    shown = " ".join("".join(ch for ch in name if ch.isprintable() or ch.isspace()).split())[:MAX_MODEL_CHARS]
    return shown or None


def model_version(metadata: dict[str, Any]) -> str | None:
    """The model that answered: `metadata.model`, with `@` and the first 12 characters of `metadata.modelHash`
    when the app gives one (the bundled app does: a new weights file is a new version even under the same name)."""
    name = metadata.get("model")
    if not isinstance(name, str) or not (version := version_name(name)):
        return None
    digest = metadata.get("modelHash")
    if isinstance(digest, str) and (shown := "".join(ch for ch in digest if ch.isalnum())[:12]):
        version += "@" + shown
    return version


def summarize_detections(body: bytes | str | Any) -> DetectionSummary | None:
    """From a JSON body (bytes or str) or an already-parsed value; None when it is not a detection response."""
    if isinstance(body, (bytes, bytearray, str)):
        try:
            body = orjson.loads(body)  # about 3x faster than json here, and this runs per predict response
        except orjson.JSONDecodeError:
            try:
                body = json.loads(body)  # what orjson refuses but Python's json writes (NaN, Infinity)
            except (ValueError, UnicodeDecodeError):
                return None
    if isinstance(body, dict) and isinstance(body.get("images"), list):
        images = [
            image for image in body["images"] if isinstance(image, dict) and isinstance(image.get("results"), list)
        ]
        groups = [(image["results"], image.get("shape")) for image in images]
        return summarize_results(groups, images, body.get("metadata")) if groups else None
    if isinstance(body, list) and all(_is_result(item) for item in body):
        return summarize_results([(body, None)])
    return None


MAX_REASON_CHARS = 200


def error_reason(body: bytes) -> str | None:
    """The `error` (or FastAPI's `detail`) string of a refused predict request's JSON body, one line, shortened:
    what the request log shows after the status, so a person sees why without the app's own logs."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    reason = parsed.get("error", parsed.get("detail")) if isinstance(parsed, dict) else None
    if not isinstance(reason, str) or not reason.strip():
        return None
    line = " ".join(reason.split())
    return line if len(line) <= MAX_REASON_CHARS else line[: MAX_REASON_CHARS - 1] + "…"
