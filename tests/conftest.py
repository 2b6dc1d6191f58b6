"""Shared fixtures: real images, the real demo model, real servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

TESTS_DIR = Path(__file__).parent
NETGUARD = TESTS_DIR / "netguard.py"

# Whether the yolo extra (ultralytics, OpenCV, scipy) is installed: the light install's run (Python 3.10 in
# scripts/test) has only the middleware, sidecar, admin and store. These modules need the extra throughout
# (the bundled model, real images, the KS distribution); tests elsewhere that need it carry @pytest.mark.yolo.
YOLO_EXTRA = all(importlib.util.find_spec(name) is not None for name in ("ultralytics", "cv2", "scipy"))
YOLO_MODULES = frozenset(
    {
        "test_admin.py", "test_dashboard.py", "test_drift.py", "test_holdout.py", "test_offline.py",
        "test_predict.py", "test_quality.py", "test_quality_e2e.py", "test_serve.py", "test_serve_store.py",
        "test_shapes.py", "test_traffic.py", "test_uploads.py",
    }
)  # fmt: skip


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Without the extra, its test modules cannot even be imported: leave them out (the summary says so)."""
    return True if not YOLO_EXTRA and collection_path.name in YOLO_MODULES else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in YOLO_MODULES:
            item.add_marker(pytest.mark.yolo)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not YOLO_EXTRA:
        terminalreporter.write_line(
            f"light install: the yolo extra is not installed; {len(YOLO_MODULES)} test modules that need it were "
            "not collected (the full run with the extra has them)"
        )


@pytest.fixture(scope="session", autouse=True)
def _ultralytics_config(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep ultralytics' settings file out of the user's home during tests."""
    os.environ.setdefault("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("yolo-config")))


def ultralytics_asset(name: str) -> Path:
    """One of the real photos ultralytics ships (bus.jpg, zidane.jpg)."""
    import importlib.util

    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "assets" / name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(base_url: str, process: subprocess.Popen[bytes] | None = None, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited early with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{base_url}/health did not turn healthy in {timeout_s} s")


@contextlib.contextmanager
def run_server(
    args: list[str], violations: Path | None = None, env: dict[str, str] | None = None, output: Path | None = None
) -> Iterator[str]:
    """Start `yolowatch serve ARGS` on a free port (under the network guard if `violations` is given).

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


class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_leaked_store_threads() -> Iterator[None]:
    """A Store left open keeps a non-daemon aiosqlite thread alive and hangs interpreter exit."""
    import threading

    before = {t.ident for t in threading.enumerate()}
    yield
    deadline = time.monotonic() + 5
    while True:
        leaked = [
            t
            for t in threading.enumerate()
            if t.ident not in before and "_connection_worker_thread" in t.name and t.is_alive()
        ]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"store connections left open: {leaked}"


@contextlib.contextmanager
def running(
    command: list[str], ready_url: str, env: dict[str, str] | None = None, timeout_s: float = 60
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` until the block ends; ready once `ready_url` answers anything at all."""
    process = subprocess.Popen(command, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[:4]} exited early with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(ready_url, timeout=2)
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{ready_url} did not answer in {timeout_s} s")
            time.sleep(0.1)
        yield process
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a server flushes its store on the way out), then SIGKILL if it takes more than 20 s."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Receiver(BaseHTTPRequestHandler):
    """A real local webhook receiver: keeps every JSON body; answers 500 while `failing`."""

    bodies: ClassVar[list[dict]] = []
    failing: ClassVar[bool] = False
    attempts: ClassVar[int] = 0

    def do_POST(self) -> None:
        Receiver.attempts += 1
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        if Receiver.failing:
            self.send_response(500)
        else:
            Receiver.bodies.append(body)
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.bodies, Receiver.failing, Receiver.attempts = [], False, 0
    server = HTTPServer(("127.0.0.1", free_port()), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def detection_summary(rng: object, drifted: bool) -> object:
    """Four detections whose confidences and box sizes come from the normal or the drifted distribution."""
    import numpy as np

    from yolowatch.records import DetectionSummary

    assert isinstance(rng, np.random.Generator)
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
    import numpy as np

    from yolowatch.recorder import Recorder
    from yolowatch.store import Store, StoreWriter

    store = Store(path, clock=clock)
    recorder = Recorder(clock=clock)
    writer = StoreWriter(store, recorder, "w")
    for name in (*steady, *drifting, *idle):
        await store.register_deployment(name)
    rng = np.random.default_rng(9)
    for day in range(14):
        for _ in range(80):
            for name in steady:
                recorder.record_request(name, "POST", "/predict", 200, 50_000, "s", detection_summary(rng, False))
            for name in drifting:
                recorder.record_request(name, "POST", "/predict", 200, 50_000, "d", detection_summary(rng, day >= 7))
        clock.advance(3600)
        assert await writer.flush()
        clock.advance(86400 - 3600)
    assert await writer.flush()
    await store.close()
