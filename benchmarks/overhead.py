"""Throughput of a bare app vs the same app wrapped in WatchMiddleware, under wrk from another process.

Server pinned to core 0, wrk to core 1 (taskset), variants interleaved round by round (in
alternating order) so drift on the machine hits both alike. Prints requests/s of each round,
the medians, the ratio and the microseconds per request the middleware adds.

    python benchmarks/overhead.py                 # trivial JSON endpoint (small detection body)
    python benchmarks/overhead.py --predict       # the real predict app with the demo model
"""

from __future__ import annotations

import argparse
import contextlib
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from yolowatch.demo.shapes import sample_image

HERE = Path(__file__).parent

LUA_POST = """
local f = io.open("{body}", "rb")
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "multipart/form-data; boundary=benchboundary"
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(factory: str, workdir: Path) -> Iterator[str]:
    port = _free_port()
    env_db = workdir / f"{factory}-{port}.db"
    command = [
        "taskset",
        "-c",
        "0",
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        f"overhead_apps:{factory}",
        "--app-dir",
        str(HERE),
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    process = subprocess.Popen(command, env={**__import__("os").environ, "BENCH_DB": str(env_db)})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=2).status_code in (200, 404, 405):
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"{factory} did not start")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wrk(base: str, seconds: int, connections: int, script: Path | None) -> float:
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run([*command, f"{base}/predict"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match is None:
        raise SystemExit(f"could not read wrk's output:\n{output}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non2xx:
        raise SystemExit(f"{non2xx.group(1)} requests failed:\n{output}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predict", action="store_true", help="benchmark the real predict app (demo model)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=None, help="wrk duration per round")
    parser.add_argument("--connections", type=int, default=None)
    args = parser.parse_args()
    seconds = args.seconds or (20 if args.predict else 5)
    connections = args.connections or (2 if args.predict else 16)
    kind = "predict" if args.predict else "trivial"

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        script = None
        if args.predict:
            body = workdir / "body.bin"
            body.write_bytes(
                b'--benchboundary\r\nContent-Disposition: form-data; name="file"; filename="s.jpg"\r\n'
                b"Content-Type: image/jpeg\r\n\r\n" + sample_image(0, "val", 1)[0] + b"\r\n--benchboundary--\r\n"
            )
            script = workdir / "post.lua"
            script.write_text(LUA_POST.format(body=body))
        # The minimal HDR-only middleware is a yardstick: what any timing middleware costs at least.
        # parseall reads every response's detections (no per-second parse budget): the worst case.
        variants = ["bare", "wrapped"] if args.predict else ["bare", "minimal", "wrapped", "parseall"]
        results: dict[str, list[float]] = {name: [] for name in variants}
        with contextlib.ExitStack() as stack:
            bases = {name: stack.enter_context(_server(f"{name}_{kind}", workdir)) for name in variants}
            for base in bases.values():  # warm up (model load, first requests)
                _wrk(base, 2, connections, script)
            for round_ in range(args.rounds):
                # Alternate the order so that whatever runs second in a round is not always the same variant.
                order = list(bases.items()) if round_ % 2 == 0 else list(reversed(bases.items()))
                for name, base in order:
                    rps = _wrk(base, seconds, connections, script)
                    results[name].append(rps)
                    print(f"round {round_ + 1} {name:<9} {rps:9.1f} req/s", flush=True)
    medians = {name: statistics.median(values) for name, values in results.items()}
    bare_rps = medians["bare"]
    print(f"\n{kind}: wrk -t1 -c{connections} -d{seconds}s, {args.rounds} interleaved rounds, medians")
    for name, rps in medians.items():
        if name == "bare":
            print(f"{name:<9} {rps:9.1f} req/s")
            continue
        # Ratios within a round compare runs seconds apart: robust to this machine's slow and fast phases.
        ratios = [v / b for v, b in zip(results[name], results["bare"], strict=True)]
        print(
            f"{name:<9} {rps:9.1f} req/s  ratio of medians {rps / bare_rps:.3f}  "
            f"median per-round ratio {statistics.median(ratios):.3f}  added {1e6 / rps - 1e6 / bare_rps:.1f} us/request"
        )


if __name__ == "__main__":
    main()
