"""Health probes against a real upstream that goes away and comes back; the Healthy/Warning/Critical states."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from helpers import free_port, wait_until, wait_until_async
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

    def answers() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(url, timeout=1) is not None
        return False

    try:
        wait_until(answers, f"http.server on {url} to answer", timeout_s=20)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _until(checker: HealthChecker, healthy: bool) -> None:
    """Until the checker's latest result is `healthy` (its own schedule probes every 0.2 s)."""
    await wait_until_async(
        lambda: checker.latest,
        f"the probe to turn {'healthy' if healthy else 'unhealthy'}",
        accept=lambda latest: latest is not None and latest.healthy is healthy,
    )


async def test_probe_goes_unhealthy_when_the_upstream_stops_and_back_when_it_returns(
    tmp_path: Path, make_store: Callable[..., Store]
) -> None:
    """The background probe of a real http.server turns unhealthy when it stops (refused) or answers 404, healthy
    again when it answers 200, and the store keeps the latest result."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "health").write_text("ok")
    port = free_port()
    store = make_store("h.db")
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


async def test_a_probe_that_hangs_times_out_as_unhealthy() -> None:
    """A probe that never answers is cut off at the schedule's timeout and reported unhealthy, saying so."""

    async def hangs() -> int:
        await asyncio.Event().wait()  # never set: no answer, ever
        return 200

    checker = HealthChecker("slow", hangs, schedule=HealthSchedule(timeout_s=0.2))
    result = await checker.check()
    assert result.healthy is False and result.error == "no answer within 0.2 s"


async def test_a_probe_that_times_itself_reports_its_own_latency() -> None:
    """The bundled model's probe waits for a loading model before it starts its clock: the latency reported is the
    probe's own, not the wall time of the wait."""

    async def probe() -> tuple[int, float]:
        await asyncio.sleep(0.05)  # the fake's behaviour: a model still loading, longer than its 12.5 ms inference
        return 200, 12.5

    result = await HealthChecker("d", probe).check()
    assert result.healthy is True and result.latency_ms == 12.5


async def test_concurrent_checks_share_one_probe() -> None:
    """Five checks asked for while one probe is in flight all get that probe's result; it runs once."""
    calls = 0
    answer = asyncio.Event()

    async def probe() -> int:
        nonlocal calls
        calls += 1
        await answer.wait()  # in flight until the test lets it answer
        return 200

    checker = HealthChecker("d", probe)
    checks = [asyncio.ensure_future(checker.check()) for _ in range(5)]
    await wait_until_async(lambda: calls == 1 and checker.checking, "the probe to be in flight", every_s=0)
    answer.set()
    results = await asyncio.gather(*checks)
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
    """Warning from 5 % errors or a 500 ms P99, critical from 10 % or 1000 ms; no traffic is healthy."""
    assert deployment_state(error_rate, p99_ms, StateThresholds()) == state
