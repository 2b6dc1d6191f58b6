"""A deterministic synthetic detection dataset: coloured shapes on noisy, textured backgrounds.

The demo model is trained on it (no pretrained weights can be downloaded), the
tests and the traffic generator send its images, and its *drifted* holdout split
renders the same scenes darker, blurrier, smaller and in other colours so that
drift and a holdout-mAP drop can be shown for real.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star")

# Split name -> (count, scene-seed stream). The drifted holdout reuses the holdout's
# seed stream, so each of its images is the same scene as its clean twin.
DEFAULT_COUNTS: dict[str, int] = {"train": 1200, "val": 200, "holdout": 200, "holdout-drifted": 200}
_SEED_STREAM = {"train": 0, "val": 1, "holdout": 2, "holdout-drifted": 2}


@dataclass(frozen=True)
class SceneStyle:
    """How a scene is rendered; the default is the clean training distribution."""

    brightness: float = 1.0
    blur_sigma: float = 0.0
    size_scale: float = 1.0
    hue_shift: int = 0  # OpenCV hue units (0-179)
    saturation_scale: float = 1.0


CLEAN = SceneStyle()
DRIFTED = SceneStyle(brightness=0.55, blur_sigma=1.6, size_scale=0.6, hue_shift=45, saturation_scale=0.6)


@dataclass(frozen=True)
class Box:
    """One labelled object, in pixels."""

    cls: int
    x1: float
    y1: float
    x2: float
    y2: float

    def yolo_line(self, width: int, height: int) -> str:
        cx = (self.x1 + self.x2) / 2 / width
        cy = (self.y1 + self.y2) / 2 / height
        w = (self.x2 - self.x1) / width
        h = (self.y2 - self.y1) / height
        return f"{self.cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def style_for_split(split: str) -> SceneStyle:
    return DRIFTED if split.endswith("-drifted") else CLEAN


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """One independent, reproducible stream per image."""
    return np.random.default_rng([seed, _SEED_STREAM[split], index])


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    # Low-frequency colour field, muted so objects stand out by saturation and shape.
    coarse = rng.uniform(40, 190, size=(4, 4, 3)).astype(np.float32)
    grey = coarse.mean(axis=2, keepdims=True)
    coarse = grey + 0.35 * (coarse - grey)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    # Texture: a few thin lines and grain.
    for _ in range(int(rng.integers(3, 9))):
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        shade = float(rng.uniform(30, 200))
        cv2.line(image, p1, p2, (shade, shade, shade), int(rng.integers(1, 3)), cv2.LINE_AA)
    image += rng.normal(0, rng.uniform(4, 14), size=image.shape).astype(np.float32)
    return np.asarray(image)


def _object_colour(rng: np.random.Generator, style: SceneStyle) -> tuple[float, float, float]:
    hue = (int(rng.integers(0, 180)) + style.hue_shift) % 180
    sat = min(255, int(rng.integers(150, 256) * style.saturation_scale))
    val = int(rng.integers(160, 256))
    hsv = np.array([[[hue, sat, val]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return float(b), float(g), float(r)


def _polygon(cls: int, cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    if cls == 1:  # square
        corners = [angle + math.pi / 4 + k * math.pi / 2 for k in range(4)]
        pts = [(cx + radius * math.cos(a), cy + radius * math.sin(a)) for a in corners]
    elif cls == 2:  # triangle
        corners = [angle + k * 2 * math.pi / 3 for k in range(3)]
        pts = [(cx + radius * math.cos(a), cy + radius * math.sin(a)) for a in corners]
    else:  # star
        pts = []
        for k in range(10):
            r = radius if k % 2 == 0 else radius * 0.45
            a = angle + k * math.pi / 5
            pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return np.array(pts, dtype=np.float64)


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


def render_scene(
    rng: np.random.Generator, style: SceneStyle = CLEAN, height: int = 320, width: int = 320
) -> tuple[np.ndarray, list[Box]]:
    """Draw one scene; returns a BGR uint8 image and its boxes."""
    image = _background(rng, height, width)
    boxes: list[Box] = []
    side = min(height, width)
    for _ in range(int(rng.integers(1, 7))):
        for _attempt in range(30):
            cls = int(rng.integers(0, len(CLASS_NAMES)))
            radius = rng.uniform(0.05, 0.17) * side * style.size_scale
            cx = rng.uniform(radius + 2, width - radius - 2)
            cy = rng.uniform(radius + 2, height - radius - 2)
            angle = rng.uniform(0, 2 * math.pi)
            colour = _object_colour(rng, style)
            if cls == 0:
                box = Box(cls, cx - radius, cy - radius, cx + radius, cy + radius)
            else:
                pts = _polygon(cls, cx, cy, radius, angle)
                (x1, y1), (x2, y2) = pts.min(axis=0), pts.max(axis=0)
                box = Box(cls, float(x1), float(y1), float(x2), float(y2))
            if all(_iou(box, other) < 0.05 for other in boxes):
                break
        else:
            continue
        if cls == 0:
            cv2.circle(image, (round(cx * 16), round(cy * 16)), round(radius * 16), colour, -1, cv2.LINE_AA, 4)
        else:
            cv2.fillPoly(image, [np.round(pts * 16).astype(np.int32)], colour, cv2.LINE_AA, 4)
        boxes.append(box)
    image *= style.brightness
    if style.blur_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), style.blur_sigma)
    return np.clip(image, 0, 255).astype(np.uint8), boxes


def encode_jpeg(image: np.ndarray, quality: int = 92) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode the scene as JPEG")
    return buf.tobytes()


def sample_image(seed: int = 0, split: str = "val", index: int = 0) -> tuple[bytes, list[Box]]:
    """One dataset image as JPEG bytes, without writing a dataset."""
    image, boxes = render_scene(scene_rng(seed, split, index), style_for_split(split))
    return encode_jpeg(image), boxes


def _data_yaml(root: Path, val_split: str) -> str:
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(CLASS_NAMES))
    return f"path: {root.resolve()}\ntrain: images/train\nval: images/{val_split}\nnames:\n{names}\n"


def generate_dataset(
    root: Path,
    seed: int = 0,
    counts: dict[str, int] | None = None,
) -> Path:
    """Write images, YOLO labels and dataset yamls under `root`; returns data.yaml.

    Besides data.yaml (train + val) it writes holdout.yaml and holdout-drifted.yaml
    (val = that split), ready for `model.val(data=...)`.
    """
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    for split, count in counts.items():
        image_dir = root / "images" / split
        label_dir = root / "labels" / split
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        style = style_for_split(split)
        for index in range(count):
            image, boxes = render_scene(scene_rng(seed, split, index), style)
            stem = f"{split}_{index:05d}"
            (image_dir / f"{stem}.jpg").write_bytes(encode_jpeg(image))
            h, w = image.shape[:2]
            (label_dir / f"{stem}.txt").write_text("".join(b.yolo_line(w, h) + "\n" for b in boxes))
    (root / "data.yaml").write_text(_data_yaml(root, "val"))
    for split in counts:
        if split.startswith("holdout"):
            (root / f"{split}.yaml").write_text(_data_yaml(root, split))
    return root / "data.yaml"


def dataset_digest(root: Path, split: str) -> str:
    """SHA-256 over a split's images and labels, so a holdout result names exactly what it measured."""
    digest = hashlib.sha256()
    for sub in ("images", "labels"):
        for path in sorted((root / sub / split).iterdir()):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()
