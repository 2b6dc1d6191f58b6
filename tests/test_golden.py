"""Golden-image checks: matching an answer with the recorded one, recording a set from a real endpoint, loading it
back, and runs against a real server whose answers change, fail, or that is gone."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from helpers import FakeClock, free_port, uvicorn_in_thread, wait_until_async
from yolowatch.golden import (
    GOLDEN_FILE,
    MAX_DIFFERENCES,
    Detection,
    GoldenChecker,
    HttpPoster,
    Tolerance,
    check_golden,
    iou,
    load_golden_set,
    match_image,
    record_golden,
)
from yolowatch.store import Store

pytestmark = pytest.mark.anyio

CIRCLE = {"class": 0, "name": "circle", "confidence": 0.91, "box": {"x1": 10, "y1": 10, "x2": 110, "y2": 110}}
SQUARE = {"class": 1, "name": "square", "confidence": 0.81, "box": {"x1": 150, "y1": 20, "x2": 190, "y2": 60}}
STAR = {"class": 2, "name": "star", "confidence": 0.7, "box": {"x1": 0, "y1": 120, "x2": 30, "y2": 150}}


def detection(base: dict[str, Any], **changes: Any) -> Detection:
    """`base` with some keys changed (`shift` moves the box right by that many pixels)."""
    item = {**base, **changes}
    shift = item.pop("shift", 0)
    item["box"] = {key: value + (shift if key.startswith("x") else 0) for key, value in item["box"].items()}
    return Detection.from_json(item)


# Matching (pure).


def test_the_same_answer_passes_in_any_order() -> None:
    """The recorded detections answered again, listed in another order, match one for one."""
    recorded = [detection(CIRCLE), detection(SQUARE), detection(STAR)]
    match = match_image(recorded, list(reversed(recorded)), Tolerance())
    assert match.passed and match.differences == []
    assert (match.matched, match.missing, match.extra) == (3, 0, 0)
    assert match.min_iou == 1.0 and match.max_confidence_delta == 0.0


def test_a_moved_box_fails_with_its_iou() -> None:
    """A box shifted so its IoU with the recorded one drops below the tolerance is named, with the IoU; a small
    shift within the tolerance passes."""
    recorded = [detection(CIRCLE)]
    moved = detection(CIRCLE, shift=20)
    overlap = iou(recorded[0].box, moved.box)
    match = match_image(recorded, [moved], Tolerance(iou=0.8))
    assert not match.passed and match.matched == 1 and match.min_iou == pytest.approx(overlap)
    assert match.differences == [f"circle moved: IoU {overlap:.2f} < 0.80"]
    assert match_image(recorded, [detection(CIRCLE, shift=3)], Tolerance(iou=0.8)).passed


def test_a_confidence_shift_beyond_the_tolerance_fails() -> None:
    """A box in place whose confidence moved more than the tolerance is named with both values; a smaller move
    passes."""
    recorded = [detection(SQUARE)]
    match = match_image(recorded, [detection(SQUARE, confidence=0.55)], Tolerance(confidence=0.1))
    assert not match.passed and match.max_confidence_delta == pytest.approx(0.26)
    assert match.differences == ["square confidence 0.81 → 0.55 (Δ0.26 > 0.10)"]
    assert match_image(recorded, [detection(SQUARE, confidence=0.75)], Tolerance(confidence=0.1)).passed


def test_missing_and_extra_detections_fail() -> None:
    """A recorded box that is not answered is missing; an answered box nobody recorded is extra; each named with
    its confidence and box."""
    match = match_image([detection(CIRCLE), detection(SQUARE)], [detection(CIRCLE), detection(STAR)], Tolerance())
    assert not match.passed and (match.matched, match.missing, match.extra) == (1, 1, 1)
    assert match.differences == [
        "missing square (0.81) at [150, 20, 190, 60]",
        "extra star (0.70) at [0, 120, 30, 150]",
    ]


def test_boxes_too_far_apart_are_missing_and_extra_not_moved() -> None:
    """A box of the same class that barely overlaps the recorded one is another object: missing plus extra."""
    match = match_image([detection(CIRCLE)], [detection(CIRCLE, shift=95)], Tolerance())
    assert (match.matched, match.missing, match.extra) == (0, 1, 1)
    assert [text.split()[0] for text in match.differences] == ["missing", "extra"]


@pytest.mark.parametrize("floor", [0.25, 0.5])
def test_a_borderline_detection_may_come_and_go(floor: float) -> None:
    """A detection within the confidence tolerance of the conf floor flickers without anything being wrong: its
    going and coming are tolerated; a confident one's are not."""
    tolerance = Tolerance(confidence=0.1)
    faint = detection(STAR, confidence=floor + 0.05)
    sure = detection(SQUARE, confidence=floor + 0.15)
    went = match_image([detection(CIRCLE), faint], [detection(CIRCLE)], tolerance, conf_floor=floor)
    came = match_image([detection(CIRCLE)], [detection(CIRCLE), faint], tolerance, conf_floor=floor)
    assert went.passed and came.passed and went.tolerated == came.tolerated == 1
    assert not match_image([sure], [], tolerance, conf_floor=floor).passed
    assert not match_image([], [sure], tolerance, conf_floor=floor).passed


def test_classes_are_matched_by_name_else_by_id() -> None:
    """A retrained model that numbers the classes differently still matches by name; another name at the same id
    does not match; detections without names match by id."""
    assert match_image([detection(CIRCLE)], [detection(CIRCLE, **{"class": 7})], Tolerance()).passed
    renamed = match_image([detection(CIRCLE)], [detection(CIRCLE, name="disc")], Tolerance())
    assert (renamed.missing, renamed.extra) == (1, 1)
    nameless = detection(CIRCLE, name=None)
    assert match_image([nameless], [nameless], Tolerance()).passed
    other = match_image([nameless], [detection(CIRCLE, name=None, **{"class": 3})], Tolerance())
    assert not other.passed and other.differences[0] == "missing class 0 (0.91) at [10, 10, 110, 110]"


def test_pairing_takes_the_best_overlap_first() -> None:
    """Two boxes of one class, answered slightly moved, pair each with its own recorded box (highest IoU first),
    not with whichever comes first in the list."""
    left, right = detection(CIRCLE), detection(CIRCLE, shift=60)
    match = match_image([left, right], [detection(CIRCLE, shift=62), detection(CIRCLE, shift=2)], Tolerance())
    assert match.passed and match.matched == 2


def test_differences_are_capped_per_image() -> None:
    """Many differences on one image are cut at the cap, with a line counting the rest."""
    extras = [detection(SQUARE, shift=100 * index) for index in range(MAX_DIFFERENCES + 5)]
    match = match_image([], extras, Tolerance())
    assert match.extra == MAX_DIFFERENCES + 5 and len(match.differences) == MAX_DIFFERENCES + 1
    assert match.differences[-1] == "… and 5 more"


@pytest.mark.parametrize(
    "values",
    [{"iou": 0}, {"iou": 1.2}, {"iou": -0.5}, {"confidence": -0.1}, {"confidence": 1.5}, {"iou": "0.8"}],
)
def test_tolerances_outside_their_range_are_refused(values: dict[str, Any]) -> None:
    """IoU must be in (0, 1] and confidence in [0, 1]; the message names the tolerance."""
    with pytest.raises(ValueError, match=f"tolerance {next(iter(values))}"):
        Tolerance(**values)


def test_tolerances_at_their_limits_are_accepted() -> None:
    assert Tolerance(iou=1, confidence=0) == Tolerance(iou=1.0, confidence=0.0)


# A real endpoint.


@dataclass
class FakePredict:
    """A predict server's state: the detections it answers per file name, or a refusal; what it was sent."""

    url: str = ""
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    refusal: tuple[int, str] | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)

    async def predict(self, request: Request) -> Response:
        async with request.form() as form:
            upload = form["file"]
            assert not isinstance(upload, str)
            data = await upload.read()
            fields = {key: value for key, value in form.items() if key != "file"}
        self.sent.append({"file": upload.filename, "bytes": data, "fields": fields, "headers": dict(request.headers)})
        if self.refusal is not None:
            return JSONResponse({"error": self.refusal[1]}, status_code=self.refusal[0])
        results = self.answers.get(str(upload.filename), [])
        return JSONResponse(
            {"images": [{"shape": [160, 200], "results": results}], "metadata": {"imageCount": 1, "task": "detect"}}
        )

    async def text(self, request: Request) -> Response:
        return PlainTextResponse("ok")


@pytest.fixture(scope="module")
def server() -> Iterator[FakePredict]:
    state = FakePredict()
    routes = [Route("/predict", state.predict, methods=["POST"]), Route("/text", state.text, methods=["POST"])]
    with uvicorn_in_thread(Starlette(routes=routes)) as base:
        state.url = f"{base}/predict"
        yield state


@pytest.fixture
def endpoint(server: FakePredict) -> FakePredict:
    """The module's server, answering every image with its default detections again."""
    server.answers = {"a.jpg": [CIRCLE, SQUARE], "b.jpg": [STAR], "c.jpg": []}
    server.refusal = None
    server.sent.clear()
    return server


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    """Three image files (their bytes are never decoded by the fake endpoint)."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    paths = []
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        path = folder / name
        path.write_bytes(hashlib.sha256(name.encode()).digest() * 64)
        paths.append(path)
    return paths


@pytest.fixture
async def recorded(endpoint: FakePredict, images: list[Path], tmp_path: Path) -> AsyncIterator[Path]:
    """A set recorded from the endpoint's default answers, in tmp_path/golden."""
    await record_golden(endpoint.url, images, tmp_path / "golden", fields={"conf": "0.25"})
    endpoint.sent.clear()
    yield tmp_path / "golden"


async def test_record_then_load_round_trip(endpoint: FakePredict, images: list[Path], tmp_path: Path) -> None:
    """Recording copies the images, keeps their digests and the answers; loading gives the same set back. The
    request headers (a bearer), the URL's password and its query are sent, never written down."""
    out = tmp_path / "golden"
    url = endpoint.url.replace("http://", "http://user:hunter2@") + "?key=q-secret"
    secret = {"Authorization": "Bearer sk-secret-token", "X-Api-Key": "key-secret"}
    made = await record_golden(url, images, out, fields={"conf": "0.3"}, headers=secret, tolerance=Tolerance(0.7, 0.2))
    assert all(
        sent["headers"]["x-api-key"] == "key-secret" and sent["headers"]["authorization"] for sent in endpoint.sent
    )
    assert [sent["fields"] for sent in endpoint.sent] == [{"conf": "0.3"}] * 3
    for source in images:
        assert (out / source.name).read_bytes() == source.read_bytes()
    text = (out / GOLDEN_FILE).read_text()
    assert not any(
        word in text for word in ("sk-secret-token", "key-secret", "hunter2", "q-secret", "uthorization", "X-Api")
    )
    document = json.loads(text)
    assert document["version"] == 1 and document["endpoint"] == endpoint.url and document["fields"] == {"conf": "0.3"}
    assert [image["sha256"] for image in document["images"]] == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in images
    ]
    assert document["images"][0]["detections"] == [CIRCLE, SQUARE] and document["images"][0]["shape"] == [160, 200]
    loaded = load_golden_set(out)
    assert loaded == made
    assert loaded.tolerance == Tolerance(0.7, 0.2) and loaded.conf_floor == 0.3
    assert [len(image.detections) for image in loaded.images] == [2, 1, 0]


async def test_recording_refuses_to_overwrite_a_set(endpoint: FakePredict, images: list[Path], recorded: Path) -> None:
    """A second recording into the same folder is refused unless asked for; asked, it takes the new answers (and
    can be made from the set's own images)."""
    with pytest.raises(ValueError, match="overwrite=True"):
        await record_golden(endpoint.url, images, recorded)
    endpoint.answers["c.jpg"] = [STAR]
    own = [recorded / path.name for path in images]
    again = await record_golden(endpoint.url, own, recorded, overwrite=True)
    assert len(again.images[2].detections) == 1 and load_golden_set(recorded) == again


async def test_recording_refuses_two_images_of_one_name(
    endpoint: FakePredict, images: list[Path], tmp_path: Path
) -> None:
    """Images are kept by file name, so two inputs named alike are refused before anything is sent."""
    twin = tmp_path / "elsewhere" / "a.jpg"
    twin.parent.mkdir()
    twin.write_bytes(b"other")
    with pytest.raises(ValueError, match=r"two images are named a\.jpg"):
        await record_golden(endpoint.url, [*images, twin], tmp_path / "golden")
    assert endpoint.sent == [] and not (tmp_path / "golden").exists()


async def test_recording_from_a_refusing_endpoint_says_why(
    endpoint: FakePredict, images: list[Path], tmp_path: Path
) -> None:
    """An endpoint that answers 503 makes no set: the error names the image, the status and the endpoint's reason."""
    endpoint.refusal = (503, "model is still loading")
    with pytest.raises(ValueError, match=r"image a\.jpg: .* answered 503: model is still loading"):
        await record_golden(endpoint.url, images, tmp_path / "golden")
    assert not (tmp_path / "golden" / GOLDEN_FILE).exists()


async def test_recording_from_an_endpoint_that_is_not_a_predict_endpoint(
    endpoint: FakePredict, images: list[Path], tmp_path: Path
) -> None:
    """A 200 that is not predict JSON is refused, naming the image."""
    with pytest.raises(ValueError, match=r"image a\.jpg: .*not with JSON"):
        await record_golden(endpoint.url.replace("/predict", "/text"), images, tmp_path / "golden")


def _edit(directory: Path, change: Callable[[dict[str, Any]], object]) -> None:
    path = directory / GOLDEN_FILE
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda d: d.rename(d.with_name("gone")), "is not a directory"),
        (lambda d: (d / GOLDEN_FILE).unlink(), "has no golden.json"),
        (lambda d: (d / GOLDEN_FILE).write_text("{not json"), "is not readable JSON"),
        (lambda d: (d / "b.jpg").unlink(), "golden image b.jpg is missing"),
        (lambda d: (d / "b.jpg").write_bytes(b"tampered"), "golden image b.jpg changed since it was recorded"),
        (lambda d: _edit(d, lambda doc: doc.update(tolerance={"iou": 1.5})), "tolerance iou must be"),
        (lambda d: _edit(d, lambda doc: doc.update(version=2)), "this yolowatch reads version 1"),
        (lambda d: _edit(d, lambda doc: doc["images"][0].update(file="../inputs/a.jpg")), "plain file name"),
    ],
    ids=["no-directory", "no-json", "bad-json", "missing-image", "changed-image", "bad-tolerance", "version", "path"],
)
async def test_a_spoiled_set_is_refused_in_one_sentence(
    recorded: Path, spoil: Callable[[Path], object], message: str
) -> None:
    """Each way a set on disk can be wrong is refused with a sentence saying which."""
    spoil(recorded)
    with pytest.raises(ValueError, match=message):
        load_golden_set(recorded)


# Runs.


async def test_a_run_against_the_same_answers_passes(endpoint: FakePredict, recorded: Path, clock: FakeClock) -> None:
    """Every image answered as recorded: all pass, nothing differs, the run is stamped with the clock."""
    async with HttpPoster(endpoint.url) as post:
        run = await check_golden(load_golden_set(recorded), post, clock)
    assert run.ok and (run.images, run.passed, run.worst, run.differences) == (3, 3, None, {})
    assert run.checked_ms == int(clock() * 1000) and run.latency_ms > 0
    assert [sent["fields"] for sent in endpoint.sent] == [{"conf": "0.25"}] * 3


async def test_a_run_against_other_answers_fails_naming_the_worst_image(
    endpoint: FakePredict, recorded: Path, clock: FakeClock
) -> None:
    """New weights answer other boxes with 200: the run fails, says what differed per image, and names the image
    with the most differences as the worst."""
    endpoint.answers["a.jpg"] = [{**CIRCLE, "confidence": 0.4}]  # the square is gone, the circle less sure
    endpoint.answers["c.jpg"] = [SQUARE]  # something new
    async with HttpPoster(endpoint.url) as post:
        run = await check_golden(load_golden_set(recorded), post, clock)
    assert not run.ok and run.passed == 1 and run.pass_rate == pytest.approx(1 / 3)
    assert run.worst == "a.jpg" and set(run.differences) == {"a.jpg", "c.jpg"}
    assert run.differences["a.jpg"][0].startswith("circle confidence 0.91 → 0.40")
    assert run.differences["a.jpg"][1].startswith("missing square")
    assert run.differences["c.jpg"] == ["extra square (0.81) at [150, 20, 190, 60]"]


async def test_a_refusing_endpoint_fails_every_image_with_its_reason(
    endpoint: FakePredict, recorded: Path, clock: FakeClock
) -> None:
    """A 503 is each image's failure, with the endpoint's reason."""
    endpoint.refusal = (503, "model is still loading")
    async with HttpPoster(endpoint.url) as post:
        run = await check_golden(load_golden_set(recorded), post, clock)
    assert run.passed == 0 and run.error is None
    assert run.differences == {name: ["answered 503: model is still loading"] for name in ("a.jpg", "b.jpg", "c.jpg")}


async def test_an_endpoint_that_is_down_fails_every_image_with_a_reason(recorded: Path, clock: FakeClock) -> None:
    """Nothing listening: every image fails saying there was no answer and why."""
    async with HttpPoster(f"http://127.0.0.1:{free_port()}/predict", timeout_s=5) as post:
        run = await check_golden(load_golden_set(recorded), post, clock)
    assert run.passed == 0 and run.images == 3 and run.worst in run.differences
    assert all(found[0].startswith("no answer: ConnectError") for found in run.differences.values())


# The schedule.


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_checker_stores_runs_and_picks_up_a_recorded_set(
    endpoint: FakePredict, images: list[Path], recorded: Path, make_store: Callable[..., Store], clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Each run is saved to the store; a failing streak logs one warning and passing again one info line; a set
    recorded again is used by the next run; the marker header goes with every request."""
    caplog.set_level(logging.DEBUG, logger="yolowatch.golden")
    store = make_store("golden.db")
    async with HttpPoster(endpoint.url, {"X-Yolowatch-Golden": "tok"}) as post:
        checker = GoldenChecker("demo", recorded, post, store, clock=clock)
        assert (await checker.check()).ok
        assert [sent["headers"]["x-yolowatch-golden"] for sent in endpoint.sent] == ["tok"] * 3
        endpoint.answers["b.jpg"] = []
        for _ in range(2):
            clock.advance(60)
            assert not (await checker.check()).ok
        clock.advance(60)
        await record_golden(endpoint.url, images, recorded, overwrite=True)  # b.jpg approved with no star
        assert (await checker.check()).ok and checker.latest is not None and checker.latest.ok
    runs = await store.golden_runs("demo", 0, int(clock() * 1000) + 1)
    assert [run.passed for run in runs] == [3, 2, 2, 3]
    assert runs[1].worst == "b.jpg" and runs[1].differences["b.jpg"][0].startswith("missing star")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "yolowatch.golden"]
    assert len(warnings) == 1 and "1 of 3 images differ" in warnings[0].getMessage()
    assert sum("passes again" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records) == 1


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_tampered_image_makes_a_run_with_an_error(
    recorded: Path, make_store: Callable[..., Store], clock: FakeClock, endpoint: FakePredict,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """An image changed on disk after recording makes the run impossible: it is saved with the error and no images,
    nothing is sent, and the warning is logged once for the streak."""
    caplog.set_level(logging.DEBUG, logger="yolowatch.golden")
    (recorded / "a.jpg").write_bytes(b"tampered")
    store = make_store("golden.db")
    async with HttpPoster(endpoint.url) as post:
        checker = GoldenChecker("demo", recorded, post, store, clock=clock)
        first, second = await checker.check(), await checker.check()
    assert first.error is not None and "a.jpg changed since it was recorded" in first.error
    assert (first.images, first.passed, first.pass_rate) == (0, 0, None) and not second.ok
    assert endpoint.sent == []
    assert sum(r.levelno == logging.WARNING for r in caplog.records if r.name == "yolowatch.golden") == 1
    saved = await store.latest_golden("demo")
    assert saved is not None and saved.error == first.error


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_store_that_fails_is_logged_once_and_never_raised(
    endpoint: FakePredict, recorded: Path, make_store: Callable[..., Store], clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """With its table gone the store refuses every save: runs still happen and are kept in memory; one warning."""
    caplog.set_level(logging.DEBUG, logger="yolowatch.golden")
    store = make_store("golden.db")
    await store.open()
    await store.db.execute("DROP TABLE golden_runs")
    async with HttpPoster(endpoint.url) as post:
        checker = GoldenChecker("demo", recorded, post, store, clock=clock)
        runs = [await checker.check() for _ in range(3)]
    assert all(run.ok for run in runs) and checker.latest is runs[-1]
    saving = [r for r in caplog.records if "could not save the golden check" in r.getMessage()]
    assert [r.levelno for r in saving] == [logging.WARNING, logging.DEBUG, logging.DEBUG]


async def test_concurrent_checks_share_one_run(endpoint: FakePredict, recorded: Path, clock: FakeClock) -> None:
    """Five checks asked for at once get one run's result; each image is sent once."""
    async with HttpPoster(endpoint.url) as post:
        checker = GoldenChecker("demo", recorded, post, clock=clock)
        runs = await asyncio.gather(*(checker.check() for _ in range(5)))
    assert all(run is runs[0] for run in runs) and len(endpoint.sent) == 3


async def test_tolerances_given_to_the_checker_override_the_sets(
    endpoint: FakePredict, recorded: Path, clock: FakeClock
) -> None:
    """A confidence shift beyond the set's tolerance passes under a looser one given to the checker."""
    endpoint.answers["b.jpg"] = [{**STAR, "confidence": 0.5}]
    async with HttpPoster(endpoint.url) as post:
        assert not (await GoldenChecker("d", recorded, post, clock=clock).check()).ok
        assert (await GoldenChecker("d", recorded, post, clock=clock, confidence=0.3).check()).ok
        with pytest.raises(ValueError, match="tolerance iou"):
            GoldenChecker("d", recorded, post, iou=0)


async def test_the_loop_runs_on_its_schedule_and_outlives_its_own_failures(
    endpoint: FakePredict, recorded: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The background loop runs every `every_s` seconds; a failure of the checker itself (here its clock, a fault
    no endpoint can cause) is logged with its traceback once, and the next run comes anyway."""
    caplog.set_level(logging.DEBUG, logger="yolowatch.golden")
    ticks = 0

    def clock() -> float:
        nonlocal ticks
        ticks += 1
        if ticks <= 2:
            raise RuntimeError("clock broke")
        return 1_800_000_000.0 + ticks

    async with HttpPoster(endpoint.url) as post:
        checker = GoldenChecker("demo", recorded, post, every_s=0.01, clock=clock)
        checker.start()
        try:
            await wait_until_async(lambda: checker.latest, "a golden run after two broken ones")
        finally:
            await checker.stop()
    assert checker.latest is not None and checker.latest.ok
    failures = [r for r in caplog.records if r.getMessage() == "golden check of demo failed"]
    assert [r.levelno for r in failures] == [logging.ERROR, logging.DEBUG] and failures[0].exc_info is not None


async def test_the_poster_returns_none_for_a_body_that_is_not_json(endpoint: FakePredict) -> None:
    """A 200 whose body is not JSON comes back as (200, None): check_golden reports it, never crashes on it."""
    async with HttpPoster(endpoint.url.replace("/predict", "/text")) as post:
        assert await post("a.jpg", b"x", {}) == (200, None)
    async with httpx.AsyncClient() as client:
        poster = HttpPoster(endpoint.url, client=client)
        status, body = await poster("a.jpg", b"x", {"conf": "0.5"})
        await poster.aclose()  # a client passed in stays open for its owner
        assert status == 200 and body["images"][0]["results"] == [CIRCLE, SQUARE]
        assert (await client.post(endpoint.url, files={"file": ("c.jpg", b"x")})).status_code == 200
