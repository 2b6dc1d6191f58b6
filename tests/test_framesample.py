"""FrameSampler: which frames are kept, the caps (across a restart), the files on disk, and that a directory that
cannot be written (a file in the way, a real full disk, a real read-only mount) never reaches a request."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import random
import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import FakeClock
from yolowatch import framesample
from yolowatch.framesample import FrameSampler, SampleCaps, SampleRules, choose, image_extension, image_size
from yolowatch.sampleset import SAMPLE_ID, deployment_dirname, list_samples

TESTS = Path(__file__).parent
DAY = 86400.0


# Real images, encoded by hand (the light install has no OpenCV or Pillow).


def png_bytes(width: int, height: int) -> bytes:
    """An RGB PNG with a gradient, so frames of one size still differ in content."""
    rows = b"".join(b"\x00" + bytes((x * 7 + y * 3) % 256 for x in range(width * 3)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def bmp_bytes(width: int, height: int, top_down: bool = False) -> bytes:
    """A 24-bit BMP (BITMAPINFOHEADER); rows padded to four bytes, stored bottom-up unless `top_down`."""
    stride = (width * 3 + 3) & ~3
    pixels = b"".join(bytes((x + y) % 256 for x in range(width * 3)).ljust(stride, b"\x00") for y in range(height))
    info = struct.pack(
        "<IiiHHIIiiII", 40, width, -height if top_down else height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0
    )
    return b"BM" + struct.pack("<IHHI", 14 + len(info) + len(pixels), 0, 0, 14 + len(info)) + info + pixels


def gif_bytes(width: int, height: int) -> bytes:
    """A GIF89a of one colour: LZW codes of 3 bits, a clear code before each pixel so the code size never grows."""
    codes = [4, 0] * (width * height) + [5]
    bits = sum(code << (3 * i) for i, code in enumerate(codes))
    data = bits.to_bytes((3 * len(codes) + 7) // 8, "little")
    blocks = b"".join(bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255))
    screen = struct.pack("<6sHHBBB", b"GIF89a", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    image = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02" + blocks + b"\x00"
    return screen + image + b";"


def tiff_bytes(width: int, height: int, order: str) -> bytes:
    """An uncompressed 8-bit grey TIFF in either byte order; width as SHORT, height as LONG."""
    pixels = bytes(width * height)
    tags = [(256, 3, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 0), (277, 3, 1),
            (278, 4, height), (279, 4, len(pixels))]  # fmt: skip
    ifd_size = 2 + 12 * len(tags) + 4
    entries = []
    for tag, kind, value in tags:
        value = 8 + ifd_size if tag == 273 else value
        packed = (
            struct.pack(order + ("HH" if kind == 3 else "I"), value, 0)
            if kind == 3
            else struct.pack(order + "I", value)
        )
        entries.append(struct.pack(order + "HHI", tag, kind, 1) + packed)
    magic = b"II*\x00" if order == "<" else b"MM\x00*"
    ifd = struct.pack(order + "H", len(tags)) + b"".join(entries) + struct.pack(order + "I", 0)
    return magic + struct.pack(order + "I", 8) + ifd + pixels


def detection(cls: int, name: str, confidence: float, box: tuple[float, float, float, float]) -> dict[str, Any]:
    return {
        "class": cls,
        "name": name,
        "confidence": confidence,
        "box": dict(zip(("x1", "y1", "x2", "y2"), box, strict=True)),
    }


CIRCLE = detection(0, "circle", 0.91, (10, 20, 30, 40))
DOUBTFUL_STAR = detection(3, "star", 0.3, (5, 5, 25, 15))


@pytest.fixture
def make_sampler(clock: FakeClock) -> Iterator[Callable[..., FrameSampler]]:
    """Started samplers on the fake clock with a seeded draw; all closed at the end."""
    made: list[FrameSampler] = []

    def make(directory: Path, deployment: str = "prod", **options: Any) -> FrameSampler:
        rules = options.pop("rules", SampleRules(random_share=0.0, drift_share=0.0))
        sampler = FrameSampler(directory, deployment, rules, SampleCaps(**options), clock=clock, rng=random.Random(7))
        sampler.start()
        made.append(sampler)
        return sampler

    yield make
    for sampler in made:
        sampler.close()


def stored_ids(directory: Path) -> list[str]:
    """Ids of every frame file on disk, committed or not (one per file)."""
    return sorted(path.name.partition(".")[0] for path in directory.rglob("*") if path.is_file())


# The rules.


@pytest.mark.parametrize(
    ("detections", "drifting", "draw", "expected"),
    [
        ([detection(1, "square", 0.95, (0, 0, 1, 1))], False, 0.5, "class"),  # a class of interest, confident
        ([CIRCLE, DOUBTFUL_STAR], False, 0.5, "low_confidence"),
        ([detection(0, "circle", 0.25, (0, 0, 1, 1))], False, 0.5, "low_confidence"),  # the band includes its low end
        ([detection(0, "circle", 0.5, (0, 0, 1, 1))], False, 0.5, None),  # ... and not its high end
        ([], False, 0.5, "no_detection"),
        ([CIRCLE], True, 0.05, "drift"),
        ([CIRCLE], True, 0.5, None),
        ([CIRCLE], False, 0.005, "random"),
        ([CIRCLE], False, 0.05, None),  # a drift draw, but no drift
        ([CIRCLE], True, 0.005, "drift"),  # drift is checked before random
        ([detection(1, "square", 0.3, (0, 0, 1, 1))], False, 0.5, "class"),  # class before low confidence
    ],
)
def test_the_first_rule_that_holds_keeps_the_frame(
    detections: list[dict[str, Any]], drifting: bool, draw: float, expected: str | None
) -> None:
    """Rules are checked in the order class, low confidence, no detection, drift, random; a frame none keeps is
    None."""
    rules = SampleRules(classes=frozenset({"square"}), drift_share=0.1, random_share=0.01)
    assert choose(detections, rules, drifting, draw) == expected


def test_rules_can_be_switched_off() -> None:
    """No band, no empty-frame rule, no shares: nothing is kept."""
    rules = SampleRules(low_confidence=None, no_detection=False, drift_share=0, random_share=0)
    assert [choose(d, rules, True, 0.0) for d in ([], [DOUBTFUL_STAR], [CIRCLE])] == [None, None, None]


def test_shares_keep_their_share_of_frames() -> None:
    """With a seeded draw, about 10 % of confident frames are kept while drifting and about 1 % otherwise."""
    rng, rules = random.Random(1), SampleRules()
    drifting = Counter(choose([CIRCLE], rules, True, rng.random()) for _ in range(20_000))
    calm = Counter(choose([CIRCLE], rules, False, rng.random()) for _ in range(20_000))
    assert 1800 < drifting["drift"] < 2200 and drifting["random"] == 0
    assert 150 < calm["random"] < 250 and calm["drift"] == 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SampleRules(low_confidence=(0.5, 0.25)), "low < high"),
        (lambda: SampleRules(low_confidence=(0.1, 1.5)), "low < high"),
        (lambda: SampleRules(drift_share=1.5), "drift_share must be a share"),
        (lambda: SampleRules(random_share=-0.1), "random_share must be a share"),
        (lambda: SampleRules(classes="star"), "set of class names"),  # type: ignore[arg-type]
        (lambda: SampleCaps(per_minute=0), "per_minute must be a whole number"),
        (lambda: SampleCaps(per_day=2.5), "per_day must be a whole number"),  # type: ignore[arg-type]
        (lambda: SampleCaps(max_bytes=True), "max_bytes must be a whole number"),
        (lambda: SampleCaps(retention_days=0), "retention_days must be a positive"),
    ],
)
def test_settings_are_validated(make: Callable[[], object], message: str) -> None:
    """A rule or cap out of range is refused with one sentence that says what is allowed."""
    with pytest.raises(ValueError, match=message):
        make()


def test_classes_may_be_any_collection() -> None:
    """A list of names (as settings parse them) becomes the frozen set."""
    assert SampleRules(classes=["star", "circle"]).classes == frozenset({"star", "circle"})  # type: ignore[arg-type]


# Image headers.


@pytest.mark.parametrize(
    ("data", "extension", "size"),
    [
        (png_bytes(37, 23), "png", (37, 23)),
        (bmp_bytes(37, 23), "bmp", (37, 23)),
        (bmp_bytes(37, 23, top_down=True), "bmp", (37, 23)),
        (gif_bytes(37, 23), "gif", (37, 23)),
        (tiff_bytes(37, 23, "<"), "tif", (37, 23)),
        (tiff_bytes(37, 23, ">"), "tif", (37, 23)),
        (b"not an image at all", None, None),
        (b"", None, None),
        (png_bytes(37, 23)[:20], "png", None),  # truncated header
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpg", None),  # a JPEG cut before its frame header
        (b"RIFF\x00\x00\x00\x00WEBPVP8X", "webp", None),
    ],
)
def test_image_size_from_the_header(data: bytes, extension: str | None, size: tuple[int, int] | None) -> None:
    """Width and height of real encoded images, from the header alone; None (never an exception) otherwise."""
    assert image_extension(data) == extension
    assert image_size(data) == size


@pytest.mark.yolo
def test_image_size_of_what_opencv_encodes() -> None:
    """JPEG (baseline and progressive), WebP (lossy, lossless, with alpha: VP8, VP8L, VP8X), PNG, BMP and TIFF as
    OpenCV writes them: the sizes the decoder sees."""
    import cv2
    import numpy as np

    image = np.random.default_rng(0).integers(0, 255, (23, 37, 3), dtype=np.uint8)
    alpha = np.dstack([image, np.full((23, 37), 128, np.uint8)])
    encoded = {
        "jpg": (image, []),
        "progressive jpg": (image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        "webp": (image, [cv2.IMWRITE_WEBP_QUALITY, 80]),
        "lossless webp": (image, [cv2.IMWRITE_WEBP_QUALITY, 101]),
        "alpha webp": (alpha, [cv2.IMWRITE_WEBP_QUALITY, 80]),
        "png": (image, []),
        "bmp": (image, []),
        "tiff": (image, []),
    }
    chunks = set()
    for name, (pixels, params) in encoded.items():
        ok, buffer = cv2.imencode("." + name.split()[-1], pixels, params)
        assert ok, name
        data = buffer.tobytes()
        decoded = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
        assert decoded is not None, name
        assert image_size(data) == (decoded.shape[1], decoded.shape[0]) == (37, 23), name
        if name.endswith("webp"):
            chunks.add(data[12:16])
    assert chunks == {b"VP8 ", b"VP8L", b"VP8X"}


# Frames on disk.


def test_a_kept_frame_is_the_upload_and_its_answer(tmp_path: Path, make_sampler: Callable[..., FrameSampler]) -> None:
    """The image bytes as uploaded, then a json beside it with the detections, the model, the size and the names
    (the model's, and those the detections carry); a frame no rule keeps leaves nothing."""
    sampler = make_sampler(tmp_path, "prod")
    image = png_bytes(64, 48)
    kept = sampler.offer(
        image,
        [CIRCLE, DOUBTFUL_STAR],
        shape=(48, 64),
        model="shapes-yolo.pt@1f0c2a9be3d4",
        params={"conf": 0.25, "iou": 0.7, "imgsz": 640},
        names={0: "circle", 1: "square"},
    )
    assert kept == "low_confidence"
    assert sampler.offer(png_bytes(8, 8), [CIRCLE], shape=(8, 8)) is None
    sampler.close()
    (record,) = tmp_path.glob("prod/*/*.json")
    body = json.loads(record.read_text())
    assert SAMPLE_ID.fullmatch(body["id"]) and record.name == body["id"] + ".json"
    assert record.with_suffix(".png").read_bytes() == image
    assert record.parent.name == "2027-01-15"  # the UTC day of FakeClock's start
    assert body == {
        "id": body["id"],
        "deployment": "prod",
        "ts": 1_800_000_000.0,
        "rule": "low_confidence",
        "model": "shapes-yolo.pt@1f0c2a9be3d4",
        "params": {"conf": 0.25, "iou": 0.7, "imgsz": 640},
        "width": 64,
        "height": 48,
        "boxes": "pixels",
        "detections": [CIRCLE, DOUBTFUL_STAR],
        "names": {"0": "circle", "1": "square", "3": "star"},
        "image": record.with_suffix(".png").name,
        "bytes": len(image),
    }
    assert sampler.stats.kept == 1 and sampler.stats.by_rule == {"low_confidence": 1}


def test_the_size_comes_from_the_header_when_the_answer_has_none(
    tmp_path: Path, make_sampler: Callable[..., FrameSampler]
) -> None:
    """Without a shape the header's size is recorded; an upload that is no image is not kept."""
    sampler = make_sampler(tmp_path)
    assert sampler.offer(bmp_bytes(30, 20), [], normalized=True) == "no_detection"
    assert sampler.offer(b"%PDF-1.7 not an image", []) == "no_detection"  # judged on the loop, refused on the thread
    sampler.close()
    (info,) = list_samples(tmp_path)
    assert (info.width, info.height, info.normalized, info.image.suffix) == (30, 20, True, ".bmp")
    assert sampler.stats.unreadable == 1


def test_deployment_names_become_safe_folders(tmp_path: Path, make_sampler: Callable[..., FrameSampler]) -> None:
    """Any deployment name is a folder inside the directory, distinct from every other; the json keeps the name."""
    names = ["prod", "Prod", "eu/west", "..", "", "ünïcode ✓"]
    samplers = [make_sampler(tmp_path, name) for name in names]
    for sampler in samplers:
        sampler.offer(png_bytes(4, 4), [])
        sampler.close()
    folders = sorted(path.name for path in tmp_path.iterdir())
    assert folders == sorted(deployment_dirname(name) for name in names) and len(set(folders)) == len(names)
    assert "prod" in folders and all(name.isascii() and "/" not in name for name in folders)
    assert sorted(info.deployment for info in list_samples(tmp_path)) == sorted(names)


def test_ids_sort_by_time_and_never_collide(
    tmp_path: Path, clock: FakeClock, make_sampler: Callable[..., FrameSampler]
) -> None:
    """Two processes (two samplers) writing one folder in the same millisecond make distinct ids; ids sort by time."""
    first, second = make_sampler(tmp_path), make_sampler(tmp_path)
    for _ in range(3):
        first.offer(png_bytes(4, 4), [])
        second.offer(png_bytes(4, 4), [])
        clock.advance(0.0015)
    first.close()
    second.close()
    samples = list_samples(tmp_path)
    assert len({info.id for info in samples}) == 6
    assert [info.id for info in samples] == sorted(info.id for info in samples)
    assert sorted(info.ts for info in samples) == [info.ts for info in samples]


def test_close_writes_what_is_queued_and_is_idempotent(
    tmp_path: Path, make_sampler: Callable[..., FrameSampler]
) -> None:
    """Everything offered before close() is on disk after it; a second close is harmless and later offers are
    refused."""
    sampler = make_sampler(tmp_path, per_minute=100)
    for _ in range(20):
        sampler.offer(png_bytes(16, 16), [])
    sampler.close()
    sampler.close()
    assert len(list_samples(tmp_path)) == 20
    assert sampler.offer(png_bytes(16, 16), []) is None and not sampler.open_now()


def test_a_full_queue_drops_the_frame(
    tmp_path: Path, make_sampler: Callable[..., FrameSampler], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the writer is behind (here: the queue's byte budget), the frame is dropped and counted, not waited for."""
    monkeypatch.setattr(framesample, "QUEUE_BYTES", 100)
    sampler = make_sampler(tmp_path)
    assert sampler.offer(png_bytes(64, 64), []) is None
    assert sampler.stats.dropped_queue == 1 and sampler.open_now()


def test_a_bug_is_counted_and_logged_once(
    tmp_path: Path, make_sampler: Callable[..., FrameSampler], caplog: pytest.LogCaptureFixture
) -> None:
    """Detections of the wrong shape cannot make offer() raise: the frame is skipped, the failure logged once."""
    sampler = make_sampler(tmp_path)
    for _ in range(3):
        assert sampler.offer(png_bytes(4, 4), ["not a detection"]) is None  # type: ignore[list-item]
    assert sampler.stats.errors == 3
    assert sum("frame sampling failed" in record.message for record in caplog.records) == 1


# Caps.


def test_the_minute_cap(tmp_path: Path, clock: FakeClock, make_sampler: Callable[..., FrameSampler]) -> None:
    """Past per_minute frames the rest of the minute is dropped (counted) and open_now() says so; the next minute
    opens again."""
    sampler = make_sampler(tmp_path, per_minute=3)
    clock.now = 1_800_000_000.0 // 60 * 60
    assert [sampler.offer(png_bytes(4, 4), []) for _ in range(5)] == ["no_detection"] * 3 + [None] * 2
    assert not sampler.open_now() and sampler.stats.dropped_caps == 2
    clock.advance(60)
    assert sampler.open_now() and sampler.offer(png_bytes(4, 4), []) == "no_detection"
    sampler.close()
    assert len(list_samples(tmp_path)) == 4


def test_the_day_cap_survives_a_restart(
    tmp_path: Path, clock: FakeClock, make_sampler: Callable[..., FrameSampler]
) -> None:
    """The day's count is read back from disk: a new sampler on the same folder keeps only what is left of the
    day's cap; the next UTC day starts afresh."""
    clock.now = 1_800_000_000.0 // DAY * DAY + 3600
    first = make_sampler(tmp_path, per_day=4)
    assert all(first.offer(png_bytes(4, 4), []) for _ in range(3))
    first.close()
    second = make_sampler(tmp_path, per_day=4)
    assert second.open_now()
    assert [second.offer(png_bytes(4, 4), []) for _ in range(3)] == ["no_detection", None, None]
    assert not second.open_now()
    clock.advance(DAY)
    assert second.open_now() and second.offer(png_bytes(4, 4), []) == "no_detection"
    second.close()
    assert len(list_samples(tmp_path)) == 5


def test_the_disk_cap_deletes_the_oldest_frames(
    tmp_path: Path, clock: FakeClock, make_sampler: Callable[..., FrameSampler]
) -> None:
    """Over max_bytes the oldest frames go, on the writer; a restart with a smaller cap trims at start."""
    image = png_bytes(100, 100)
    probe = make_sampler(tmp_path / "probe")
    probe.offer(image, [])
    probe.close()
    frame_bytes = sum(path.stat().st_size for path in (tmp_path / "probe").rglob("*") if path.is_file())
    directory = tmp_path / "samples"
    sampler = make_sampler(directory, per_minute=100, max_bytes=int(4.5 * frame_bytes))
    for _ in range(7):
        sampler.offer(image, [])
        clock.advance(1)
    sampler.close()
    assert [info.ts for info in list_samples(directory)] == [1_800_000_003.0 + k for k in range(4)]
    assert sampler.stats.deleted_disk == 3
    assert sum(path.stat().st_size for path in directory.rglob("*") if path.is_file()) <= 4.5 * frame_bytes
    smaller = make_sampler(directory, max_bytes=int(2.5 * frame_bytes))
    smaller.close()  # the upkeep runs first thing on the writer
    assert [info.ts for info in list_samples(directory)] == [1_800_000_005.0, 1_800_000_006.0]
    assert len(stored_ids(directory)) == 4  # two images and their jsons: nothing else left behind


def test_retention_deletes_old_frames_and_their_day_folders(
    tmp_path: Path, clock: FakeClock, make_sampler: Callable[..., FrameSampler]
) -> None:
    """Frames older than retention_days go within a minute of the clock; emptied day folders go with them; a
    restart applies it at once."""
    sampler = make_sampler(tmp_path, retention_days=2)
    sampler.offer(png_bytes(4, 4), [])
    clock.advance(DAY)
    sampler.offer(png_bytes(4, 4), [])
    clock.advance(1.5 * DAY)  # the first frame is 2.5 days old, the second 1.5
    sampler.offer(png_bytes(4, 4), [])
    sampler.close()
    assert [round((info.ts - 1_800_000_000) / DAY, 1) for info in list_samples(tmp_path)] == [1.0, 2.5]
    assert sampler.stats.deleted_retention == 1
    assert len(list((tmp_path / "prod").iterdir())) == 2  # the first day's folder is gone
    clock.advance(DAY)  # now the second frame is 2.5 days old
    make_sampler(tmp_path, retention_days=2).close()
    assert [round((info.ts - 1_800_000_000) / DAY, 1) for info in list_samples(tmp_path)] == [2.5]


def test_a_write_that_died_is_cleaned_up(
    tmp_path: Path, clock: FakeClock, make_sampler: Callable[..., FrameSampler]
) -> None:
    """An image without its json (a process killed between the two) is invisible to readers, and removed once it
    is ten minutes old; a younger one (another process's write in progress) is left alone."""
    folder = tmp_path / "prod" / "2027-01-15"
    folder.mkdir(parents=True)
    (folder / "20270115T073000-000-abc-000001.png").write_bytes(png_bytes(4, 4))  # 30 minutes before the clock
    (folder / "20270115T073000-000-abc-000001.json.tmp").write_bytes(b"{")
    (folder / "20270115T075959-000-abc-000002.png").write_bytes(png_bytes(4, 4))  # one second before
    (folder / "notes.txt").write_text("not ours: left alone")
    make_sampler(tmp_path).close()
    assert sorted(path.name for path in folder.iterdir()) == ["20270115T075959-000-abc-000002.png", "notes.txt"]
    assert list_samples(tmp_path) == []


# The sidecar's exchanges.


def _exchange(image: bytes, answer: dict[str, Any], **fields: str) -> tuple[bytes, bytes, bytes]:
    request = httpx.Request(
        "POST", "http://upstream/predict", files={"file": ("f.png", image, "image/png")}, data=fields
    )
    return request.headers["content-type"].encode(), request.read(), json.dumps(answer).encode()


def test_an_exchange_is_parsed_on_the_writer(tmp_path: Path, make_sampler: Callable[..., FrameSampler]) -> None:
    """A real multipart body and JSON answer, in chunks: the file, the detections, the model version, and the
    request's `normalize` field; what is no predict exchange is counted as unreadable."""
    sampler = make_sampler(tmp_path)
    image = png_bytes(40, 30)
    box = detection(2, "triangle", 0.4, (0.1, 0.2, 0.5, 0.6))
    answer = {
        "images": [{"shape": [30, 40], "results": [box]}],
        "metadata": {"model": "up.pt", "modelHash": "abcdef0123456789", "params": {"conf": 0.1}},
    }
    content_type, request, response = _exchange(image, answer, conf="0.1", normalize="true")
    sampler.offer_exchange(content_type, [request[:100], request[100:]], [response[:10], response[10:]])
    confident = _exchange(image, {"images": [{"results": [CIRCLE]}]})[2]
    sampler.offer_exchange(content_type, request, confident)  # read, but no rule keeps it
    sampler.offer_exchange(b"application/json", b"{}", response)
    sampler.offer_exchange(content_type, request, b"<html>")
    sampler.offer_exchange(content_type, request[:-30], response)  # cut short
    sampler.close()
    (info,) = list_samples(tmp_path)
    assert info.image.read_bytes() == image
    assert (info.rule, info.model, info.normalized, info.width, info.height) == (
        "low_confidence", "up.pt@abcdef012345", True, 40, 30,
    )  # fmt: skip
    assert info.detections == (box,) and info.params == {"conf": 0.1} and info.names == {2: "triangle"}
    assert sampler.stats.unreadable == 3 and sampler.stats.kept == 1


def test_exchanges_count_against_the_caps(
    tmp_path: Path, clock: FakeClock, make_sampler: Callable[..., FrameSampler]
) -> None:
    """The minute's cap holds for exchanges too (checked on the writer, at the time they were offered)."""
    sampler = make_sampler(tmp_path, per_minute=2)
    clock.now = 1_800_000_000.0 // 60 * 60
    content_type, request, response = _exchange(png_bytes(8, 8), {"images": [{"shape": [8, 8], "results": []}]})
    for _ in range(4):
        sampler.offer_exchange(content_type, request, response)
    sampler.close()
    assert len(list_samples(tmp_path)) == 2 and sampler.stats.dropped_caps == 2


# Faults: the request path never sees them; each outage is logged once, and its end.


@contextlib.contextmanager
def yolowatch_logs() -> Iterator[list[logging.LogRecord]]:
    """The yolowatch logger's records (caplog's job, but these scenarios may run in a child process)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.DEBUG)
    logger = logging.getLogger("yolowatch")
    logger.addHandler(handler)
    old_level, logger.level = logger.level, logging.DEBUG
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _outage_lines(records: list[logging.LogRecord]) -> tuple[list[str], list[str]]:
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING and "not being saved" in r.getMessage()]
    recoveries = [r.getMessage() for r in records if r.levelno == logging.INFO and "again" in r.getMessage()]
    return warnings, recoveries


def _sampler(directory: Path, clock: FakeClock) -> FrameSampler:
    sampler = FrameSampler(directory, "prod", SampleRules(random_share=0), SampleCaps(per_minute=100), clock=clock)
    sampler.start()
    return sampler


def test_a_file_in_the_way(tmp_path: Path, clock: FakeClock) -> None:
    """A regular file where the directory should be: offers still answer, the failure is logged once, and saving
    resumes when the file is replaced by a folder."""
    directory = tmp_path / "samples"
    directory.write_text("a file, not a folder")
    with yolowatch_logs() as records:
        sampler = _sampler(directory, clock)
        try:
            assert [sampler.offer(png_bytes(8, 8), []) for _ in range(3)] == ["no_detection"] * 3
            sampler.flush()
            directory.unlink()
            directory.mkdir()
            sampler.offer(png_bytes(8, 8), [])
        finally:
            sampler.close()
    warnings, recoveries = _outage_lines(records)
    assert len(warnings) == 1 and str(directory) in warnings[0] and len(recoveries) == 1
    assert sampler.stats.failed_writes == 3 and sampler.stats.kept == 1
    assert len(list_samples(directory)) == 1


# A real full disk and a real read-only file system: tmpfs mounts (root, or a user namespace through `unshare`).


class MountRefused(Exception):
    pass


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size_kib: int) -> Iterator[Callable[[str], None]]:
    """A tmpfs of `size_kib` at `mountpoint` until the block ends; yields `remount("ro" | "rw")`."""
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(mountpoint)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        raise MountRefused(mounted.stderr.strip() or f"mount exited with {mounted.returncode}")

    def remount(mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(mountpoint)], check=True, capture_output=True)

    try:
        yield remount
    finally:
        subprocess.run(["umount", "--lazy", str(mountpoint)], check=True)


def run_with_mounts(scenario: Callable[[Path], None], tmp_path: Path) -> None:
    """Run `scenario(tmp_path)` where it may mount a tmpfs: here when this process may mount (root), else in a
    new user and mount namespace (`unshare --user --map-root-user --mount`). Neither: the test fails, saying why."""
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        with tmpfs(probe, 64):
            pass
    except MountRefused as refused:
        unshare = shutil.which("unshare")
        if unshare is None:
            pytest.fail(f"this test mounts a tmpfs: mounting is not permitted here ({refused}) and unshare is missing")
        code = (
            f"import sys; from pathlib import Path; sys.path[:0] = [{str(TESTS)!r}]; import test_framesample; "
            f"test_framesample.{scenario.__name__}(Path({str(tmp_path)!r}))"
        )
        argv = [unshare, "--user", "--map-root-user", "--mount", sys.executable, "-c", code]
        child = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert child.returncode == 0, (
            f"this test mounts a tmpfs: mounting is not permitted here ({refused}), so it ran in a user namespace, "
            f"where it failed:\n{child.stdout}{child.stderr}"
        )
        return
    scenario(tmp_path)


def incompressible_png(width: int, height: int) -> bytes:
    """A PNG whose pixel data is stored, not compressed: about 3 * width * height bytes."""
    rows = b"".join(b"\x00" + random.Random(y).randbytes(width * 3) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 0)) + chunk(b"IEND", b"")


def fill(path: Path, leave_bytes: int) -> None:
    """Fill the file system `path` is on, then give back `leave_bytes`."""
    with path.open("wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\xff" * 4096)
                file.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
            file.truncate(max(0, file.tell() - 4096 - leave_bytes))


def full_disk_scenario(root: Path) -> None:
    """On a full disk a frame fails mid-write: nothing of it is left, the outage is logged once, offer() answers
    throughout; once space is back, frames are saved again (and that is logged once)."""
    mountpoint = root / "small"
    mountpoint.mkdir()
    with tmpfs(mountpoint, 256), yolowatch_logs() as records:
        filler = mountpoint / "filler"
        sampler = _sampler(mountpoint / "samples", FakeClock())
        try:
            assert sampler.offer(png_bytes(8, 8), []) == "no_detection"  # the folders exist before the disk fills
            sampler.flush()
            fill(filler, leave_bytes=32 * 1024)
            image = incompressible_png(60, 60)  # about 10 KiB: fits
            large = incompressible_png(120, 120)  # about 43 KiB: cannot
            assert [sampler.offer(large, []) for _ in range(3)] == ["no_detection"] * 3
            sampler.flush()
            assert sampler.stats.failed_writes == 3 and sampler.stats.kept == 1
            assert len(stored_ids(mountpoint / "samples")) == 2  # the first frame's two files; no partial image
            filler.unlink()
            assert sampler.offer(large, []) == "no_detection" and sampler.offer(image, []) == "no_detection"
        finally:
            sampler.close()
    warnings, recoveries = _outage_lines(records)
    assert len(warnings) == 1 and "No space left on device" in warnings[0], warnings
    assert len(recoveries) == 1
    assert sampler.stats.kept == 3


def read_only_scenario(root: Path) -> None:
    """On a file system remounted read-only, frames fail (logged once), offer() answers; remounted read-write,
    they are saved again."""
    mountpoint = root / "mount"
    mountpoint.mkdir()
    with tmpfs(mountpoint, 1024) as remount, yolowatch_logs() as records:
        sampler = _sampler(mountpoint, FakeClock())
        try:
            assert sampler.offer(png_bytes(8, 8), []) == "no_detection"
            sampler.flush()
            remount("ro")
            assert [sampler.offer(png_bytes(8, 8), []) for _ in range(3)] == ["no_detection"] * 3
            sampler.flush()
            remount("rw")
            assert sampler.offer(png_bytes(8, 8), []) == "no_detection"
            sampler.flush()
            assert len(list_samples(mountpoint)) == 2
        finally:
            sampler.close()
    warnings, recoveries = _outage_lines(records)
    assert len(warnings) == 1 and "Read-only file system" in warnings[0], warnings
    assert len(recoveries) == 1
    assert sampler.stats.failed_writes == 3 and sampler.stats.kept == 2


def test_a_full_disk(tmp_path: Path) -> None:
    """A real ENOSPC (a 256 KiB tmpfs, filled): see full_disk_scenario."""
    run_with_mounts(full_disk_scenario, tmp_path)


def test_a_read_only_file_system(tmp_path: Path) -> None:
    """A real EROFS (a tmpfs remounted read-only; as root, file modes would not stop a write): see
    read_only_scenario."""
    run_with_mounts(read_only_scenario, tmp_path)
