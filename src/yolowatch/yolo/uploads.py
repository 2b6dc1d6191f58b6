"""Uploaded bytes to a BGR image, refusing what is not a whole, reasonably sized image.

The size is read from the header before anything is decoded, so a small file
that declares a huge canvas is refused without the allocation; `cv2.imdecode`
then does the real decoding. (The header readers are our own: Pillow's
`Image.open` is monkey-patched by ultralytics to try installing pi-heif.)
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from yolowatch.errors import RequestError

ACCEPTED_FORMATS = ("JPEG", "PNG", "BMP", "WebP", "TIFF")
ACCEPTED_TEXT = "JPEG, PNG, BMP, WebP or TIFF"


def read_image_size(data: bytes, max_pixels: int) -> tuple[str, int, int]:
    """(format, width, height) from the header alone; 415 for what no accepted format claims."""
    claimed = format_from_magic(data)
    if claimed is None:
        raise RequestError(415, f"file is not an image; send {ACCEPTED_TEXT}")
    try:
        width, height = _HEADER_READERS[claimed](data)
    except (IndexError, ValueError, struct.error):
        raise RequestError(400, f"{claimed} image is truncated or corrupt (its header cannot be read)") from None
    if width <= 0 or height <= 0:
        raise RequestError(400, f"{claimed} image header gives an empty size {width}x{height}")
    return claimed, width, height


def format_from_magic(data: bytes) -> str | None:
    """The format the first bytes claim."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"BM"):
        return "BMP"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return None


# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic), which carry the size.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while True:
        if data[i] != 0xFF:
            raise ValueError("expected a JPEG marker")
        while data[i] == 0xFF:  # fill bytes
            i += 1
        marker = data[i]
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 4 : i + 8])
            return width, height
        if marker == 0xDA:
            raise ValueError("scan data before any frame header")
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:
            i += 1
            continue
        i += 1 + struct.unpack(">H", data[i + 1 : i + 3])[0]


def _png_size(data: bytes) -> tuple[int, int]:
    if data[12:16] != b"IHDR":
        raise ValueError("PNG without IHDR")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _bmp_size(data: bytes) -> tuple[int, int]:
    if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
        return width, height
    width, height = struct.unpack("<ii", data[18:26])
    return width, abs(height)  # negative height: rows stored top-down


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise ValueError("bad VP8 start code")
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = struct.unpack("<I", data[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise ValueError("unknown WebP chunk")


def _tiff_size(data: bytes) -> tuple[int, int]:
    order = "<" if data[:2] == b"II" else ">"
    offset = struct.unpack(order + "I", data[4:8])[0]
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    found: dict[int, int] = {}
    for k in range(count):
        tag, kind, _n, value = struct.unpack(order + "HHI4s", data[offset + 2 + 12 * k : offset + 14 + 12 * k])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), value[: 2 if kind == 3 else 4])[0]
    return found[256], found[257]


def _gif_size(data: bytes) -> tuple[int, int]:
    width, height = struct.unpack("<HH", data[6:10])
    return width, height


_HEADER_READERS = {
    "JPEG": _jpeg_size,
    "PNG": _png_size,
    "BMP": _bmp_size,
    "WebP": _webp_size,
    "TIFF": _tiff_size,
    "GIF": _gif_size,
}


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
