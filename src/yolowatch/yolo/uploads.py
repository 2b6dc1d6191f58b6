"""Uploaded bytes to a BGR image, refusing what is not a whole, reasonably sized image.

The size is read from the header before anything is decoded, so a small file
that declares a huge canvas is refused without the allocation; `cv2.imdecode`
then does the real decoding. (The header readers are our own, in `framesample`, which the sampler shares:
Pillow's `Image.open` is monkey-patched by ultralytics to try installing pi-heif.)
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from yolowatch.errors import RequestError
from yolowatch.framesample import header_size, image_extension

ACCEPTED_FORMATS = ("JPEG", "PNG", "BMP", "WebP", "TIFF")
# framesample's header readers name formats by their file extension; messages name them as people do.
FORMAT_NAMES = {"jpg": "JPEG", "png": "PNG", "bmp": "BMP", "webp": "WebP", "tif": "TIFF", "gif": "GIF"}
ACCEPTED_TEXT = "JPEG, PNG, BMP, WebP or TIFF"


def read_image_size(data: bytes, max_pixels: int) -> tuple[str, int, int]:
    """(format, width, height) from the header alone; 415 for what no accepted format claims."""
    extension = image_extension(data)
    if extension is None:
        raise RequestError(415, f"file is not an image; send {ACCEPTED_TEXT}")
    claimed = FORMAT_NAMES[extension]
    try:
        width, height = header_size(data, extension)
    except (IndexError, KeyError, ValueError, struct.error):
        raise RequestError(400, f"{claimed} image is truncated or corrupt (its header cannot be read)") from None
    if width <= 0 or height <= 0:
        raise RequestError(400, f"{claimed} image header gives an empty size {width}x{height}")
    return claimed, width, height


def is_complete(data: bytes, image_format: str) -> bool:
    """Whether the file ends where its format says it ends (decoders often fill truncated files with grey)."""
    if image_format == "JPEG":
        return data.find(b"\xff\xd9", max(0, len(data) - 4096)) != -1
    if image_format == "PNG":
        return data.find(b"IEND", max(0, len(data) - 1024)) != -1
    if image_format == "BMP" and len(data) >= 6:
        return len(data) >= int.from_bytes(data[2:6], "little")
    if image_format == "WebP" and len(data) >= 8:
        return len(data) >= int.from_bytes(data[4:8], "little") + 8
    return True  # TIFF: no cheap end marker; imdecode returns None for what it cannot read


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Validate and decode; raises RequestError with the status the predict contract gives each case."""
    if not data:
        raise RequestError(400, "file is empty")
    image_format, width, height = read_image_size(data, max_pixels)
    if image_format not in ACCEPTED_FORMATS:
        raise RequestError(415, f"image format {image_format} is not supported; send {ACCEPTED_TEXT}")
    if width * height > max_pixels:
        raise RequestError(
            413, f"image is {width}x{height} = {width * height:,} pixels; the limit is {max_pixels:,} pixels"
        )
    if not is_complete(data, image_format):
        raise RequestError(400, f"{image_format} image is truncated (the file ends early)")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise RequestError(415, f"{image_format} image could not be decoded")
    return image
