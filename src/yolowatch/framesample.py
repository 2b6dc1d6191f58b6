"""FrameSampler: keep a sample of the production frames a predict service sees, its detections as pseudo-labels.

Opt-in (`--sample-dir`), since it stores users' images. The request path pays only the rule decision and the
cap check (in-memory counters, microseconds); the bytes, already in memory, go to one worker thread through a
bounded queue, which writes them (`sampleset` describes the layout), and deletes frames past the disk cap and the
retention. A directory that cannot be written never fails a request: the outage is logged once, and its end.
The sidecar hands over the raw exchange (`offer_exchange`): the multipart and JSON parsing happen on the thread.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import queue
import random
import struct
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

from yolowatch._types import Clock
from yolowatch._util import parse_bool
from yolowatch.detections import model_version
from yolowatch.sampleset import DAY_FOLDER, SAMPLE_ID, day_folder, day_of, deployment_dirname, sample_ts

log = logging.getLogger("yolowatch")

GiB = 1024**3
SAMPLE_RULES = ("class", "low_confidence", "no_detection", "drift", "random")  # checked in this order
QUEUE_FRAMES = 32  # frames waiting for the writer; one more is dropped (and counted)
QUEUE_BYTES = 64 * 1024 * 1024  # ... and the bytes they may hold
MAINTENANCE_EVERY_S = 60.0  # retention, and a look at what other processes wrote, at most this often
ABANDONED_AFTER_S = 600.0  # an image this old without its json is a write that died: removed


@dataclass(frozen=True)
class SampleRules:
    """Which frames are kept: the first rule of `SAMPLE_RULES` that holds names the reason; drift and random share
    one draw, so while drifting the larger of the two shares applies."""

    low_confidence: tuple[float, float] | None = (0.25, 0.5)  # a detection with confidence in [low, high)
    no_detection: bool = True
    classes: frozenset[str] = frozenset()  # a detection of one of these classes
    drift_share: float = 0.1  # of all frames, while the deployment's drift is flagged
    random_share: float = 0.01  # of all frames

    def __post_init__(self) -> None:
        if isinstance(self.classes, str) or not all(isinstance(name, str) for name in self.classes):
            raise ValueError(f"sample classes must be a set of class names; got {self.classes!r}")
        object.__setattr__(self, "classes", frozenset(self.classes))
        band = self.low_confidence
        if band is not None and not (
            len(band) == 2 and all(_is_number(x) for x in band) and 0 <= band[0] < band[1] <= 1
        ):
            raise ValueError(f"the low-confidence band must be two numbers 0 <= low < high <= 1; got {band!r}")
        if band is not None:
            object.__setattr__(self, "low_confidence", (float(band[0]), float(band[1])))  # a list from settings too
        for name in ("drift_share", "random_share"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a share between 0 and 1; got {value!r}")


@dataclass(frozen=True)
class SampleCaps:
    """How much is kept: per minute and per day (whichever is reached first), disk, and for how long."""

    per_minute: int = 10
    per_day: int = 1000
    max_bytes: int = GiB  # over it, the oldest frames are deleted
    retention_days: float = 30.0

    def __post_init__(self) -> None:
        for name in ("per_minute", "per_day", "max_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1; got {value!r}")
        if not _is_number(self.retention_days) or self.retention_days <= 0:
            raise ValueError(f"retention_days must be a positive number of days; got {self.retention_days!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def choose(detections: Sequence[Mapping[str, Any]], rules: SampleRules, drifting: bool, draw: float) -> str | None:
    """The rule that keeps this frame, or None. `draw` is uniform in [0, 1): below `drift_share` keeps a frame
    while drifting, below `random_share` at any time."""
    if rules.classes and any(d.get("name") in rules.classes for d in detections):
        return "class"
    if rules.low_confidence is not None:
        low, high = rules.low_confidence
        for d in detections:
            confidence = d.get("confidence")
            if _is_number(confidence) and low <= confidence < high:  # type: ignore[operator]
                return "low_confidence"
    if rules.no_detection and not detections:
        return "no_detection"
    if drifting and draw < rules.drift_share:
        return "drift"
    if draw < rules.random_share:
        return "random"
    return None


# Image headers, read without decoding (no Pillow: see docs/design-notes.md, yolo/uploads.py).


def image_extension(data: bytes) -> str | None:
    """The file extension the first bytes claim: jpg, png, bmp, webp, tif or gif; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tif"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a JPEG, PNG, BMP, WebP, TIFF or GIF; None for anything else, a truncated
    header or an empty size. Never raises."""
    extension = image_extension(data)
    if extension is None:
        return None
    try:
        width, height = header_size(data, extension)
    except (IndexError, ValueError, KeyError, struct.error):
        return None
    return (width, height) if width > 0 and height > 0 else None


def header_size(data: bytes, extension: str) -> tuple[int, int]:
    """(width, height) as the header of a file of that extension says; IndexError, KeyError, ValueError or
    struct.error for a header that cannot be read (the upload check turns them into a 400)."""
    return _SIZE_READERS[extension](data)


# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic), which carry the size.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


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
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
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
        if len(data) < 30:
            raise ValueError("truncated VP8X header")
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


_SIZE_READERS = {
    "jpg": _jpeg_size,
    "png": _png_size,
    "bmp": _bmp_size,
    "webp": _webp_size,
    "tif": _tiff_size,
    "gif": _gif_size,
}


# The sampler.


@dataclass
class SamplerStats:
    """What the sampler did since it started (the admin API and the tests read it)."""

    kept: int = 0  # frames written (image and json)
    by_rule: dict[str, int] = field(default_factory=dict)
    dropped_caps: int = 0  # chosen by a rule with the minute's or the day's cap reached
    dropped_queue: int = 0  # chosen while the writer was behind (its queue full)
    unreadable: int = 0  # exchanges or uploads that held no image or no detection response
    failed_writes: int = 0  # the directory could not be written (the frame is lost)
    deleted_disk: int = 0  # frames deleted, oldest first, to stay under max_bytes
    deleted_retention: int = 0  # frames older than retention_days
    errors: int = 0  # bugs: the first is logged with its traceback


@dataclass
class _Frame:
    ts: float
    image: bytes
    detections: list[dict[str, Any]]
    shape: tuple[int, int] | None
    normalized: bool
    model: str | None
    params: Mapping[str, Any] | None
    names: Mapping[int, str] | None
    rule: str | None = None  # None: the rule is chosen on the worker (an exchange)


@dataclass
class _Exchange:
    ts: float
    content_type: bytes
    request: bytes | Sequence[bytes]
    response: bytes | Sequence[bytes]
    drifting: bool


@dataclass
class _Stored:
    """A frame on disk, in the writer's index."""

    ts: float
    files: list[str]
    size: int
    committed: bool = False


@dataclass
class _Day:
    mtime_ns: int = -1  # the folder's mtime when it was last listed
    frames: dict[str, _Stored] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(stored.size for stored in self.frames.values())


class FrameSampler:
    """`FrameSampler(Path("samples"), "prod", SampleRules(), SampleCaps())`; `start()`, then `offer(...)` after
    each answered upload (on the event loop), `close()` at shutdown (writes what is queued)."""

    def __init__(
        self,
        directory: Path,
        deployment: str,
        rules: SampleRules | None = None,
        caps: SampleCaps | None = None,
        clock: Clock = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.deployment = deployment
        self.folder = self.directory / deployment_dirname(deployment)
        self.rules = rules or SampleRules()
        self.caps = caps or SampleCaps()
        self.clock = clock
        self.rng = rng or random.Random()
        self.stats = SamplerStats()
        # Ids carry the writer (pid and a random part: a restarted container often has the same pid) and a count.
        self._writer = f"{os.getpid():x}{os.urandom(2).hex()}"
        self._counter = itertools.count(1)
        self._lock = threading.Lock()  # the counters the event loop and the writer both touch
        self._queue: queue.Queue[_Frame | _Exchange | None] = queue.Queue(QUEUE_FRAMES)
        self._queued_bytes = 0
        self._thread: threading.Thread | None = None
        self._open = False
        self._minute, self._minute_count = -1, 0
        self._closed_until = 0.0  # open_now()'s shortcut: a cap was reached until then (clock seconds)
        self._day, self._day_count = -1, 0  # frames this process admitted today
        self._day_others = (-1, 0)  # (day, frames on disk that day from other processes or earlier lives)
        # The writer's own (the thread's, and start()'s before the thread runs).
        self._days: dict[str, _Day] = {}
        self._failing = False
        self._next_maintenance = 0.0
        self._bug_logged = False

    # The event loop's side: cheap, never raises.

    def start(self) -> None:
        """Read today's frames from disk (a restart keeps the day's cap), start the writer, which reads the rest (the
        bytes, retention) before it writes anything. Lists one day folder: milliseconds."""
        if self._thread is not None:
            return
        try:
            self._scan(self.clock(), whole=False)
        except Exception:
            self._bug("reading the sample directory")
        self._next_maintenance = 0.0  # retention and the disk cap first thing on the writer
        self._thread = threading.Thread(target=self._run, name="yolowatch-frame-sampler", daemon=True)
        self._thread.start()
        self._open = True

    def close(self) -> None:
        """Stop taking frames, write those queued, stop the writer. Blocks until then; idempotent."""
        self._open = False
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def flush(self) -> None:
        """Block until every frame offered so far is written (or has failed): for tests and tools, never a request."""
        if self._thread is not None:
            self._queue.join()

    def open_now(self) -> bool:
        """Whether a frame offered now could be kept: started, the minute's and the day's caps not reached, the
        writer not behind. A caller may skip copying bytes when it is False."""
        ts = self.clock()
        if ts < self._closed_until or not self._open:  # a cap reached: nothing more until its minute or day ends
            return False
        minute = int(ts // 60)
        if minute == self._minute and self._minute_count >= self.caps.per_minute:
            self._closed_until = (minute + 1) * 60.0
            return False
        day = int(ts // 86400)
        if (self._day_count if day == self._day else 0) + self._others(day) >= self.caps.per_day:
            self._closed_until = (day + 1) * 86400.0
            return False
        return not self._queue.full()

    def offer(
        self,
        image: bytes,
        detections: list[dict[str, Any]],
        *,
        shape: tuple[int, int] | None = None,
        normalized: bool = False,
        model: str | None = None,
        params: Mapping[str, Any] | None = None,
        names: Mapping[int, str] | None = None,
        drifting: bool = False,
    ) -> str | None:
        """Offer one answered upload: `shape` is the response's (height, width), `names` the model's class names.
        Returns the rule that keeps it (it is then written on the sampler's thread), or None."""
        if not self._open:
            return None
        try:
            rule = choose(detections, self.rules, drifting, self.rng.random())
            if rule is None:
                return None
            ts = self.clock()
            if ts < self._closed_until:  # a cap was reached: counted, and nothing more until its minute or day ends
                with self._lock:
                    self.stats.dropped_caps += 1
                return None
            frame = _Frame(ts, image, detections, shape, normalized, model, params, names, rule)
            return rule if self._enqueue(frame, len(image), ts, admit=True) else None
        except Exception:
            self._bug("a frame offered for sampling")
            return None

    def offer_exchange(
        self,
        content_type: bytes,
        request_body: bytes | Sequence[bytes],
        response_body: bytes | Sequence[bytes],
        drifting: bool = False,
    ) -> None:
        """Offer a relayed exchange (the sidecar): the multipart request and the JSON response, as bytes or as the
        chunks they came in. Parsed, judged and capped on the sampler's thread."""
        if not self._open:
            return
        try:
            sizes = (_size(request_body), _size(response_body))
            ts = self.clock()
            self._enqueue(_Exchange(ts, content_type, request_body, response_body, drifting), sum(sizes), ts, False)
        except Exception:
            self._bug("an exchange offered for sampling")

    def _enqueue(self, job: _Frame | _Exchange, size: int, ts: float, admit: bool) -> bool:
        with self._lock:
            if admit and not self._admit(ts):
                return False
            if self._queued_bytes + size > QUEUE_BYTES:
                self.stats.dropped_queue += 1
                return False
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                self.stats.dropped_queue += 1
                return False
            if admit:
                self._minute_count += 1
                self._day_count += 1
            self._queued_bytes += size
            return True

    def _admit(self, ts: float) -> bool:
        """Under the lock: whether the caps leave room at `ts` (a frame admitted is counted by the caller)."""
        minute, day = int(ts // 60), int(ts // 86400)
        if minute != self._minute:
            self._minute, self._minute_count = minute, 0
        if day != self._day:
            self._day, self._day_count = day, 0
        if self._minute_count >= self.caps.per_minute:
            self._closed_until = (minute + 1) * 60.0
        elif self._day_count + self._others(day) >= self.caps.per_day:
            self._closed_until = (day + 1) * 86400.0
        else:
            return True
        self.stats.dropped_caps += 1
        return False

    def _others(self, day: int) -> int:
        others_day, count = self._day_others
        return count if others_day == day else 0

    def _bug(self, what: str) -> None:
        with self._lock:
            self.stats.errors += 1
            first, self._bug_logged = not self._bug_logged, True
        if first:
            log.error("frame sampling failed on %s (logged once; requests are not affected)", what, exc_info=True)

    # The writer thread.

    def _run(self) -> None:
        while True:
            if self.clock() >= self._next_maintenance:
                try:
                    self._maintain(self.clock())
                except Exception:
                    self._bug("the sample directory's upkeep")
            try:
                job = self._queue.get(timeout=MAINTENANCE_EVERY_S)
            except queue.Empty:
                continue
            if job is None:
                self._queue.task_done()
                return
            try:
                self._write_job(job)
            except Exception:
                self._bug("writing a sampled frame")
            finally:
                with self._lock:
                    self._queued_bytes -= (
                        len(job.image) if isinstance(job, _Frame) else _size(job.request) + _size(job.response)
                    )
                self._queue.task_done()

    def _write_job(self, job: _Frame | _Exchange) -> None:
        if isinstance(job, _Exchange):
            frame = _read_exchange(job)
            if frame is None:
                self.stats.unreadable += 1
                return
            frame.rule = choose(frame.detections, self.rules, job.drifting, self.rng.random())
            if frame.rule is None:
                return
            with self._lock:
                if not self._admit(frame.ts):
                    return
                self._minute_count += 1
                self._day_count += 1
            job = frame
        self._save(job)

    def _save(self, frame: _Frame) -> None:
        """Write the image, then its json (atomically: the commit marker); a frame half written is removed."""
        assert frame.rule is not None
        extension = image_extension(frame.image)
        size = _frame_size(frame)
        if extension is None or size is None:
            self.stats.unreadable += 1
            return
        sample_id = self._new_id(frame.ts)
        folder = self.folder / day_of(sample_id)
        image = folder / f"{sample_id}.{extension}"
        record = folder / f"{sample_id}.json"
        payload = json.dumps(_record(sample_id, self.deployment, frame, size, image.name), default=_plain).encode()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write_new(image, frame.image)
            try:
                _write_atomic(record, payload)
            except OSError:
                image.unlink(missing_ok=True)
                raise
        except OSError as error:
            self._write_failed(error)
            return
        if self._failing:
            self._failing = False
            log.info("sampled frames are being saved to %s again", self.directory)
        self.stats.kept += 1
        self.stats.by_rule[frame.rule] = self.stats.by_rule.get(frame.rule, 0) + 1
        stored = _Stored(frame.ts, [image.name, record.name], len(frame.image) + len(payload), committed=True)
        self._days.setdefault(day_of(sample_id), _Day()).frames[sample_id] = stored
        self._enforce_disk_cap()

    def _write_failed(self, error: OSError, frame_lost: bool = True) -> None:
        self.stats.failed_writes += frame_lost
        if not self._failing:
            self._failing = True
            log.warning("sampled frames are not being saved to %s: %s (logged once)", self.directory, error)

    def _new_id(self, ts: float) -> str:
        whole = int(ts)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(whole))
        return f"{stamp}-{int((ts - whole) * 1000):03d}-{self._writer}-{next(self._counter):06d}"

    # Upkeep: what is on disk, retention, the disk cap.

    def _maintain(self, now: float) -> None:
        self._next_maintenance = now + MAINTENANCE_EVERY_S
        self._scan(now)
        cutoff = now - self.caps.retention_days * 86400
        old = list(itertools.takewhile(lambda frame: frame[2].ts < cutoff, self._oldest_first()))
        self.stats.deleted_retention += self._delete([(day, sid) for day, sid, _ in old], now)
        self._enforce_disk_cap()

    def _scan(self, now: float, whole: bool = True) -> None:
        """Bring the index up to date with the disk: day folders whose mtime moved are listed again (other processes
        may write and delete there too); abandoned half-writes are removed; today's count from others published.
        Not `whole`: today's folder alone (what start() needs for the day's cap; the writer reads the rest)."""
        today = day_folder(now)
        try:
            entries = [
                entry
                for entry in os.scandir(self.folder)
                if entry.is_dir() and DAY_FOLDER.fullmatch(entry.name) and (whole or entry.name == today)
            ]
        except FileNotFoundError:
            entries = []
        except OSError as error:  # a file where the folder should be, a folder we may not read
            self._write_failed(error, frame_lost=False)
            return
        if whole:
            for day in set(self._days) - {entry.name for entry in entries}:
                del self._days[day]
        for entry in entries:
            try:
                mtime_ns = entry.stat().st_mtime_ns
                known = self._days.get(entry.name)
                if known is None or known.mtime_ns != mtime_ns:
                    self._days[entry.name] = _list_day(entry.path, mtime_ns)
            except FileNotFoundError:  # removed meanwhile (another process's retention)
                self._days.pop(entry.name, None)
            except OSError as error:  # a day folder we may not read: the others are still kept in bounds
                self._write_failed(error, frame_lost=False)
        cutoff = now - ABANDONED_AFTER_S
        abandoned = [
            (day, sid)
            for day, folder in self._days.items()
            for sid, stored in folder.frames.items()
            if not stored.committed and stored.ts < cutoff
        ]
        self._delete(abandoned, now)
        frames = self._days[today].frames if today in self._days else {}
        others = sum(1 for sid, stored in frames.items() if stored.committed and f"-{self._writer}-" not in sid)
        with self._lock:
            self._day_others = (int(now // 86400), others)

    def _oldest_first(self) -> Iterator[tuple[str, str, _Stored]]:
        """The index by age (ids sort by time)."""
        for day in sorted(self._days):
            frames = self._days[day].frames
            for sid in sorted(frames):
                yield day, sid, frames[sid]

    def _enforce_disk_cap(self) -> None:
        excess = sum(day.size for day in self._days.values()) - self.caps.max_bytes
        if excess <= 0:
            return
        doomed = []
        for day, sid, stored in self._oldest_first():
            if excess <= 0:
                break
            if stored.committed:  # a frame still being written by another process is left to it
                doomed.append((day, sid))
                excess -= stored.size
        self.stats.deleted_disk += self._delete(doomed, self.clock())

    def _delete(self, frames: list[tuple[str, str]], now: float) -> int:
        """Delete frames (the json first: readers trust only frames with one); empty day folders other than today's
        go too. Returns how many committed frames went."""
        deleted = 0
        for day, sid in frames:
            stored = self._days[day].frames[sid]
            try:
                for name in sorted(stored.files, key=lambda name: not name.endswith(".json")):
                    with contextlib.suppress(FileNotFoundError):  # another process deleted it first
                        os.unlink(self.folder / day / name)
            except OSError as error:  # kept in the index: its bytes still count
                self._write_failed(error, frame_lost=False)
                continue
            del self._days[day].frames[sid]
            deleted += stored.committed
        for day in {day for day, _ in frames}:
            if not self._days[day].frames and day != day_folder(now):
                with contextlib.suppress(OSError):  # not empty after all (another process), or already gone
                    os.rmdir(self.folder / day)
                    del self._days[day]
        return deleted


def _list_day(path: str, mtime_ns: int) -> _Day:
    day = _Day(mtime_ns)
    for entry in os.scandir(path):
        sample_id, _, suffix = entry.name.partition(".")
        if not SAMPLE_ID.fullmatch(sample_id):
            continue  # not ours
        try:
            size = entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            continue
        stored = day.frames.get(sample_id)
        if stored is None:
            stored = day.frames[sample_id] = _Stored(sample_ts(sample_id), [], 0)
        stored.files.append(entry.name)
        stored.size += size
        stored.committed = stored.committed or suffix == "json"
    return day


# Writing.


def _write_new(path: Path, data: bytes) -> None:
    """Create `path` with `data`; on any failure (a full disk mid-write) nothing is left behind."""
    try:
        with open(path, "xb") as file:
            file.write(data)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        raise


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    _write_new(temporary, data)
    try:
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise


def _record(sample_id: str, deployment: str, frame: _Frame, size: tuple[int, int], image: str) -> dict[str, Any]:
    names = {str(k): str(v) for k, v in (frame.names or {}).items()}
    for detection in frame.detections:
        cls, name = detection.get("class"), detection.get("name")
        if isinstance(cls, int) and isinstance(name, str):
            names[str(cls)] = name
    return {
        "id": sample_id,
        "deployment": deployment,
        "ts": frame.ts,
        "rule": frame.rule,
        "model": frame.model,
        "params": dict(frame.params or {}),
        "width": size[0],
        "height": size[1],
        "boxes": "normalized" if frame.normalized else "pixels",
        "detections": frame.detections,
        "names": dict(sorted(names.items(), key=lambda item: (len(item[0]), item[0]))),  # numeric order
        "image": image,
        "bytes": len(frame.image),
    }


def _frame_size(frame: _Frame) -> tuple[int, int] | None:
    """(width, height) the boxes refer to: the response's shape (it follows EXIF rotation, as the model saw the
    image), else the header's."""
    if frame.shape is not None:
        height, width = frame.shape
        if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
            return width, height
    return image_size(frame.image)


def _plain(value: Any) -> Any:
    """JSON for what a wrapped app may put in its detections (numpy scalars)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


def _size(body: bytes | Sequence[bytes]) -> int:
    return len(body) if isinstance(body, (bytes, bytearray)) else sum(len(chunk) for chunk in body)


def _joined(body: bytes | Sequence[bytes]) -> bytes:
    return bytes(body) if isinstance(body, (bytes, bytearray)) else b"".join(body)


# The sidecar's exchanges, read on the writer thread.


def _read_exchange(exchange: _Exchange) -> _Frame | None:
    """The upload and its detections from a relayed exchange; None when either is not what a predict call sends."""
    try:
        answer = json.loads(_joined(exchange.response))
        first = answer["images"][0]
        results = first.get("results") or []
        shape = first.get("shape")
        metadata = answer.get("metadata") or {}
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None
    if not isinstance(results, list) or not isinstance(metadata, dict):
        return None
    form = _multipart(exchange.content_type, _joined(exchange.request))
    if form is None:
        return None
    image, fields = form
    params = metadata.get("params")
    try:
        normalized = parse_bool(fields.get("normalize", "false"))
    except ValueError:
        normalized = False
    return _Frame(
        exchange.ts,
        image,
        [d for d in results if isinstance(d, dict)],
        (shape[0], shape[1]) if isinstance(shape, list) and len(shape) == 2 else None,
        normalized,
        model_version(metadata),
        params if isinstance(params, dict) else None,
        None,
    )


def _multipart(content_type: bytes, body: bytes) -> tuple[bytes, dict[str, str]] | None:
    """The first file of a multipart/form-data body, and its short text fields; None if there is no file."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        return None
    parts: list[tuple[dict[bytes, bytes], bytearray]] = []
    header = [b"", b""]
    ended = []

    def on_end() -> None:
        ended.append(True)

    def on_part_begin() -> None:
        parts.append(({}, bytearray()))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def on_header_end() -> None:
        parts[-1][0][header[0].lower()] = header[1]
        header[:] = [b"", b""]

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1][1].extend(data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_end": on_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except Exception:  # python_multipart's own errors: a malformed body, which the upstream refused too
        return None
    if not ended:  # cut short: the last part may be half a file
        return None
    image: bytes | None = None
    fields: dict[str, str] = {}
    for headers, data in parts:
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        if b"filename" in disposition:
            image = bytes(data) if image is None else image
        elif b"name" in disposition and len(data) <= 1024:
            fields[disposition[b"name"].decode("latin-1")] = data.decode("utf-8", "replace")
    return None if image is None else (image, fields)
