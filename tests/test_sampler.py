"""UploadSampler: which uploads are copied and measured, and that nothing it does fails or slows a request."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helpers import FakeClock
from yolowatch.asgi.sampler import UploadSampler
from yolowatch.recorder import Recorder

pytestmark = pytest.mark.anyio


async def echo(request: Request) -> Response:
    return JSONResponse({"bytes": len(await request.body())})


def _measure(data: bytes) -> dict[str, float] | None:
    if data.startswith(b"crash"):
        raise ValueError("a decoder bug")
    return {"brightness": float(len(data))} if data.startswith(b"img") else None


async def _send(sampler: UploadSampler, bodies: list[bytes]) -> list[int]:
    transport = httpx.ASGITransport(app=sampler)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        sizes = []
        for body in bodies:
            response = await client.post("/predict", files={"file": ("x.jpg", body, "image/jpeg")})
            sizes.append(response.json()["bytes"])
        await client.post("/other", content=b"img" * 10)
    for _ in range(50):  # the measurements run as tasks after each exchange
        if not sampler._measuring:
            break
        await asyncio.sleep(0.01)
    return sizes


async def test_one_upload_in_n_is_measured_and_recorded(clock: FakeClock) -> None:
    """At a rate of 0.25 every fourth predict upload is measured and its properties reach the live minute; the
    bodies reach the app whole; other paths are never sampled."""
    recorder = Recorder(clock=clock)
    recorder.record_request("d", "POST", "/predict", 200, 1000, "r")  # the minute is live
    recorder.collect()
    sampler = UploadSampler(Starlette(routes=[Route("/{path}", echo, methods=["POST"])]), recorder, "d", _measure, 0.25)
    bodies = [b"img" + bytes(i) for i in range(8)]
    sizes = await _send(sampler, bodies)
    assert all(size > len(body) for size, body in zip(sizes, bodies, strict=True))  # multipart framing around
    (minute, *_) = recorder.collect().buckets
    assert sum(minute.image["brightness"]) == 2  # uploads 4 and 8


async def test_what_cannot_be_measured_costs_only_its_sample(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A body that is no image, and a measurement that raises, are skipped (the failure logged once); every
    request is answered."""
    recorder = Recorder(clock=clock)
    sampler = UploadSampler(Starlette(routes=[Route("/{path}", echo, methods=["POST"])]), recorder, "d", _measure, 1.0)
    sizes = await _send(sampler, [b"text", b"crash", b"crash"])
    assert len(sizes) == 3
    recorder.collect()
    assert recorder.stats.images_dropped == 0  # nothing was recorded to drop
    assert sum("could not be read" in record.message for record in caplog.records) == 1


def test_the_rate_must_be_a_share() -> None:
    """A rate outside (0, 1] is refused with a message that says what is allowed."""
    with pytest.raises(ValueError, match="more than 0 and at most 1"):
        UploadSampler(Starlette(), Recorder(), "d", _measure, 0)
