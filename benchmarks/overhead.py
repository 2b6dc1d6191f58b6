"""Throughput, p99 and CPU per request of a bare app vs the same app wrapped in WatchMiddleware, under wrk.

Each variant is a uvicorn process pinned to core 0 (uvloop and httptools by default: what
production runs; `--stack plain` for asyncio and h11), `wrk -t1 --latency` pinned to core 1,
variants interleaved round by round in alternating order so drift on the machine hits all alike.
Per round: req/s, p50, p99, and the server's CPU per request (utime + stime of its process over
the run / the requests wrk counted). `minimal` is a yardstick (a middleware that only times each
request into one HDR histogram); `parseall` reads every response's detections (no parse budget).

At the end the wrapped variants' databases are read back: every request wrk counted must have
been recorded (wrk abandons the requests in flight when it stops, so up to one per connection and
run more may be), or the script exits non-zero.

    python benchmarks/overhead.py                 # trivial JSON endpoint (small detection body)
    python benchmarks/overhead.py --predict       # the real predict app with the demo model (yolo extra)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from loadgen import WrkRun, cpu_seconds, free_port, process, wrk

HERE = Path(__file__).parent
TARGETS = {"throughput kept": 0.85, "p99 / bare": 1.25, "CPU added us": 15.0}

LUA_POST = """
local f = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "multipart/form-data; boundary=benchboundary"
"""


@dataclass
class Server:
    base: str
    pid: int
    db: Path
    runs: list[WrkRun] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    counted: int = 0  # requests wrk counted, warm-up included
    runs_made: int = 0


@contextlib.contextmanager
def _server(factory: str, workdir: Path, stack: str) -> Iterator[Server]:
    port = free_port()
    db = workdir / f"{factory}-{port}.db"
    loop, http = ("uvloop", "httptools") if stack == "fast" else ("asyncio", "h11")
    command = ["taskset", "-c", "0", sys.executable, "-m", "uvicorn", "--factory", f"overhead_apps:{factory}",
               "--app-dir", str(HERE), "--port", str(port), "--loop", loop, "--http", http,
               "--log-level", "warning", "--no-access-log"]  # fmt: skip
    env = {**os.environ, "BENCH_DB": str(db)}
    # The trivial apps answer GET /predict; the predict app has /health.
    ready = f"http://127.0.0.1:{port}/{'health' if 'predict' in factory else 'predict'}"
    with process(command, ready, env=env) as started:
        yield Server(f"http://127.0.0.1:{port}", started.pid, db)
    # The server has stopped here: its lifespan shutdown flushed the store.


def _stored_requests(db: Path) -> int:
    """Requests the wrapped server recorded, from its own totals in the database (the store's API, not SQL)."""
    from yolowatch.store import Store

    async def read() -> int:
        store = Store(db)
        await store.open()
        try:
            rows = await store.process_totals()
        finally:
            await store.close()
        return sum(sum(row["totals"]["status_classes"]) for row in rows if row["deployment"] == "bench")

    return asyncio.run(read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predict", action="store_true", help="benchmark the real predict app (demo model)")
    parser.add_argument("--stack", choices=["fast", "plain"], default="fast", help="uvloop+httptools or asyncio+h11")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=None, help="wrk duration per round")
    parser.add_argument("--connections", type=int, default=None)
    parser.add_argument("--variants", nargs="+", choices=["bare", "minimal", "wrapped", "parseall"], default=None)
    args = parser.parse_args()
    seconds = args.seconds or (20 if args.predict else 5)
    connections = args.connections or (2 if args.predict else 32)
    kind = "predict" if args.predict else "trivial"
    variants = args.variants or (["bare", "wrapped"] if args.predict else ["bare", "minimal", "wrapped", "parseall"])
    if "bare" not in variants:
        variants = ["bare", *variants]

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        script = None
        if args.predict:
            from yolowatch.demo.shapes import sample_image  # the yolo extra's demo images

            body = workdir / "body.bin"
            body.write_bytes(
                b'--benchboundary\r\nContent-Disposition: form-data; name="file"; filename="s.jpg"\r\n'
                b"Content-Type: image/jpeg\r\n\r\n" + sample_image(0, "val", 1)[0] + b"\r\n--benchboundary--\r\n"
            )
            script = workdir / "post.lua"
            script.write_text(LUA_POST.format(body=body))
        with contextlib.ExitStack() as stack:
            servers = {name: stack.enter_context(_server(f"{name}_{kind}", workdir, args.stack)) for name in variants}
            for server in servers.values():  # warm up (model load, first requests)
                warm = wrk(server.base, 2, connections, script)
                server.counted += warm.requests
                server.runs_made += 1
            for round_ in range(args.rounds):
                order = list(servers.items()) if round_ % 2 == 0 else list(reversed(servers.items()))
                for name, server in order:
                    before = cpu_seconds(server.pid)
                    run = wrk(server.base, seconds, connections, script)
                    cpu_us = (cpu_seconds(server.pid) - before) / run.requests * 1e6
                    server.runs.append(run)
                    server.cpu_us.append(cpu_us)
                    server.counted += run.requests
                    server.runs_made += 1
                    print(
                        f"round {round_ + 1} {name:<9} {run.rps:9.1f} req/s  p50 {run.p50_ms:6.2f} ms  "
                        f"p99 {run.p99_ms:6.2f} ms  CPU {cpu_us:6.1f} us/request",
                        flush=True,
                    )
        # The servers have stopped (their shutdown flushed the store); the databases are still in `workdir`.
        _report(servers, kind, args, seconds, connections)
        _check_recorded(servers, connections)


def _report(servers: dict[str, Server], kind: str, args: argparse.Namespace, seconds: int, connections: int) -> None:
    stack = "uvloop + httptools" if args.stack == "fast" else "asyncio + h11"
    print(f"\n{kind}, {stack}: wrk -t1 -c{connections} -d{seconds}s, {args.rounds} interleaved rounds, medians")
    print("| variant | req/s | kept (per-round) | kept (medians) | p99 ms | p99 / bare | CPU us/req | CPU added |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    bare = servers["bare"]
    bare_rps = statistics.median(run.rps for run in bare.runs)
    bare_cpu = statistics.median(bare.cpu_us)
    for name, server in servers.items():
        rps = statistics.median(run.rps for run in server.runs)
        p99 = statistics.median(run.p99_ms for run in server.runs)
        cpu = statistics.median(server.cpu_us)
        pairs = list(zip(server.runs, bare.runs, strict=True))
        kept = statistics.median(run.rps / base.rps for run, base in pairs)
        p99_ratio = statistics.median(run.p99_ms / base.p99_ms for run, base in pairs)
        print(
            f"| {name} | {rps:,.0f} | {kept:.3f} | {rps / bare_rps:.3f} | {p99:.2f} | {p99_ratio:.2f}x | {cpu:.1f} "
            f"| {cpu - bare_cpu:+.1f} |"
        )
    print(
        f"targets for wrapped: kept >= {TARGETS['throughput kept']}, p99 <= {TARGETS['p99 / bare']}x bare, "
        f"CPU added <= {TARGETS['CPU added us']:g} us"
    )


def _check_recorded(servers: dict[str, Server], connections: int) -> None:
    failed = False
    for name, server in servers.items():
        if name in ("bare", "minimal"):
            continue
        stored = _stored_requests(server.db)
        slack = connections * server.runs_made
        fine = server.counted <= stored <= server.counted + slack
        failed |= not fine
        print(
            f"{name}: wrk counted {server.counted:,} requests, the store holds {stored:,} "
            f"({'ok' if fine else 'MISMATCH'}; up to {slack} more allowed: requests wrk abandoned in flight)"
        )
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
