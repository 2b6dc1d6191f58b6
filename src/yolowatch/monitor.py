"""The recorder, the store and its writer, started and stopped together for one deployment."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from yolowatch.health import HealthChecker, HealthSchedule, Probe
from yolowatch.recorder import Clock, Recorder, default_writer_id
from yolowatch.store import Store, StoreWriter

log = logging.getLogger("yolowatch")


class Monitor:
    """What a WatchMiddleware records into. Starting opens the store and the writer task; stopping flushes.

    A store that cannot be opened or written is logged, never raised: monitoring must not keep the
    predict app from serving. The writer keeps a bounded backlog and retries every second.
    """

    def __init__(
        self,
        store: Store | str | Path,
        deployment: str = "default",
        *,
        model: str | None = None,
        endpoint: str | None = None,
        region: str | None = None,
        clock: Clock = time.time,
        latency_budget_ms: float = 500.0,
        info_logs_per_second: int = 200,
        detection_parses_per_second: int = 500,
        flush_interval_s: float = 1.0,
        writer_id: str | None = None,
        probe: Probe | None = None,
        health_schedule: HealthSchedule | None = None,
    ) -> None:
        self.store = store if isinstance(store, Store) else Store(store, clock=clock)
        self.deployment = deployment
        self.info = {"model": model, "endpoint": endpoint, "region": region}
        self.recorder = Recorder(
            clock=clock,
            latency_budget_ms=latency_budget_ms,
            info_logs_per_second=info_logs_per_second,
            parses_per_second=detection_parses_per_second,
        )
        self.writer = StoreWriter(
            self.store,
            self.recorder,
            writer_id or default_writer_id(),
            interval_s=flush_interval_s,
            on_connect=self._register,
        )
        # With a probe, the deployment's health is checked in the background while the monitor runs.
        self.health = (
            None if probe is None else HealthChecker(deployment, probe, self.store, health_schedule, clock=clock)
        )
        self.started = False
        self._starting: asyncio.Task[None] | None = None

    async def _register(self) -> None:
        await self.store.register_deployment(self.deployment, **self.info)

    async def start(self) -> None:
        """Open the store (a failure is logged and retried each second, never raised) and start the writer."""
        if self.started:
            return
        self.started = True
        if not await self.writer.flush():
            log.error(
                "monitoring store %s is not writable (%s); serving anyway and retrying",
                self.store.path,
                self.writer.stats.last_error,
            )
        self.writer.start()
        if self.health is not None:
            self.health.start()

    def start_soon(self) -> None:
        """For servers that never send lifespan events: start on the first request, without awaiting."""
        if not self.started and self._starting is None:
            self._starting = asyncio.get_running_loop().create_task(self.start())

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        if self.health is not None:
            await self.health.stop()
        await self.writer.stop()
        await self.store.close()
