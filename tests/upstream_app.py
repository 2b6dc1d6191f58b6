"""A predict server yolowatch cannot change, for the sidecar tests: `uvicorn upstream_app:app --app-dir tests`."""

from __future__ import annotations

import asyncio
import hashlib

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DETECTIONS = {
    "images": [
        {
            "shape": [100, 200],
            "speed": {"preprocess": 1.0, "inference": 5.0, "postprocess": 1.0},
            "results": [
                {"class": 0, "name": "circle", "confidence": 0.9, "box": {"x1": 0, "y1": 0, "x2": 20, "y2": 10}},
                {"class": 2, "name": "star", "confidence": 0.6, "box": {"x1": 50, "y1": 50, "x2": 90, "y2": 70}},
            ],
        }
    ],
    "metadata": {"imageCount": 1, "task": "detect", "model": "upstream.pt"},
}


async def predict(request: Request) -> Response:
    form = await request.form()
    upload = form["file"]
    size = len(await upload.read())  # type: ignore[union-attr]
    body = {**DETECTIONS, "received": {"bytes": size, "conf": form.get("conf")}}
    return JSONResponse(body, headers={"X-Upstream": "yes", "Set-Cookie": "session=abc; HttpOnly"})


async def upload(request: Request) -> Response:
    digest, size = hashlib.sha256(), 0
    try:
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
    except ClientDisconnect:
        STATS["uploads_cut"] += 1
        raise
    return JSONResponse({"bytes": size, "sha256": digest.hexdigest()})


async def echo(request: Request) -> Response:
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": {k: v for k, v in request.headers.items()},
        }
    )


# What the tests ask this process about (GET /stats): slow requests in flight at once, and endless streams.
STATS = {"in_flight": 0, "most_in_flight": 0, "streams_started": 0, "streams_ended": 0, "uploads_cut": 0}


async def slow(request: Request) -> Response:
    STATS["in_flight"] += 1
    STATS["most_in_flight"] = max(STATS["most_in_flight"], STATS["in_flight"])
    try:
        await asyncio.sleep(float(request.query_params.get("s", "3")))
    finally:
        STATS["in_flight"] -= 1
    return JSONResponse({"slept": True})


async def endless(request: Request) -> Response:
    """Streams until the client (the sidecar) goes away; /stats counts the streams that ended."""

    async def chunks():  # type: ignore[no-untyped-def]
        STATS["streams_started"] += 1
        try:
            while True:
                yield b"x" * 16384
                await asyncio.sleep(0.01)
        finally:
            STATS["streams_ended"] += 1

    return StreamingResponse(chunks(), media_type="application/octet-stream")


async def stats(request: Request) -> Response:
    if request.method == "DELETE":
        STATS.update(dict.fromkeys(STATS, 0))
    return JSONResponse(STATS)


async def stream(request: Request) -> Response:
    async def chunks():  # type: ignore[no-untyped-def]
        for i in range(3):
            yield f"chunk {i}\n".encode()
            await asyncio.sleep(0.05)

    return StreamingResponse(chunks(), media_type="text/plain")


async def health(request: Request) -> Response:
    return JSONResponse({"upstream": "ok"})


app = Starlette(
    routes=[
        Route("/predict", predict, methods=["POST"]),
        Route("/upload", upload, methods=["POST", "PUT"]),
        Route("/echo/{rest:path}", echo, methods=["GET", "DELETE", "PATCH"]),
        Route("/slow", slow),
        Route("/endless", endless),
        Route("/stats", stats, methods=["GET", "DELETE"]),
        Route("/stream", stream),
        Route("/health", health),
        Route("/api/thing", echo),
    ]
)
