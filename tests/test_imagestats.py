"""Image properties: brightness, contrast and sharpness of decoded images, and the demo's drift showing in them."""

from __future__ import annotations

import statistics

import cv2
import numpy as np
import pytest

from images import encode, shapes_jpeg, ultralytics_asset
from yolowatch.yolo.imagestats import image_properties


def decode(data: bytes, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    assert image is not None
    return image


def drawn_scene(width: int = 480, height: int = 360) -> np.ndarray:
    """A BGR scene drawn with OpenCV (gradient, shapes, text, grain), round-tripped through PNG."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(60, 180, width).astype(np.uint8)
    image = np.ascontiguousarray(np.repeat(np.tile(ramp, (height, 1))[:, :, None], 3, axis=2))
    cv2.rectangle(image, (40, 40), (200, 160), (30, 200, 90), -1)
    cv2.circle(image, (330, 220), 70, (220, 60, 40), -1, cv2.LINE_AA)
    cv2.putText(image, "yolowatch", (60, 300), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (250, 250, 250), 3, cv2.LINE_AA)
    grain = rng.normal(0, 6, size=image.shape)
    return decode(encode(np.clip(image + grain, 0, 255).astype(np.uint8), ".png"))


def demo_properties(split: str, count: int = 20) -> list[dict[str, float]]:
    return [image_properties(decode(shapes_jpeg(index, split)[0])) for index in range(count)]


def test_returns_brightness_contrast_and_sharpness_as_floats() -> None:
    """A decoded JPEG gives the three properties as plain floats, rounded to 3 decimals."""
    properties = image_properties(decode(shapes_jpeg()[0]))
    assert set(properties) == {"brightness", "contrast", "sharpness"}
    for value in properties.values():
        assert type(value) is float
        assert value == round(value, 3)
    assert 0 < properties["brightness"] < 255


def test_demo_drifted_split_is_darker_and_blurrier_than_every_normal_image() -> None:
    """Over the demo's holdout and holdout-drifted splits, every drifted image is darker and blurrier than the
    darkest and blurriest normal one."""
    normal, drifted = demo_properties("holdout"), demo_properties("holdout-drifted")
    for name in ("brightness", "sharpness"):
        assert max(p[name] for p in drifted) < min(p[name] for p in normal), name
    # Sharpness falls by orders of magnitude, not by a margin a threshold would have to be tuned to.
    assert statistics.median(p["sharpness"] for p in drifted) * 50 < statistics.median(p["sharpness"] for p in normal)


def test_each_drifted_scene_is_darker_flatter_and_blurrier_than_its_clean_twin() -> None:
    """The drifted split renders the same scenes as the holdout, and each one loses on all three properties."""
    for clean, drifted in zip(demo_properties("holdout", 10), demo_properties("holdout-drifted", 10), strict=True):
        assert drifted["brightness"] < clean["brightness"]
        assert drifted["contrast"] < clean["contrast"]
        assert drifted["sharpness"] < clean["sharpness"]


@pytest.mark.parametrize("code", [cv2.COLOR_BGR2GRAY, cv2.COLOR_BGR2BGRA], ids=["gray", "bgra"])
def test_grayscale_and_bgra_images_measure_like_the_bgr_image(code: int) -> None:
    """A grayscale or BGRA version of an image gives the same properties as the BGR image."""
    bgr = drawn_scene()
    assert image_properties(cv2.cvtColor(bgr, code)) == image_properties(bgr)


def test_grayscale_png_decoded_unchanged_is_accepted() -> None:
    """A grayscale PNG decoded as-is (HxW) is measured."""
    gray = cv2.cvtColor(drawn_scene(), cv2.COLOR_BGR2GRAY)
    decoded = decode(encode(gray, ".png"), cv2.IMREAD_UNCHANGED)
    assert decoded.ndim == 2
    assert image_properties(decoded) == image_properties(gray)


def test_blurred_copy_is_less_sharp() -> None:
    """Blurring an image lowers its sharpness, more blur lowering it more; brightness barely moves."""
    image = drawn_scene()
    sharpness = [image_properties(cv2.GaussianBlur(image, (0, 0), sigma))["sharpness"] for sigma in (0.8, 1.6, 3.2)]
    original = image_properties(image)
    assert original["sharpness"] > sharpness[0] > sharpness[1] > sharpness[2]
    blurred = image_properties(cv2.GaussianBlur(image, (0, 0), 3.2))
    assert blurred["brightness"] == pytest.approx(original["brightness"], abs=1)


def test_darker_copy_is_less_bright_and_less_contrasted() -> None:
    """Scaling the pixels by 0.5 halves brightness and contrast."""
    image = drawn_scene()
    darker = decode(encode(cv2.convertScaleAbs(image, alpha=0.5), ".png"))
    original, dimmed = image_properties(image), image_properties(darker)
    assert dimmed["brightness"] == pytest.approx(original["brightness"] / 2, rel=0.02)
    assert dimmed["contrast"] == pytest.approx(original["contrast"] / 2, rel=0.05)


@pytest.mark.parametrize("level", [0, 128, 255])
def test_flat_image_has_no_contrast_and_no_sharpness(level: int) -> None:
    """A uniform image has brightness equal to its level, contrast 0 and sharpness 0."""
    flat = decode(encode(np.full((200, 300, 3), level, np.uint8), ".png"))
    assert image_properties(flat) == {"brightness": level, "contrast": 0.0, "sharpness": 0.0}


def test_large_image_is_measured_at_640_pixels() -> None:
    """A 1920x1080 image measures the same as its 640x360 version, so resolution alone does not move sharpness."""
    small = drawn_scene(640, 360)
    large = cv2.resize(small, (1920, 1080), interpolation=cv2.INTER_NEAREST)  # each pixel a 3x3 block
    assert image_properties(large) == image_properties(small)


def test_large_image_is_measured_as_the_model_sees_it_at_imgsz_640() -> None:
    """A 1920x1080 photo measures exactly as its bilinear 640x360 resize, the letterbox ultralytics feeds the model."""
    photo = decode(ultralytics_asset("zidane.jpg").read_bytes())
    large = cv2.resize(photo, (1920, 1080), interpolation=cv2.INTER_CUBIC)
    model_input = cv2.resize(large, (640, 360), interpolation=cv2.INTER_LINEAR)
    assert image_properties(large) == image_properties(model_input)


def test_odd_sized_large_image_is_measured_near_its_source() -> None:
    """An odd-sized upscale (2003x1501) of a 640x480 image measures close to that image."""
    small = cv2.GaussianBlur(drawn_scene(640, 480), (0, 0), 1.5)
    large = cv2.resize(small, (2003, 1501), interpolation=cv2.INTER_CUBIC)
    measured, reference = image_properties(large), image_properties(small)
    assert measured["brightness"] == pytest.approx(reference["brightness"], abs=1)
    assert measured["sharpness"] == pytest.approx(reference["sharpness"], rel=0.2)


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        (np.zeros((0, 10, 3), np.uint8), "non-empty"),
        (np.zeros((10, 10, 2), np.uint8), "BGRA"),
        (np.zeros((2, 10, 10, 3), np.uint8), "BGRA"),
    ],
)
def test_refuses_what_is_not_a_decoded_image(image: np.ndarray, words: str) -> None:
    """A float, empty, two-channel or batched array is refused with a message that says what is expected."""
    with pytest.raises(ValueError, match=words):
        image_properties(image)
