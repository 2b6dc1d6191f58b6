"""Reading a sample directory back (list, summary, thumbnails) and exporting it as an Ultralytics dataset; the last
test loads an export with ultralytics' own dataset code and validates the demo model on it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import FakeClock
from test_framesample import gif_bytes, png_bytes
from yolowatch.framesample import FrameSampler, SampleCaps, SampleRules
from yolowatch.sampleset import (
    class_names,
    deployment_dirname,
    export_dataset,
    label_lines,
    list_samples,
    sample_image,
    summary,
)

START = 1_800_000_000.0  # FakeClock's: 2027-01-15T08:00:00Z
DAY = 86400.0


def box(cls: int, name: str, confidence: float, x1: float, y1: float, x2: float, y2: float) -> dict[str, Any]:
    return {"class": cls, "name": name, "confidence": confidence, "box": {"x1": x1, "y1": y1, "x2": x2, "y2": y2}}


Keep = Callable[..., None]


@pytest.fixture
def keep(tmp_path: Path, clock: FakeClock) -> Iterator[Keep]:
    """`keep(detections, deployment=..., image=..., ...)`: one frame written by a real FrameSampler into
    tmp_path/"samples" at the clock's time (every frame is kept: the random share is 1)."""
    samplers: dict[str, FrameSampler] = {}

    def write(
        detections: list[dict[str, Any]], deployment: str = "prod", image: bytes | None = None, **kw: Any
    ) -> None:
        if deployment not in samplers:
            rules = SampleRules(classes=frozenset({"star"}), random_share=1.0)
            samplers[deployment] = FrameSampler(
                tmp_path / "samples", deployment, rules, SampleCaps(per_minute=1000), clock=clock
            )
            samplers[deployment].start()
        kw.setdefault("shape", (100, 200))
        assert samplers[deployment].offer(image or png_bytes(200, 100), detections, **kw) is not None
        samplers[deployment].flush()

    yield write
    for sampler in samplers.values():
        sampler.close()


CIRCLE = box(0, "circle", 0.9, 20, 10, 60, 50)
STAR = box(3, "star", 0.8, 100, 20, 140, 80)
DOUBTFUL = box(1, "square", 0.3, 0, 0, 50, 50)


def test_list_filters_by_deployment_time_rule_and_class(tmp_path: Path, clock: FakeClock, keep: Keep) -> None:
    """Frames come back oldest first; each filter narrows them, and the time filter is [since, until)."""
    keep([CIRCLE], model="a.pt")  # random
    clock.advance(60)
    keep([STAR], deployment="edge/eu")  # class
    clock.advance(DAY)
    keep([DOUBTFUL, CIRCLE])  # low_confidence
    clock.advance(60)
    keep([])  # no_detection
    directory = tmp_path / "samples"
    found = list_samples(directory)
    assert [(info.deployment, info.rule) for info in found] == [
        ("prod", "random"), ("edge/eu", "class"), ("prod", "low_confidence"), ("prod", "no_detection"),
    ]  # fmt: skip
    assert [info.ts for info in found] == [START, START + 60, START + DAY + 60, START + DAY + 120]
    assert [i.rule for i in list_samples(directory, deployment="prod")] == ["random", "low_confidence", "no_detection"]
    assert [i.rule for i in list_samples(directory, deployment="edge/eu")] == ["class"]
    assert list_samples(directory, deployment="nobody") == []
    assert [i.ts for i in list_samples(directory, since=START + 60, until=START + DAY + 120)] == [
        START + 60, START + DAY + 60,
    ]  # fmt: skip
    assert [i.rule for i in list_samples(directory, rule="no_detection")] == ["no_detection"]
    assert [i.rule for i in list_samples(directory, class_name="circle")] == ["random", "low_confidence"]
    first = found[0]
    assert (first.model, first.width, first.height, first.normalized) == ("a.pt", 200, 100, False)
    assert first.detections == (CIRCLE,) and first.names == {0: "circle"}
    assert first.image.read_bytes() == png_bytes(200, 100) and first.record == first.image.with_suffix(".json")
    assert list_samples(tmp_path / "nothing here") == []


def test_what_is_not_a_whole_frame_is_skipped(tmp_path: Path, keep: Keep) -> None:
    """A json that cannot be read, lacks a field, or whose image is gone, an image without a json, and files or
    folders that are not the sampler's are all left out."""
    keep([CIRCLE])
    directory = tmp_path / "samples"
    (good,) = list_samples(directory)
    day = good.record.parent
    stem = "20270115T080000-000-abc-00000"
    (day / f"{stem}1.json").write_text("{not json")
    (day / f"{stem}2.json").write_text(json.dumps({"id": "x", "image": f"{stem}2.png"}))
    (day / f"{stem}2.png").write_bytes(png_bytes(4, 4))
    (day / f"{stem}3.json").write_text(good.record.read_text().replace(good.image.name, f"{stem}3.png"))  # no image
    (day / f"{stem}4.png").write_bytes(png_bytes(4, 4))  # no json: being written, or abandoned
    (day / f"{stem}5.json").write_text(good.record.read_text().replace(good.image.name, "../../escape.png"))
    (day / "notes.json").write_text(good.record.read_text())
    (directory / "prod" / "not-a-day").mkdir()
    (directory / "prod" / "not-a-day" / good.record.name).write_text(good.record.read_text())
    (directory / "README").write_text("a file beside the deployment folders")
    assert [info.id for info in list_samples(directory)] == [good.id]


def test_summary_counts_by_deployment_and_rule(tmp_path: Path, clock: FakeClock, keep: Keep) -> None:
    """What `yolowatch samples list` prints: frames, image bytes, the time they span, counts by deployment and rule."""
    keep([])
    keep([CIRCLE])
    clock.advance(3600)
    keep([STAR], deployment="edge")
    counts = summary(list_samples(tmp_path / "samples"))
    assert (counts.frames, counts.oldest, counts.newest) == (3, START, START + 3600)
    assert counts.image_bytes == 3 * len(png_bytes(200, 100))
    assert counts.by_rule == {"no_detection": 1, "random": 1, "class": 1}
    assert counts.by_deployment == {"edge": {"class": 1}, "prod": {"no_detection": 1, "random": 1}}
    empty = summary([])
    assert (empty.frames, empty.oldest, empty.by_deployment) == (0, None, {})


def test_sample_image_accepts_only_ids(tmp_path: Path, keep: Keep) -> None:
    """The admin API's thumbnails: a committed frame's image by deployment and id; anything that is not an id of a
    committed frame (path tricks included) is None."""
    keep([CIRCLE], deployment="edge/eu")
    directory = tmp_path / "samples"
    (info,) = list_samples(directory)
    assert sample_image(directory, "edge/eu", info.id) == info.image
    assert sample_image(directory, "prod", info.id) is None
    (directory / "secret.png").write_bytes(b"\x89PNG")
    for trick in ["../secret", "../../samples/secret", info.id + "/../x", "/etc/passwd", info.id + ".json", "", ".."]:
        assert sample_image(directory, "edge/eu", trick) is None, trick
    info.record.unlink()  # no longer committed
    assert sample_image(directory, "edge/eu", info.id) is None
    assert deployment_dirname("edge/eu") != deployment_dirname("edge-eu")


# Export.


@pytest.mark.parametrize(
    ("detections", "normalized", "expected"),
    [
        ([box(2, "t", 0.4, 20, 10, 60, 50)], False, ["2 0.200000 0.300000 0.200000 0.400000"]),
        ([box(2, "t", 0.4, 0.1, 0.1, 0.3, 0.5)], True, ["2 0.200000 0.300000 0.200000 0.400000"]),
        ([box(0, "c", 0.4, -20, 80, 40, 130)], False, ["0 0.100000 0.900000 0.200000 0.200000"]),  # clipped
        ([box(0, "c", 0.4, 0.9, -0.1, 1.3, 0.3)], True, ["0 0.950000 0.150000 0.100000 0.300000"]),  # clipped
        ([box(0, "c", 0.4, 60, 50, 20, 10)], False, ["0 0.200000 0.300000 0.200000 0.400000"]),  # corners swapped
        ([box(0, "c", 0.4, 250, 10, 300, 50)], False, []),  # wholly outside: nothing left of it
        ([box(0, "c", 0.4, 20, 10, 20, 50)], False, []),  # no width
        ([{"name": "c", "box": {"x1": 0, "y1": 0, "x2": 9, "y2": 9}}, {"class": 1, "box": {"x1": "a"}}], False, []),
        ([], False, []),
    ],
)
def test_label_lines(detections: list[dict[str, Any]], normalized: bool, expected: list[str]) -> None:
    """Boxes in pixels of a 200x100 image, or already 0-1, become `cls cx cy w h` in 0-1 with 6 decimals, clipped to
    the image; a box with no area left, or a detection without a class id or a box, gives no line."""
    assert label_lines(detections, 200, 100, normalized) == expected


def test_export_writes_an_ultralytics_layout(tmp_path: Path, clock: FakeClock, keep: Keep) -> None:
    """images/ (the bytes as uploaded), labels/ (one line per box, an empty file for an empty frame), data.yaml
    (absolute path, train and val on the images, every class id named) and samples.json (where each came from)."""
    keep([CIRCLE, DOUBTFUL], names={0: "circle", 1: "square", 2: "triangle", 3: "star"}, model="m.pt")
    clock.advance(1)
    keep([box(3, "star", 0.9, 0.5, 0.5, 0.7, 0.9)], normalized=True, image=png_bytes(50, 40), shape=(40, 50))
    clock.advance(1)
    keep([])
    samples = list_samples(tmp_path / "samples")
    out = tmp_path / "dataset"
    result = export_dataset(samples, out)
    assert (result.directory, result.data_yaml, result.frames, result.boxes) == (out, out / "data.yaml", 3, 3)
    assert sorted(path.name for path in out.iterdir()) == ["data.yaml", "images", "labels", "samples.json"]
    for info in samples:
        assert (out / "images" / info.image.name).read_bytes() == info.image.read_bytes()
    labels = [(out / "labels" / f"{info.id}.txt").read_text() for info in samples]
    assert labels == [
        "0 0.200000 0.300000 0.200000 0.400000\n1 0.125000 0.250000 0.250000 0.500000\n",
        "3 0.600000 0.700000 0.200000 0.400000\n",
        "",
    ]
    assert (out / "data.yaml").read_text().splitlines()[1:] == [
        f'path: "{out}"', "train: images", "val: images", "names:",
        '  0: "circle"', '  1: "square"', '  2: "triangle"', '  3: "star"',
    ]  # fmt: skip
    frames = json.loads((out / "samples.json").read_text())["frames"]
    assert [(f["id"], f["rule"], f["labels"], f["source"]) for f in frames] == [
        (info.id, info.rule, n, str(info.record)) for info, n in zip(samples, (2, 1, 0), strict=True)
    ]
    assert frames[0]["model"] == "m.pt" and frames[0]["image"] == f"images/{samples[0].image.name}"


def test_class_names_fill_gaps_and_refuse_conflicts(tmp_path: Path, keep: Keep) -> None:
    """The union of the frames' class maps, `class<N>` where no frame names an id, and a ValueError naming the id,
    both names and both frames when two models disagree; names given by the caller win."""
    keep([box(3, "star", 0.9, 1, 1, 9, 9)], model="v1.pt")
    keep([box(0, "circle", 0.9, 1, 1, 9, 9)], model="v1.pt")
    agreeing = list_samples(tmp_path / "samples")
    assert class_names(agreeing) == {0: "circle", 1: "class1", 2: "class2", 3: "star"}
    keep([box(0, "person", 0.9, 1, 1, 9, 9)], model="coco.pt")
    samples = list_samples(tmp_path / "samples")
    with pytest.raises(ValueError, match=r"class 0 is 'circle' in frame .* \(model v1.pt\) but 'person' in frame"):
        export_dataset(samples, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything was written
    assert class_names(samples, {0: "thing"}) == {0: "thing", 1: "class1", 2: "class2", 3: "star"}
    assert class_names([]) == {}


def test_yaml_quotes_any_name(tmp_path: Path, keep: Keep) -> None:
    """Class names with quotes, colons, a hash and non-ASCII are written as JSON strings, which YAML reads the same."""
    odd = 'a "quoted": name # not a comment ✓'
    keep([box(0, odd, 0.9, 1, 1, 9, 9)])
    out = tmp_path / "dataset with spaces: and colons"
    export_dataset(list_samples(tmp_path / "samples"), out)
    lines = (out / "data.yaml").read_text().splitlines()
    assert json.loads(lines[1].removeprefix("path: ")) == str(out)
    assert json.loads(lines[-1].removeprefix("  0: ")) == odd


def test_a_non_empty_folder_is_refused_unless_overwritten(tmp_path: Path, keep: Keep) -> None:
    """Exporting into a folder that holds anything is refused; with overwrite an earlier export (and ultralytics'
    label cache) is replaced and nothing else there is touched."""
    keep([CIRCLE])
    out = tmp_path / "dataset"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    samples = list_samples(tmp_path / "samples")
    with pytest.raises(FileExistsError, match="is not empty"):
        export_dataset(samples, out)
    export_dataset(samples, out, overwrite=True)
    (out / "images" / "old.png").write_bytes(b"stale")
    (out / "labels.cache").write_bytes(b"stale")
    keep([STAR])
    result = export_dataset(list_samples(tmp_path / "samples"), out, overwrite=True)
    assert result.frames == 2 and len(list((out / "images").iterdir())) == 2
    assert not (out / "labels.cache").exists() and (out / "notes.txt").read_text() == "mine"
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        export_dataset(samples, tmp_path / "a-file", overwrite=True)


def test_frames_ultralytics_cannot_read_are_skipped(tmp_path: Path, keep: Keep) -> None:
    """A GIF is kept by the sampler but is a video to ultralytics: the export leaves it out and says why; a frame
    deleted between listing and export is skipped too."""
    keep([CIRCLE], image=gif_bytes(20, 10), shape=(10, 20))
    keep([STAR])
    keep([])
    gif, star, gone = list_samples(tmp_path / "samples")
    gone.image.unlink()
    result = export_dataset([gif, star, gone], tmp_path / "out")
    assert result.frames == 1 and set(result.skipped) == {gif.id, gone.id}
    assert "gif is not an image format" in result.skipped[gif.id] and "deleted" in result.skipped[gone.id]
    assert json.loads((tmp_path / "out" / "samples.json").read_text())["skipped"] == result.skipped


# The export as ultralytics reads it.


@pytest.mark.yolo
@pytest.mark.slow
def test_ultralytics_loads_the_export_and_validates_on_it(tmp_path: Path, clock: FakeClock, keep: Keep) -> None:
    """Frames that are real shapes scenes, offered with their true boxes (in pixels for half of them, normalized for
    the others): ultralytics' own dataset code loads exactly those boxes as labels, and `YOLO.val` on the export
    runs over every image."""
    import cv2
    import numpy as np

    from yolowatch.config import default_model_path
    from yolowatch.demo.shapes import CLASS_NAMES, render_scene
    from yolowatch.yolo.offline import prepare_ultralytics

    prepare_ultralytics()
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.models import YOLO

    expected: list[list[tuple[float, ...]]] = []  # per frame, in the order offered: (cls, cx, cy, w, h) sorted
    model_names = dict(enumerate(CLASS_NAMES))
    for index in range(8):
        image, boxes = render_scene(np.random.default_rng([7, index]), height=240, width=320)
        ok, encoded = cv2.imencode(".jpg", image)
        assert ok
        normalized = index % 2 == 1
        scale = (320, 240, 320, 240) if normalized else (1, 1, 1, 1)
        detections = [
            box(b.cls, CLASS_NAMES[b.cls], 0.3, *(v / s for v, s in zip((b.x1, b.y1, b.x2, b.y2), scale, strict=True)))
            for b in boxes
        ]
        if index == 5:
            detections = []  # a frame the model found nothing in: an empty label file, a background image
        keep(detections, image=encoded.tobytes(), shape=(240, 320), normalized=normalized, names=model_names)
        clock.advance(1)
        rows = [
            (b.cls, (b.x1 + b.x2) / 640, (b.y1 + b.y2) / 480, (b.x2 - b.x1) / 320, (b.y2 - b.y1) / 240) for b in boxes
        ]
        expected.append(sorted(rows) if detections else [])

    samples = list_samples(tmp_path / "samples")
    result = export_dataset(samples, tmp_path / "dataset")
    assert result.frames == 8 and result.names == model_names

    data = check_det_dataset(str(result.data_yaml))
    assert data["names"] == model_names and data["nc"] == 4
    cfg = get_cfg(overrides={"imgsz": 320, "batch": 4, "workers": 0})
    dataset = build_yolo_dataset(cfg, data["val"], 4, data, mode="val")
    by_file = {Path(label["im_file"]).stem: label for label in dataset.labels}
    assert set(by_file) == {info.id for info in samples}
    for info, wanted in zip(samples, expected, strict=True):  # samples come oldest first: the order offered
        label = by_file[info.id]
        loaded = sorted(
            (int(c), *map(float, xywh)) for c, xywh in zip(label["cls"][:, 0], label["bboxes"], strict=True)
        )
        assert len(loaded) == len(wanted), info.id
        for got, want in zip(loaded, wanted, strict=True):
            assert got[0] == want[0] and np.allclose(got[1:], want[1:], atol=2e-6), (info.id, got, want)

    seen: list[int] = []
    model = YOLO(str(default_model_path()))
    model.add_callback("on_val_end", lambda validator: seen.append(validator.seen))
    metrics = model.val(
        data=str(result.data_yaml), imgsz=320, batch=4, device="cpu", plots=False, workers=0, verbose=False,
        project=str(tmp_path / "runs"), name="val",
    )  # fmt: skip
    assert seen == [8]
    assert 0.5 < metrics.box.map50 <= 1.0  # the true boxes, on the distribution the demo model was trained on
