"""Health probes against a real upstream that goes away and comes back; the Healthy/Warning/Critical states."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import free_port
from yolowatch.health import HealthChecker, HealthSchedule, StateThresholds, deployment_state, http_probe
from yolowatch.store import Store

pytestmark = pytest.mark.anyio


@contextlib.contextmanager
def static_upstream(root: Path, port: int) -> Iterator[str]:
    """Python's own http.server: GET /health answers 200 while the file exists, 404 once it is gone."""
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(url, timeout=1)
                break
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _until(checker: HealthChecker, healthy: bool, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while checker.latest is None or checker.latest.healthy is not healthy:
        assert time.monotonic() < deadline, f"still {checker.latest}"
        await asyncio.sleep(0.05)


async def test_probe_goes_unhealthy_when_the_upstream_stops_and_back_when_it_returns(tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir()
    (root / "health").write_text("ok")
    port = free_port()
    store = Store(tmp_path / "h.db")
    schedule = HealthSchedule(timeout_s=5, healthy_every_s=0.2, unhealthy_every_s=0.2)
    checker = HealthChecker("up", http_probe(f"http://127.0.0.1:{port}/health"), store, schedule)
    try:
        with static_upstream(root, port):
            checker.start()
            await _until(checker, healthy=True)
            assert checker.latest is not None and checker.latest.status == 200 and checker.latest.latency_ms
        await _until(checker, healthy=False)  # upstream stopped: connection refused
        assert checker.latest is not None and checker.latest.status is None and checker.latest.error
        with static_upstream(root, port):
            await _until(checker, healthy=True)
            (root / "health").unlink()
            await _until(checker, healthy=False)  # answering, but 404
            assert checker.latest is not None and checker.latest.status == 404
            assert checker.latest.error == "probe answered 404"
        saved = (await store.health())["up"]
        assert saved.healthy is False and saved.status == 404
    finally:
        await checker.stop()
        await store.close()


async def test_a_probe_that_hangs_times_out_as_unhealthy() -> None:
    async def hangs() -> int:
        await asyncio.sleep(30)
        return 200

    checker = HealthChecker("slow", hangs, schedule=HealthSchedule(timeout_s=0.2))
    result = await checker.check()
    assert result.healthy is False and result.error == "no answer within 0.2 s"


async def test_a_probe_that_times_itself_reports_its_own_latency() -> None:
    """The bundled model's probe waits for a loading model before it starts its clock."""

    async def probe() -> tuple[int, float]:
        await asyncio.sleep(0.3)  # a model still loading
        return 200, 12.5

    result = await HealthChecker("d", probe).check()
    assert result.healthy is True and result.latency_ms == 12.5


async def test_concurrent_checks_share_one_probe() -> None:
    calls = 0

    async def probe() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1)
        return 200

    checker = HealthChecker("d", probe)
    results = await asyncio.gather(*(checker.check() for _ in range(5)))
    assert calls == 1 and all(r.healthy for r in results)


@pytest.mark.parametrize(
    ("error_rate", "p99_ms", "state"),
    [
        (0.0, None, "healthy"),
        (0.049, 499.0, "healthy"),
        (0.05, 10.0, "warning"),
        (0.0, 500.0, "warning"),
        (0.10, 10.0, "critical"),
        (0.0, 1000.0, "critical"),
    ],
)
def test_state_thresholds_follow_the_design(error_rate: float, p99_ms: float | None, state: str) -> None:
    assert deployment_state(error_rate, p99_ms, StateThresholds()) == state
