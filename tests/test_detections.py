"""Response bodies to detection summaries: both Ultralytics shapes, and everything else skipped."""

from __future__ import annotations

import json

import pytest

from yolowatch.detections import error_reason, summarize_detections

ENDPOINT_BODY = {
    "images": [
        {
            "shape": [100, 200],
            "speed": {"inference": 12.0},
            "results": [
                {"class": 0, "name": "person", "confidence": 0.9, "box": {"x1": 0, "y1": 0, "x2": 100, "y2": 50}},
                {"class": 2, "name": "car", "confidence": 0.5, "box": {"x1": 10, "y1": 10, "x2": 30, "y2": 20}},
            ],
        }
    ],
    "metadata": {"imageCount": 1},
}


def test_reads_the_endpoint_shape_from_bytes() -> None:
    """Count, confidences, classes and areas normalized by the response's shape [H, W]."""
    summary = summarize_detections(json.dumps(ENDPOINT_BODY).encode())
    assert summary is not None
    assert summary.images == 1 and summary.count == 2
    assert summary.confidences == (0.9, 0.5)
    assert summary.class_ids == (0, 2) and summary.class_names == ("person", "car")
    assert summary.box_areas == pytest.approx((100 * 50 / 20_000, 20 * 10 / 20_000))
    assert summary.mean_confidence == pytest.approx(0.7)


def test_reads_a_bare_summary_list() -> None:
    """Results.summary() output: normalized boxes give areas directly, pixel boxes without a shape give none."""
    body = [
        {"name": "dog", "class": 16, "confidence": 0.8, "box": {"x1": 0.1, "y1": 0.1, "x2": 0.5, "y2": 0.3}},
        {"name": "cat", "class": 15, "confidence": 0.6, "box": {"x1": 10, "y1": 10, "x2": 50, "y2": 30}},
    ]
    summary = summarize_detections(body)
    assert summary is not None and summary.count == 2
    assert summary.box_areas == pytest.approx((0.4 * 0.2,))


def test_empty_results_are_zero_detections() -> None:
    """An image with no detections is a summary with count 0, not a skip."""
    summary = summarize_detections({"images": [{"shape": [10, 10], "results": []}]})
    assert summary is not None and summary.count == 0 and summary.mean_confidence is None


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"status": "ok"}', b"[1, 2, 3]", b'{"images": "nope"}', b"\xff\xfe", '{"images": [42]}', None, 7],
)
def test_anything_else_is_skipped(body: object) -> None:
    """Bodies that are not detection responses give None, never an exception."""
    assert summarize_detections(body) is None


def test_odd_items_inside_results_are_skipped() -> None:
    """Malformed result items are skipped; good ones still count."""
    body = {"images": [{"results": [{"confidence": "high"}, {"confidence": float("nan")}, {"confidence": 0.4}, 3]}]}
    summary = summarize_detections(body)
    assert summary is not None and summary.count == 1 and summary.box_areas == ()


def test_error_reasons_are_one_short_line() -> None:
    """The error (or FastAPI detail) of a JSON body becomes one short line; anything else gives no reason."""
    assert error_reason(b'{"error": "file is empty"}') == "file is empty"
    assert error_reason(b'{"detail": "Not Found"}') == "Not Found"  # FastAPI's shape
    assert error_reason(b'{"error": "a\\n  b\\tc"}') == "a b c"
    long = error_reason(('{"error": "%s"}' % ("x" * 500)).encode())
    assert long is not None and len(long) == 200 and long.endswith("…")
    for body in (b"not json", b'{"error": 3}', b'{"error": "  "}', b"[1]", b'{"other": "x"}'):
        assert error_reason(body) is None


YOLOWATCH_BODY = {
    "images": [
        {
            "shape": [480, 640],
            "speed": {"decode": 2.5, "queue": 0.25, "preprocess": 1.5, "inference": 30.0, "postprocess": 0.75,
                      "tracking": 9.0},
            "properties": {"brightness": 120.5, "contrast": 40.0, "sharpness": 300.0, "hue": 3},
            "results": [
                {"class": 0, "name": "person", "confidence": 0.9, "box": {"x1": 0, "y1": 0, "x2": 100, "y2": 50}},
                {"class": 2, "name": "car", "confidence": 0.5, "box": {"x1": 10, "y1": 10, "x2": 30, "y2": 20}},
            ],
        }
    ],
    "metadata": {"model": "demo.pt", "modelHash": "0123456789abcdef", "params": {"conf": 0.25, "iou": 0.7,
                                                                                 "imgsz": 640}},
}  # fmt: skip


def test_reads_stages_parameters_image_properties_and_the_model() -> None:
    """The bundled app's response gives known stage times (others dropped), its parameters, its image's properties
    (with aspect and size from the shape) and the model with its digest."""
    summary = summarize_detections(json.dumps(YOLOWATCH_BODY).encode())
    assert summary is not None
    assert summary.stages == (
        {"decode": 2.5, "queue": 0.25, "preprocess": 1.5, "inference": 30.0, "postprocess": 0.75},
    )
    assert summary.params == (0.25, 0.7, 640)
    assert summary.model == "demo.pt@0123456789ab"
    assert summary.image_properties == (
        {"aspect": 640 / 480, "megapixels": 0.3072, "brightness": 120.5, "contrast": 40.0, "sharpness": 300.0},
    )
    assert list(zip(summary.class_names, summary.class_confidences, strict=True)) == [("person", 0.9), ("car", 0.5)]


@pytest.mark.parametrize(
    "metadata",
    [{}, {"params": "conf=0.5"}, {"params": {"conf": "high", "iou": None}}, {"model": ""}, {"model": ["a"]}, []],
)
def test_metadata_that_says_nothing_usable_gives_no_parameters_or_model(metadata: object) -> None:
    """Missing or malformed metadata leaves parameters and model unknown; the detections are still read."""
    summary = summarize_detections(json.dumps({**YOLOWATCH_BODY, "metadata": metadata}).encode())
    assert summary is not None and summary.count == 2
    assert summary.params is None and summary.model is None


def test_a_model_name_is_kept_tame() -> None:
    """Whitespace and newlines in a model name collapse, it is cut at 128 characters, and a digest keeps only
    letters and digits."""
    metadata = {"model": "my\nmodel   " + "x" * 300, "modelHash": "ab<script>cd"}
    summary = summarize_detections(json.dumps({**YOLOWATCH_BODY, "metadata": metadata}).encode())
    assert summary is not None and summary.model is not None
    name, digest = summary.model.split("@")
    assert name.startswith("my model x") and len(name) == 128 and digest == "abscriptcd"


def test_careful_path_pairs_classes_with_their_confidences() -> None:
    """A result without a class still counts as a detection, and the class confidences stay paired."""
    results = [
        {"confidence": 0.8, "box": {"x1": 0, "y1": 0, "x2": 1, "y2": 1}},
        {"class": 1, "name": "dog", "confidence": 0.6, "box": {"x1": 0, "y1": 0, "x2": 1, "y2": 1}},
    ]
    summary = summarize_detections(json.dumps({"images": [{"results": results}]}).encode())
    assert summary is not None and summary.count == 2
    assert summary.class_names == ("dog",) and summary.class_confidences == (0.6,)
