"""Upload validation: each kind of bad file gets its own status and message."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from images import encode, gif_bytes, png_bomb, shapes_jpeg, shapes_png
from yolowatch.errors import RequestError
from yolowatch.yolo.uploads import decode_image, is_complete, read_image_size


def test_decodes_a_jpeg_to_bgr_pixels() -> None:
    """A whole JPEG decodes to the same pixels OpenCV gives."""
    data, _ = shapes_jpeg()
    image = decode_image(data, max_pixels=10**6)
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (320, 320, 3)
    assert np.array_equal(image, expected)


@pytest.mark.parametrize("ext", [".png", ".bmp", ".webp", ".tiff"])
def test_decodes_other_accepted_formats(ext: str) -> None:
    """PNG, BMP, WebP and TIFF are accepted."""
    image = np.full((40, 60, 3), 90, dtype=np.uint8)
    assert decode_image(encode(image, ext), max_pixels=10**6).shape == (40, 60, 3)


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"", 400, "empty"),
        (b"hello, I am plain text and not a picture", 415, "not an image"),
        (gif_bytes(), 415, "GIF is not supported"),
        (shapes_jpeg()[0][:5000], 400, "truncated"),
        (shapes_png()[:-200], 400, "truncated"),
        (encode(np.zeros((30, 30, 3), np.uint8), ".bmp")[:-100], 400, "truncated"),
        (encode(np.zeros((30, 30, 3), np.uint8), ".webp")[:-10], 400, "truncated"),
    ],
    ids=["empty", "text", "gif", "truncated-jpeg", "truncated-png", "truncated-bmp", "truncated-webp"],
)
def test_refuses_bad_files(data: bytes, status: int, words: str) -> None:
    """Each bad upload is refused with a status and a message naming the problem."""
    with pytest.raises(RequestError) as caught:
        decode_image(data, max_pixels=10**6)
    assert caught.value.status == status
    assert words in caught.value.message


def test_refuses_too_many_pixels_before_decoding() -> None:
    """A 20000x20000 PNG (a few hundred KB) is refused from its header, with the numbers in the message."""
    bomb = png_bomb()
    assert len(bomb) < 1_000_000
    with pytest.raises(RequestError) as caught:
        decode_image(bomb, max_pixels=40_000_000)
    assert caught.value.status == 413
    assert "20000x20000 = 400,000,000 pixels" in caught.value.message
    assert "the limit is 40,000,000 pixels" in caught.value.message


def test_pixel_limit_is_a_setting() -> None:
    """The same image passes or fails depending on the configured pixel limit."""
    data, _ = shapes_jpeg()
    assert decode_image(data, max_pixels=320 * 320) is not None
    with pytest.raises(RequestError) as caught:
        decode_image(data, max_pixels=320 * 320 - 1)
    assert caught.value.status == 413


def test_jpeg_completeness_looks_for_the_end_marker() -> None:
    """A JPEG is whole only if its end-of-image marker is present."""
    data, _ = shapes_jpeg()
    assert is_complete(data, "JPEG")
    assert not is_complete(data[:-2], "JPEG")


@pytest.mark.parametrize(
    ("ext", "params", "fmt"),
    [
        (".jpg", [], "JPEG"),
        (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], "JPEG"),
        (".png", [], "PNG"),
        (".bmp", [], "BMP"),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80], "WebP"),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101], "WebP"),  # lossless: VP8L
        (".tiff", [], "TIFF"),
    ],
    ids=["jpeg", "progressive-jpeg", "png", "bmp", "webp-lossy", "webp-lossless", "tiff"],
)
def test_header_size_matches_the_encoded_image(ext: str, params: list[int], fmt: str) -> None:
    """The header readers give the width and height OpenCV encoded, for every accepted format."""
    ok, buf = cv2.imencode(ext, np.zeros((37, 61, 3), np.uint8), params)
    assert ok
    assert read_image_size(buf.tobytes(), max_pixels=10**6) == (fmt, 61, 37)


def test_a_tiff_header_without_a_size_is_a_400() -> None:
    """A TIFF whose first directory names no width or height is refused as corrupt (it used to escape as a 500)."""
    data = b"II*\x00" + (8).to_bytes(4, "little") + (0).to_bytes(2, "little") + bytes(16)
    with pytest.raises(RequestError) as refused:
        read_image_size(data, max_pixels=10**6)
    assert refused.value.status == 400 and "TIFF image is truncated or corrupt" in refused.value.message
