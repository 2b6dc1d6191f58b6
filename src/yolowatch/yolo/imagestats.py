"""Image properties of a decoded upload, for drift detection: brightness, contrast, sharpness.

A model fails quietly when its camera changes, long before its detections say why. Each property catches one way:

- brightness, the mean gray level (0-255): under- or over-exposure, night, a lamp gone, auto-exposure stuck;
- contrast, the standard deviation of gray levels: a washed-out, fogged or low-contrast camera, a dirty lens;
- sharpness, the variance of the Laplacian: focus loss, motion blur, heavy compression or upscaled images.

Resolution and aspect ratio come from the image's shape and need no pixels. Part of the `yolo` extra (OpenCV).
"""

from __future__ import annotations

import cv2
import numpy as np

from yolowatch.errors import RequestError
from yolowatch.yolo.uploads import decode_image

# The long side the properties are measured at: the default imgsz, the scale the model sees the image at.
MEASURE_LONG_SIDE = 640


def image_properties(image: np.ndarray) -> dict[str, float]:
    """Brightness, contrast and sharpness of a decoded uint8 image (BGR, grayscale or BGRA), rounded to 3 decimals.

    An image whose long side exceeds 640 px is first shrunk to 640 the way ultralytics' letterbox shrinks it for
    imgsz 640 (bilinear), so it is measured as the model sees it, in about a millisecond at 1920x1080; smaller
    images are measured as they are. Sharpness is therefore the sharpness of the model's input: comparable
    between images of one source, which is what drift needs, but not an absolute figure of the camera. Bilinear
    shrinking keeps some aliasing, so the same scene at another resolution can read differently (a photo at
    1920x1080 read 1.6x its 1280x720 value); a change of resolution shows in the shape as well.
    """
    gray = _gray(_shrink(_checked(image), MEASURE_LONG_SIDE))
    mean, std = cv2.meanStdDev(gray)
    # 16-bit is exact here (a 3x3 Laplacian of 0-255 values stays within +-1020) and faster than float.
    _, laplacian_std = cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_16S))
    return {
        "brightness": round(float(mean[0, 0]), 3),
        "contrast": round(float(std[0, 0]), 3),
        "sharpness": round(float(laplacian_std[0, 0]) ** 2, 3),
    }


def _checked(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.size == 0:
        raise ValueError(f"expected a non-empty uint8 image, got dtype {image.dtype} and shape {image.shape}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4)):
        return image
    raise ValueError(f"expected an HxW, HxWx3 (BGR) or HxWx4 (BGRA) image, got shape {image.shape}")


def _shrink(image: np.ndarray, long_side: int) -> np.ndarray:
    """Bilinear down to `long_side`, sized as ultralytics' LetterBox sizes it. Shrinking the colour image before
    converting to gray costs less than after (a fifth less at 1920x1080); INTER_AREA would cost 2-4x more."""
    height, width = image.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR))


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    channels = image.shape[2]
    if channels == 1:
        return np.ascontiguousarray(image[:, :, 0])
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if channels == 3 else cv2.COLOR_BGRA2GRAY))


def measure_upload(data: bytes, max_pixels: int) -> dict[str, float] | None:
    """An uploaded file's properties (what the sidecar measures of a sample of the uploads it relays; the aspect
    ratio and size come with every response's `shape`); None for what is not a whole, accepted image (the
    upstream judged it already)."""
    try:
        return image_properties(decode_image(data, max_pixels))
    except RequestError:
        return None
