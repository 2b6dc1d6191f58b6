"""FrameCapture: the sidecar keeps frames from the exchanges it relays, changing nothing it relays."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

import upstream_app
from helpers import FakeClock, free_port, running, upstream_command
from test_framesample import png_bytes
from yolowatch.asgi.capture import FrameCapture
from yolowatch.asgi.proxy import ProxyApp
from yolowatch.framesample import FrameSampler, SampleCaps, SampleRules
from yolowatch.sampleset import list_samples

pytestmark = pytest.mark.anyio

IMAGE = png_bytes(200, 100)
ANSWER = upstream_app.DETECTIONS  # a circle at 0.9 and a star at 0.6, on a 200x100 image


async def predict(request: Request) -> Response:
    """A predict server: reads the upload (a form, or JSON with the image in it), answers the detections (or what
    the query asks for)."""
    if request.headers["content-type"].startswith("multipart/"):
        async with request.form() as form:
            assert not isinstance(form["file"], str)
    else:
        await request.json()
    if "status" in request.query_params:
        return JSONResponse({"detail": "refused"}, status_code=int(request.query_params["status"]))
    body = json.dumps(ANSWER).encode()
    if "gzip" in request.query_params:
        return Response(gzip.compress(body), media_type="application/json", headers={"Content-Encoding": "gzip"})
    if "stream" in request.query_params:  # the answer in pieces, as a proxy relays a large one

        async def pieces() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 50):
                yield body[start : start + 50]

        return StreamingResponse(pieces(), media_type="application/json")
    return Response(body, media_type="application/json", headers={"X-Upstream": "yes"})


async def fails(request: Request) -> Response:
    await request.body()
    raise RuntimeError("the upstream app failed")


UPSTREAM = Starlette(
    routes=[
        Route("/predict", predict, methods=["GET", "POST"]),
        Route("/other", predict, methods=["POST"]),
        Route("/fails", fails, methods=["POST"]),
    ]
)


@pytest.fixture
def sampler(tmp_path: Path, clock: FakeClock) -> Iterator[FrameSampler]:
    """Keeps frames with a star, or any frame while drifting."""
    rules = SampleRules(classes=frozenset({"star"}), drift_share=1.0, random_share=0.0)
    sampler = FrameSampler(tmp_path / "samples", "edge", rules, SampleCaps(per_minute=100), clock=clock)
    sampler.start()
    yield sampler
    sampler.close()


async def post(app: ASGIApp, path: str = "/predict", **request: Any) -> httpx.Response:
    request.setdefault("files", {"file": ("f.png", IMAGE, "image/png")})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.post(path, **request)


def same(a: httpx.Response, b: httpx.Response) -> bool:
    """The same answer: status, headers (but the date) and body."""
    headers = [(k, v) for k, v in a.headers.multi_items() if k != "date"]
    return (
        a.status_code == b.status_code
        and headers == [(k, v) for k, v in b.headers.multi_items() if k != "date"]
        and (a.content == b.content)
    )


async def test_a_relayed_exchange_is_kept_with_the_upstreams_detections(tmp_path: Path, sampler: FrameSampler) -> None:
    """The answer through FrameCapture is the upstream's, byte for byte; the upload and the detections are written
    as a frame on the sampler's thread."""
    capture = FrameCapture(UPSTREAM, sampler, lambda: False)
    for query in ("", "?stream=1"):
        relayed = await post(capture, "/predict" + query, data={"conf": "0.2"})
        assert same(relayed, await post(UPSTREAM, "/predict" + query, data={"conf": "0.2"}))
    sampler.flush()
    frames = list_samples(tmp_path / "samples")
    assert len(frames) == 2
    for info in frames:
        assert info.rule == "class" and info.deployment == "edge"
        assert info.image.read_bytes() == IMAGE
        assert list(info.detections) == ANSWER["images"][0]["results"]  # type: ignore[index]
        assert (info.width, info.height, info.model) == (200, 100, "upstream.pt")


@pytest.mark.parametrize(
    ("path", "upload"),
    [
        ("/other", "form"),  # not a predict path
        ("/predict?status=422", "form"),  # not a 200
        ("/predict?gzip=1", "form"),  # an encoded answer
        ("/predict", "json"),  # not a multipart upload
    ],
)
async def test_what_is_not_a_plain_predict_exchange_passes_untouched(
    tmp_path: Path, sampler: FrameSampler, path: str, upload: str
) -> None:
    """Other paths, refused requests, compressed answers and non-multipart uploads are relayed as they are and
    nothing is kept."""
    options: dict[str, Any] = {} if upload == "form" else {"files": None, "json": {"image": "aGVsbG8="}}
    capture = FrameCapture(UPSTREAM, sampler, lambda: True)
    relayed = await post(capture, path, **options)
    assert same(relayed, await post(UPSTREAM, path, **options))
    sampler.flush()
    assert list_samples(tmp_path / "samples") == [] and sampler.stats.unreadable == 0


async def test_nothing_is_kept_past_the_size_caps_or_the_samplers_caps(
    tmp_path: Path, clock: FakeClock, sampler: FrameSampler
) -> None:
    """A request or an answer over its cap is relayed but not kept; with the minute's cap reached nothing is even
    looked at (open_now() is False)."""
    small = FrameCapture(UPSTREAM, sampler, lambda: False, max_request_bytes=len(IMAGE) // 2)
    assert (await post(small)).status_code == 200
    terse = FrameCapture(UPSTREAM, sampler, lambda: False, max_response_bytes=100)
    assert (await post(terse)).status_code == 200
    sampler.flush()
    assert list_samples(tmp_path / "samples") == []
    capped = FrameSampler(tmp_path / "capped", "edge", SampleRules(random_share=1.0), SampleCaps(per_minute=1), clock)
    capped.start()
    try:
        capture = FrameCapture(UPSTREAM, capped, lambda: False)
        for _ in range(3):
            assert (await post(capture)).status_code == 200
            capped.flush()  # an exchange counts once the writer has read it
        assert len(list_samples(tmp_path / "capped")) == 1 and capped.stats.dropped_caps == 0  # never offered
    finally:
        capped.close()


async def test_the_drift_flag_is_read_after_the_exchange(
    tmp_path: Path, clock: FakeClock, sampler: FrameSampler, caplog: pytest.LogCaptureFixture
) -> None:
    """While drifting the drift share applies; a flag that fails to read counts as not drifting, logged once, and
    never fails the request."""
    quiet = {"images": [{"shape": [100, 200], "results": []}], "metadata": {}}

    async def nothing_found(request: Request) -> Response:
        await request.body()  # an app that never reads the upload gives FrameCapture nothing to keep
        return JSONResponse(quiet)

    answers = Starlette(routes=[Route("/predict", nothing_found, methods=["POST"])])
    rules = SampleRules(no_detection=False, drift_share=1.0, random_share=0.0)
    drifting = FrameSampler(tmp_path / "drift", "edge", rules, SampleCaps(per_minute=100), clock)
    drifting.start()
    flags = iter([True, False])

    def flag() -> bool:
        value = next(flags, None)
        if value is None:
            raise RuntimeError("the monitor is gone")
        return value

    try:
        capture = FrameCapture(answers, drifting, flag)
        assert [(await post(capture)).status_code for _ in range(4)] == [200] * 4
        drifting.flush()
    finally:
        drifting.close()
    assert [info.rule for info in list_samples(tmp_path / "drift")] == ["drift"]
    assert sum("drift flag" in r.message and r.levelno == logging.WARNING for r in caplog.records) == 1


async def test_an_app_that_fails_keeps_nothing(tmp_path: Path, sampler: FrameSampler) -> None:
    """The app's exception reaches the server as it came; nothing is kept."""
    capture = FrameCapture(UPSTREAM, sampler, lambda: False, predict_paths=("/fails",))
    with pytest.raises(RuntimeError, match="the upstream app failed"):
        await post(capture, "/fails")
    sampler.flush()
    assert list_samples(tmp_path / "samples") == []


@pytest.mark.slow
async def test_in_front_of_the_sidecars_proxy_and_a_real_upstream(tmp_path: Path, sampler: FrameSampler) -> None:
    """FrameCapture around the real proxy, relaying to tests/upstream_app.py on uvicorn (its own process): the
    answer is the upstream's and the frame is kept with its detections."""
    port = free_port()
    with running(upstream_command(port), f"http://127.0.0.1:{port}/health"):
        proxy = ProxyApp(f"http://127.0.0.1:{port}")
        try:
            relayed = await post(FrameCapture(proxy, sampler, lambda: False))
        finally:
            await proxy.aclose()
    assert relayed.status_code == 200 and relayed.headers["x-upstream"] == "yes"
    assert relayed.json()["received"]["bytes"] == len(IMAGE)
    sampler.flush()
    (info,) = list_samples(tmp_path / "samples")
    assert info.image.read_bytes() == IMAGE
    assert list(info.detections) == ANSWER["images"][0]["results"]  # type: ignore[index]
