"""The store on both backends: 30 days of per-minute data for one deployment, from 1 and from 20 writers.

For each backend (an SQLite file; a PostgreSQL 15 server this script starts with Debian's binaries, fsync on,
unless --postgres gives one) and each writer count, it fills 30 days (43,200 minutes, 20 requests a minute
with detections, and their quarter-hour, hour and eight-hour rollups) through the real recorder and writer for
the first writer; the other writers' rows are copies of the first's under their own writer ids (same sizes and
row counts as real ones, filled in seconds instead of hours). Then it prints, as medians: one writer's flush
of a second of traffic (50 requests, with log entries) into that database, the summary and sparkline queries
of every range, and the database's size.

With --processes N (PostgreSQL), N processes each run a real writer flushing once a second for --seconds,
recording 50 requests a second, against one server: every flush's time, and how many rounds overran a second.

    python benchmarks/store.py [--backend both] [--writers 1,20] [--repeat 7] [--processes 50 --seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from yolowatch.metrics import RANGES
from yolowatch.recorder import Recorder
from yolowatch.records import DetectionSummary, ProcessInfo
from yolowatch.store import Store, StoreWriter
from yolowatch.store.rows import BUCKET_COLUMNS

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from postgres import Cluster, admin, database_url  # the tests' own PostgreSQL helper

SUMMARY = DetectionSummary(1, 3, (0.91, 0.72, 0.55), (0.01, 0.04, 0.002), (0, 1, 3), ("circle", "square", "star"))
DAY = 86400


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def fill(target: str, clock: Clock, per_minute: int, writers: int) -> int:
    """30 days for writer w00 through the recorder and writer; writers w01.. as copies of its rows."""
    store = Store(target, clock=clock)
    recorder = Recorder(clock=clock, info_logs_per_second=1)
    writer = StoreWriter(store, recorder, "w00")
    rng = np.random.default_rng(0)
    minutes = 30 * 24 * 60
    latencies = (rng.lognormal(np.log(40_000), 0.5, minutes * per_minute)).astype(int) + 1
    index = 0
    for minute in range(minutes):
        for _ in range(per_minute):
            recorder.record_request("bench", "POST", "/predict", 200, int(latencies[index]), "r", SUMMARY)
            index += 1
        clock.now += 60
        if minute % 60 == 59:
            assert await writer.flush()
    assert await writer.flush()
    others = ", ".join(c for c in BUCKET_COLUMNS if c != "writer")
    for n in range(1, writers):
        await store.db.execute(
            f"INSERT INTO buckets (writer, {others}) SELECT ?, {others} FROM buckets WHERE writer = 'w00'",
            (f"w{n:02d}",),
        )
    await store.close()
    return index * writers


async def timed(call: Callable[[], Awaitable[object]], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def flush_ms(store: Store, clock: Clock, rounds: int = 30) -> float:
    """The median time of one writer's flush of a second of traffic (50 requests)."""
    recorder = Recorder(clock=clock)
    writer = StoreWriter(store, recorder, "flusher", process=ProcessInfo("bench-host", 1, "serve"))
    rng = np.random.default_rng(1)
    times = []
    for _ in range(rounds):
        for latency in rng.lognormal(np.log(40_000), 0.5, 50).astype(int) + 1:
            recorder.record_request("bench", "POST", "/predict", 200, int(latency), "r", SUMMARY)
        clock.now += 1
        started = time.perf_counter()
        assert await writer.flush()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times[3:])  # the first rounds open connections and register the process


async def heavy_flush_cpu_ms(target: str, rounds: int = 20) -> float:
    """The serving process's CPU (all its threads: aiosqlite's included) for one flush of a busy second: 13,000
    requests, as the overhead benchmark's server sees. What the backend adds to a process, apart from the server."""
    store = Store(target)
    recorder = Recorder()
    writer = StoreWriter(store, recorder, "busy", process=ProcessInfo("bench-host", 1, "serve"))
    assert await writer.flush()
    spent = []
    for _ in range(rounds):
        for j in range(13_000):
            recorder.record_request("busy", "GET", "/predict", 200, 2_000 + j % 500, "r")
        started = time.process_time()
        assert await writer.flush()
        spent.append((time.process_time() - started) * 1000)
    await store.close()
    return statistics.median(spent)


async def size_mb(store: Store, target: str) -> float:
    if store.db.dialect == "postgresql":
        row = await store.db.fetch_one("SELECT pg_database_size(current_database()) AS size")
        assert row is not None
        return float(row["size"]) / 1e6
    return sum(p.stat().st_size for p in Path(target).parent.glob(Path(target).name + "*")) / 1e6


async def measure(backend: str, target: str, writers: int, args: argparse.Namespace) -> None:
    clock = Clock(1_800_000_000 - 30 * DAY)
    started = time.perf_counter()
    requests = await fill(target, clock, args.requests_per_minute, writers)
    filled_s = time.perf_counter() - started
    store = Store(target, clock=clock)
    await store.open()
    size = await size_mb(store, target)
    flush = await flush_ms(store, clock)
    print(f"\n{backend}, {writers} writer(s): {requests:,} requests over 30 days (filled in {filled_s:.0f} s); "
          f"database {size:.1f} MB; one flush (50 requests) {flush:.1f} ms")  # fmt: skip
    if writers == counts_first(args):
        busy = await heavy_flush_cpu_ms(target)
        print(f"one flush of a busy second (13,000 requests): {busy:.1f} ms of the process's CPU")
    print(f"{'range':<6}{'summary ms':>12}{'sparkline ms':>14}{'points':>8}{'requests':>13}")
    for name in RANGES:
        summary_ms = await timed(lambda name=name: store.summary("bench", name), args.repeat)
        series_ms = await timed(lambda name=name: store.series("bench", name), args.repeat)
        points = await store.series("bench", name)
        total = (await store.summary("bench", name))["requests"]
        print(f"{name:<6}{summary_ms:>12.1f}{series_ms:>14.1f}{len(points):>8}{total:>13,}")
    await store.close()


def counts_first(args: argparse.Namespace) -> int:
    return int(args.writers.split(",")[0])


async def child(target: str, seconds: float, rate: int) -> None:
    """One process of the --processes run: a real writer flushing once a second; prints its flush times (ms)."""
    store = Store(target)
    recorder = Recorder()
    writer = StoreWriter(store, recorder, f"proc-{time.monotonic_ns()}", process=ProcessInfo("bench", 1, "serve"))
    rng = np.random.default_rng()
    times, overran = [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        round_started = time.monotonic()
        for latency in rng.lognormal(np.log(40_000), 0.5, rate).astype(int) + 1:
            recorder.record_request("fleet", "POST", "/predict", 200, int(latency), "r", SUMMARY)
        started = time.perf_counter()
        ok = await writer.flush()
        times.append((time.perf_counter() - started) * 1000 if ok else float("inf"))
        spent = time.monotonic() - round_started
        overran += spent > 1
        await asyncio.sleep(max(0.0, 1 - spent))
    await store.close()
    print(json.dumps({"flush_ms": times, "overran": overran, "backlog": writer.backlog}))


def many_processes(url: str, processes: int, seconds: float, rate: int) -> None:
    command = [sys.executable, __file__, "--child", url, "--seconds", str(seconds), "--rate", str(rate)]
    running = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in running]
    flushes = sorted(t for r in results for t in r["flush_ms"])
    failed = sum(1 for t in flushes if t == float("inf"))
    ok = [t for t in flushes if t != float("inf")]
    p = np.percentile(ok, [50, 99]) if ok else [float("nan")] * 2
    print(f"\n{processes} processes x {seconds:g} s, one flush a second each ({rate} requests a second): "
          f"{len(flushes):,} flushes, {failed} failed; flush p50 {p[0]:.1f} ms, p99 {p[1]:.1f} ms, "
          f"max {max(ok):.1f} ms; "
          f"rounds over a second: {sum(r['overran'] for r in results)}; backlog left: "
          f"{sum(r['backlog'] for r in results)}")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--writers", default="1,20", help="writer counts, comma-separated (default 1,20)")
    parser.add_argument("--requests-per-minute", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--postgres", help="a server's postgresql://.../postgres URL (default: start one here)")
    parser.add_argument("--processes", type=int, default=0, help="also run N writer processes against PostgreSQL")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=int, default=50, help="requests a second each process records")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        await child(args.child, args.seconds, args.rate)
        return
    counts = [int(n) for n in args.writers.split(",")]
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        wants_server = args.backend != "sqlite" or args.processes
        server_url = args.postgres or (stack.enter_context(Cluster(durable=True)).url if wants_server else "")
        for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
            for writers in counts:
                if backend == "sqlite":
                    target = str(Path(tmp) / f"bench-{writers}.db")
                else:
                    admin(server_url, f"CREATE DATABASE bench_{writers}")
                    target = database_url(server_url, f"bench_{writers}")
                await measure(backend, target, writers, args)
        if args.processes:
            admin(server_url, "CREATE DATABASE fleet")
            many_processes(database_url(server_url, "fleet"), args.processes, args.seconds, args.rate)


if __name__ == "__main__":
    asyncio.run(main())
