"""CPU instructions per request of the bare trivial app and of it wrapped, counted by valgrind (not timed).

This VM's speed swings 2x between phases; an instruction count does not. The ASGI app is called
in-process (no server, no network) with a fake clock moving as at 6,000 requests a second and the
recorder collected every 6,000 requests, as the writer task would once a second. Each variant runs
twice (N and 3N requests); the difference divided by 2N cancels start-up.

    python benchmarks/instructions.py [--requests 6000]      # needs valgrind (apt install valgrind)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/predict",
    "raw_path": b"/predict",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"127.0.0.1:8000")],
    "client": ("127.0.0.1", 5000),
    "server": ("127.0.0.1", 8000),
}
RATE = 6000.0


async def _requests(variant: str, count: int) -> None:
    sys.path.insert(0, str(HERE))
    import overhead_apps

    os.environ["BENCH_DB"] = str(Path(tempfile.mkdtemp()) / "b.db")
    app = getattr(overhead_apps, f"{variant}_trivial")()
    recorder = getattr(app, "recorder", None)
    now = [1_800_000_000.0]
    if recorder is not None:
        app.monitor.start_soon = lambda: None  # no writer task: the request path and the fold only
        recorder.clock = lambda: now[0]
        recorder._last_fold = now[0]

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    for i in range(count):
        await app(dict(SCOPE), receive, send)
        now[0] += 1 / RATE
        if recorder is not None and i % int(RATE) == int(RATE) - 1:
            recorder.collect()


def _count(variant: str, requests: int) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__]
    output = subprocess.run(
        [*command, "--child", variant, str(requests)], capture_output=True, text=True, check=True
    ).stderr
    return int(re.search(r"Collected : (\d+)", output).group(1))  # type: ignore[union-attr]


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        asyncio.run(_requests(sys.argv[2], int(sys.argv[3])))
        os._exit(0)  # the store's threads would only add instructions of their own
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=6000)
    args = parser.parse_args()
    per_request = {}
    for variant in ("bare", "minimal", "wrapped", "parseall"):
        low, high = _count(variant, args.requests), _count(variant, 3 * args.requests)
        per_request[variant] = (high - low) // (2 * args.requests)
        added = per_request[variant] - per_request["bare"]
        print(f"{variant:<9} {per_request[variant]:>9,} instructions/request  added {added:>9,}", flush=True)


if __name__ == "__main__":
    main()
