"""`yolowatch traffic`: a bounded load generator for demos and tests.

Sends the demo dataset's images to a predict URL at a steady rate, following a plan of phases
(`normal:60,drifted:60,malformed:10,pause:30`: mode and seconds), and stops at the end of the
plan or after `--count` requests, whichever comes first. Each phase makes one kind of traffic
on purpose, so each signal yolowatch watches can be triggered as a user trying it would:

    normal     clean scenes from the demo dataset's holdout split
    drifted    the same scenes rendered darker, blurrier, smaller (the holdout-drifted split)
    malformed  uploads the endpoint must refuse: text, a truncated JPEG, an empty file
    pause      nothing at all (detection volume drops)
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx

from yolowatch.demo.shapes import sample_image

MODES = ("normal", "drifted", "malformed", "pause")


@dataclass(frozen=True)
class Phase:
    mode: str
    seconds: float


def parse_plan(text: str) -> list[Phase]:
    """`mode:seconds,...` into phases; ValueError that says what is allowed."""
    phases = []
    for part in text.split(","):
        mode, _, seconds = part.strip().partition(":")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} in the plan; use {', '.join(MODES)}")
        try:
            duration = float(seconds)
        except ValueError:
            raise ValueError(f"{part.strip()!r}: give seconds after the colon, e.g. {mode}:30") from None
        if not 0 < duration <= 86400:
            raise ValueError(f"{part.strip()!r}: seconds must be more than 0 and at most a day")
        phases.append(Phase(mode, duration))
    return phases


def upload_for(mode: str, index: int) -> tuple[str, bytes, str]:
    """(filename, bytes, content type) of the index-th upload of a mode."""
    if mode == "malformed":
        bad = [
            ("notes.txt", b"this is not an image", "text/plain"),
            ("cut.jpg", sample_image(0, "holdout", index)[0][:600], "image/jpeg"),
            ("empty.jpg", b"", "image/jpeg"),
        ]
        return bad[index % len(bad)]
    split = "holdout-drifted" if mode == "drifted" else "holdout"
    return f"{split}-{index}.jpg", sample_image(0, split, index % 200)[0], "image/jpeg"


@dataclass
class Tally:
    """What one run sent and got back."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: int = 0  # no answer at all (connection refused, timeout)
    latencies_ms: list[float] = field(default_factory=list)

    def line(self, mode: str) -> str:
        ok = sum(count for status, count in self.statuses.items() if 200 <= status < 300)
        refused = sum(count for status, count in self.statuses.items() if status >= 400)
        p50 = sorted(self.latencies_ms)[len(self.latencies_ms) // 2] if self.latencies_ms else 0.0
        return f"[{mode}] sent {self.sent}: {ok} ok, {refused} refused, {self.failures} failed; p50 {p50:.0f} ms"


def run(
    url: str,
    plan: list[Phase],
    rate: float,
    max_requests: int,
    headers: dict[str, str] | None = None,
    fields: dict[str, str] | None = None,
    report: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Tally:
    """Send the plan's traffic (with `fields` as form fields: conf, imgsz...); one progress line a second, one at
    each phase's end."""
    tally = Tally()
    with httpx.Client(timeout=60, headers=headers) as client:
        for phase in plan:
            for index in _ticks(phase, rate, clock, sleep):
                if phase.mode == "pause":
                    continue
                if tally.sent >= max_requests:
                    report(tally.line(phase.mode) + " (request limit reached)")
                    return tally
                name, body, kind = upload_for(phase.mode, tally.sent)
                started = clock()
                try:
                    response = client.post(url, files={"file": (name, body, kind)}, data=fields)
                except httpx.HTTPError:
                    tally.failures += 1
                else:
                    tally.statuses[response.status_code] += 1
                    tally.latencies_ms.append((clock() - started) * 1000)
                tally.sent += 1
                if index % max(1, round(rate)) == 0:
                    report(tally.line(phase.mode))
            report(tally.line(phase.mode) + f" (end of {phase.mode}:{phase.seconds:g})")
    return tally


def _ticks(phase: Phase, rate: float, clock: Callable[[], float], sleep: Callable[[float], None]) -> Iterator[int]:
    """One tick every 1/rate seconds for the phase's duration (late ticks are not made up in a burst)."""
    start = clock()
    index = 0
    while True:
        now = clock()
        elapsed = now - start
        if elapsed >= phase.seconds:
            return
        if index / rate < elapsed - 1 / rate:  # fell behind (a slow answer): skip the missed ticks
            index = int(elapsed * rate)
        due = start + index / rate
        if due - start >= phase.seconds:
            return
        if due > now:
            sleep(due - now)
        yield index
        index += 1
