"""A deployment's sampled frames as the admin API reads them: the newest that match a filter, and counts of all.

A month of frames at the default caps is 30,000 json files (two seconds to read), so each day folder's counts are
kept until the folder changes (its mtime: the sampler's writes and deletions move it); the frames shown are read
from the newest days back until enough match. Blocking file I/O: call `read` on a worker thread.
"""

from __future__ import annotations

import calendar
import contextlib
import math
import os
import threading
import time
from collections import Counter
from pathlib import Path

from yolowatch.sampleset import DAY_FOLDER, SampleInfo, SampleSummary, deployment_dirname, list_samples, summary

DAY_S = 86400


class SampleShelf:
    """`shelf.read(directory, deployment, limit=24)` -> (counts of every kept frame, the newest `limit` that match,
    newest first)."""

    def __init__(self) -> None:
        self._days: dict[Path, tuple[int, SampleSummary]] = {}  # day folder -> (its mtime, its counts)
        self._lock = threading.Lock()  # two requests may read at once, on two worker threads

    def read(
        self,
        directory: Path,
        deployment: str,
        *,
        limit: int,
        rule: str | None = None,
        class_name: str | None = None,
    ) -> tuple[SampleSummary, list[SampleInfo]]:
        parent = Path(directory) / deployment_dirname(deployment)
        days = _day_folders(parent)
        counts: list[SampleSummary] = []
        shown: list[SampleInfo] = []
        for folder, mtime_ns in reversed(days):
            with self._lock:
                known = self._days.get(folder)
            if known is not None and known[0] == mtime_ns and len(shown) >= limit:
                counts.append(known[1])
                continue
            start = _day_start(folder.name)
            if start is None:
                continue
            # `until` just short of the next day, so that list_samples reads this day's folder alone. The mtime was
            # read before the listing: a frame written meanwhile moves it again, and the day is read next time.
            frames = list_samples(directory, deployment=deployment, since=start, until=math.nextafter(start + DAY_S, 0))
            counted = summary(frames)
            counts.append(counted)
            with self._lock:
                self._days[folder] = (mtime_ns, counted)
            wanted = [f for f in frames if _matches(f, rule, class_name)]
            shown.extend(reversed(wanted[max(0, len(wanted) - (limit - len(shown))) :]))
        present = {folder for folder, _ in days}
        with self._lock:  # folders deleted by retention are forgotten
            for folder in [folder for folder in self._days if folder.parent == parent and folder not in present]:
                del self._days[folder]
        return _merged(counts), shown


def _day_folders(folder: Path) -> list[tuple[Path, int]]:
    """The deployment's day folders, oldest first, with their mtimes."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):  # nothing kept yet
        return []
    days = []
    for entry in entries:
        if DAY_FOLDER.fullmatch(entry.name) and entry.is_dir():
            with contextlib.suppress(FileNotFoundError):  # deleted (retention) while it was listed
                days.append((Path(entry.path), entry.stat().st_mtime_ns))
    return sorted(days)


def _day_start(day: str) -> int | None:
    """Epoch seconds of a day folder's UTC midnight; None for a name of that shape that is no date (2027-13-45)."""
    try:
        return calendar.timegm(time.strptime(day, "%Y-%m-%d"))
    except ValueError:
        return None


def _matches(info: SampleInfo, rule: str | None, class_name: str | None) -> bool:
    return (rule is None or info.rule == rule) and (class_name is None or class_name in info.classes)


def _merged(counts: list[SampleSummary]) -> SampleSummary:
    by_rule: Counter[str] = Counter()
    for counted in counts:
        by_rule.update(counted.by_rule)
    return SampleSummary(
        frames=sum(counted.frames for counted in counts),
        image_bytes=sum(counted.image_bytes for counted in counts),
        oldest=min((counted.oldest for counted in counts if counted.oldest is not None), default=None),
        newest=max((counted.newest for counted in counts if counted.newest is not None), default=None),
        by_rule=dict(by_rule),
    )
