"""The recorder, the store and its writer, started and stopped together for one deployment."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from yolowatch._types import Clock
from yolowatch.alerts import DRIFT_METRICS, Rule, Sink
from yolowatch.framesample import FrameSampler
from yolowatch.golden import GoldenChecker
from yolowatch.health import HealthChecker, HealthSchedule, Probe
from yolowatch.otlp import OtlpMetrics, OtlpTraces
from yolowatch.recorder import Recorder, default_writer_id
from yolowatch.records import ProcessInfo
from yolowatch.saturation import GpuReader, GpuSample, ProcessSample, cpu_percent, sample_process
from yolowatch.signals import alert_evaluator
from yolowatch.sinks import log_sink
from yolowatch.store import Store, StoreWriter
from yolowatch.tracecontext import Tracer

log = logging.getLogger("yolowatch")

SATURATION_EVERY_S = 1.0  # how often in-flight requests, the inference queue, CPU, memory and GPUs are sampled
START_WAIT_S = 1.0  # the longest start-up waits for the store (it is retried in the background after)
GOLDEN_WAIT_S = 120.0  # the longest the first golden run waits for the deployment's first healthy probe
MAX_CATCH_UP_S = 3600  # minutes missed while the loop stalled are evaluated late, up to this far back


class Monitor:
    """What a WatchMiddleware records into. Starting opens the store and the writer task; stopping flushes.

    A store that cannot be opened or written is logged, never raised: monitoring must not keep the
    predict app from serving. The writer keeps a bounded backlog and retries, backing off while it fails. Pass
    a `recorder` of your own (a test's, say) instead of the one built from the settings here, and a `process`
    to say how this process appears in the fleet view (default: this host's name, a middleware).
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
        alert_settle_s: float = 5.0,
        recorder: Recorder | None = None,
        process: ProcessInfo | None = None,
        queue_depth: Callable[[], int] | None = None,
        golden: GoldenChecker | None = None,
        golden_in_health: bool = False,
        golden_token: str | None = None,
        sampler: FrameSampler | None = None,
    ) -> None:
        self.store = store if isinstance(store, Store) else Store(store, clock=clock)
        self.deployment = deployment
        self.info = {"model": model, "endpoint": endpoint, "region": region}
        self.recorder = recorder or Recorder(
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
            process=process or ProcessInfo(socket.gethostname(), os.getpid(), region=region, started_s=int(clock())),
        )
        # With a probe, the deployment's health is checked in the background while the monitor runs.
        self.health = (
            None if probe is None else HealthChecker(deployment, probe, self.store, health_schedule, clock=clock)
        )
        # With rules, every closed minute is checked against them and notifications are delivered.
        self.alerts = (
            alert_evaluator(self.store, list(alert_rules), alert_sinks or {"log": log_sink}, clock)
            if alert_rules
            else None
        )
        self._alert_task: asyncio.Task[None] | None = None
        # Golden-image checks (their store is this monitor's); with golden_in_health a failing run fails /health.
        # The requests they send through this process's own endpoint carry the token, and are not traffic.
        self.golden = golden
        if golden is not None and golden.store is None:
            golden.store = self.store
        self.golden_in_health = golden_in_health
        self._golden_start: asyncio.Task[None] | None = None
        self.golden_token = golden_token.encode() if golden_token else None
        # Whether a drift-like alert (confidence or box drift, mean confidence, detection rate) is firing now: frame
        # sampling keeps a larger share while it is.
        self.drifting = False
        # Sampled production frames (opt-in), written on the sampler's own thread: started and closed with the rest.
        self.sampler = sampler
        # OTLP metrics (the otel extra), read from the recorder's totals on the SDK's own thread; compose sets it.
        self.otlp: OtlpMetrics | None = None
        # OTLP traces (--otlp-traces): the middleware begins each request's trace with `tracer` once they started.
        self.traces: OtlpTraces | None = None
        self.tracer: Tracer | None = None
        # Saturation: the app's inference queue (the bundled app's detector says it), sampled with the rest.
        self.queue_depth = queue_depth
        self._saturation_task: asyncio.Task[None] | None = None
        # How long after a minute closes (clock seconds) other processes' rows of it are surely written.
        self.alert_settle_s = alert_settle_s
        self.clock = clock
        self.started = False
        self._starting: asyncio.Task[None] | None = None
        self._first: asyncio.Future[bool] | None = None

    async def _register(self) -> None:
        await self.store.register_deployment(self.deployment, **self.info)

    async def start(self) -> None:
        """Open the store (a failure is logged and retried each second, never raised) and start the writer."""
        if self.started:
            return
        self.started = True
        if not await self._first_flush():
            log.error(
                "monitoring store %s is not writable (%s); serving anyway and retrying",
                self.store.shown,
                self.writer.stats.last_error,
            )
        self.writer.start()
        if self.health is not None:
            self.health.start()
        if self.golden is not None:
            self._golden_start = asyncio.get_running_loop().create_task(self._start_golden(), name="yolowatch-golden")
        if self.sampler is not None:
            self.sampler.start()
        if self.otlp is not None:
            try:
                await asyncio.to_thread(self.otlp.start)  # importing the SDK takes a moment: not on the loop
            except Exception:  # an export that cannot start must not keep the app from serving
                log.error("OTLP export of %s could not start", self.deployment, exc_info=True)
                self.otlp = None
        if self.traces is not None:
            try:
                await asyncio.to_thread(self.traces.start)
                self.tracer = self.traces.tracer
            except Exception:
                log.error("OTLP traces of %s could not start", self.deployment, exc_info=True)
                self.traces = None
        if self.alerts is not None:
            self._alert_task = asyncio.get_running_loop().create_task(self._alert_loop(), name="yolowatch-alerts")
        self._saturation_task = asyncio.get_running_loop().create_task(
            self._saturation_loop(), name="yolowatch-saturation"
        )

    async def _saturation_loop(self) -> None:
        """About once a second: requests in flight, the inference queue, this process's CPU and memory, and the
        GPUs NVML sees, into the recorder (its latest sample, and the live minute's sums and peaks). NVML is
        opened and read on a worker thread: a driver call never holds the event loop."""
        gpus, why_not = await asyncio.to_thread(GpuReader.start)
        if gpus is None:
            log.info("no GPU readings: %s", why_not)
        try:
            before: ProcessSample = sample_process()
            while True:
                await asyncio.sleep(SATURATION_EVERY_S)
                try:
                    after = sample_process()
                    sample = saturation_sample(
                        self.recorder.in_flight, self.queue_depth, before, after,
                        await asyncio.to_thread(gpus.read) if gpus is not None else [],
                    )  # fmt: skip
                    before = after
                    self.recorder.record_saturation(self.deployment, sample)
                except Exception:  # a figure lost, never the loop (nor the app)
                    log.debug("saturation sample failed", exc_info=True)
        finally:
            if gpus is not None:
                gpus.close()

    async def _start_golden(self) -> None:
        """Golden runs begin once the deployment's probe has first passed (or after GOLDEN_WAIT_S): a model still
        loading would fail every image and raise a false alarm."""
        assert self.golden is not None
        deadline = time.monotonic() + GOLDEN_WAIT_S
        while self.health is not None and time.monotonic() < deadline:
            if self.health.latest is not None and self.health.latest.healthy:
                break
            await asyncio.sleep(0.2)
        self.golden.start()

    async def _first_flush(self) -> bool:
        """The first flush, waited for at most START_WAIT_S: a database host that does not answer (a connection
        attempt may take 5 s) must not hold up the server's start; the flush goes on in the background."""
        flush = self._first = asyncio.ensure_future(self.writer.flush())  # kept: a task nobody holds may vanish
        try:
            return await asyncio.wait_for(asyncio.shield(flush), START_WAIT_S)
        except asyncio.TimeoutError:
            self.writer.stats.last_error = self.writer.stats.last_error or "no answer yet"
            return False

    async def _alert_loop(self) -> None:
        """After each flush of the writer: evaluate every minute that closed (and settled) before it, in order,
        then deliver. Driven by what is written rather than by the wall clock, so a stalled loop catches up
        (up to an hour) instead of skipping minutes, and a sped-up clock (demos, tests) works the same."""
        assert self.alerts is not None
        evaluated: int | None = None  # end of the newest minute evaluated
        # A failure is logged with its traceback once, not once a second while it lasts.
        delivery_failing = evaluation_failing = False
        while True:
            try:
                await self.alerts.deliver()  # first: whatever a previous run left undelivered
                delivery_failing = False
            except Exception:  # alerting must never stop, whatever went wrong
                level = logging.DEBUG if delivery_failing else logging.ERROR
                log.log(level, "alert delivery failed", exc_info=True)
                delivery_failing = True
            await asyncio.sleep(self.writer.next_round_s())  # backs off with the writer while the store refuses
            through = self.writer.flushed_through
            if through is None:
                continue
            newest = int((through - self.alert_settle_s) // 60) * 60
            first = newest if evaluated is None else max(evaluated + 60, newest - MAX_CATCH_UP_S)
            for end in range(first, newest + 60, 60):
                try:
                    await self.alerts.evaluate_closed_minute(self.deployment, end - 60)
                except Exception:
                    level = logging.DEBUG if evaluation_failing else logging.ERROR
                    log.log(level, "alert evaluation of %s failed", self.deployment, exc_info=True)
                    evaluation_failing = True
                    break
                evaluated, evaluation_failing = end, False
            if self.sampler is None:
                continue  # the drift flag is for the frame sampler alone
            try:
                self.drifting = await self._drift_firing()
            except Exception:  # the flag keeps its last value
                log.debug("could not read the alert states of %s", self.deployment, exc_info=True)

    async def _drift_firing(self) -> bool:
        assert self.alerts is not None
        drift_rules = {rule.name for rule in await self.alerts.all_rules() if rule.metric in DRIFT_METRICS}
        states = await self.store.alert_states(self.deployment)
        return any(state.state == "firing" for name, state in states.items() if name in drift_rules)

    def start_soon(self) -> None:
        """For servers that never send lifespan events: start on the first request, without awaiting."""
        if not self.started and self._starting is None:
            self._starting = asyncio.get_running_loop().create_task(self.start())

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        if self._saturation_task is not None:
            self._saturation_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saturation_task
            self._saturation_task = None
        if self._alert_task is not None:
            self._alert_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._alert_task
            self._alert_task = None
        if self.health is not None:
            await self.health.stop()
        if self._golden_start is not None:
            self._golden_start.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._golden_start
            self._golden_start = None
        if self.golden is not None:
            await self.golden.stop()
        if self.sampler is not None:
            await asyncio.to_thread(self.sampler.close)  # the frames still queued are written first
        await self.writer.stop()
        if self.otlp is not None:
            await self.otlp.stop()  # after the writer's last fold: the last export has every request
        if self.traces is not None:
            self.tracer = None
            await self.traces.stop()
        await self.store.close()


def saturation_sample(
    in_flight: int,
    queue_depth: Callable[[], int] | None,
    before: ProcessSample,
    after: ProcessSample,
    gpus: list[GpuSample],
) -> dict[str, float]:
    """One saturation sample as the recorder keeps it (absent where not known: no queue, no GPU). Several GPUs:
    their mean utilisation and their memory used, summed."""
    sample: dict[str, float] = {"in_flight": float(in_flight), "rss_bytes": float(after.rss_bytes)}
    if queue_depth is not None:
        sample["queue"] = float(queue_depth())
    cpu = cpu_percent(before, after)
    if cpu is not None:
        sample["cpu_percent"] = cpu
    if gpus:
        sample["gpu_utilization"] = sum(gpu.utilization_percent for gpu in gpus) / len(gpus)
        sample["gpu_memory_bytes"] = float(sum(gpu.memory_used_bytes for gpu in gpus))
    return sample
