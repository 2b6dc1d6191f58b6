"""`yolowatch serve` as a user runs it: a real uvicorn process on 127.0.0.1, watched by the network guard."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import run_server, ultralytics_asset
from images import shapes_jpeg

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One server for the module, started under the network guard; yields (base URL, violations file)."""
    violations = tmp_path_factory.mktemp("netguard") / "violations.txt"
    with run_server(["--max-upload-mb", "1"], violations=violations) as base_url:
        yield base_url, violations


def test_predicts_shapes_and_real_photos(served: tuple[str, Path]) -> None:
    """A shapes image, bus.jpg and zidane.jpg all get detections JSON over real HTTP."""
    base_url, _ = served
    for name, data in [
        ("shapes.jpg", shapes_jpeg(3)[0]),
        ("bus.jpg", ultralytics_asset("bus.jpg").read_bytes()),
        ("zidane.jpg", ultralytics_asset("zidane.jpg").read_bytes()),
    ]:
        response = httpx.post(f"{base_url}/predict", files={"file": (name, data)}, data={"conf": "0.25"}, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["images"][0]["shape"][0] > 0
    shapes = httpx.post(f"{base_url}/predict", files={"file": ("s.jpg", shapes_jpeg(3)[0])}, timeout=60).json()
    assert shapes["images"][0]["results"], "shapes image should have detections"


def test_concurrent_requests_get_the_same_answers_as_sequential(served: tuple[str, Path]) -> None:
    """Eight requests in flight at once give exactly the detections each gets alone (one model, one thread)."""
    base_url, _ = served
    images = [shapes_jpeg(i)[0] for i in range(8)]

    def results(body: dict) -> list:
        return body["images"][0]["results"]

    sequential = [
        results(httpx.post(f"{base_url}/predict", files={"file": ("a.jpg", d)}, timeout=60).json()) for d in images
    ]

    async def all_at_once() -> list:
        async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
            responses = await asyncio.gather(*(client.post("/predict", files={"file": ("a.jpg", d)}) for d in images))
        return [results(r.json()) for r in responses]

    assert asyncio.run(all_at_once()) == sequential


def test_chunked_oversized_upload_is_cut_off(served: tuple[str, Path]) -> None:
    """An upload with no Content-Length that passes the 1 MiB limit is refused with 413 while streaming."""
    base_url, _ = served
    boundary = "yolowatchboundary"

    def body() -> Iterator[bytes]:
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n\r\n'.encode()
        for _ in range(64):  # 4 MiB in 64 KiB chunks
            yield b"\xff" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    response = httpx.post(f"{base_url}/predict", content=body(), headers=headers, timeout=60)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]
    assert httpx.get(f"{base_url}/health", timeout=10).status_code == 200


def test_serving_opened_no_outside_connection(served: tuple[str, Path]) -> None:
    """Start-up, model load and predictions made no DNS lookup or connection beyond loopback."""
    base_url, violations = served
    assert (
        httpx.post(f"{base_url}/predict", files={"file": ("a.jpg", shapes_jpeg(0)[0])}, timeout=60).status_code == 200
    )
    assert not violations.exists() or violations.read_text() == ""
