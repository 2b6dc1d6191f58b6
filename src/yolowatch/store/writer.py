"""The writer task: moves what the recorder collected into the store about once a second, off the request path."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from yolowatch.recorder import Recorder
from yolowatch.records import LogEntry, ProcessInfo
from yolowatch.store.database import STORE_ERRORS
from yolowatch.store.fleet import process_row
from yolowatch.store.rows import bucket_row, log_row
from yolowatch.store.store import Store

log = logging.getLogger("yolowatch.store")
SLICE_S = 0.0005  # the longest the writer holds the event loop at a time, about
# Requests keep arriving while a fold runs in slices; it is repeated (up to FOLD_PASSES times) until what is left
# is at most FOLD_TAIL requests, which `collect` folds in one piece; a larger rest waits for the next round.
FOLD_PASSES = 4
FOLD_TAIL = 64
SEEN_EVERY_S = 15.0  # an idle process still refreshes its row in the fleet view this often (store clock)
MAX_BACKOFF_S = 8.0  # while the database refuses, rounds wait 1, 2, 4, 8, 8, ... intervals' worth of seconds


async def _pause_if_spent(started: float) -> float:
    """Let the event loop run others once a slice is spent; the start of the current slice."""
    if time.perf_counter() - started < SLICE_S:
        return started
    await asyncio.sleep(0)
    return time.perf_counter()


request_log = logging.getLogger("yolowatch.requests")


@dataclass
class WriterStats:
    rows_written: int = 0
    logs_written: int = 0
    rows_dropped: int = 0
    logs_dropped: int = 0
    failures: int = 0
    last_error: str | None = None


class StoreWriter:
    """Moves what the recorder collected into the store about once a second, off the request path.

    When the database cannot be written (locked, read-only, full), the batch stays in a bounded backlog
    and is retried; requests never wait for it. Bucket rows are snapshots keyed by period and writer, so
    the backlog holds one row per key; log entries past the cap are dropped oldest first and counted.
    """

    def __init__(
        self,
        store: Store,
        recorder: Recorder,
        writer_id: str,
        interval_s: float = 1.0,
        max_backlog_rows: int = 20_000,
        max_backlog_logs: int = 50_000,
        retention_every_s: float = 600.0,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        process: ProcessInfo | None = None,
    ) -> None:
        self.store = store
        self.process = process
        self._process_seen = float("-inf")  # when the process row was last written (store clock)
        self.on_connect = on_connect
        self.recorder = recorder
        self.writer_id = writer_id
        self.interval_s = interval_s
        self.max_backlog_rows = max_backlog_rows
        self.retention_every_s = retention_every_s
        self.stats = WriterStats()
        self._rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._logs: deque[LogEntry] = deque()
        self._max_logs = max_backlog_logs
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._failing = False
        self._failure_streak = 0
        self._connected = False
        self._last_retention = float("-inf")
        self._written_totals: dict[str, str] = {}  # deployment -> the totals JSON last written
        # Everything this process recorded before this time (store clock) is in the file.
        self.flushed_through: float | None = None

    @property
    def backlog(self) -> int:
        return len(self._rows) + len(self._logs)

    async def _take(self) -> None:
        """Move the recorder's new data into the backlog, in slices of about `SLICE_S` with the event loop
        free in between: a busy second's fold, row encoding and log lines would otherwise hold it ~10 ms."""
        for _ in range(FOLD_PASSES):
            for _ in self.recorder.folding(SLICE_S):
                await asyncio.sleep(0)
            await asyncio.sleep(0)  # the fold's last slice ends here
            if self.recorder.pending <= FOLD_TAIL:
                break  # what arrived meanwhile is little enough to fold in one piece
        # The rest in one piece if it is small; if not (the fold cannot keep up), it waits for the next round.
        collected = self.recorder.collect(fold=self.recorder.pending <= FOLD_TAIL)
        await asyncio.sleep(0)
        started = time.perf_counter()
        for bucket in collected.buckets:
            row = bucket_row(bucket, self.writer_id)
            self._rows.pop(row[:4], None)  # re-insert so the newest snapshot is last (oldest are dropped first)
            self._rows[row[:4]] = row
            started = await _pause_if_spent(started)
        while len(self._rows) > self.max_backlog_rows:
            del self._rows[next(iter(self._rows))]
            self.stats.rows_dropped += 1
        for entry in collected.logs:
            request_log.log(
                entry.severity,
                entry.message,
                extra={
                    "deployment": entry.deployment,
                    "request_id": entry.request_id,
                    "trace_id": entry.trace_id,
                    "status": entry.status,
                    "latency_ms": round(entry.latency_us / 1000, 3),
                    "detections": entry.detections,
                },
            )
            if len(self._logs) >= self._max_logs:
                self._logs.popleft()
                self.stats.logs_dropped += 1
            self._logs.append(entry)
            started = await _pause_if_spent(started)

    async def flush(self) -> bool:
        """Write everything collected so far; False (and the backlog kept) when the database refused.

        Flushes take turns: the backlog is cleared only once its write succeeded, so two at once would write
        the same log entries twice."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> bool:
        taken_at = self.store.clock()
        await self._take()
        rows, logs = list(self._rows.values()), [log_row(entry) for entry in self._logs]
        totals = self._changed_totals()
        process = None
        if self.process is not None and (rows or logs or totals or taken_at - self._process_seen >= SEEN_EVERY_S):
            process = process_row(self.writer_id, self.process, int(taken_at))
        try:
            if not self._connected:
                if self.on_connect is not None:
                    await self.on_connect()
                self._connected = True
            if rows or logs or totals or process:
                await self.store.write(rows, logs, totals, process)
        except STORE_ERRORS as exc:
            self._note_failure(exc)
            self._connected = False
            # A fresh connection next time: a file that was read-only or replaced may be writable again.
            await self.store.reconnect_writer()
            return False
        if self._failing:
            log.warning(
                "writing to %s again; backlog of %d rows and %d log entries written",
                self.store.shown,
                len(rows),
                len(logs),
            )
        self._failing = False
        self._failure_streak = 0
        self.stats.rows_written += len(rows)
        self.stats.logs_written += len(logs)
        self._rows.clear()
        self._logs.clear()
        self._written_totals.update((deployment, text) for _, deployment, _, text in totals)
        if process is not None:
            self._process_seen = taken_at
        self.flushed_through = taken_at
        return True

    def _changed_totals(self) -> list[tuple[str, str, int, str]]:
        """This process's totals per deployment (its Prometheus counters), where they changed since last written."""
        recorder_stats, writer_stats = self.recorder.stats, self.stats
        changed = []
        for deployment, lifetime in self.recorder.lifetime.items():
            text = json.dumps(
                {
                    **dataclasses.asdict(lifetime),
                    "sampled_away": recorder_stats.sampled_away,
                    "detections_skipped": recorder_stats.detections_skipped,
                    "monitoring_failures": recorder_stats.monitoring_failures,
                    "logs_dropped": recorder_stats.logs_dropped + writer_stats.logs_dropped,
                    "spans_dropped": recorder_stats.spans_dropped + recorder_stats.spans_failed,
                    "rows_dropped": writer_stats.rows_dropped,
                    "write_failures": writer_stats.failures,
                    "backlog": self.backlog,
                    # Gauges, as last sampled (in flight, queue, CPU, memory, GPU): summed over processes too.
                    "saturation": self.recorder.saturation_now.get(deployment, {}),
                },
                separators=(",", ":"),
            )
            if self._written_totals.get(deployment) != text:
                changed.append((self.writer_id, deployment, int(self.store.clock()), text))
        return changed

    def _note_failure(self, exc: BaseException) -> None:
        self.stats.failures += 1
        self._failure_streak += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if not self._failing:  # once per outage, not once per second
            log.warning(
                "cannot write to %s (%s); keeping a bounded backlog and retrying",
                self.store.shown,
                self.stats.last_error,
            )
        self._failing = True

    async def _maybe_enforce_retention(self) -> None:
        now = time.monotonic()
        if now - self._last_retention < self.retention_every_s:
            return
        self._last_retention = now
        try:
            await self.store.enforce_retention()
        except STORE_ERRORS as exc:
            log.warning("retention job failed: %s", exc)

    async def _refresh_paused(self) -> None:
        """Which monitors are paused or archived: a user's change through the admin API, from any process,
        takes effect here within a second."""
        with contextlib.suppress(*STORE_ERRORS):  # keep the last known set; the flush noted the outage
            self.recorder.paused = await self.store.paused_deployments()

    async def run(self, stopping: asyncio.Event) -> None:
        """Flush, refresh, retain, sleep, until `stopping` is set (between rounds: never in the middle of a write).
        A bug in one round is logged with its traceback (once per streak) and the next round runs: the writer
        must outlive whatever went wrong."""
        failing = False
        while not stopping.is_set():
            try:
                await self.flush()
                await self._refresh_paused()
                await self._maybe_enforce_retention()
                failing = False
            except Exception:
                log.log(logging.DEBUG if failing else logging.ERROR, "store writer round failed", exc_info=True)
                failing = True
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.next_round_s())

    def next_round_s(self) -> float:
        """The wait before the next round: the interval, backing off while the database refuses (a server that
        is down is not asked every second by every process of the fleet); the backlog keeps what comes in."""
        if not self._failing:
            return self.interval_s
        streak = min(self._failure_streak, 8)
        return min(max(MAX_BACKOFF_S, self.interval_s), self.interval_s * 2.0 ** (streak - 1))

    def start(self) -> None:
        if self._task is None:
            self._stopping = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self.run(self._stopping), name="yolowatch-store-writer")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self, flush: bool = True) -> None:
        """Stop the periodic task and (unless told not to) write what is left: the shutdown flush."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping.set()  # the round in progress ends first: cancelling it could cut a transaction
            if not task.done():  # done already when its event loop was shut down (a server that exited)
                await task
        if flush:
            await self.flush()
