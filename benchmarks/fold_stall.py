"""How long the store writer holds the event loop at once, folding a busy second of requests.

A real Monitor on a temporary SQLite file; each round records `--requests` predict requests (every
third one with a three-detection JSON body to read), then runs one writer flush while a probe task
measures the longest time the event loop went without running it. Every request that arrives during
such a hold waits for it, which is what shows up as the middleware's p99 under load.

    python benchmarks/fold_stall.py [--requests 7000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from overhead_apps import BODY
from yolowatch.monitor import Monitor


async def _round(monitor: Monitor, requests: int) -> tuple[float, float]:
    """(the flush's duration, the longest hold of the loop during it), in ms."""
    body = orjson.dumps(BODY)
    for i in range(requests):
        status = 404 if i % 50 == 0 else 200
        monitor.recorder.record_request(
            monitor.deployment, "POST", "/predict", status, 900 + i % 400, f"r{i}", body if i % 3 == 0 else None
        )
    gaps: list[float] = []

    async def probe() -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0)
            gaps.append(time.perf_counter() - started)

    task = asyncio.create_task(probe())
    await asyncio.sleep(0)  # the probe is running before the flush starts
    started = time.perf_counter()
    await monitor.writer.flush()
    took = time.perf_counter() - started
    task.cancel()
    return took * 1000, max(gaps) * 1000


async def main(requests: int, rounds: int) -> None:
    requests_log = logging.getLogger("yolowatch.requests")
    requests_log.addHandler(logging.NullHandler())  # the request log lines are made, not printed
    requests_log.propagate = False
    with tempfile.TemporaryDirectory() as tmp:
        monitor = Monitor(Path(tmp) / "stall.db", "bench")
        await monitor.start()
        await monitor.writer.stop()  # the flushes below are the only ones
        holds = []
        for round_ in range(rounds):
            took, hold = await _round(monitor, requests)
            holds.append(hold)
            print(f"round {round_ + 1}: flush of {requests:,} requests {took:6.1f} ms; longest hold {hold:5.2f} ms")
        print(f"median longest hold {statistics.median(holds):.2f} ms, worst {max(holds):.2f} ms")
        await monitor.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=7000, help="requests recorded before each flush")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
