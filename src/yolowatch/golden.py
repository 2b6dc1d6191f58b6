"""Golden-image checks: a few images with the detections a person approved, sent through the real predict endpoint
on a schedule and matched against that approved answer.

A health probe that asks "did it answer 200" misses new weights, FP16 or a preprocessing change: they answer 200
with other boxes. A golden check compares the boxes, within tolerances, and says what differed.

The set is a directory: the images, copied in, and `golden.json` (what was sent, what came back, the
tolerances). `record_golden` makes one from a running endpoint; `GoldenChecker` runs `check_golden` on a schedule
and saves each `GoldenRun` to the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import mimetypes
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from yolowatch._types import Clock
from yolowatch._util import http_url, iso_time, redacted_url
from yolowatch.records import GoldenRun
from yolowatch.store import STORE_ERRORS, Store

log = logging.getLogger("yolowatch.golden")

GOLDEN_FILE = "golden.json"
FORMAT_VERSION = 1
DEFAULT_CONF = 0.25  # the predict endpoint's own default: the floor of a set recorded without a conf field
PAIR_MIN_IOU = 0.1  # below this two boxes of one class are different objects, not one that moved
MAX_DIFFERENCES = 10  # per image; the rest are counted
MAX_REASON_CHARS = 200

# What a check sends with: (file name, image bytes, form fields) -> (HTTP status, the parsed JSON body or None).
Poster = Callable[[str, bytes, Mapping[str, str]], Awaitable[tuple[int, Any]]]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Tolerance:
    """How far an answer may move from the recorded one: the IoU a box must keep with its recorded box, and how
    much its confidence may shift (FP16 or another GPU moves both a little)."""

    iou: float = 0.8
    confidence: float = 0.1

    def __post_init__(self) -> None:
        if not (_is_number(self.iou) and 0 < self.iou <= 1):
            raise ValueError(f"tolerance iou must be a number in (0, 1], such as 0.8; got {self.iou!r}")
        if not (_is_number(self.confidence) and 0 <= self.confidence <= 1):
            raise ValueError(f"tolerance confidence must be a number in [0, 1], such as 0.1; got {self.confidence!r}")


@dataclass(frozen=True)
class Detection:
    """One box as the predict endpoint answers it (`class`, `name`, `confidence`, `box`), in its units."""

    class_id: int | None
    name: str | None
    confidence: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2

    @classmethod
    def from_json(cls, item: Any) -> Detection:
        if not isinstance(item, dict):
            raise ValueError(f"a detection must be an object, not {item!r}")
        box: Any = item.get("box")
        try:
            corners = tuple(float(box[key]) for key in ("x1", "y1", "x2", "y2"))
            confidence = float(item["confidence"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"a detection needs a confidence and a box with x1, y1, x2, y2; got {item!r}") from None
        if not all(math.isfinite(value) for value in (*corners, confidence)):
            raise ValueError(f"a detection's numbers must be finite; got {item!r}")
        class_id, name = item.get("class"), item.get("name")
        if class_id is None and name is None:
            raise ValueError(f"a detection needs a class or a name; got {item!r}")
        return cls(
            class_id=int(class_id) if isinstance(class_id, (int, float)) and not isinstance(class_id, bool) else None,
            name=str(name) if name is not None else None,
            confidence=confidence,
            box=(corners[0], corners[1], corners[2], corners[3]),
        )

    def to_json(self) -> dict[str, Any]:
        x1, y1, x2, y2 = self.box
        return {
            "class": self.class_id,
            "name": self.name,
            "confidence": self.confidence,
            "box": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
        }

    @property
    def label(self) -> str:
        return self.name if self.name is not None else f"class {self.class_id}"

    def same_class(self, other: Detection) -> bool:
        """By name where both have one (class ids move when a model is retrained with other classes), else by id."""
        if self.name is not None and other.name is not None:
            return self.name == other.name
        return self.class_id is not None and self.class_id == other.class_id

    def describe(self) -> str:
        corners = ", ".join(f"{value:.4g}" for value in self.box)
        return f"{self.label} ({self.confidence:.2f}) at [{corners}]"


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    overlap = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap
    return overlap / union if union > 0 else 0.0


@dataclass(frozen=True)
class ImageMatch:
    """How one answer compares with its recorded one. `missing` and `extra` count the failing ones; `tolerated`
    the borderline detections that came or went (near the conf floor, they flicker without anything wrong)."""

    passed: bool
    differences: list[str]
    matched: int
    missing: int
    extra: int
    min_iou: float | None  # of the matched pairs
    max_confidence_delta: float | None
    tolerated: int = 0


def _pairs(recorded: Sequence[Detection], answered: Sequence[Detection]) -> dict[int, tuple[int, float]]:
    """Greedy pairing, highest IoU first (ties: recorded order, then answered order): recorded index -> (answered
    index, IoU)."""
    candidates = sorted(
        (
            (-overlap, r, a)
            for r, old in enumerate(recorded)
            for a, new in enumerate(answered)
            if old.same_class(new) and (overlap := iou(old.box, new.box)) > PAIR_MIN_IOU
        ),
    )
    paired: dict[int, tuple[int, float]] = {}
    taken: set[int] = set()
    for negative, r, a in candidates:
        if r not in paired and a not in taken:
            paired[r] = (a, -negative)
            taken.add(a)
    return paired


def match_image(
    recorded: Sequence[Detection],
    answered: Sequence[Detection],
    tolerance: Tolerance,
    conf_floor: float = DEFAULT_CONF,
) -> ImageMatch:
    """Compare an answer with the recorded one: each recorded box should come back, of the same class, where it
    was and about as confident; nothing new should appear. Differences are in recorded order, then the extras."""
    paired = _pairs(recorded, answered)
    borderline = conf_floor + tolerance.confidence
    differences: list[str] = []
    missing = tolerated = 0
    ious: list[float] = []
    deltas: list[float] = []
    for r, old in enumerate(recorded):
        if r not in paired:
            if old.confidence < borderline:
                tolerated += 1
            else:
                missing += 1
                differences.append(f"missing {old.describe()}")
            continue
        a, overlap = paired[r]
        new = answered[a]
        delta = abs(new.confidence - old.confidence)
        ious.append(overlap)
        deltas.append(delta)
        if overlap < tolerance.iou:
            differences.append(f"{old.label} moved: IoU {overlap:.2f} < {tolerance.iou:.2f}")
        if delta > tolerance.confidence:
            differences.append(
                f"{old.label} confidence {old.confidence:.2f} → {new.confidence:.2f} "
                f"(Δ{delta:.2f} > {tolerance.confidence:.2f})"
            )
    taken = {a for a, _ in paired.values()}
    extra = 0
    for a, new in enumerate(answered):
        if a in taken:
            continue
        if new.confidence < borderline:
            tolerated += 1
        else:
            extra += 1
            differences.append(f"extra {new.describe()}")
    return ImageMatch(
        passed=not differences,
        differences=capped(differences),
        matched=len(paired),
        missing=missing,
        extra=extra,
        min_iou=min(ious) if ious else None,
        max_confidence_delta=max(deltas) if deltas else None,
        tolerated=tolerated,
    )


def capped(differences: list[str]) -> list[str]:
    if len(differences) <= MAX_DIFFERENCES:
        return differences
    return [*differences[:MAX_DIFFERENCES], f"… and {len(differences) - MAX_DIFFERENCES} more"]


# The set on disk.


@dataclass(frozen=True)
class GoldenImage:
    """One image of a set: its file in the set's directory, its digest, and the approved answer."""

    file: str
    sha256: str
    detections: tuple[Detection, ...]
    shape: tuple[int, int] | None = None  # [height, width] as the endpoint reported it

    def read(self, directory: Path) -> bytes:
        """The image's bytes, read when sent (a set is not held in memory); ValueError if it changed on disk."""
        try:
            data = (directory / self.file).read_bytes()
        except OSError as exc:
            raise ValueError(f"golden image {self.file} cannot be read: {exc.strerror or exc}") from None
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise ValueError(f"golden image {self.file} changed since it was recorded (its sha256 differs)")
        return data

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "shape": list(self.shape) if self.shape is not None else None,
            "detections": [detection.to_json() for detection in self.detections],
        }


@dataclass(frozen=True)
class GoldenSet:
    """A golden set as loaded from its directory (every image present and unchanged)."""

    directory: Path
    endpoint: str  # where it was recorded (without credentials); informational
    fields: Mapping[str, str]  # the form fields sent with every image
    tolerance: Tolerance
    images: tuple[GoldenImage, ...]
    recorded_at: str = ""

    @property
    def conf_floor(self) -> float:
        """The conf the set was recorded with: the endpoint drops everything below it."""
        try:
            return float(self.fields.get("conf", DEFAULT_CONF))
        except ValueError:
            return DEFAULT_CONF

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "endpoint": self.endpoint,
            "recordedAt": self.recorded_at,
            "fields": dict(self.fields),
            "tolerance": {"iou": self.tolerance.iou, "confidence": self.tolerance.confidence},
            "images": [image.to_json() for image in self.images],
        }


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _plain_name(name: Any) -> str:
    """A file name inside the set's directory: no folders, so a hand-edited golden.json cannot send other files."""
    if not isinstance(name, str) or not name or name in (".", "..") or Path(name).name != name or "\\" in name:
        raise ValueError(
            f"{GOLDEN_FILE}: an image's file must be a plain file name in the set's directory; got {name!r}"
        )
    return name


def _shape(raw: Any) -> tuple[int, int] | None:
    if isinstance(raw, (list, tuple)) and len(raw) >= 2 and all(isinstance(v, int) for v in raw[:2]):
        return int(raw[0]), int(raw[1])
    return None


def _image_from_json(item: Any, directory: Path) -> GoldenImage:
    if not isinstance(item, dict):
        raise ValueError(f"{GOLDEN_FILE}: each entry of images must be an object; got {item!r}")
    name = _plain_name(item.get("file"))
    sha256 = item.get("sha256")
    if not isinstance(sha256, str):
        raise ValueError(f"{GOLDEN_FILE}: image {name} has no sha256")
    raw_detections = item.get("detections")
    if not isinstance(raw_detections, list):
        raise ValueError(f"{GOLDEN_FILE}: image {name} needs a list of detections (an empty one for none)")
    try:
        detections = tuple(Detection.from_json(detection) for detection in raw_detections)
    except ValueError as exc:
        raise ValueError(f"{GOLDEN_FILE}: image {name}: {exc}") from None
    path = directory / name
    if not path.is_file():
        raise ValueError(f"golden image {name} is missing from {directory}")
    if _sha256_of(path) != sha256:
        raise ValueError(
            f"golden image {name} changed since it was recorded (its sha256 differs); record the set again"
        )
    return GoldenImage(name, sha256, detections, _shape(item.get("shape")))


def _fields_from_json(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(value, (str, int, float)) and not isinstance(value, bool) for value in raw.values()
    ):
        raise ValueError(f'{GOLDEN_FILE}: fields must map form field names to values, such as {{"conf": "0.25"}}')
    return {str(key): str(value) for key, value in raw.items()}


def _tolerance_from_json(raw: Any) -> Tolerance:
    if raw is None:
        return Tolerance()
    if not isinstance(raw, dict):
        raise ValueError(f'{GOLDEN_FILE}: tolerance must be an object such as {{"iou": 0.8, "confidence": 0.1}}')
    defaults = Tolerance()
    try:
        return Tolerance(iou=raw.get("iou", defaults.iou), confidence=raw.get("confidence", defaults.confidence))
    except ValueError as exc:
        raise ValueError(f"{GOLDEN_FILE}: {exc}") from None


def load_golden_set(directory: Path | str) -> GoldenSet:
    """The set in `directory`, every image checked against its digest; ValueError saying what is wrong."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"golden set {directory} is not a directory")
    path = directory / GOLDEN_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"golden set {directory} has no {GOLDEN_FILE}: record one with record_golden") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{path} must hold a JSON object")
    if document.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has version {document.get('version')!r}; this yolowatch reads version {FORMAT_VERSION}"
        )
    raw_images = document.get("images")
    if not isinstance(raw_images, list) or not raw_images:
        raise ValueError(f"{path} lists no images")
    images = tuple(_image_from_json(item, directory) for item in raw_images)
    names = [image.file for image in images]
    if len(set(names)) != len(names):
        raise ValueError(f"{path} lists an image twice")
    return GoldenSet(
        directory=directory,
        endpoint=str(document.get("endpoint", "")),
        fields=_fields_from_json(document.get("fields")),
        tolerance=_tolerance_from_json(document.get("tolerance")),
        images=images,
        recorded_at=str(document.get("recordedAt", "")),
    )


def write_golden_set(golden: GoldenSet) -> Path:
    """Write `golden.json` into the set's directory (whole or not at all: a checker may be reading it)."""
    path = golden.directory / GOLDEN_FILE
    partial = path.with_name(f".{GOLDEN_FILE}.partial")
    partial.write_text(json.dumps(golden.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


# Sending images.


def _reason(body: Any) -> str | None:
    """The `error` (or FastAPI's `detail`) of a refusal's JSON body, one line, shortened."""
    reason = body.get("error", body.get("detail")) if isinstance(body, dict) else None
    if not isinstance(reason, str) or not reason.strip():
        return None
    line = " ".join(reason.split())
    return line if len(line) <= MAX_REASON_CHARS else line[: MAX_REASON_CHARS - 1] + "…"


def _refusal(status: int, body: Any) -> str | None:
    """Why an answer cannot be compared (None: it is a 200 JSON answer)."""
    if status != 200:
        reason = _reason(body)
        return f"answered {status}: {reason}" if reason else f"answered {status}"
    if body is None:
        return "answered 200 but not with JSON"
    return None


def _no_answer(exc: Exception) -> str:
    text = str(exc)
    return f"no answer: {type(exc).__name__}: {text}" if text else f"no answer: {type(exc).__name__}"


def parse_answer(body: Any) -> tuple[tuple[Detection, ...], tuple[int, int] | None]:
    """The detections and shape of a predict answer (`{"images": [{"shape", "results"}], ...}`); ValueError if it
    has another shape."""
    images = body.get("images") if isinstance(body, dict) else None
    first = images[0] if isinstance(images, list) and images else None
    results = first.get("results") if isinstance(first, dict) else None
    if not isinstance(results, list):
        raise ValueError('the answer is not a predict answer: it has no "images": [{"results": [...]}]')
    return tuple(Detection.from_json(item) for item in results), _shape(first.get("shape"))  # type: ignore[union-attr]


class HttpPoster:
    """Posts images as the multipart `file` field (with form fields) to one endpoint over one kept client.

    `headers` go with every request: an Authorization bearer, or `X-Yolowatch-Golden` so the middleware leaves
    golden requests out of the deployment's figures."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self._owns_client = client is None
        self.client = client if client is not None else httpx.AsyncClient(timeout=timeout_s)

    async def __call__(self, name: str, data: bytes, fields: Mapping[str, str]) -> tuple[int, Any]:
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        response = await self.client.post(
            self.url, files={"file": (name, data, kind)}, data=dict(fields), headers=self.headers
        )
        try:
            body = response.json()
        except ValueError:  # JSONDecodeError, or a body that is not UTF-8
            body = None
        return response.status_code, body

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> HttpPoster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def http_poster(url: str, headers: Mapping[str, str] | None = None, timeout_s: float = 30.0) -> HttpPoster:
    return HttpPoster(url, headers, timeout_s)


def _shown_endpoint(url: str) -> str:
    """The endpoint as golden.json keeps it: without user:password and without a query string (it may hold a key)."""
    try:
        return str(httpx.URL(redacted_url(url)).copy_with(query=None))
    except httpx.InvalidURL:
        return redacted_url(url)


async def record_golden(
    endpoint: str,
    images: Sequence[Path],
    out: Path,
    fields: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    tolerance: Tolerance | None = None,
    client: httpx.AsyncClient | None = None,
    *,
    overwrite: bool = False,
    clock: Clock = time.time,
) -> GoldenSet:
    """Send each image to `endpoint` and keep its answer as the approved one: the images are copied into `out`
    and the answers written to `out/golden.json`. Look at the answers before trusting them: they are what the
    endpoint says today, right or wrong. `headers` are sent, never written down."""
    http_url(endpoint, "the golden set's endpoint", "http://127.0.0.1:8000/predict")
    sources = [Path(image) for image in images]
    if not sources:
        raise ValueError("a golden set needs at least one image")
    names = [source.name for source in sources]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"two images are named {twice[0]}: a golden set keeps images by file name; rename one")
    for source in sources:
        if not source.is_file():
            raise ValueError(f"image {source} is not a file")
    out = Path(out)
    if (out / GOLDEN_FILE).exists() and not overwrite:
        raise ValueError(f"{out / GOLDEN_FILE} exists: pass overwrite=True to record the set again")
    fields = dict(fields or {})
    recorded: list[GoldenImage] = []
    async with HttpPoster(endpoint, headers, client=client) as post:
        for source in sources:
            data = source.read_bytes()
            try:
                status, body = await post(source.name, data, fields)
            except httpx.HTTPError as exc:
                raise ValueError(f"image {source.name}: {_no_answer(exc)} from {redacted_url(endpoint)}") from None
            refusal = _refusal(status, body)
            if refusal is not None:
                raise ValueError(f"image {source.name}: {redacted_url(endpoint)} {refusal}")
            try:
                detections, shape = parse_answer(body)
            except ValueError as exc:
                raise ValueError(f"image {source.name}: {exc}") from None
            recorded.append(GoldenImage(source.name, hashlib.sha256(data).hexdigest(), detections, shape))
    out.mkdir(parents=True, exist_ok=True)
    for source in sources:
        target = out / source.name
        if not (target.exists() and target.samefile(source)):  # re-recording a set from its own images
            shutil.copyfile(source, target)
    golden = GoldenSet(
        directory=out,
        endpoint=_shown_endpoint(endpoint),
        fields=fields,
        tolerance=tolerance or Tolerance(),
        images=tuple(recorded),
        recorded_at=iso_time(clock()),
    )
    write_golden_set(golden)
    return golden


# One run, and the schedule.


async def _check_image(golden: GoldenSet, image: GoldenImage, post: Poster) -> list[str]:
    """What differed for one image (empty: it matched)."""
    try:
        data = await asyncio.to_thread(image.read, golden.directory)  # read and hashed off the event loop
    except ValueError as exc:
        return [str(exc)]
    try:
        status, body = await post(image.file, data, golden.fields)
    except Exception as exc:  # the endpoint's failure is this image's result, never the run's crash
        return [_no_answer(exc)]
    refusal = _refusal(status, body)
    if refusal is not None:
        return [refusal]
    try:
        detections, shape = parse_answer(body)
    except ValueError as exc:
        return [str(exc)]
    differences = []
    if image.shape is not None and shape is not None and shape != image.shape:
        differences.append(f"image shape {image.shape[0]}x{image.shape[1]} → {shape[0]}x{shape[1]}")
    match = match_image(image.detections, detections, golden.tolerance, golden.conf_floor)
    return capped(differences + match.differences)


async def check_golden(golden: GoldenSet, post: Poster, clock: Clock = time.time) -> GoldenRun:
    """Send every image of the set, one at a time, and compare each answer with the recorded one."""
    started = time.perf_counter()
    differences: dict[str, list[str]] = {}
    for image in golden.images:
        found = await _check_image(golden, image, post)
        if found:
            differences[image.file] = found
    worst = max(differences, key=lambda name: len(differences[name])) if differences else None
    return GoldenRun(
        checked_ms=int(clock() * 1000),
        images=len(golden.images),
        passed=len(golden.images) - len(differences),
        worst=worst,
        differences=differences,
        latency_ms=(time.perf_counter() - started) * 1000,
    )


def _standing(run: GoldenRun | None) -> str | None:
    if run is None:
        return None
    return "error" if run.error is not None else "ok" if run.ok else "failing"


class GoldenChecker:
    """Runs one deployment's golden set on a schedule (every `every_s` real seconds); `check()` runs it now
    (concurrent callers share one run). The set is loaded again for each run, so a re-recorded set is picked up."""

    def __init__(
        self,
        deployment: str,
        directory: Path,
        post: Poster,
        store: Store | None = None,
        every_s: float = 60.0,
        clock: Clock = time.time,
        *,
        iou: float | None = None,
        confidence: float | None = None,
    ) -> None:
        self.deployment = deployment
        self.directory = Path(directory)
        self.post = post
        self.store = store
        self.every_s = every_s
        self.clock = clock
        # Overrides of the set's own tolerances (golden.json's), for a deployment that needs looser or tighter ones.
        Tolerance(iou=0.8 if iou is None else iou, confidence=0.1 if confidence is None else confidence)  # valid?
        self.iou = iou
        self.confidence = confidence
        self.latest: GoldenRun | None = None
        self._running: asyncio.Task[GoldenRun] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._save_failing = False  # saving runs fails (the store is down): logged once per outage
        self._loop_failing = False  # the checker itself fails: logged with its traceback once per streak

    @property
    def checking(self) -> bool:
        return self._running is not None and not self._running.done()

    async def check(self) -> GoldenRun:
        if self._running is None or self._running.done():
            self._running = asyncio.get_running_loop().create_task(self._check_once())
        return await asyncio.shield(self._running)

    async def _check_once(self) -> GoldenRun:
        started = time.perf_counter()
        try:
            golden = await asyncio.to_thread(load_golden_set, self.directory)  # hashes every image: off the loop
        except (ValueError, OSError) as exc:
            run = GoldenRun(
                checked_ms=int(self.clock() * 1000),
                images=0,
                passed=0,
                worst=None,
                differences={},
                error=str(exc),
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        else:
            run = await check_golden(self._tolerated(golden), self.post, self.clock)
        self._note(run)
        self.latest = run
        if self.store is not None:
            try:
                await self.store.save_golden(self.deployment, run)
                self._save_failing = False
            except STORE_ERRORS as exc:  # once per outage: the writer's own warning says the rest
                log.log(
                    logging.DEBUG if self._save_failing else logging.WARNING,
                    "could not save the golden check of %s: %s",
                    self.deployment,
                    exc,
                )
                self._save_failing = True
        return run

    def _tolerated(self, golden: GoldenSet) -> GoldenSet:
        if self.iou is None and self.confidence is None:
            return golden
        tolerance = Tolerance(
            iou=golden.tolerance.iou if self.iou is None else self.iou,
            confidence=golden.tolerance.confidence if self.confidence is None else self.confidence,
        )
        return dataclasses.replace(golden, tolerance=tolerance)

    def _note(self, run: GoldenRun) -> None:
        """Log a change of standing (ok, failing, error), not every run."""
        was, now = _standing(self.latest), _standing(run)
        if now == was:
            log.debug("golden check of %s: %d/%d images match", self.deployment, run.passed, run.images)
        elif now == "error":
            log.warning("golden check of %s cannot run: %s", self.deployment, run.error)
        elif now == "failing":
            worst = run.worst or ""
            first = run.differences.get(worst, [""])[0]
            log.warning(
                "golden check of %s fails: %d of %d images differ from their recorded answer; worst %s: %s",
                self.deployment,
                run.images - run.passed,
                run.images,
                worst,
                first,
            )
        elif was is not None:
            log.info("golden check of %s passes again (%d images)", self.deployment, run.images)
        else:
            log.debug("golden check of %s passes (%d images)", self.deployment, run.images)

    async def run(self) -> None:
        """Check on the schedule, forever; a failure of the checker itself is logged with its traceback once per
        streak, and the next run comes on time."""
        while True:
            try:
                await self.check()
                self._loop_failing = False
            except Exception:
                log.log(logging.DEBUG if self._loop_failing else logging.ERROR, "golden check of %s failed",
                        self.deployment, exc_info=True)  # fmt: skip
                self._loop_failing = True
            await asyncio.sleep(self.every_s)

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self.run(), name=f"golden-{self.deployment}")

    async def stop(self) -> None:
        """Stop the schedule and close the poster's connections (an HttpPoster's client)."""
        for task in (self._loop_task, self._running):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._loop_task = None
        close = getattr(self.post, "aclose", None)
        if close is not None:
            await close()
