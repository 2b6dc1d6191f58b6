"""What tests share: a fake clock, waiting on a condition, real servers on 127.0.0.1, stores filled by a real
recorder and writer, in-process admin clients, and a webhook receiver.

Nothing here is a fixture (conftest.py wraps the ones that need cleanup as factory fixtures); nothing here
needs the yolo extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from yolowatch.admin import admin_router
from yolowatch.recorder import Recorder
from yolowatch.records import DetectionSummary
from yolowatch.store import Store, StoreWriter

T = TypeVar("T")

TESTS_DIR = Path(__file__).parent
NETGUARD = TESTS_DIR / "netguard.py"


class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# Waiting on a condition: the one place a test's polling loop sleeps (between looks, never instead of one).


def wait_until(
    condition: Callable[[], T],
    what: str,
    *,
    accept: Callable[[T], object] = bool,
    timeout_s: float = 15.0,
    every_s: float = 0.05,
) -> T:
    """Call `condition` until `accept` (truth, unless given) holds for its value, and return that value; fail the
    test naming `what` (and the last value) after `timeout_s` seconds.

    Pass `accept` where truth is not what is waited for: a requests.Response is false for a 4xx or 5xx.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}; last: {value!r}")
        time.sleep(every_s)


async def wait_until_async(
    condition: Callable[[], T],
    what: str,
    *,
    accept: Callable[[T], object] = bool,
    timeout_s: float = 15.0,
    every_s: float = 0.01,
) -> T:
    """`wait_until` for a test on an event loop: between looks the loop runs (every_s=0: one turn of it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}; last: {value!r}")
        await asyncio.sleep(every_s)


# Real processes on 127.0.0.1.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def upstream_command(port: int, *extra: str, host: str = "127.0.0.1") -> list[str]:
    """tests/upstream_app.py (a predict server yolowatch cannot change) under uvicorn on host:port."""
    return [sys.executable, "-m", "uvicorn", "upstream_app:app", "--app-dir", str(TESTS_DIR), "--host", host,
            "--port", str(port), "--log-level", "warning", *extra]  # fmt: skip


def status_of(url: str) -> int | None:
    """The status `GET url` answers, or None while nothing answers there."""
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return None


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a server flushes its store on the way out), then SIGKILL if it takes more than 20 s."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _answers(url: str, process: subprocess.Popen[bytes] | None) -> httpx.Response | None:
    if process is not None and process.poll() is not None:
        raise RuntimeError(f"server exited early with {process.returncode}")
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=2)
    return None


def wait_healthy(base_url: str, process: subprocess.Popen[bytes] | None = None, timeout_s: float = 120) -> None:
    """Until `base_url`/health answers 200 (the model loaded, the first probe passed); fails early if `process`
    exits."""
    wait_until(
        lambda: _answers(f"{base_url}/health", process),
        f"{base_url}/health to turn healthy",
        accept=lambda response: response is not None and response.status_code == 200,
        timeout_s=timeout_s,
        every_s=0.1,
    )


@contextlib.contextmanager
def running(
    command: list[str], ready_url: str, env: dict[str, str] | None = None, timeout_s: float = 60
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` until the block ends; ready once `ready_url` answers anything at all."""
    process = subprocess.Popen(command, env={**os.environ, **(env or {})})
    try:
        wait_until(
            lambda: _answers(ready_url, process),
            f"{ready_url} to answer",
            accept=lambda response: response is not None,
            timeout_s=timeout_s,
            every_s=0.1,
        )
        yield process
    finally:
        stop_process(process)


@contextlib.contextmanager
def run_server(
    args: list[str], violations: Path | None = None, env: dict[str, str] | None = None, output: Path | None = None
) -> Iterator[str]:
    """Start `yolowatch serve ARGS` on a free port (under the network guard if `violations` is given); yields its
    base URL once healthy, and stops it when the block ends.

    With `output`, the server's stdout and stderr go to that file (to assert on its log lines).
    """
    port = free_port()
    command = [sys.executable]
    if violations is not None:
        command += [str(NETGUARD), str(violations), "-m"]
    else:
        command += ["-m"]
    command += ["yolowatch", "serve", "--port", str(port), *args]
    if "--db" not in args:  # keep test servers' databases out of the working tree
        command += ["--db", str(Path(tempfile.mkdtemp(prefix="yolowatch-test-")) / "serve.db")]
    sink = open(output, "wb") if output is not None else None  # noqa: SIM115 (closed below)
    process = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=sink, stderr=sink)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base_url, process)
        yield base_url
    finally:
        stop_process(process)
        if sink is not None:
            sink.close()


@contextlib.contextmanager
def uvicorn_in_thread(app: Any, **config: Any) -> Iterator[str]:
    """Serve `app` with a real uvicorn on a free port in a thread of this process; yields its base URL once it
    accepts connections, and shuts it down (lifespan and all) when the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), "uvicorn to start")
        assert server.started, "uvicorn stopped before it started"
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


class WebhookReceiver:
    """A real local webhook receiver on a free port: keeps every JSON body; answers 500 while `failing`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.bodies: list[dict[str, Any]] = []
        self.failing = False
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.attempts += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.failing:
                    self.send_response(500)
                else:
                    receiver.bodies.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = HTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


# Stores and the admin API, in-process.


def admin_client(store: Store, **router_options: Any) -> TestClient:
    """A TestClient for the admin router over `store`; leaving its `with` block closes the store's connections
    (opened on the client's own event loop)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.close()

    return TestClient(Starlette(routes=[Mount("/", admin_router(store, **router_options))], lifespan=lifespan))


async def registered_store(path: Any, deployments: Iterable[str] = ("demo",), **options: Any) -> None:
    """Create the database at `path` with these deployments registered (and close it again)."""
    async with Store(path, **options) as store:
        for deployment in deployments:
            await store.register_deployment(deployment)


def detection_summary(rng: np.random.Generator, drifted: bool) -> DetectionSummary:
    """Four detections whose confidences and box sizes come from the normal or the drifted distribution."""
    n = 4
    confidences = np.clip(rng.beta(5, 2.5, n) if drifted else rng.beta(8, 2, n), 0.25, 1.0)
    areas = np.clip(rng.lognormal(np.log(0.008 if drifted else 0.02), 1.0, n), 1e-6, 1.0)
    return DetectionSummary(1, n, tuple(map(float, confidences)), tuple(map(float, areas)), (0,) * n, ("a",) * n)


async def record_fortnight(
    path: Path,
    clock: FakeClock,
    steady: tuple[str, ...] = (),
    drifting: tuple[str, ...] = (),
    idle: tuple[str, ...] = (),
) -> None:
    """Fourteen days from `clock` (moved on to their end), one busy hour a day of 80 requests for each deployment:
    normal throughout for `steady`, drifted from day 7 for `drifting`; `idle` ones are registered, never used."""
    rng = np.random.default_rng(9)

    def request(recorder: Recorder, day: int, index: int) -> None:
        for name in steady:
            recorder.record_request(name, "POST", "/predict", 200, 50_000, "s", detection_summary(rng, False))
        for name in drifting:
            recorder.record_request(name, "POST", "/predict", 200, 50_000, "d", detection_summary(rng, day >= 7))

    await record_busy_hours(path, clock, (*steady, *drifting, *idle), request)


async def record_busy_hours(
    path: Path,
    clock: FakeClock,
    deployments: Iterable[str],
    request: Callable[[Recorder, int, int], None],
    days: int = 14,
    per_day: int = 80,
) -> None:
    """`days` days from `clock` (moved on to their end), one busy hour a day: `request(recorder, day, index)` is
    called `per_day` times in it, then the hour is written. The deployments are registered first."""
    store = Store(path, clock=clock)
    try:
        recorder = Recorder(clock=clock)
        writer = StoreWriter(store, recorder, "w")
        for name in deployments:
            await store.register_deployment(name)
        for day in range(days):
            for index in range(per_day):
                request(recorder, day, index)
            clock.advance(3600)
            assert await writer.flush()
            clock.advance(86400 - 3600)
        assert await writer.flush()
    finally:
        await store.close()
