"""Time the metrics queries on 30 days of per-minute data for one deployment (real SQLite file).

Fills 43,200 minutes (with their quarter-hour and hour rollups), 20 requests a minute with
lognormal latencies and detections, then prints the median time of summary and sparkline
queries for each range.

    python benchmarks/store.py [--requests-per-minute 20] [--repeat 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from yolowatch.metrics import RANGES
from yolowatch.recorder import Recorder
from yolowatch.records import DetectionSummary
from yolowatch.store import Store, StoreWriter


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def fill(path: Path, clock: Clock, per_minute: int) -> int:
    store = Store(path, clock=clock)
    recorder = Recorder(clock=clock, info_logs_per_second=1)
    writer = StoreWriter(store, recorder, "bench")
    rng = np.random.default_rng(0)
    minutes = 30 * 24 * 60
    latencies = (rng.lognormal(np.log(40_000), 0.5, minutes * per_minute)).astype(int) + 1
    summary = DetectionSummary(1, 3, (0.91, 0.72, 0.55), (0.01, 0.04, 0.002), (0, 1, 3), ("circle", "square", "star"))
    index = 0
    for minute in range(minutes):
        for _ in range(per_minute):
            recorder.record_request("bench", "POST", "/predict", 200, int(latencies[index]), "r", summary)
            index += 1
        clock.now += 60
        if minute % 60 == 59:
            assert await writer.flush()
    assert await writer.flush()
    await store.close()
    return index


async def timed(call, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests-per-minute", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        clock = Clock(1_800_000_000 - 30 * 86400)
        started = time.perf_counter()
        requests = await fill(path, clock, args.requests_per_minute)
        print(
            f"filled 30 days, {requests:,} requests, in {time.perf_counter() - started:.0f} s; "
            f"file {path.stat().st_size / 1e6:.1f} MB"
        )
        store = Store(path, clock=clock)
        await store.open()
        print(f"{'range':<6}{'summary ms':>12}{'series ms':>11}{'points':>8}{'requests':>11}")
        for name in RANGES:
            summary_ms = await timed(lambda name=name: store.summary("bench", name), args.repeat)
            series_ms = await timed(lambda name=name: store.series("bench", name), args.repeat)
            points = await store.series("bench", name)
            total = (await store.summary("bench", name))["requests"]
            print(f"{name:<6}{summary_ms:>12.1f}{series_ms:>11.1f}{len(points):>8}{total:>11,}")
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
