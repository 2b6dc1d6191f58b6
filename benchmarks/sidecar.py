"""The sidecar against going direct and against nginx, under wrk, with everything it recorded checked.

A fast upstream (benchmarks/sidecar_upstream.py: Starlette under uvicorn with uvloop and httptools, what
production runs) reads each upload and answers a three-detection body. In front of it, in turn: nothing
(`direct`), Debian's nginx (started and stopped here with a config written to a temp dir: one worker,
`proxy_request_buffering off`, HTTP/1.1 keep-alive pool of 64 to the upstream) and `yolowatch sidecar`.
The upstream and the proxy share core 0, as a pod's containers share its CPU; `wrk -t1 --latency` runs on
core 1. Rounds are interleaved, in alternating order, for each body (a 100 KiB multipart upload and a
1-byte body) and each connection count. Any wrk error (a non-2xx answer, a socket error or timeout) ends
the run with wrk's output.

Printed per round and then as medians per body, connections and path: req/s, p50 and p99 (wrk's latency
distribution), the throughput kept against `direct` (median of per-round ratios, and ratio of medians),
p99 against direct and the p50 added; the CPU per request (utime + stime over the run / the requests wrk
counted) of the upstream and of the proxy (nginx's worker, the sidecar's process) and the proxy's RSS
after the run, with the peaks (VmHWM) at the end.

After each sidecar run the script waits for the sidecar's writer to flush and reads its /metrics: it must
have recorded every request wrk counted, as 2xx; wrk abandons the requests in flight when it stops, so up
to one per connection more may be recorded (as 2xx, or as 499 when the sidecar saw the client go), and the
request log (/api/deployments/bench/logs, which keeps every WARNING) must show those non-2xx as 499. It
exits non-zero otherwise.

    python benchmarks/sidecar.py                       # 3 rounds, 8 s, 1/16/64 connections, both bodies
    python benchmarks/sidecar.py --rounds 1 --seconds 3 --connections 16 --bodies upload
    python benchmarks/sidecar.py --paths direct sidecar  # leave nginx out
    (needs wrk and, for the nginx path, nginx: apt-get install wrk nginx-light, or nginx)
"""

from __future__ import annotations

import argparse
import collections
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
DEPLOYMENT = "bench"
SIZES = {"upload": 100 * 1024, "byte": 1}
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


@dataclasses.dataclass
class Target:
    """One path wrk is pointed at: `pid` is the process whose CPU and memory are read (None: not read)."""

    base: str
    pid: int | None = None
    admin: str | None = None  # the sidecar's admin port


def _python_pid(pid: int, expected: str) -> int:
    """taskset execs the interpreter, so Popen's pid is the server itself; checked, as a taskset wrapper's CPU time
    would be ~0."""
    argv = [os.fsdecode(arg) for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if arg]
    if expected not in argv or Path(argv[0]).name == "taskset":
        raise SystemExit(f"pid {pid} is not the {expected} process: {argv}")
    return pid


def _children(pid: int) -> list[int]:
    listed = Path(f"/proc/{pid}/task/{pid}/children")
    if listed.exists():
        return [int(child) for child in listed.read_text().split()]
    found = []  # kernels without CONFIG_PROC_CHILDREN: scan /proc for the parent pid
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


@contextlib.contextmanager
def upstream_server() -> Iterator[Target]:
    port = free_port()
    command = ["taskset", "-c", "0", sys.executable, "-m", "uvicorn", "--factory", "sidecar_upstream:app",
               "--app-dir", str(HERE), "--port", str(port), "--loop", "uvloop", "--http", "httptools",
               "--log-level", "warning", "--no-access-log"]  # fmt: skip
    with process(command, f"http://127.0.0.1:{port}/health") as started:
        yield Target(f"http://127.0.0.1:{port}", _python_pid(started.pid, "uvicorn"))


@contextlib.contextmanager
def nginx_server(upstream: str, tmp: Path) -> Iterator[Target]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    port, upstream_port = free_port(), int(upstream.rsplit(":", 1)[1])
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, upstream_port=upstream_port))
    command = ["taskset", "-c", "0", binary, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")]
    with process(command, f"http://127.0.0.1:{port}/health") as started:
        workers = _children(started.pid)  # daemon off: Popen's pid is the master; one worker (worker_processes 1)
        yield Target(f"http://127.0.0.1:{port}", workers[0] if len(workers) == 1 else None)
    log = (tmp / "error.log").read_text(errors="replace").splitlines() if (tmp / "error.log").exists() else []
    if log:
        print(f"nginx error.log: {len(log)} lines, the last: " + "\n  ".join(["", *log[-5:]]))


@contextlib.contextmanager
def sidecar_server(upstream: str, tmp: Path, sampled: bool = False) -> Iterator[Target]:
    """`yolowatch sidecar`; `sampled`: with --sample-dir at its default rules and caps (issue 14's frames)."""
    port, admin = free_port(), free_port()
    name = "sampled" if sampled else "sidecar"
    command = ["taskset", "-c", "0", sys.executable, "-m", "yolowatch", "sidecar", "--upstream", upstream,
               "--port", str(port), "--admin-port", str(admin), "--db", str(tmp / f"{name}.db"),
               "--deployment", DEPLOYMENT, "--log-level", "warning"]  # fmt: skip
    if sampled:
        command += ["--sample-dir", str(tmp / "samples")]
    with process(command, f"http://127.0.0.1:{admin}/health") as started:
        pid = _python_pid(started.pid, "yolowatch")
        yield Target(f"http://127.0.0.1:{port}", pid, f"http://127.0.0.1:{admin}")


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
    """The sidecar's request counts by status class ("2xx", "4xx", ...), from its /metrics."""
    text = httpx.get(f"{admin}/metrics", timeout=10).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "yolowatch_requests":
            for sample in family.samples:
                if sample.name == "yolowatch_requests_total" and sample.labels["deployment"] == DEPLOYMENT:
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


def logged_non_2xx(admin: str, since_ms: int) -> collections.Counter[int] | None:
    """Statuses other than 2xx in the request log since `since_ms` (every 4xx and 5xx is logged, as WARNING or
    worse; so are slow 2xx, skipped here). None if the log is too long to page through."""
    statuses: collections.Counter[int] = collections.Counter()
    params = {"severity": "WARNING,ERROR,CRITICAL", "limit": "200"}
    for _ in range(50):
        page = httpx.get(f"{admin}/api/deployments/{DEPLOYMENT}/logs", params=params, timeout=10).json()
        for entry in page["entries"]:  # newest first
            if entry["timestampMs"] < since_ms:
                return statuses
            if not 200 <= entry["status"] < 300:
                statuses[entry["status"]] += 1
        if not page["nextPageToken"]:
            return statuses
        params["pageToken"] = page["nextPageToken"]
    return None


def check_recorded(
    admin: str, before: dict[str, float], run: WrkRun, connections: int, since_ms: int
) -> tuple[dict[str, float], str, str | None]:
    """(the counts now, a note for the round's line, a problem or None) for one sidecar run."""
    after = settled_counts(admin, before, run.requests)
    added = {name: after.get(name, 0) - before.get(name, 0) for name in sorted({*after, *before})}
    total, ok = sum(added.values()), added.get("2xx", 0)
    others = {name: count for name, count in added.items() if name != "2xx" and count}
    note = f"recorded {total:.0f} (wrk {run.requests}{', ' if others else ''}"
    note += ", ".join(f"{count:.0f} {name}" for name, count in others.items()) + ")"
    problems = []
    if not run.requests <= total <= run.requests + connections:
        problems.append(f"recorded {total:.0f}, wrk counted {run.requests} (allowed: up to +{connections})")
    if ok < run.requests:
        problems.append(f"only {ok:.0f} recorded as 2xx, wrk counted {run.requests} 2xx answers")
    if set(others) - {"4xx"}:
        problems.append(f"statuses other than 2xx and 4xx recorded: {others}")
    if others:
        logged = logged_non_2xx(admin, since_ms)
        if logged is None:
            problems.append("too many WARNING log entries to check the non-2xx statuses")
        elif set(logged) - {499} or logged[499] != sum(others.values()):
            problems.append(f"the non-2xx recorded are not all 499: {others} counted, the log has {dict(logged)}")
        else:
            note += " all 499"
    return after, note, "; ".join(problems) or None


@dataclasses.dataclass
class Result:
    runs: list[WrkRun] = dataclasses.field(default_factory=list)
    cpu_us: list[float] = dataclasses.field(default_factory=list)  # the proxy's (none for direct)
    upstream_cpu_us: list[float] = dataclasses.field(default_factory=list)
    rss_mib: list[float] = dataclasses.field(default_factory=list)  # the proxy's, after the run
    started: float = 0.0  # time.time() when the latest run began


def measure(result: Result, target: Target, upstream_pid: int, seconds: int, connections: int, script: Path) -> WrkRun:
    """One wrk run against `target`, its figures appended to `result` (`result.started`: when it began)."""
    result.started = time.time()
    upstream_before = cpu_seconds(upstream_pid)
    before = cpu_seconds(target.pid) if target.pid else 0.0
    run = wrk(target.base, seconds, connections, script)
    result.runs.append(run)
    result.upstream_cpu_us.append((cpu_seconds(upstream_pid) - upstream_before) / run.requests * 1e6)
    if target.pid:
        result.cpu_us.append((cpu_seconds(target.pid) - before) / run.requests * 1e6)
        result.rss_mib.append(memory_mib(target.pid)[0])
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8, help="wrk duration per run")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--bodies", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument(
        "--paths",
        nargs="+",
        choices=["direct", "nginx", "sidecar", "sampled"],
        default=["direct", "nginx", "sidecar"],
        help="sampled: the sidecar with --sample-dir (default rules and caps)",
    )
    args = parser.parse_args()
    results: dict[tuple[str, int, str], Result] = {}
    problems: list[str] = []
    peaks: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        scripts = {body: write_upload_script(tmp, SIZES[body]) for body in args.bodies}
        upstream = stack.enter_context(upstream_server())
        assert upstream.pid is not None
        upstream_pid = upstream.pid
        targets: dict[str, Target] = {}
        for path in args.paths:
            if path == "direct":
                targets[path] = Target(upstream.base)
            elif path == "nginx":
                targets[path] = stack.enter_context(nginx_server(upstream.base, tmp))
            else:
                targets[path] = stack.enter_context(sidecar_server(upstream.base, tmp, sampled=path == "sampled"))
        counts: dict[str, dict[str, float]] = {}  # per sidecar: what its /metrics counted so far
        for path, target in targets.items():  # warm up
            warm = wrk(target.base, 2, 16, scripts[args.bodies[0]])
            if target.admin:
                counts[path] = settled_counts(target.admin, {}, warm.requests)
        for round_ in range(args.rounds):
            for body in args.bodies:
                for connections in args.connections:
                    order = list(targets.items()) if round_ % 2 == 0 else list(reversed(targets.items()))
                    for path, target in order:
                        result = results.setdefault((body, connections, path), Result())
                        run = measure(result, target, upstream_pid, args.seconds, connections, scripts[body])
                        line = (
                            f"round {round_ + 1} {body:<6} c={connections:<3} {path:<8} {run.rps:8.0f} req/s  "
                            f"p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms  "
                            f"upstream cpu {result.upstream_cpu_us[-1]:5.1f} us/req"
                        )
                        if target.pid:
                            line += f"  {path} cpu {result.cpu_us[-1]:5.1f} us/req  rss {result.rss_mib[-1]:.0f} MiB"
                        if target.admin:
                            counts[path], note, problem = check_recorded(
                                target.admin, counts[path], run, connections, int(result.started * 1000)
                            )
                            line += f"  {note}"
                            if problem:
                                line += f"  MISMATCH: {problem}"
                                problems.append(line)
                        print(line, flush=True)
        for path, target in targets.items():
            if target.pid:
                peaks[path] = memory_mib(target.pid)[1]
    # Every server has stopped here (the ExitStack closed): nginx's error.log, if not empty, was printed.
    _report(results, args)
    for path, peak in peaks.items():
        rss = [rss for (_, _, name), result in results.items() if name == path for rss in result.rss_mib]
        print(f"{path} ({'worker process' if path == 'nginx' else 'its process'}): RSS {min(rss):.0f}-{max(rss):.0f} "
              f"MiB after the runs, peak (VmHWM) {peak:.0f} MiB")  # fmt: skip
    if problems:
        print("\nRECORDED COUNTS DO NOT MATCH what wrk counted:\n" + "\n".join(problems))
        raise SystemExit(1)
    if "sidecar" in args.paths:
        print("every request wrk counted was recorded by the sidecar as 2xx; the extra ones (abandoned) as 2xx or 499")


def _report(results: dict[tuple[str, int, str], Result], args: argparse.Namespace) -> None:
    print(
        f"\nmedians of {args.rounds} interleaved rounds of wrk -t1 -d{args.seconds}s --latency (upstream and proxy on "
        "core 0, wrk on core 1); 'of direct' = median of per-round ratios (ratio of medians); CPU = µs per request "
        "of the process (the proxy: nginx's worker or the sidecar); RSS = the proxy's after the run"
    )
    print(
        "| body | conns | path | req/s | of direct | p50 ms | p99 ms | p99 / direct | added p50 ms "
        "| upstream CPU | proxy CPU | proxy RSS MiB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (body, connections, path), result in results.items():
        runs = result.runs
        rps = statistics.median(run.rps for run in runs)
        p50, p99 = statistics.median(run.p50_ms for run in runs), statistics.median(run.p99_ms for run in runs)
        cells = ["-", "-", "-"]
        direct = results.get((body, connections, "direct"))
        if direct and path != "direct":
            pairs = list(zip(runs, direct.runs, strict=True))
            cells = [
                f"{statistics.median(run.rps / base.rps for run, base in pairs):.3f} "
                f"({rps / statistics.median(run.rps for run in direct.runs):.3f})",
                f"{statistics.median(run.p99_ms / base.p99_ms for run, base in pairs):.2f}x",
                f"{statistics.median(run.p50_ms - base.p50_ms for run, base in pairs):+.2f}",
            ]
        upstream_cpu = f"{statistics.median(result.upstream_cpu_us):.0f}" if result.upstream_cpu_us else "-"
        cpu = f"{statistics.median(result.cpu_us):.0f}" if result.cpu_us else "-"
        rss = f"{statistics.median(result.rss_mib):.0f}" if result.rss_mib else "-"
        size = "100 KiB" if body == "upload" else "1 B"
        print(f"| {size} | {connections} | {path} | {rps:,.0f} | {cells[0]} | {p50:.2f} | {p99:.2f} | {cells[1]} "
              f"| {cells[2]} | {upstream_cpu} | {cpu} | {rss} |")  # fmt: skip


if __name__ == "__main__":
    main()
