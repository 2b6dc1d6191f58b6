"""The sidecar against going direct and against nginx, under wrk, with everything it recorded checked.

A fast upstream (benchmarks/sidecar_upstream.py: Starlette under uvicorn with uvloop and httptools)
reads each upload and answers a three-detection body. In front of it, in turn: nothing (`direct`),
Debian's nginx (started and stopped here with a config written to a temp dir: one worker,
`proxy_request_buffering off`, keep-alive to the upstream) and `yolowatch sidecar`. The upstream and
the proxy share core 0, as a pod's containers share its CPU; `wrk -t1` runs on core 1. Rounds are
interleaved (the order alternates), for each body (a 100 KiB multipart upload and a 1-byte body) and
each connection count.

Printed per path: req/s, p50 and p99 (wrk's latency distribution), the ratios to `direct`, and for
the sidecar its CPU per request (utime + stime of its process over the run / requests) and its RSS.
After each sidecar run the script reads the sidecar's /metrics and checks that it recorded every
request wrk counted (wrk abandons the requests in flight when it stops: up to one per connection
more may be recorded, as 2xx or 499); it exits non-zero otherwise.

    python benchmarks/sidecar.py                       # 3 rounds, 8 s, 1/16/64 connections, both bodies
    python benchmarks/sidecar.py --rounds 1 --seconds 3 --connections 16 --bodies upload
    (needs nginx and wrk: apt-get install nginx-light wrk, or nginx)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from loadgen import WrkRun, cpu_seconds, free_port, memory_mib, process, wrk

HERE = Path(__file__).parent
BOUNDARY = "benchboundary"
LUA_POST = """
local f = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "{content_type}"
"""
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream predict {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://predict;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
        }}
    }}
}}
"""


@contextlib.contextmanager
def upstream_server() -> Iterator[str]:
    port = free_port()
    command = ["taskset", "-c", "0", sys.executable, "-m", "uvicorn", "--factory", "sidecar_upstream:app",
               "--app-dir", str(HERE), "--port", str(port), "--loop", "uvloop", "--http", "httptools",
               "--log-level", "warning", "--no-access-log"]  # fmt: skip
    with process(command, f"http://127.0.0.1:{port}/health"):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def nginx_server(upstream: str, tmp: Path) -> Iterator[str]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port, upstream_port = free_port(), int(upstream.rsplit(":", 1)[1])
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, upstream_port=upstream_port))
    command = ["taskset", "-c", "0", binary, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")]
    with process(command, f"http://127.0.0.1:{port}/health"):
        yield f"http://127.0.0.1:{port}"


@dataclasses.dataclass
class Sidecar:
    base: str
    admin: str
    pid: int


@contextlib.contextmanager
def sidecar_server(upstream: str, tmp: Path) -> Iterator[Sidecar]:
    port, admin = free_port(), free_port()
    command = ["taskset", "-c", "0", sys.executable, "-m", "yolowatch", "sidecar", "--upstream", upstream,
               "--port", str(port), "--admin-port", str(admin), "--db", str(tmp / "sidecar.db"),
               "--deployment", "bench", "--log-level", "warning"]  # fmt: skip
    with process(command, f"http://127.0.0.1:{admin}/health") as started:
        yield Sidecar(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}", started.pid)


def write_upload_script(tmp: Path, size: int) -> Path:
    """A wrk script posting `size` bytes: a multipart upload (as a predict client sends), or a raw body if tiny."""
    body = tmp / f"body-{size}.bin"
    if size >= 1024:
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="frame.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        tail = f"\r\n--{BOUNDARY}--\r\n".encode()
        body.write_bytes(head + os.urandom(size - len(head) - len(tail)) + tail)
        content_type = f"multipart/form-data; boundary={BOUNDARY}"
    else:
        body.write_bytes(b"x" * size)
        content_type = "application/octet-stream"
    script = tmp / f"post-{size}.lua"
    script.write_text(LUA_POST.format(body=body, content_type=content_type))
    return script


def recorded(admin: str) -> dict[str, float]:
    """The sidecar's request counts by status class, from its /metrics."""
    text = httpx.get(f"{admin}/metrics", timeout=10).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "yolowatch_requests":
            for sample in family.samples:
                if sample.name == "yolowatch_requests_total":
                    counts[sample.labels["status_class"]] = sample.value
    return counts


def settled_counts(admin: str, previous: dict[str, float], at_least: int) -> dict[str, float]:
    """The counts once the writer has flushed at least `at_least` more requests (it writes about once a second)."""
    deadline = time.monotonic() + 15
    while True:
        counts = recorded(admin)
        if sum(counts.values()) - sum(previous.values()) >= at_least or time.monotonic() > deadline:
            time.sleep(1.5)  # one more flush: the last requests wrk abandoned may still be on their way
            return recorded(admin)
        time.sleep(0.3)


@dataclasses.dataclass
class Result:
    runs: list[WrkRun] = dataclasses.field(default_factory=list)
    cpu_us: list[float] = dataclasses.field(default_factory=list)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8, help="wrk duration per run")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--bodies", nargs="+", choices=["upload", "byte"], default=["upload", "byte"])
    parser.add_argument(
        "--paths", nargs="+", choices=["direct", "nginx", "sidecar"], default=["direct", "nginx", "sidecar"]
    )
    args = parser.parse_args()
    sizes = {"upload": 100 * 1024, "byte": 1}
    results: dict[tuple[str, int, str], Result] = {}
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        scripts = {body: write_upload_script(tmp, sizes[body]) for body in args.bodies}
        upstream = stack.enter_context(upstream_server())
        bases: dict[str, str] = {}
        side: Sidecar | None = None
        for path in args.paths:
            if path == "direct":
                bases[path] = upstream
            elif path == "nginx":
                bases[path] = stack.enter_context(nginx_server(upstream, tmp))
            else:
                side = stack.enter_context(sidecar_server(upstream, tmp))
                bases[path] = side.base
        counts: dict[str, float] = {}
        for path, base in bases.items():  # warm up
            warm = wrk(base, 2, 16, scripts[args.bodies[0]])
            if side and path == "sidecar":
                counts = settled_counts(side.admin, {}, warm.requests)
        for round_ in range(args.rounds):
            for body in args.bodies:
                for connections in args.connections:
                    order = list(bases.items()) if round_ % 2 == 0 else list(reversed(bases.items()))
                    for path, base in order:
                        before = cpu_seconds(side.pid) if side and path == "sidecar" else 0.0
                        run = wrk(base, args.seconds, connections, scripts[body])
                        result = results.setdefault((body, connections, path), Result())
                        result.runs.append(run)
                        line = (
                            f"round {round_ + 1} {body:<6} c={connections:<3} {path:<8} {run.rps:8.0f} req/s  "
                            f"p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms"
                        )
                        if side and path == "sidecar":
                            result.cpu_us.append((cpu_seconds(side.pid) - before) / run.requests * 1e6)
                            after = settled_counts(side.admin, counts, run.requests)
                            added = {k: v - counts.get(k, 0) for k, v in after.items()}
                            total, ok = sum(added.values()), added.get("2xx", 0)
                            line += f"  cpu {result.cpu_us[-1]:5.1f} us/req  recorded {total:.0f} (wrk {run.requests})"
                            if not run.requests <= total <= run.requests + connections or ok < run.requests:
                                problems.append(f"{line}: recorded {added}")
                            counts = after
                        print(line, flush=True)
        if side:
            rss, peak = memory_mib(side.pid)
    _report(results, args, side is not None and "direct" in args.paths)
    if side:
        print(f"\nsidecar RSS {rss:.0f} MiB at the end (peak {peak:.0f} MiB)")
    if problems:
        print("\nRECORDED COUNTS DO NOT MATCH what wrk counted:\n" + "\n".join(problems))
        raise SystemExit(1)
    if side:
        print("every request wrk counted was recorded by the sidecar")


def _report(results: dict[tuple[str, int, str], Result], args: argparse.Namespace, ratios: bool) -> None:
    print(f"\nmedians of {args.rounds} interleaved rounds of wrk -t1 -d{args.seconds}s; ratio = median per-round ratio")
    print("| body | conns | path | req/s | of direct | p50 ms | p99 ms | p99 / direct | added p50 ms | CPU us/req |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (body, connections, path), result in results.items():
        runs = result.runs
        rps = statistics.median(run.rps for run in runs)
        p50, p99 = statistics.median(run.p50_ms for run in runs), statistics.median(run.p99_ms for run in runs)
        cells = ["-", "-", "-"]
        direct = results.get((body, connections, "direct"))
        if ratios and direct and path != "direct":
            pairs = list(zip(runs, direct.runs, strict=True))
            cells = [
                f"{statistics.median(run.rps / base.rps for run, base in pairs):.3f}",
                f"{statistics.median(run.p99_ms / base.p99_ms for run, base in pairs):.2f}x",
                f"{statistics.median(run.p50_ms - base.p50_ms for run, base in pairs):+.2f}",
            ]
        cpu = f"{statistics.median(result.cpu_us):.0f}" if result.cpu_us else "-"
        size = "100 KiB" if body == "upload" else "1 B"
        print(f"| {size} | {connections} | {path} | {rps:,.0f} | {cells[0]} | {p50:.2f} | {p99:.2f} | {cells[1]} "
              f"| {cells[2]} | {cpu} |")  # fmt: skip


if __name__ == "__main__":
    main()
