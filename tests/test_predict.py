"""The predict contract and every bad input, against the real demo model."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from helpers import wait_until
from images import gif_bytes, png_bomb, shapes_jpeg, shapes_png, ultralytics_asset
from yolowatch.config import Settings
from yolowatch.demo.shapes import CLASS_NAMES, Box
from yolowatch.errors import RequestError
from yolowatch.yolo.predict import PredictParams, create_predict_app, format_detections, parse_params


def _ready_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_predict_app(settings)) as client:
        wait_until(lambda: client.get("/health").status_code == 200, "the model to load", timeout_s=120, every_s=0.1)
        yield client


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    yield from _ready_client(Settings())


@pytest.fixture(scope="module")
def strict_client() -> Iterator[TestClient]:
    """Same model, tiny limits, to hit the size checks with small files."""
    yield from _ready_client(Settings(max_upload_bytes=60_000, max_image_pixels=100 * 100))


def _post(client: TestClient, data: bytes, name: str = "image.jpg", **fields: str) -> Any:
    return client.post("/predict", files={"file": (name, data, "image/jpeg")}, data=fields)


def _iou(a: dict[str, float], b: Box) -> float:
    ix = max(0.0, min(a["x2"], b.x2) - max(a["x1"], b.x1))
    iy = max(0.0, min(a["y2"], b.y2) - max(a["y1"], b.y1))
    inter = ix * iy
    union = (a["x2"] - a["x1"]) * (a["y2"] - a["y1"]) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union


def test_response_has_the_ultralytics_shape(client: TestClient) -> None:
    """A shapes image gets images[].results[] with class, name, confidence, box, plus shape, speed, metadata."""
    data, _ = shapes_jpeg(0)
    response = _post(client, data)
    assert response.status_code == 200
    body = response.json()
    assert body["metadata"]["imageCount"] == 1 and body["metadata"]["task"] == "detect"
    assert body["metadata"]["model"] == "shapes-yolo.pt" and len(body["metadata"]["modelHash"]) == 12
    assert body["metadata"]["params"] == {"conf": 0.25, "iou": 0.7, "imgsz": 640}  # echoed, for the monitors
    (image,) = body["images"]
    assert image["shape"] == [320, 320]
    assert list(image["speed"]) == ["decode", "queue", "preprocess", "inference", "postprocess"]
    assert all(ms >= 0 for ms in image["speed"].values())
    assert set(image["properties"]) == {"brightness", "contrast", "sharpness"}
    assert image["results"], "the demo model should find the shapes in its own kind of image"
    for result in image["results"]:
        assert set(result) == {"class", "name", "confidence", "box"}
        assert result["name"] == CLASS_NAMES[result["class"]]
        assert 0.25 <= result["confidence"] <= 1
        box = result["box"]
        assert 0 <= box["x1"] < box["x2"] <= 320 and 0 <= box["y1"] < box["y2"] <= 320


def test_detections_match_the_drawn_shapes(client: TestClient) -> None:
    """Across ten val images, most drawn shapes are found with the right class (IoU >= 0.5)."""
    found = total = 0
    for index in range(10):
        data, boxes = shapes_jpeg(index)
        results = _post(client, data).json()["images"][0]["results"]
        total += len(boxes)
        for truth in boxes:
            found += any(r["class"] == truth.cls and _iou(r["box"], truth) >= 0.5 for r in results)
    assert found / total >= 0.8, f"found {found} of {total} shapes"


def test_png_input_gives_the_same_detections(client: TestClient) -> None:
    """The same pixels as PNG give the same detections as the decoded JPEG."""
    data, _ = shapes_jpeg(1)
    from_jpeg = _post(client, data).json()["images"][0]["results"]
    from_png = _post(client, shapes_png(1), name="image.png").json()["images"][0]["results"]
    assert from_png == from_jpeg


@pytest.mark.parametrize("name", ["bus.jpg", "zidane.jpg"])
def test_real_photos_are_served(client: TestClient, name: str) -> None:
    """The real photos ultralytics ships decode and get a well-formed answer with their true shape."""
    data = ultralytics_asset(name).read_bytes()
    response = _post(client, data, name=name)
    assert response.status_code == 200
    image = response.json()["images"][0]
    expected = {"bus.jpg": [1080, 810], "zidane.jpg": [720, 1280]}[name]
    assert image["shape"] == expected
    assert isinstance(image["results"], list)


def test_parameters_change_the_answer(client: TestClient) -> None:
    """conf filters, normalize gives 0-1 boxes, decimals rounds."""
    data, _ = shapes_jpeg(2)
    low = _post(client, data, conf="0.05").json()["images"][0]["results"]
    high = _post(client, data, conf="0.9").json()["images"][0]["results"]
    assert len(low) >= len(high)
    assert all(r["confidence"] >= 0.9 for r in high)
    normalized = _post(client, data, normalize="true", decimals="2").json()["images"][0]["results"]
    for result in normalized:
        assert all(0 <= v <= 1 and round(v, 2) == v for v in result["box"].values())


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"conf": "abc"}, "conf must be a number"),
        ({"conf": "0"}, "conf must be between 0.01 and 1"),
        ({"conf": "1.5"}, "conf must be between 0.01 and 1"),
        ({"conf": "nan"}, "conf must be between"),
        ({"iou": "0.99"}, "iou must be between 0 and 0.95"),
        ({"imgsz": "16"}, "imgsz must be between 32 and 1280"),
        ({"imgsz": "5000"}, "imgsz must be between 32 and 1280"),
        ({"imgsz": "3.5"}, "imgsz must be an integer"),
        ({"normalize": "maybe"}, "normalize must be true/false, 1/0, yes/no or on/off"),
        ({"decimals": "-1"}, "decimals must be between 0 and 10"),
    ],
)
def test_bad_parameters_get_422(client: TestClient, fields: dict[str, str], words: str) -> None:
    """Each parameter out of range or not a number gets 422 naming the parameter and its range."""
    data, _ = shapes_jpeg(0)
    response = _post(client, data, **fields)
    assert response.status_code == 422
    assert words in response.json()["error"]


BAD_UPLOADS = [
    pytest.param(
        lambda c: c.post("/predict", data={"conf": "0.5"}, files={"other": ("x", b"1")}), 400, "no file", id="no-file"
    ),
    pytest.param(
        lambda c: c.post("/predict", data={"file": "not-a-file"}, files={"x": ("x", b"1")}),
        400,
        "must be a file upload",
        id="file-as-text",
    ),
    pytest.param(lambda c: _post(c, b""), 400, "empty", id="empty"),
    pytest.param(lambda c: _post(c, b"%PDF-1.4 not a picture at all"), 415, "not an image", id="not-an-image"),
    pytest.param(lambda c: _post(c, gif_bytes(), name="a.gif"), 415, "GIF", id="gif"),
    pytest.param(lambda c: _post(c, shapes_jpeg(0)[0][:6000]), 400, "truncated", id="truncated-jpeg"),
    pytest.param(lambda c: _post(c, png_bomb(), name="bomb.png"), 413, "pixels", id="decompression-bomb"),
    pytest.param(lambda c: c.post("/predict", json={"file": "abc"}), 415, "multipart/form-data", id="json-body"),
    pytest.param(
        lambda c: c.post("/predict", content=b"--x\r\ngarbage", headers={"content-type": "multipart/form-data"}),
        400,
        "malformed multipart",
        id="multipart-without-boundary",
    ),
    pytest.param(lambda c: c.get("/predict"), 405, "Method Not Allowed", id="wrong-method"),
]


@pytest.mark.parametrize(("send", "status", "words"), BAD_UPLOADS)
def test_bad_uploads_get_a_clear_error_and_a_warning(
    client: TestClient, caplog: pytest.LogCaptureFixture, send: Any, status: int, words: str
) -> None:
    """A bad upload gets a JSON error with the right status, logs a WARNING, and the app keeps serving."""
    with caplog.at_level(logging.WARNING, logger="yolowatch.predict"):
        response = send(client)
    assert response.status_code == status
    assert words in response.json()["error"]
    assert any(r.levelno == logging.WARNING and str(status) in r.getMessage() for r in caplog.records)
    assert _post(client, shapes_jpeg(0)[0]).status_code == 200


def test_upload_size_limit_is_a_setting(strict_client: TestClient) -> None:
    """A file over max_upload_bytes gets 413 with both sizes in the message."""
    big = np.random.default_rng(0).integers(0, 255, 80_000, dtype=np.uint8).tobytes()
    response = _post(strict_client, big)
    assert response.status_code == 413
    assert "the limit is 60,000 bytes" in response.json()["error"]


def test_pixel_limit_is_a_setting(strict_client: TestClient) -> None:
    """An ordinary 320x320 image is refused when the pixel limit is 100x100."""
    response = _post(strict_client, shapes_jpeg(0)[0])
    assert response.status_code == 413
    assert "320x320" in response.json()["error"]


def test_not_ready_before_the_model_loads() -> None:
    """Without startup (lifespan) the model is not loaded: /health and /predict answer 503."""
    client = TestClient(create_predict_app(Settings()))  # no `with`: lifespan never runs
    health = client.get("/health")
    assert health.status_code == 503 and health.json()["modelLoaded"] is False
    response = _post(client, shapes_jpeg(0)[0])
    assert response.status_code == 503 and "loading" in response.json()["error"]


def test_health_says_the_model_is_loaded(client: TestClient) -> None:
    """/health is 200 and names the model once it is loaded."""
    body = client.get("/health").json()
    assert body == {"healthy": True, "modelLoaded": True, "model": "shapes-yolo.pt"}


def test_format_detections_normalizes_by_width_and_height() -> None:
    """Normalized boxes divide x by the width and y by the height."""
    results = format_detections(
        np.array([[10.0, 20.0, 110.0, 70.0]]),
        np.array([0.876543]),
        np.array([2.0]),
        {2: "triangle"},
        (100, 200),
        PredictParams(normalize=True, decimals=3),
    )
    assert results == [
        {"class": 2, "name": "triangle", "confidence": 0.877, "box": {"x1": 0.05, "y1": 0.2, "x2": 0.55, "y2": 0.7}}
    ]


def test_parse_params_defaults_and_files() -> None:
    """Missing fields take the defaults; a parameter sent as a file is refused."""
    assert parse_params({}) == PredictParams(conf=0.25, iou=0.7, imgsz=640, normalize=False, decimals=5)
    with pytest.raises(RequestError):
        parse_params({"conf": object()})


@pytest.mark.parametrize(("raw", "expected"), [("on", True), ("Yes", True), ("1", True), ("off", False), ("no", False)])
def test_normalize_takes_the_one_boolean_vocabulary(raw: str, expected: bool) -> None:
    """Regression (three parsers, three vocabularies): the form field reads what settings and query strings read."""
    assert parse_params({"normalize": raw}).normalize is expected
