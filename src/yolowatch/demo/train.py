"""Train the demo model from a model yaml on the synthetic shapes dataset, on the CPU, offline."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from yolowatch.demo.shapes import DEFAULT_COUNTS, generate_dataset
from yolowatch.yolo.holdout import val_metrics
from yolowatch.yolo.offline import prepare_ultralytics

DEMO_DIR = Path(__file__).parent
DEMO_WEIGHTS = DEMO_DIR / "shapes-yolo.pt"
DEMO_CARD = DEMO_DIR / "shapes-yolo.json"
MODEL_YAML = "yolo11n.yaml"  # ships inside ultralytics; builds random weights, needs no download


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the demo model; recorded beside the weights."""

    epochs: int = 25
    imgsz: int = 320
    batch: int = 16
    seed: int = 0
    data_seed: int = 0
    train_images: int = 800
    model_yaml: str = MODEL_YAML
    workers: int = 2


def train_demo_model(out: Path, data_dir: Path, config: TrainConfig = TrainConfig()) -> dict[str, Any]:
    """Generate the dataset (if absent), train, copy the best weights to `out`, return the model card."""
    prepare_ultralytics()
    os.environ.pop("ULTRALYTICS_API_KEY", None)  # never stream a demo run to a hosted platform
    from ultralytics.models import YOLO

    data_yaml = data_dir / "data.yaml"
    if not data_yaml.exists():
        counts = dict(DEFAULT_COUNTS, train=config.train_images)
        generate_dataset(data_dir, seed=config.data_seed, counts=counts)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="yolowatch-train-") as runs:
        model = YOLO(config.model_yaml)
        model.train(
            data=str(data_yaml),
            epochs=config.epochs,
            imgsz=config.imgsz,
            batch=config.batch,
            seed=config.seed,
            deterministic=True,
            device="cpu",
            workers=config.workers,
            plots=False,
            amp=False,
            project=runs,
            name="demo",
            exist_ok=True,
            verbose=False,
            scale=0.75,
            fliplr=0.5,
            mosaic=1.0,
            close_mosaic=5,
            patience=0,
        )
        best = Path(runs) / "demo" / "weights" / "best.pt"
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best, out)
    train_seconds = time.perf_counter() - started

    card = {
        "model": out.name,
        "classes": list(YOLO(str(out)).names.values()),
        "train": asdict(config),
        "trainSeconds": round(train_seconds, 1),
        "val": {f"imgsz{size}": val_metrics(out, data_yaml, size) for size in (config.imgsz, 640)},
        "holdout": {
            split: val_metrics(out, data_dir / f"{split}.yaml", config.imgsz)
            for split in ("holdout", "holdout-drifted")
            if (data_dir / f"{split}.yaml").exists()
        },
        "cpu": os.cpu_count(),
    }
    out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return card
