"""Throughput, p99 and CPU per request of a bare app vs the same app wrapped in WatchMiddleware, under wrk.

Each variant is a uvicorn process pinned to core 0 (uvloop and httptools by default: what
production runs; `--stack plain` for asyncio and h11), `wrk -t1 --latency` pinned to core 1,
variants interleaved round by round in alternating order so drift on the machine hits all alike.
Per round: req/s, p50, p99, and the server's CPU per request (utime + stime of its process over
the run / the requests wrk counted). `minimal` is a yardstick (a middleware that only times each
request into one HDR histogram); `parseall` reads every response's detections (no parse budget).

At the end, once the servers have stopped (SIGTERM: uvicorn's graceful shutdown runs the lifespan
shutdown, which flushes the store), the wrapped variants' databases are read back through the
store's API: every request wrk counted, warm-up included, must have been recorded (wrk abandons the
requests in flight when it stops, so up to one per connection and run more may be), or the script
exits non-zero. Readiness is polled on /health, which the middleware does not record.

    python benchmarks/overhead.py                 # trivial JSON endpoint (small detection body)
    python benchmarks/overhead.py --predict       # the real predict app with the demo model (yolo extra)
    python benchmarks/overhead.py --postgres --variants bare wrapped wrappedpg   # also on PostgreSQL
    python benchmarks/overhead.py --otlp --variants bare wrapped wrappedotlp     # with the OTLP export on
    python benchmarks/overhead.py --traces --variants bare wrapped wrappedsampled wrappedtraces   # OTLP traces on

With `--postgres`, variant `wrappedpg` is `wrapped` writing to a PostgreSQL 15 server the script starts
(Debian's binaries, fsync on; on this 2-core machine it shares the cores with the server and wrk, which a
production database on its own machine does not) instead of an SQLite file: the request path must not notice
the backend.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from loadgen import WrkRun, cpu_seconds, free_port, process, wrk

HERE = Path(__file__).parent
VARIANTS = ["bare", "minimal", "wrapped", "parseall", "wrappedpg", "wrappedotlp", "wrappedsampled", "wrappedtraces"]
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
    db: str  # an SQLite file, or a PostgreSQL database's URL
    runs: list[WrkRun] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    counted: int = 0  # requests wrk counted, warm-up included
    runs_made: int = 0
    exit_code: int | None = None  # once stopped: 0 or -SIGTERM after a graceful shutdown, -SIGKILL if it hung


@contextlib.contextmanager
def _server(factory: str, workdir: Path, stack: str, db: str | None = None) -> Iterator[Server]:
    port = free_port()
    db = db or str(workdir / f"{factory}-{port}.db")
    loop, http = ("uvloop", "httptools") if stack == "fast" else ("asyncio", "h11")
    command = ["taskset", "-c", "0", sys.executable, "-m", "uvicorn", "--factory", f"overhead_apps:{factory}",
               "--app-dir", str(HERE), "--port", str(port), "--loop", loop, "--http", http,
               "--log-level", "warning", "--no-access-log"]  # fmt: skip
    env = {**os.environ, "BENCH_DB": db}
    # Every app answers GET /health, which WatchMiddleware leaves out: the probe is not among the stored requests.
    with process(command, f"http://127.0.0.1:{port}/health", env=env) as started:
        server = Server(f"http://127.0.0.1:{port}", _uvicorn_pid(started.pid), db)
        yield server
    # process() sent SIGTERM and waited (30 s, then SIGKILL): uvicorn's graceful shutdown ran the lifespan
    # shutdown, which flushed the store, unless the exit code says it was killed.
    server.exit_code = started.returncode


def _uvicorn_pid(pid: int) -> int:
    """The process whose CPU time each round reads. taskset execs the interpreter, so Popen's pid is the uvicorn
    process itself (one process: no --workers); checked, as a taskset wrapper's CPU time would be ~0."""
    argv = [os.fsdecode(arg) for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if arg]
    if "uvicorn" not in argv or Path(argv[0]).name == "taskset":
        raise SystemExit(f"pid {pid} is not the uvicorn process: {argv}")
    return pid


def _stored_requests(db: str) -> int:
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
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=None,
    )
    parser.add_argument("--postgres", action="store_true", help="add wrappedpg: wrapped, on a PostgreSQL server")
    parser.add_argument(
        "--otlp", action="store_true", help="add wrappedotlp: wrapped, exporting OTLP metrics each second to a receiver"
    )
    parser.add_argument(
        "--traces",
        action="store_true",
        help="add wrappedsampled and wrappedtraces: wrapped with OTLP traces on, 1 %% and 100 %% of requests sampled",
    )
    args = parser.parse_args()
    if args.predict and args.variants and not set(args.variants) <= {"bare", "wrapped"}:
        parser.error("--predict has only the variants bare and wrapped")
    seconds = args.seconds or (20 if args.predict else 5)
    connections = args.connections or (2 if args.predict else 32)
    kind = "predict" if args.predict else "trivial"
    variants = args.variants or (["bare", "wrapped"] if args.predict else ["bare", "minimal", "wrapped", "parseall"])
    if "bare" not in variants:
        variants = ["bare", *variants]
    if args.postgres and "wrappedpg" not in variants:
        variants.append("wrappedpg")
    if "wrappedpg" in variants and not args.postgres:
        parser.error("wrappedpg needs --postgres")
    if args.otlp and "wrappedotlp" not in variants:
        variants.append("wrappedotlp")
    if args.traces:
        variants += [name for name in ("wrappedsampled", "wrappedtraces") if name not in variants]
    exporting = {"wrappedotlp", "wrappedsampled", "wrappedtraces"} & set(variants)

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
        with contextlib.ExitStack() as outer:
            databases: dict[str, str] = {}
            if exporting:
                sys.path.insert(0, str(HERE.parent / "tests"))
                from otlp_receiver import OtlpReceiver  # the tests' receiver: decodes every export it gets

                receiver = outer.enter_context(OtlpReceiver())
                os.environ["BENCH_OTLP"] = receiver.endpoint
            if args.postgres:
                sys.path.insert(0, str(HERE.parent / "tests"))
                from postgres import Cluster, admin, database_url  # the tests' own PostgreSQL helper

                cluster = outer.enter_context(Cluster(durable=True))  # outlives the servers: the check reads it
                admin(cluster.url, "CREATE DATABASE overhead")
                databases["wrappedpg"] = database_url(cluster.url, "overhead")
            with contextlib.ExitStack() as stack:
                servers = {
                    name: stack.enter_context(
                        _server(f"{name.removesuffix('pg')}_{kind}", workdir, args.stack, databases.get(name))
                    )
                    for name in variants
                }
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
            if exporting:
                spans = len(receiver.spans())
                # wrappedtraces: one span per stored request (the trivial app times no stage); wrappedsampled: 1 %.
                print(f"the receiver decoded {len(receiver.requests)} metrics exports and {spans:,} spans")
            _check_recorded(servers, connections)


@dataclass
class Summary:
    rps: float  # medians over the rounds
    p50_ms: float
    p99_ms: float
    cpu_us: float
    kept: float  # median of the per-round ratios to bare
    kept_of_medians: float  # median req/s / bare's median req/s
    p99_ratio: float  # median of the per-round ratios to bare
    cpu_added_us: float  # median CPU us/request - bare's median


def _summarize(server: Server, bare: Server) -> Summary:
    rps = statistics.median(run.rps for run in server.runs)
    cpu = statistics.median(server.cpu_us)
    pairs = list(zip(server.runs, bare.runs, strict=True))
    return Summary(
        rps=rps,
        p50_ms=statistics.median(run.p50_ms for run in server.runs),
        p99_ms=statistics.median(run.p99_ms for run in server.runs),
        cpu_us=cpu,
        kept=statistics.median(run.rps / base.rps for run, base in pairs),
        kept_of_medians=rps / statistics.median(run.rps for run in bare.runs),
        p99_ratio=statistics.median(run.p99_ms / base.p99_ms for run, base in pairs),
        cpu_added_us=cpu - statistics.median(bare.cpu_us),
    )


def _report(servers: dict[str, Server], kind: str, args: argparse.Namespace, seconds: int, connections: int) -> None:
    stack = "uvloop + httptools" if args.stack == "fast" else "asyncio + h11"
    print(
        f"\n{kind}, {stack}: wrk -t1 -c{connections} -d{seconds}s --latency, {args.rounds} interleaved rounds, medians"
    )
    print(
        "| variant | req/s | kept (per-round) | kept (medians) | p50 ms | p99 ms | p99 / bare (per-round) "
        "| CPU us/req | CPU added |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    summaries = {name: _summarize(server, servers["bare"]) for name, server in servers.items()}
    for name, row in summaries.items():
        rps = f"{row.rps:,.0f}" if row.rps >= 100 else f"{row.rps:.1f}"  # the predict app serves ~10 a second
        print(
            f"| {name} | {rps} | {row.kept:.3f} | {row.kept_of_medians:.3f} | {row.p50_ms:.2f} "
            f"| {row.p99_ms:.2f} | {row.p99_ratio:.2f}x | {row.cpu_us:.1f} | {row.cpu_added_us:+.1f} |"
        )
    wrapped = summaries.get("wrapped")
    if wrapped is None:
        return

    def verdict(fine: bool) -> str:
        return "met" if fine else "MISSED"

    kept, p99, cpu = TARGETS["throughput kept"], TARGETS["p99 / bare"], TARGETS["CPU added us"]
    print(
        f"wrapped against the issue's targets: throughput kept {wrapped.kept:.3f} per round, "
        f"{wrapped.kept_of_medians:.3f} of medians (>= {kept}: {verdict(wrapped.kept >= kept)}, "
        f"{verdict(wrapped.kept_of_medians >= kept)}); p99 {wrapped.p99_ratio:.2f}x bare "
        f"(<= {p99}x: {verdict(wrapped.p99_ratio <= p99)}); CPU added {wrapped.cpu_added_us:+.1f} us "
        f"(<= {cpu:g} us: {verdict(wrapped.cpu_added_us <= cpu)})"
    )


def _check_recorded(servers: dict[str, Server], connections: int) -> None:
    failed = False
    for name, server in servers.items():
        if name in ("bare", "minimal"):
            continue
        if server.exit_code == -signal.SIGKILL:
            failed = True
            print(f"{name}: the server did not stop within 30 s of SIGTERM and was killed: its last records are lost")
        stored = _stored_requests(server.db)
        slack = connections * server.runs_made
        fine = server.counted <= stored <= server.counted + slack
        failed |= not fine
        print(
            f"{name}: wrk counted {server.counted:,} requests in {server.runs_made} runs, the store holds {stored:,} "
            f"({'ok' if fine else 'MISMATCH'}: {stored - server.counted:+,}; 0 to +{slack} allowed, the requests "
            f"wrk abandoned in flight; server exit code {server.exit_code})"
        )
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
