"""The apps benchmarks/overhead.py serves (uvicorn --factory overhead_apps:NAME)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from yolowatch.asgi.middleware import WatchMiddleware
from yolowatch.config import Settings
from yolowatch.monitor import Monitor

# A small detection body, as a predict endpoint would return for one image with three objects.
BODY = {
    "images": [
        {
            "shape": [480, 640],
            "speed": {"preprocess": 1.2, "inference": 12.4, "postprocess": 0.8},
            "results": [
                {"class": k, "name": n, "confidence": c, "box": {"x1": 10.0, "y1": 20.0, "x2": 110.0, "y2": 140.0}}
                for k, n, c in ((0, "circle", 0.91), (1, "square", 0.84), (3, "star", 0.55))
            ],
        }
    ],
    "metadata": {"imageCount": 1, "task": "detect", "model": "bench.pt"},
}


async def trivial_predict(request: Request) -> Response:
    await request.body()
    return JSONResponse(BODY)


async def health(request: Request) -> Response:
    """What overhead.py polls until the server is up: WatchMiddleware leaves /health out, so the probe is not
    among the requests the wrapped variants record (their stored count is checked against wrk's)."""
    return PlainTextResponse("ok")


def _db() -> str:
    """An SQLite file or a PostgreSQL URL (overhead.py's wrappedpg)."""
    return os.environ.get("BENCH_DB") or str(Path(tempfile.mkdtemp()) / "bench.db")


def bare_trivial() -> ASGIApp:
    return Starlette(
        routes=[Route("/predict", trivial_predict, methods=["GET", "POST"]), Route("/health", health, methods=["GET"])]
    )


def wrapped_trivial() -> ASGIApp:
    return WatchMiddleware(bare_trivial(), store=_db(), deployment="bench")


def wrappedotlp_trivial() -> ASGIApp:
    """Wrapped, with the OTLP metrics export on (each second, to overhead.py's receiver at BENCH_OTLP)."""
    from yolowatch.otlp import OtlpMetrics

    monitor = Monitor(_db(), "bench")
    monitor.otlp = OtlpMetrics(monitor.recorder, "bench", endpoint=os.environ["BENCH_OTLP"], interval_s=1.0)
    return WatchMiddleware(bare_trivial(), monitor=monitor)


def _traced(ratio: float) -> ASGIApp:
    """Wrapped, with OTLP traces on (every second, to overhead.py's receiver at BENCH_OTLP), `ratio` sampled."""
    from yolowatch.otlp import OtlpTraces

    monitor = Monitor(_db(), "bench")
    monitor.traces = OtlpTraces(monitor.recorder, "bench", ratio=ratio, endpoint=os.environ["BENCH_OTLP"])
    return WatchMiddleware(bare_trivial(), monitor=monitor)


def wrappedtraces_trivial() -> ASGIApp:
    """Every request traced: a span each, made and sent on the exporter's thread."""
    return _traced(1.0)


def wrappedsampled_trivial() -> ASGIApp:
    """Traces on, one request in a hundred sampled: the cost of beginning each request's trace."""
    return _traced(0.01)


def parseall_trivial() -> ASGIApp:
    """Wrapped, reading the detections of every response (no per-second parse budget)."""
    monitor = Monitor(_db(), "bench", detection_parses_per_second=0)
    return WatchMiddleware(bare_trivial(), monitor=monitor)


def bare_predict() -> ASGIApp:
    from yolowatch.yolo.predict import create_predict_app  # the yolo extra: only --predict needs it

    return create_predict_app(Settings())


def wrapped_predict() -> ASGIApp:
    return WatchMiddleware(bare_predict(), store=_db(), deployment="bench")


class MinimalTimingMiddleware:
    """The bare minimum for comparison: time each request into one HDR histogram, nothing else."""

    def __init__(self, app: ASGIApp) -> None:
        from hdrh.histogram import HdrHistogram

        self.app = app
        self.histogram = HdrHistogram(1, 600_000_000, 2)

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        import time

        started = time.perf_counter_ns()

        async def timed_send(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.histogram.record_value(max(1, (time.perf_counter_ns() - started) // 1000))
            await send(message)

        await self.app(scope, receive, timed_send)


def minimal_trivial() -> ASGIApp:
    return MinimalTimingMiddleware(bare_trivial())
