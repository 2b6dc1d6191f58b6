"""Health: a background probe per deployment, and the Healthy/Warning/Critical state of its traffic.

A probe is any coroutine that returns an HTTP status (2xx is healthy) or raises. The checker
runs it on a schedule (every 60 s while healthy, every 20 s while not, 55 s timeout for cold
starts), keeps the latest result in memory for `GET /health` (answered without touching the
database, so a probe every second is cheap) and saves it to the store for the admin API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from yolowatch._types import Clock
from yolowatch.records import HealthResult
from yolowatch.store import STORE_ERRORS, Store

log = logging.getLogger("yolowatch.health")

# A probe answers an HTTP-like status, or (status, milliseconds) when it times its own work (the bundled model's
# probe waits for a model still loading without counting that wait as the probe's latency).
Probe = Callable[[], Awaitable["int | tuple[int, float]"]]


@dataclass(frozen=True)
class HealthSchedule:
    timeout_s: float = 55.0  # a cold start (model load, first CUDA call) can take most of a minute
    healthy_every_s: float = 60.0
    unhealthy_every_s: float = 20.0


@dataclass(frozen=True)
class StateThresholds:
    """DESIGN.md's thresholds: Warning at >= 5 % errors or P99 >= 500 ms, Critical at >= 10 % or >= 1000 ms."""

    warning_error_rate: float = 0.05
    critical_error_rate: float = 0.10
    warning_p99_ms: float = 500.0
    critical_p99_ms: float = 1000.0


def deployment_state(error_rate: float, p99_ms: float | None, thresholds: StateThresholds) -> str:
    """healthy, warning or critical, from the latest window's error rate and P99 (None: no traffic)."""
    p99 = p99_ms or 0.0
    if error_rate >= thresholds.critical_error_rate or p99 >= thresholds.critical_p99_ms:
        return "critical"
    if error_rate >= thresholds.warning_error_rate or p99 >= thresholds.warning_p99_ms:
        return "warning"
    return "healthy"


def http_probe(url: str) -> Probe:
    """Probe an upstream's health URL (for the sidecar): its HTTP status is the answer."""

    async def probe() -> int:
        async with httpx.AsyncClient(timeout=None) as client:  # the checker applies its own timeout
            response = await client.get(url)
        return response.status_code

    return probe


def predict_probe(url: str, image: bytes, filename: str = "probe.jpg") -> Probe:
    """Probe by a real prediction: POST `image` as the multipart `file` field (for a sidecar whose upstream's
    health route says too little, or that has none)."""

    async def probe() -> int:
        async with httpx.AsyncClient(timeout=None) as client:
            response = await client.post(url, files={"file": (filename, image)})
        return response.status_code

    return probe


class HealthChecker:
    """Runs one deployment's probe on its schedule; `check()` runs it now (concurrent callers share one run)."""

    def __init__(
        self,
        deployment: str,
        probe: Probe,
        store: Store | None = None,
        schedule: HealthSchedule | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.deployment = deployment
        self.probe = probe
        self.store = store
        self.schedule = schedule or HealthSchedule()
        self.clock = clock
        self.latest: HealthResult | None = None
        self._running: asyncio.Task[HealthResult] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._save_failing = False  # saving the result fails (the store is down): logged once per outage

    @property
    def checking(self) -> bool:
        return self._running is not None and not self._running.done()

    async def check(self) -> HealthResult:
        if self._running is None or self._running.done():
            self._running = asyncio.get_running_loop().create_task(self._check_once())
        return await asyncio.shield(self._running)

    async def _check_once(self) -> HealthResult:
        started = time.perf_counter()
        status: int | None = None
        own_ms: float | None = None
        error: str | None = None
        try:
            answer = await asyncio.wait_for(self.probe(), self.schedule.timeout_s)
            status, own_ms = answer if isinstance(answer, tuple) else (answer, None)
            if not 200 <= status < 300:
                error = f"probe answered {status}"
        except asyncio.TimeoutError:
            error = f"no answer within {self.schedule.timeout_s:g} s"
        except Exception as exc:  # the probe's failure is the result, never our crash
            error = str(exc) or type(exc).__name__
        result = HealthResult(
            healthy=error is None,
            status=status,
            latency_ms=own_ms if own_ms is not None else (time.perf_counter() - started) * 1000,
            error=error,
            checked_ms=int(self.clock() * 1000),
        )
        self._note(result)
        self.latest = result
        if self.store is not None:
            try:
                await self.store.save_health(self.deployment, result)
                self._save_failing = False
            except STORE_ERRORS as exc:  # once per outage: the writer's own warning says the rest
                log.log(
                    logging.DEBUG if self._save_failing else logging.WARNING,
                    "could not save the health of %s: %s",
                    self.deployment,
                    exc,
                )
                self._save_failing = True
        return result

    def _note(self, result: HealthResult) -> None:
        was = self.latest
        if not result.healthy and (was is None or was.healthy):
            log.warning("deployment %s is unhealthy: %s", self.deployment, result.error)
        elif result.healthy and was is not None and not was.healthy:
            log.info("deployment %s is healthy again (%.0f ms)", self.deployment, result.latency_ms or 0)
        else:
            log.debug("health of %s: %s", self.deployment, "ok" if result.healthy else result.error)

    async def run(self) -> None:
        """Probe on the schedule, forever; a failure of the checker itself is logged with its traceback once per
        streak and retried on the unhealthy schedule."""
        failing = False
        while True:
            schedule = self.schedule
            try:
                result = await self.check()
                failing = False
                pause = schedule.healthy_every_s if result.healthy else schedule.unhealthy_every_s
            except Exception:
                log.log(logging.DEBUG if failing else logging.ERROR, "health check of %s failed", self.deployment,
                        exc_info=True)  # fmt: skip
                failing = True
                pause = schedule.unhealthy_every_s
            await asyncio.sleep(pause)

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self.run(), name=f"health-{self.deployment}")

    async def stop(self) -> None:
        for task in (self._loop_task, self._running):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._loop_task = None
