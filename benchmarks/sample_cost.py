"""What frame sampling and golden checks add to a request, in-process (no server, no network): the bundled app's
`FrameSampler.offer` for a frame the rules pass over, one past the minute's cap and one they keep (the write itself
is on the sampler's thread), the sidecar's `FrameCapture` wrapper around an app once the caps are reached and while
they leave room, and the middleware's golden-request check. Each figure is the median over --rounds of the mean
time of a call (kept frames: the sampler's thread drains its queue between timed batches, untimed).

    python benchmarks/sample_cost.py [--requests 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import struct
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from yolowatch.asgi.capture import FrameCapture
from yolowatch.asgi.middleware import is_golden
from yolowatch.framesample import FrameSampler, SampleCaps, SampleRules

ANSWER = (
    b'{"images":[{"shape":[184,184],"results":[{"class":0,"name":"circle","confidence":0.91,'
    b'"box":{"x1":10,"y1":10,"x2":60,"y2":60}}]}],"metadata":{"model":"best.pt","params":{"conf":0.25}}}'
)
HEADERS = [
    (b"host", b"127.0.0.1:8000"), (b"user-agent", b"python-httpx/0.28.1"), (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"), (b"connection", b"keep-alive"),
    (b"content-type", b"multipart/form-data; boundary=bench"), (b"content-length", b"102400"),
]  # fmt: skip
ENDLESS = SampleCaps(per_minute=10**9, per_day=10**9, max_bytes=10**12)
TOKEN = b"0123456789abcdef0123456789abcdef"


def png(width: int, height: int) -> bytes:
    """A real PNG of incompressible pixels (stored, not compressed): about 3 * width * height bytes."""
    rows = b"".join(b"\x00" + random.Random(y).randbytes(width * 3) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 0)) + chunk(b"IEND", b"")


def multipart(image: bytes) -> bytes:
    head = b'--bench\r\nContent-Disposition: form-data; name="file"; filename="f.png"\r\n\r\n'
    return head + image + b"\r\n--bench--\r\n"


def detection(confidence: float) -> dict[str, Any]:
    return {"class": 0, "name": "circle", "confidence": confidence, "box": {"x1": 1, "y1": 1, "x2": 9, "y2": 9}}


def per_call_us(
    call: Callable[[], object], requests: int, rounds: int, drain: Callable[[], None] | None = None
) -> float:
    """Median over rounds of the mean time of a call; `drain` (untimed) runs after each 16 calls."""
    timings = []
    for _ in range(rounds):
        spent = 0.0
        for done in range(1, requests + 1):
            started = time.perf_counter()
            call()
            spent += time.perf_counter() - started
            if drain is not None and done % 16 == 0:
                drain()
        timings.append(spent / requests * 1e6)
    return statistics.median(timings)


def receiver(chunks: list[bytes]) -> Callable[[], Any]:
    parts = iter(chunks)

    async def receive() -> Any:
        chunk = next(parts, None)
        if chunk is None:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunk, "more_body": chunk is not chunks[-1]}

    return receive


async def asgi_us(
    app: Any, upload: bytes, requests: int, rounds: int, drain: Callable[[], None] | None = None
) -> float:
    """One POST /predict through `app` (the upload in 64 KiB chunks, a JSON answer), per call."""
    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": HEADERS}
    chunks = [upload[i : i + 65536] for i in range(0, len(upload), 65536)]

    async def send(message: Any) -> None:
        pass

    timings = []
    for _ in range(rounds):
        spent = 0.0
        for done in range(1, requests + 1):
            started = time.perf_counter()
            await app(scope, receiver(chunks), send)
            spent += time.perf_counter() - started
            if drain is not None and done % 16 == 0:
                drain()
        timings.append(spent / requests * 1e6)
    return statistics.median(timings)


async def predict_app(scope: Any, receive: Any, send: Any) -> None:
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": ANSWER})


def bundled_app(tmp: Path, requests: int, rounds: int) -> None:
    image = png(64, 48)
    # The rules pass over frames whose detections are all confident (0.6 and up), with no random share.
    judge = FrameSampler(tmp / "a", "bench", SampleRules(random_share=0, drift_share=0), ENDLESS)
    capped = FrameSampler(tmp / "b", "bench", SampleRules(), SampleCaps(per_minute=1))
    keeper = FrameSampler(tmp / "c", "bench", SampleRules(random_share=1.0), ENDLESS)
    for sampler in (judge, capped, keeper):
        sampler.start()
    try:
        one, ten = [detection(0.9)], [detection(0.6 + i / 100) for i in range(10)]
        capped.offer(image, [])  # the minute's one frame: the caps are reached
        print("bundled app, FrameSampler.offer (on the event loop; the write is on the sampler's thread):")
        for what, call in (
            ("passed over by the rules, 1 detection  ", lambda: judge.offer(image, one)),
            ("passed over by the rules, 10 detections", lambda: judge.offer(image, ten)),
            ("the minute's cap reached               ", lambda: capped.offer(image, [])),
        ):
            print(f"  {what} {per_call_us(call, requests, rounds):6.2f} µs")
        kept = per_call_us(lambda: keeper.offer(image, one, shape=(48, 64)), 2000, rounds, keeper.flush)
    finally:
        for sampler in (judge, capped, keeper):
            sampler.close()
    stats = keeper.stats
    print(f"  kept (queued for the thread)            {kept:6.2f} µs   ({stats.kept} written, "
          f"{stats.dropped_queue} dropped)")  # fmt: skip


async def sidecar(tmp: Path, requests: int, rounds: int) -> None:
    upload = multipart(png(184, 184))  # about 100 KiB
    closed = FrameSampler(tmp / "d", "bench", SampleRules(), SampleCaps(per_minute=1))
    open_ = FrameSampler(tmp / "e", "bench", SampleRules(random_share=1.0), ENDLESS)
    for sampler in (closed, open_):
        sampler.start()
    try:
        closed.offer(png(8, 8), [])  # the minute's one frame: the caps are reached
        bare = await asgi_us(predict_app, upload, requests, rounds)
        shut = await asgi_us(FrameCapture(predict_app, closed, lambda: False), upload, requests, rounds)
        copying = await asgi_us(FrameCapture(predict_app, open_, lambda: False), upload, 2000, rounds, open_.flush)
    finally:
        for sampler in (closed, open_):
            sampler.close()
    print(f"sidecar, one POST /predict through FrameCapture (in-process ASGI, a {len(upload) // 1024} KiB upload):")
    print(f"  no wrapper                              {bare:6.2f} µs")
    print(f"  caps reached (passes through)           {shut:6.2f} µs   (+{shut - bare:.2f})")
    print(f"  caps open (chunks kept, queued)         {copying:6.2f} µs   (+{copying - bare:.2f}; parsed and written "
          f"on the sampler's thread: {open_.stats.kept} written, {open_.stats.dropped_queue} dropped)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        bundled_app(Path(name), args.requests, args.rounds)
        asyncio.run(sidecar(Path(name), args.requests, args.rounds))
    golden = per_call_us(lambda: is_golden(HEADERS, TOKEN), args.requests, args.rounds)
    print("middleware, golden-request check (only when --golden runs through this process):")
    print(f"  a request of 7 headers                  {golden:6.2f} µs")


if __name__ == "__main__":
    main()
