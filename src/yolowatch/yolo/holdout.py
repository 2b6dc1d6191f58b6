"""Holdout mAP: a labeled holdout set run through a deployment, scored with ultralytics' own metric code.

Two ways in: through the deployment's real HTTP endpoint (so its preprocessing is part of what is
measured), or through a local model file with ultralytics' `val`. Through the endpoint, each
prediction is matched to the labels by ultralytics' `box_iou` and `BaseValidator.match_predictions`,
and AP comes from `DetMetrics` (`ap_per_class`): nothing of AP is re-derived here.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np

from yolowatch import __version__
from yolowatch.yolo.offline import prepare_ultralytics

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class HoldoutSet:
    name: str
    images: list[Path]
    labels_dir: Path
    names: dict[int, str]


def load_holdout(data_yaml: Path) -> HoldoutSet:
    """Images, labels and class names of a YOLO dataset yaml's `val` split (`test` when there is no val)."""
    import yaml

    spec = yaml.safe_load(data_yaml.read_text())
    if not isinstance(spec, dict) or not (spec.get("val") or spec.get("test")):
        raise ValueError(f"{data_yaml} has no 'val' (or 'test') split")
    root = Path(spec.get("path") or data_yaml.parent)
    if not root.is_absolute():
        root = (data_yaml.parent / root).resolve()
    images_dir = root / str(spec.get("val") or spec.get("test"))
    if not images_dir.is_dir():
        raise ValueError(f"{images_dir} (from {data_yaml}) is not a folder of images")
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"{images_dir} holds no images")
    names = spec.get("names") or {}
    names = dict(enumerate(names)) if isinstance(names, list) else {int(k): str(v) for k, v in names.items()}
    # YOLO's convention: labels mirror images with the last "images" folder of the path renamed "labels".
    parts = list(images_dir.parts)
    if "images" in parts:
        parts[len(parts) - 1 - parts[::-1].index("images")] = "labels"
    # A split folder names the set (images/val: val); a dataset with one folder of images is named by its root.
    name = images_dir.name if images_dir.name != "images" else root.name
    return HoldoutSet(name, images, Path(*parts), names)


def digest(holdout: HoldoutSet) -> str:
    """A short hash of the images and labels, so a stored score says exactly what it was measured on."""
    hasher = hashlib.sha256()
    for image in holdout.images:
        hasher.update(image.name.encode() + image.read_bytes())
        label = holdout.labels_dir / f"{image.stem}.txt"
        hasher.update(label.read_bytes() if label.exists() else b"-")
    return hasher.hexdigest()[:16]


def _labels(path: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(classes, xyxy pixel boxes) from a YOLO label file (class cx cy w h, normalized)."""
    if not path.exists():
        return np.zeros(0), np.zeros((0, 4))
    rows = np.array([line.split() for line in path.read_text().splitlines() if line.strip()], dtype=float)
    if rows.size == 0:
        return np.zeros(0), np.zeros((0, 4))
    cx, cy, w, h = rows[:, 1] * width, rows[:, 2] * height, rows[:, 3] * width, rows[:, 4] * height
    return rows[:, 0], np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def score_through_endpoint(
    holdout: HoldoutSet,
    url: str,
    imgsz: int = 640,
    conf: float = 0.01,
    headers: dict[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """mAP@0.5 and mAP@0.5:0.95 of what the endpoint answers for every holdout image."""
    prepare_ultralytics()
    import torch
    from ultralytics.engine.validator import BaseValidator
    from ultralytics.utils.metrics import DetMetrics, box_iou

    matcher = SimpleNamespace(iouv=torch.linspace(0.5, 0.95, 10))
    metrics = DetMetrics(names=holdout.names)
    started = time.monotonic()
    with httpx.Client(timeout=120, headers=headers) as client:
        for done, image in enumerate(holdout.images, start=1):
            response = client.post(
                url,
                files={"file": (image.name, image.read_bytes())},
                data={"conf": str(conf), "iou": "0.7", "imgsz": str(imgsz)},
            )
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code} for {image.name}: {response.text[:200]}")
            answer = response.json()["images"][0]
            height, width = answer["shape"]
            results = sorted(answer["results"], key=lambda r: -r["confidence"])
            pred_cls = np.array([r["class"] for r in results], dtype=float)
            pred_conf = np.array([r["confidence"] for r in results], dtype=float)
            pred_boxes = np.array([[r["box"][k] for k in ("x1", "y1", "x2", "y2")] for r in results]).reshape(-1, 4)
            true_cls, true_boxes = _labels(holdout.labels_dir / f"{image.stem}.txt", width, height)
            if len(true_cls) and len(pred_cls):
                iou = box_iou(torch.tensor(true_boxes), torch.tensor(pred_boxes))
                tp = BaseValidator.match_predictions(
                    matcher,  # type: ignore[arg-type]  # iouv is all that match_predictions reads of a validator
                    torch.tensor(pred_cls),
                    torch.tensor(true_cls),
                    iou,
                ).numpy()
            else:
                tp = np.zeros((len(pred_cls), 10), dtype=bool)
            metrics.update_stats(
                {
                    "tp": tp,
                    "conf": pred_conf,
                    "pred_cls": pred_cls,
                    "target_cls": true_cls,
                    "target_img": np.unique(true_cls),
                    "im_name": image.name,
                }
            )
            if progress is not None:
                progress(done, len(holdout.images))
    metrics.process()
    return {
        "map50": float(metrics.box.map50),
        "map50_95": float(metrics.box.map),
        "images": len(holdout.images),
        "seconds": round(time.monotonic() - started, 1),
        "args": {"imgsz": imgsz, "conf": conf, "iou": 0.7},
    }


def score_local_model(holdout_yaml: Path, weights: Path, imgsz: int = 640) -> dict[str, Any]:
    """The same figures from ultralytics' `val` on a local weights file."""
    started = time.monotonic()
    scores = val_metrics(weights, holdout_yaml, imgsz)
    return {
        "map50": scores["mAP50"],
        "map50_95": scores["mAP50-95"],
        "images": len(load_holdout(holdout_yaml).images),
        "seconds": round(time.monotonic() - started, 1),
        "args": {"imgsz": imgsz, "conf": 0.001, "iou": 0.7},
    }


def val_metrics(weights: Path, data_yaml: Path, imgsz: int, batch: int = 16) -> dict[str, float]:
    """mAP of `weights` on the yaml's val split, with pinned arguments (mAP moves with them)."""
    prepare_ultralytics()
    from ultralytics.models import YOLO

    metrics = YOLO(str(weights)).val(
        data=str(data_yaml),
        imgsz=imgsz,
        batch=batch,
        conf=0.001,
        iou=0.7,
        device="cpu",
        plots=False,
        verbose=False,
        workers=0,
        project=tempfile.gettempdir(),
        name="yolowatch-val",
        exist_ok=True,
        save_json=False,
    )
    return {"mAP50-95": float(metrics.box.map), "mAP50": float(metrics.box.map50)}


def run_details(result: dict[str, Any], data: Path) -> dict[str, Any]:
    """What makes a stored score repeatable: its arguments, how long it took, the dataset, the versions."""
    import ultralytics

    return {
        **result.pop("args"),
        "seconds": result.pop("seconds"),
        "data": str(data),
        "versions": {"yolowatch": __version__, "ultralytics": ultralytics.__version__},
    }
