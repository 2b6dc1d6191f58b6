"""Predict latency per image on this machine: a real `yolowatch serve` on 127.0.0.1, one request at a time.

Prints, per image, the client-side round trip (upload, decode, inference, JSON)
and the model's own preprocess/inference/postprocess times from the response.

    python benchmarks/predict_latency.py [--requests 50] [--model PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from yolowatch.demo.shapes import sample_image


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(model: Path | None) -> Iterator[str]:
    port = _free_port()
    args = [sys.executable, "-m", "yolowatch", "serve", "--port", str(port), "--log-level", "warning"]
    if model is not None:
        args += ["--model", str(model)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise SystemExit("server did not become healthy")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def _images() -> list[tuple[str, bytes]]:
    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None and spec.submodule_search_locations
    assets = Path(spec.submodule_search_locations[0]) / "assets"
    return [
        ("shapes 320x320", sample_image(0, "val", 1)[0]),
        ("bus.jpg 810x1080", (assets / "bus.jpg").read_bytes()),
        ("zidane.jpg 1280x720", (assets / "zidane.jpg").read_bytes()),
    ]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50, help="timed requests per image (default 50)")
    parser.add_argument("--model", type=Path, help="weights to serve (default: the demo model)")
    args = parser.parse_args()

    print(f"cpus={os.cpu_count()} requests/image={args.requests} imgsz=640 (default)")
    print(f"{'image':<22}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}{'infer ms':>10}{'pre ms':>8}{'post ms':>9}")
    with _server(args.model) as base, httpx.Client(base_url=base, timeout=60) as client:
        for name, data in _images():
            for _ in range(3):  # warm-up
                client.post("/predict", files={"file": ("i.jpg", data)})
            round_trips, speeds = [], []
            for _ in range(args.requests):
                started = time.perf_counter()
                response = client.post("/predict", files={"file": ("i.jpg", data)})
                round_trips.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                speeds.append(response.json()["images"][0]["speed"])
            infer = statistics.mean(s["inference"] for s in speeds)
            pre = statistics.mean(s["preprocess"] for s in speeds)
            post = statistics.mean(s["postprocess"] for s in speeds)
            print(
                f"{name:<22}{_pct(round_trips, 0.5):>9.1f}{_pct(round_trips, 0.95):>9.1f}"
                f"{statistics.mean(round_trips):>9.1f}{infer:>10.1f}{pre:>8.1f}{post:>9.1f}"
            )


if __name__ == "__main__":
    main()
