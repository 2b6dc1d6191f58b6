"""The recorder, the store and its writer, started and stopped together for one deployment."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from pathlib import Path

from yolowatch.alerts import Evaluator, Rule, Sink, log_sink
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
        alert_rules: list[Rule] | None = None,
        alert_sinks: dict[str, Sink] | None = None,
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
        # With rules, every closed minute is checked against them and notifications are delivered.
        self.alerts = (
            Evaluator(self.store, list(alert_rules), alert_sinks or {"log": log_sink}) if alert_rules else None
        )
        self._alert_task: asyncio.Task[None] | None = None
        self.clock = clock
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
        if self.alerts is not None:
            self._alert_task = asyncio.get_running_loop().create_task(self._alert_loop(), name="yolowatch-alerts")

    async def _alert_loop(self) -> None:
        """Five seconds after each minute closes (its rows are written by then): evaluate it, deliver."""
        assert self.alerts is not None
        while True:
            try:
                await self.alerts.deliver()  # first: whatever a previous run left undelivered
            except (sqlite3.Error, OSError) as exc:
                log.warning("alert delivery failed: %s", exc)
            now = self.clock()
            await asyncio.sleep(max(1.0, (now // 60 + 1) * 60 + 5 - now))
            closed = int((self.clock() - 5) // 60) * 60 - 60
            try:
                await self.alerts.evaluate_closed_minute(self.deployment, closed)
            except (sqlite3.Error, OSError) as exc:
                log.warning("alert evaluation of %s failed: %s", self.deployment, exc)

    def start_soon(self) -> None:
        """For servers that never send lifespan events: start on the first request, without awaiting."""
        if not self.started and self._starting is None:
            self._starting = asyncio.get_running_loop().create_task(self.start())

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        if self._alert_task is not None:
            self._alert_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._alert_task
            self._alert_task = None
        if self.health is not None:
            await self.health.stop()
        await self.writer.stop()
        await self.store.close()
