"""What measuring an image's properties costs next to predicting on it: the budget is 2 % at imgsz 640.

Loads the bundled demo model through ultralytics (offline) and, image by image in interleaved rounds, does
what the bundled app does with an upload: decodes the JPEG, measures `image_properties` on the decoded image,
then `model.predict(image, imgsz=640)` (letterbox, inference, NMS). The ratio is properties over predict alone
(the app's per-image time also has decoding and JSON, so the ratio printed errs high). For comparison it also
times the same three properties at full resolution without shrinking (gray, float64 Laplacian). Prints medians.

    python benchmarks/image_properties.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import cv2
import numpy as np

from yolowatch.config import default_model_path
from yolowatch.demo.shapes import sample_image
from yolowatch.yolo.imagestats import image_properties
from yolowatch.yolo.offline import prepare_ultralytics

BUDGET_PERCENT = 2.0


def _decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit("OpenCV could not decode a benchmark image")
    return image


def _images() -> list[tuple[str, np.ndarray, bool]]:
    """(name, BGR image, within the budget's scope); the 4K row shows where the shrinking pays off."""
    from ultralytics.utils import ASSETS

    zidane = _decode((ASSETS / "zidane.jpg").read_bytes())  # a real 1280x720 photo
    return [
        ("shapes normal", _decode(sample_image(0, "holdout", 0)[0]), True),
        ("shapes drifted", _decode(sample_image(0, "holdout-drifted", 0)[0]), True),
        ("bus.jpg", _decode((ASSETS / "bus.jpg").read_bytes()), True),
        ("zidane.jpg", zidane, True),
        ("zidane upscaled", cv2.resize(zidane, (1920, 1080), interpolation=cv2.INTER_CUBIC), True),
        ("zidane upscaled", cv2.resize(zidane, (3840, 2160), interpolation=cv2.INTER_CUBIC), False),
    ]


def full_resolution_properties(image: np.ndarray) -> dict[str, float]:
    """The straightforward version, for comparison: every pixel, float64 Laplacian."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    mean, std = cv2.meanStdDev(gray)
    _, laplacian_std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_64F))
    return {"brightness": float(mean[0, 0]), "contrast": float(std[0, 0]), "sharpness": float(laplacian_std[0, 0]) ** 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds over all images (default 30)")
    args = parser.parse_args()

    prepare_ultralytics()
    import torch
    from ultralytics.models import YOLO

    model = YOLO(str(default_model_path()))
    images = _images()
    uploads = [cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes() for _, image, _ in images]
    timings: list[dict[str, list[float]]] = [
        {"decode": [], "properties": [], "full": [], "predict": []} for _ in images
    ]
    for round_index in range(args.rounds + 3):  # 3 warm-up rounds, not counted
        for upload, times in zip(uploads, timings, strict=True):
            started = time.perf_counter_ns()
            image = _decode(upload)
            decoded = time.perf_counter_ns()
            image_properties(image)  # right after decoding, on the same thread, as the app does
            measured = time.perf_counter_ns()
            full_resolution_properties(image)
            full = time.perf_counter_ns()
            model.predict(image, imgsz=640, verbose=False)
            predicted = time.perf_counter_ns()
            if round_index >= 3:
                for name, (begin, end) in {
                    "decode": (started, decoded),
                    "properties": (decoded, measured),
                    "full": (measured, full),
                    "predict": (full, predicted),
                }.items():
                    times[name].append(max(0, end - begin) / 1e6)

    print(f"cpus={os.cpu_count()} torch threads={torch.get_num_threads()} rounds={args.rounds} imgsz=640")
    print(
        f"{'image':<17}{'size':>11}{'decode ms':>11}{'predict ms':>12}{'properties ms':>15}{'ratio %':>9}"
        f"{'full-res ms':>13}{'ratio %':>9}  properties"
    )
    worst = 0.0
    for (name, image, budgeted), times in zip(images, timings, strict=True):
        medians = {stage: statistics.median(values) for stage, values in times.items()}
        ratio = 100 * medians["properties"] / medians["predict"]
        if budgeted:
            worst = max(worst, ratio)
        size = f"{image.shape[1]}x{image.shape[0]}"
        print(
            f"{name:<17}{size:>11}{medians['decode']:>11.2f}{medians['predict']:>12.1f}{medians['properties']:>15.3f}"
            f"{ratio:>9.2f}{medians['full']:>13.3f}{100 * medians['full'] / medians['predict']:>9.2f}"
            f"  {image_properties(image)}" + ("" if budgeted else "  (beyond the budget's sizes)")
        )
    verdict = "within" if worst <= BUDGET_PERCENT else "OVER"
    print(f"worst ratio up to 1920x1080: {worst:.2f} % ({verdict} the {BUDGET_PERCENT:g} % budget)")


if __name__ == "__main__":
    main()
