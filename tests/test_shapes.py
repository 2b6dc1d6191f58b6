"""The synthetic dataset is deterministic, correctly labelled, and its drifted split really drifts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from yolowatch.demo.shapes import CLASS_NAMES, dataset_digest, generate_dataset, sample_image

SMALL = {"train": 6, "val": 4, "holdout": 8, "holdout-drifted": 8}


def _read_labels(path: Path) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines()]


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    """Two generations with one seed are byte-identical; another seed differs."""
    generate_dataset(tmp_path / "a", seed=3, counts=SMALL)
    generate_dataset(tmp_path / "b", seed=3, counts=SMALL)
    generate_dataset(tmp_path / "c", seed=4, counts=SMALL)
    for split in SMALL:
        assert dataset_digest(tmp_path / "a", split) == dataset_digest(tmp_path / "b", split)
        assert dataset_digest(tmp_path / "a", split) != dataset_digest(tmp_path / "c", split)


def test_layout_and_labels_are_valid_yolo(tmp_path: Path) -> None:
    """Every image has a label file of normalized boxes inside the image, classes in range."""
    data_yaml = generate_dataset(tmp_path, counts=SMALL)
    text = data_yaml.read_text()
    assert "train: images/train" in text and "val: images/val" in text
    assert "val: images/holdout-drifted" in (tmp_path / "holdout-drifted.yaml").read_text()
    for split, count in SMALL.items():
        images = sorted((tmp_path / "images" / split).glob("*.jpg"))
        assert len(images) == count
        for image_path in images:
            rows = _read_labels(tmp_path / "labels" / split / f"{image_path.stem}.txt")
            assert 1 <= len(rows) <= 6
            for cls, cx, cy, w, h in rows:
                assert int(cls) in range(len(CLASS_NAMES))
                assert 0 < w <= 1 and 0 < h <= 1
                assert cx - w / 2 >= 0 and cx + w / 2 <= 1 and cy - h / 2 >= 0 and cy + h / 2 <= 1


def test_sample_image_is_the_dataset_image(tmp_path: Path) -> None:
    """sample_image returns the same bytes as the written dataset file."""
    generate_dataset(tmp_path, counts=SMALL)
    data, boxes = sample_image(seed=0, split="val", index=2)
    assert data == (tmp_path / "images" / "val" / "val_00002.jpg").read_bytes()
    assert len(boxes) == len(_read_labels(tmp_path / "labels" / "val" / "val_00002.txt"))


def test_drifted_holdout_is_darker_and_has_smaller_objects(tmp_path: Path) -> None:
    """The drifted split is darker and its boxes smaller than the clean holdout's."""
    generate_dataset(tmp_path, counts=SMALL)

    def stats(split: str) -> tuple[float, float]:
        brightness = [float(cv2.imread(str(p)).mean()) for p in sorted((tmp_path / "images" / split).glob("*.jpg"))]
        areas = [
            w * h for p in sorted((tmp_path / "labels" / split).glob("*.txt")) for _, _, _, w, h in _read_labels(p)
        ]
        return float(np.mean(brightness)), float(np.median(areas))

    clean_brightness, clean_area = stats("holdout")
    drifted_brightness, drifted_area = stats("holdout-drifted")
    assert drifted_brightness < 0.7 * clean_brightness
    assert drifted_area < 0.6 * clean_area
