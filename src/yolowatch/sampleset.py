"""Sampled production frames on disk: the layout, reading them back, and exporting them as an Ultralytics dataset.

`framesample.FrameSampler` writes `DIR/<deployment folder>/<YYYY-MM-DD>/<id>.<ext>` (the upload as it came) and then
`<id>.json` (the commit marker: what the model answered). This module owns that layout, so the CLI and the admin
API can read a sample directory without the sampler, and on the light install (no YAML library: data.yaml is
written by hand, in JSON-style quoting, which YAML reads the same).
"""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# <UTC YYYYmmddTHHMMSS>-<ms>-<writer: pid + random, hex>-<counter>: sorts by time, unique across processes.
SAMPLE_ID = re.compile(r"\d{8}T\d{6}-\d{3}-[0-9a-f]{1,16}-\d{6,12}")
DAY_FOLDER = re.compile(r"\d{4}-\d{2}-\d{2}")
# What the sampler keeps, by the file's magic bytes, and the content type each is served with.
MEDIA_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "bmp": "image/bmp",
    "webp": "image/webp",
    "tif": "image/tiff",
    "gif": "image/gif",
}
# What ultralytics' dataset loader reads as an image (it takes GIF for a video): other frames are not exported.
DATASET_EXTENSIONS = frozenset({"jpg", "png", "bmp", "webp", "tif"})


def deployment_dirname(deployment: str) -> str:
    """A folder name for any deployment name: a lower-case slug, plus a short hash of the name whenever the slug
    differs from it (so `Prod`, `prod/eu` and `..` never share or escape a folder, on any file system)."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", deployment.lower()).strip("-.")[:40] or "deployment"
    if slug == deployment:
        return slug
    return f"{slug}-{hashlib.sha256(deployment.encode()).hexdigest()[:8]}"


def sample_ts(sample_id: str) -> float:
    """Epoch seconds from an id's UTC stamp (to the millisecond)."""
    stamp = (int(sample_id[0:4]), int(sample_id[4:6]), int(sample_id[6:8]))
    clock = (int(sample_id[9:11]), int(sample_id[11:13]), int(sample_id[13:15]))
    return calendar.timegm((*stamp, *clock, 0, 0, 0)) + int(sample_id[16:19]) / 1000


def day_of(sample_id: str) -> str:
    """The day folder a sample lives in (its UTC date)."""
    return f"{sample_id[0:4]}-{sample_id[4:6]}-{sample_id[6:8]}"


def day_folder(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


@dataclass(frozen=True)
class SampleInfo:
    """One kept frame, as its json describes it."""

    id: str
    deployment: str
    ts: float
    rule: str
    model: str | None
    params: dict[str, Any]
    width: int
    height: int
    normalized: bool  # boxes in 0-1 (the request asked `normalize=true`) rather than pixels
    detections: tuple[dict[str, Any], ...]
    names: dict[int, str]  # class id -> name, as the model named them
    image_bytes: int
    image: Path
    record: Path  # the json

    @property
    def classes(self) -> frozenset[str]:
        return frozenset(str(d.get("name")) for d in self.detections)


def list_samples(
    directory: Path,
    *,
    deployment: str | None = None,
    since: float | None = None,
    until: float | None = None,
    rule: str | None = None,
    class_name: str | None = None,
) -> list[SampleInfo]:
    """The committed frames under `directory` (those with a readable json and their image), oldest first.

    `since` <= ts < `until` (epoch seconds); `class_name`: frames with at least one detection of that class.
    """
    found = []
    for day in _day_folders(Path(directory), deployment, since, until):
        try:
            names = set(os.listdir(day))
        except (FileNotFoundError, NotADirectoryError):  # deleted meanwhile (retention)
            continue
        for name in names:
            sample_id, _, suffix = name.partition(".")
            if suffix != "json" or not SAMPLE_ID.fullmatch(sample_id):
                continue
            stamp = sample_ts(sample_id)  # the id's time, to the millisecond: skip without reading what is outside
            if (since is not None and stamp + 0.001 < since) or (until is not None and stamp >= until):
                continue
            info = _read_record(day, name, names)
            if info is None or (deployment is not None and info.deployment != deployment):
                continue
            if (since is not None and info.ts < since) or (until is not None and info.ts >= until):
                continue
            if (rule is not None and info.rule != rule) or (class_name is not None and class_name not in info.classes):
                continue
            found.append(info)
    found.sort(key=lambda info: (info.ts, info.id))
    return found


def _day_folders(directory: Path, deployment: str | None, since: float | None, until: float | None) -> Iterator[Path]:
    """Day folders that may hold frames in [since, until): whole days outside it are not even listed."""
    if deployment is not None:
        folders = [directory / deployment_dirname(deployment)]
    else:
        try:
            folders = [Path(entry.path) for entry in os.scandir(directory) if entry.is_dir()]
        except (FileNotFoundError, NotADirectoryError):
            return
    first = day_folder(since) if since is not None else ""
    last = day_folder(until) if until is not None else "~"
    for folder in folders:
        try:
            days = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            continue
        yield from (folder / day for day in days if DAY_FOLDER.fullmatch(day) and first <= day <= last)


def _read_record(day: Path, name: str, listed: set[str]) -> SampleInfo | None:
    """A frame's json as a SampleInfo; None when it cannot be read, lacks a field, or its image is not in the folder
    (`listed`: the folder's names)."""
    try:
        with open(os.path.join(day, name), "rb") as file:
            record = json.load(file)
        image = str(record["image"])
        if image not in listed or not image.startswith(name.partition(".")[0] + "."):
            return None
        names = record.get("names") or {}
        sample_id = name.partition(".")[0]  # the file's (its shape checked by the caller), never the json's say
        if str(record["id"]) != sample_id:
            return None
        return SampleInfo(
            id=sample_id,
            deployment=str(record["deployment"]),
            ts=float(record["ts"]),
            rule=str(record["rule"]),
            model=None if record.get("model") is None else str(record["model"]),
            params=dict(record.get("params") or {}),
            width=int(record["width"]),
            height=int(record["height"]),
            normalized=record.get("boxes") == "normalized",
            detections=tuple(d for d in record.get("detections") or () if isinstance(d, dict)),
            names={int(k): str(v) for k, v in names.items()},
            image_bytes=int(record.get("bytes", 0)),
            image=day / image,
            record=day / name,
        )
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


@dataclass(frozen=True)
class SampleSummary:
    """Counts of kept frames: in all, by deployment and rule, by rule; their image bytes; the time they span."""

    frames: int
    image_bytes: int
    oldest: float | None
    newest: float | None
    by_rule: dict[str, int]
    by_deployment: dict[str, dict[str, int]] = field(default_factory=dict)


def summary(samples: Iterable[SampleInfo]) -> SampleSummary:
    """`summary(list_samples(dir, ...))`: what `yolowatch samples list` prints."""
    samples = list(samples)
    by_deployment: dict[str, Counter[str]] = {}
    for info in samples:
        by_deployment.setdefault(info.deployment, Counter())[info.rule] += 1
    return SampleSummary(
        frames=len(samples),
        image_bytes=sum(info.image_bytes for info in samples),
        oldest=min((info.ts for info in samples), default=None),
        newest=max((info.ts for info in samples), default=None),
        by_rule=dict(Counter(info.rule for info in samples)),
        by_deployment={name: dict(counts) for name, counts in sorted(by_deployment.items())},
    )


def sample_image(directory: Path, deployment: str, sample_id: str) -> Path | None:
    """The image of a committed frame, for the admin API; None for an unknown id or anything that is no id (so no
    `..` or separator can ever reach the path)."""
    if not SAMPLE_ID.fullmatch(sample_id):
        return None
    folder = Path(directory) / deployment_dirname(deployment) / day_of(sample_id)
    if not (folder / f"{sample_id}.json").is_file():
        return None
    for extension in MEDIA_TYPES:
        path = folder / f"{sample_id}.{extension}"
        if path.is_file():
            return path
    return None


# Exporting: the frames as an Ultralytics detection dataset, their detections as the labels.


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    data_yaml: Path
    frames: int  # images written
    boxes: int  # label lines written
    names: dict[int, str]
    skipped: dict[str, str] = field(default_factory=dict)  # sample id -> why it was not exported


def label_lines(detections: Iterable[Mapping[str, Any]], width: int, height: int, normalized: bool) -> list[str]:
    """YOLO label lines (`cls cx cy w h`, 0-1, 6 decimals) from contract detections in pixels or already normalized;
    boxes are clipped to the image, and a detection without a class id or with no area left is left out."""
    sx, sy = (1.0, 1.0) if normalized else (1.0 / width, 1.0 / height)
    lines = []
    for detection in detections:
        cls, box = detection.get("class"), detection.get("box")
        if not isinstance(cls, int) or isinstance(cls, bool) or cls < 0 or not isinstance(box, Mapping):
            continue
        try:
            x1, y1, x2, y2 = (float(box[key]) for key in ("x1", "y1", "x2", "y2"))
        except (KeyError, TypeError, ValueError):
            continue
        left, right = _unit(min(x1, x2) * sx), _unit(max(x1, x2) * sx)
        top, bottom = _unit(min(y1, y2) * sy), _unit(max(y1, y2) * sy)
        if right <= left or bottom <= top:
            continue
        cx, cy, w, h = (left + right) / 2, (top + bottom) / 2, right - left, bottom - top
        lines.append(f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


def _unit(value: float) -> float:
    return min(1.0, max(0.0, value))


def class_names(samples: Iterable[SampleInfo], names: Mapping[int, str] | None = None) -> dict[int, str]:
    """One class map for the frames: the union of theirs (ValueError where two frames name one id differently),
    `names` over it, and `class<N>` for every id up to the highest that nothing names."""
    merged: dict[int, str] = {}
    source: dict[int, SampleInfo] = {}
    for info in samples:
        pairs = list(info.names.items())
        pairs += [(d["class"], str(d.get("name"))) for d in info.detections if isinstance(d.get("class"), int)]
        for cls, name in pairs:
            if cls in merged and merged[cls] != name and (names is None or cls not in names):
                first = source[cls]
                raise ValueError(
                    f"class {cls} is {merged[cls]!r} in frame {first.id} (model {first.model}) but {name!r} in frame "
                    f"{info.id} (model {info.model}): export one model's frames at a time, or pass the names to use"
                )
            merged.setdefault(cls, name)
            source.setdefault(cls, info)
    merged.update(names or {})
    if not merged:
        return {}
    return {cls: merged.get(cls, f"class{cls}") for cls in range(max(merged) + 1)}


def export_dataset(
    samples: Iterable[SampleInfo], out: Path, *, names: Mapping[int, str] | None = None, overwrite: bool = False
) -> ExportResult:
    """Write `out/images/<id>.<ext>`, `out/labels/<id>.txt`, `out/data.yaml` (train and val: the images) and
    `out/samples.json` (where each frame came from). A non-empty `out` is refused unless `overwrite`, which replaces
    only what an export writes there."""
    samples = list(samples)
    classes = class_names(samples, names)
    out = Path(out).resolve()
    _prepare(out, overwrite)
    images, labels = out / "images", out / "labels"
    images.mkdir(parents=True)
    labels.mkdir()
    skipped: dict[str, str] = {}
    exported, boxes = [], 0
    for info in samples:
        extension = info.image.suffix.lstrip(".")
        if extension not in DATASET_EXTENSIONS:
            skipped[info.id] = f"{extension} is not an image format ultralytics trains on"
            continue
        try:
            shutil.copyfile(info.image, images / info.image.name)
        except FileNotFoundError:
            skipped[info.id] = "its image was deleted (retention or the disk cap) after it was listed"
            continue
        lines = label_lines(info.detections, info.width, info.height, info.normalized)
        (labels / f"{info.id}.txt").write_text("".join(line + "\n" for line in lines))
        boxes += len(lines)
        exported.append(
            {
                "id": info.id,
                "ts": info.ts,
                "rule": info.rule,
                "deployment": info.deployment,
                "model": info.model,
                "image": f"images/{info.image.name}",
                "labels": len(lines),
                "source": str(info.record),
            }
        )
    data_yaml = out / "data.yaml"
    data_yaml.write_text(_data_yaml(out, classes, len(exported)))
    (out / "samples.json").write_text(json.dumps({"frames": exported, "skipped": skipped}, indent=1) + "\n")
    return ExportResult(out, data_yaml, len(exported), boxes, classes, skipped)


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a folder: give a new or empty folder to export to")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty: give a new or empty folder, or overwrite it")
        for name in ("images", "labels"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in ("data.yaml", "samples.json", "labels.cache", "images.cache"):  # *.cache: ultralytics' own
            (out / name).unlink(missing_ok=True)


def _data_yaml(out: Path, classes: Mapping[int, str], frames: int) -> str:
    """YAML by hand: JSON strings are YAML double-quoted scalars, so any path or class name round-trips."""
    lines = [
        f"# {frames} production frames sampled by yolowatch; the labels are the model's own detections (pseudo-labels)",
        f"path: {json.dumps(str(out))}",
        "train: images",
        "val: images",
        "names:" if classes else "names: {}",
        *(f"  {cls}: {json.dumps(name)}" for cls, name in sorted(classes.items())),
    ]
    return "\n".join(lines) + "\n"
