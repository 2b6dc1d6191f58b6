"""Real image files for tests, made with OpenCV, Pillow and zlib (no fixtures on disk)."""

from __future__ import annotations

import importlib.util
import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from yolowatch.demo.shapes import Box, sample_image


def shapes_jpeg(index: int = 0, split: str = "val") -> tuple[bytes, list[Box]]:
    return sample_image(seed=0, split=split, index=index)


def encode(image: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def shapes_png(index: int = 0) -> bytes:
    jpeg, _ = shapes_jpeg(index)
    return encode(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), ".png")


def gif_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (255, 0, 0)).save(out, format="GIF")
    return out.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid greyscale PNG of width*height black pixels that compresses to well under a megabyte."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def ultralytics_asset(name: str) -> Path:
    """One of the real photos ultralytics ships (bus.jpg, zidane.jpg)."""
    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "assets" / name
