"""PostgreSQL's faults, with real servers of our own that the tests stop and start: a database that is down, comes
back, is down when a sidecar starts, or is slow never fails or holds up a request, loses nothing the backlog
holds, and never shows its password."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from helpers import (
    FakeClock,
    free_port,
    running,
    status_of,
    stop_process,
    upstream_command,
    uvicorn_in_thread,
    wait_until,
)
from postgres import PASSWORD, Cluster, admin, create_database
from yolowatch import WatchMiddleware
from yolowatch.monitor import Monitor
from yolowatch.recorder import Recorder
from yolowatch.records import ProcessInfo
from yolowatch.store import Store, StoreWriter


@pytest.mark.anyio
async def test_a_restarted_server_gets_the_backlog_and_the_outage_is_logged_once(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The server stops: flushes fail, keep their data and back off, one WARNING says so (with the URL's password
    as ***); it comes back: everything recorded meanwhile is written."""
    caplog.set_level(logging.INFO, "yolowatch")
    with Cluster() as server:
        store = Store(create_database(server.url, "outage"), clock=clock)
        writer = StoreWriter(store, Recorder(clock=clock, info_logs_per_second=0), "w1", process=ProcessInfo("h", 1))
        try:
            assert await writer.flush()
            server.stop()
            for i in range(300):
                writer.recorder.record_request("demo", "POST", "/predict", 500 if i % 3 == 0 else 200, 2_000, f"r{i}")
            assert not await writer.flush()
            assert not await writer.flush()
            assert writer.next_round_s() == 2.0  # backing off: 1 s, 2 s, ... up to 8 s
            assert writer.backlog > 0 and writer.stats.failures == 2
            outage = [r for r in caplog.records if "cannot write" in r.getMessage()]
            assert len(outage) == 1 and outage[0].levelno == logging.WARNING
            assert "yolowatch:***@127.0.0.1" in outage[0].getMessage()
            server.start()
            assert await writer.flush()
            assert writer.next_round_s() == 1.0
            assert (await store.summary("demo", "1h"))["requests"] == 300
            assert len((await store.logs("demo", limit=500, severities=["ERROR"])).entries) == 100
            assert any("again" in r.getMessage() for r in caplog.records)
        finally:
            await store.close()
    assert PASSWORD not in caplog.text


def _sidecar(upstream: str, port: int, admin_port: int, db: str) -> list[str]:
    return [sys.executable, "-m", "yolowatch", "sidecar", "--upstream", upstream, "--port", str(port),
            "--admin-port", str(admin_port), "--deployment", "edge", "--instance", "pod-1", "--db", db]  # fmt: skip


@contextlib.contextmanager
def _logged(command: list[str], output: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with output.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=sink, env=env)
        try:
            yield process
        finally:
            stop_process(process)


def test_a_sidecar_starts_while_the_database_is_down_and_writes_once_it_is_up(tmp_path: Path) -> None:
    """No server at the URL when the sidecar starts: it serves anyway and says so; the server comes up: the requests
    proxied meanwhile are all stored, and the password is in no message, log line, row or /metrics line."""
    pg_port, upstream_port, port, admin_port = free_port(), free_port(), free_port(), free_port()
    url = f"postgresql://yolowatch:{PASSWORD}@127.0.0.1:{pg_port}/fleet"
    env = {**os.environ, "YOLOWATCH_HEALTH_INTERVAL_S": "0.3", "YOLOWATCH_HEALTH_RETRY_S": "0.3"}
    with (
        running(upstream_command(upstream_port), f"http://127.0.0.1:{upstream_port}/health"),
        _logged(_sidecar(f"http://127.0.0.1:{upstream_port}", port, admin_port, url), tmp_path / "out", env),
    ):
        wait_until(
            lambda: status_of(f"http://127.0.0.1:{admin_port}/health"),
            "the sidecar's admin port to answer",
            accept=lambda status: status is not None,
            timeout_s=60,
        )
        for _ in range(20):
            assert httpx.get(f"http://127.0.0.1:{port}/echo/x", timeout=10).status_code == 200
        with Cluster(port=pg_port) as server:
            admin(server.url, "CREATE DATABASE fleet")
            stored = wait_until(
                lambda: httpx.get(f"http://127.0.0.1:{admin_port}/api/deployments/edge/metrics?range=1h", timeout=10),
                "the requests proxied during the outage to be stored",
                accept=lambda r: r.status_code == 200 and r.json()["summary"]["requests"] >= 20,
                timeout_s=60,
            )
            assert stored.json()["summary"]["requests"] == 20
            metrics = httpx.get(f"http://127.0.0.1:{admin_port}/metrics", timeout=10).text
            rows = _all_text(server.url.rsplit("/", 1)[0] + "/fleet")
    said = (tmp_path / "out").read_text()
    assert "serving anyway" in said and "yolowatch:***@127.0.0.1" in said
    assert PASSWORD not in said and PASSWORD not in metrics and PASSWORD not in rows
    assert "pod-1" in rows  # the fleet row: this is the text that was searched


def _all_text(url: str) -> str:
    """Every row of every table, as text (to search for what must not be stored)."""

    async def dump() -> str:
        connection = await asyncpg.connect(url)
        try:
            lines = []
            for table in await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
                for row in await connection.fetch(f'SELECT * FROM "{table["tablename"]}"'):
                    lines.append(str(list(row.values())))
            return "\n".join(lines)
        finally:
            await connection.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, dump()).result()


async def predict(request: Request) -> Response:
    return JSONResponse({"images": []})


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_slow_database_delays_no_request(database: Callable[[str], str]) -> None:
    """While another session holds the tables the writer writes (its inserts wait), requests through the
    middleware answer as fast as before; once the lock goes, everything is stored."""
    app = WatchMiddleware(Starlette(routes=[Route("/predict", predict, methods=["POST"])]), store=database("slow"))
    monitor, url = app.monitor, database("slow")  # as a user wraps an app: store="postgresql://..."
    with uvicorn_in_thread(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        assert client.post("/predict").status_code == 200
        wait_until(lambda: monitor.writer.flushed_through, "the first flush")
        with _locked(url, "buckets", "logs"):
            time.sleep(1.5)  # the writer's next round (one a second) is now waiting for the lock
            slowest = 0.0
            for _ in range(100):
                started = time.perf_counter()
                assert client.post("/predict").status_code == 200
                slowest = max(slowest, time.perf_counter() - started)
            assert monitor.writer.running
        assert slowest < 0.5, f"a request took {slowest:.3f} s while the database was slow"
        wait_until(lambda: monitor.writer.stats.logs_written >= 101, "the held requests to be written", timeout_s=30)


@contextlib.contextmanager
def _locked(url: str, *tables: str) -> Iterator[None]:
    """Another session holding `tables` exclusively until the block ends."""
    release = threading.Event()
    held = threading.Event()

    async def hold() -> None:
        connection = await asyncpg.connect(url)
        try:
            async with connection.transaction():
                await connection.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
                held.set()
                while not release.is_set():
                    await asyncio.sleep(0.05)
        finally:
            await connection.close()

    thread = threading.Thread(target=asyncio.run, args=(hold(),))
    thread.start()
    try:
        assert held.wait(10), "could not lock the tables"
        yield
    finally:
        release.set()
        thread.join()


@pytest.mark.yolo  # PyYAML comes with the yolo extra (ultralytics)
def test_the_readme_kubernetes_example_runs_a_sidecar_the_cli_accepts() -> None:
    """The README's Deployment parses; its sidecar command is one `yolowatch sidecar` accepts; the database URL and
    key come from a Secret, the probes and the scrape annotation point at the admin port."""
    import yaml

    from yolowatch.cli import build_parser

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    example = next(block.split("```", 1)[0] for block in readme.split("```yaml\n")[1:] if "kind: Deployment" in block)
    deployment, service = yaml.safe_load_all(example)
    pod = deployment["spec"]["template"]
    sidecar = next(c for c in pod["spec"]["containers"] if c["name"] == "yolowatch")
    args = build_parser().parse_args(sidecar["command"][1:])
    assert args.command == "sidecar" and args.upstream == "http://127.0.0.1:9000" and args.admin_port == 8001
    env = {e["name"]: e["valueFrom"] for e in sidecar["env"]}
    assert "secretKeyRef" in env["YOLOWATCH_DB"] and "secretKeyRef" in env["YOLOWATCH_API_KEY"]
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/health", "port": "admin"} and ports["admin"] == 8001
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(ports["admin"])
    assert service["spec"]["ports"][0]["targetPort"] == "traffic" and ports["traffic"] == int(args.port)


@pytest.mark.anyio
async def test_a_database_that_never_answers_does_not_hold_up_the_start() -> None:
    """A server that takes connections and never answers (a hung host): the monitor starts within about a second,
    saying the store is not writable, while the first connection attempt goes on in the background."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nothing ever speaks
        url = f"postgresql://yolowatch:{PASSWORD}@127.0.0.1:{silent.getsockname()[1]}/db"
        monitor = Monitor(url, "prod")
        started = time.perf_counter()
        await monitor.start()
        took = time.perf_counter() - started
        try:
            assert took < 2.0, f"start-up waited {took:.1f} s for a database that does not answer"
            assert monitor.writer.running
        finally:
            await monitor.stop()
