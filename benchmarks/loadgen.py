"""What the benchmarks share: free ports, processes that are ready before they are measured, wrk runs read
back (req/s, p50, p99, count, errors), and a process's CPU time and memory from /proc."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def process(command: list[str], ready_url: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Start `command`, wait until `ready_url` answers, stop it at the end (SIGTERM, then SIGKILL)."""
    started = subprocess.Popen(command, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, timeout=2).status_code < 500:
                    break
            if started.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{' '.join(command)} did not start")
            time.sleep(0.1)
        yield started
    finally:
        started.terminate()
        try:
            started.wait(timeout=30)
        except subprocess.TimeoutExpired:
            started.kill()
            started.wait()


@dataclasses.dataclass
class WrkRun:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: list[str] = dataclasses.field(default_factory=list)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(base: str, seconds: int, connections: int, script: Path | None = None, strict: bool = True) -> WrkRun:
    """One `wrk -t1` run on core 1 against base/predict (GET, or what `script` sends); any failed request ends the
    benchmark unless not `strict` (then it is in `errors`)."""
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run([*command, f"{base}/predict"], capture_output=True, text=True, check=True).stdout
    errors = [found.group(0) for problem in (r"Non-2xx or 3xx responses:\s+\d+", r"Socket errors:[^\n]+")
              if (found := re.search(problem, output))]  # fmt: skip
    if errors and strict:
        raise SystemExit(f"wrk against {base}: {errors}\n{output}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    count = re.search(r"(\d+) requests in", output)
    p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s)\b", output)
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", output)
    if not (rps and count and p50 and p99):
        raise SystemExit(f"could not read wrk's output:\n{output}")
    return WrkRun(float(rps.group(1)), _ms(*p50.groups()), _ms(*p99.groups()), int(count.group(1)), errors)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) of the process, MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = re.search(r"VmRSS:\s+(\d+) kB", status)
    peak = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert rss and peak
    return int(rss.group(1)) / 1024, int(peak.group(1)) / 1024
