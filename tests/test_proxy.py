"""The sidecar's proxy under load and when clients hang up: a real upstream process, the sidecar's traffic app on a
real uvicorn (uvloop, httptools) in a thread of this process, so its connection pool and tasks can be inspected."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from helpers import free_port, running, upstream_command, uvicorn_in_thread, wait_until
from otlp_receiver import OtlpReceiver, attributes
from yolowatch.asgi.middleware import WatchMiddleware
from yolowatch.asgi.proxy import ProxyApp
from yolowatch.config import Settings
from yolowatch.monitor import Monitor
from yolowatch.sidecar import create_sidecar

pytestmark = pytest.mark.slow


class LoopSpy:
    """Passes everything to `app`, and keeps the server's event loop so a test can run coroutines on it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=20)

    def tasks(self) -> int:
        async def count() -> int:
            return len(asyncio.all_tasks()) - 1  # not this one

        return int(self.run(count()))


@dataclass
class Side:
    url: str
    upstream: str
    proxy: ProxyApp
    monitor: Monitor
    spy: LoopSpy

    def upstream_stats(self) -> dict[str, int]:
        return dict(httpx.get(f"{self.upstream}/stats", timeout=10).json())

    def statuses(self) -> list[int]:
        """The statuses of the requests the sidecar recorded, oldest first (written by a flush on the server's loop)."""
        self.spy.run(self.monitor.writer.flush())
        page = self.spy.run(self.monitor.store.logs(self.monitor.deployment, limit=1000))
        return [entry["status"] for entry in reversed(page.entries)]


@pytest.fixture
def upstream() -> Iterator[str]:
    port = free_port()
    command = upstream_command(port, "--timeout-keep-alive", "1")
    url = f"http://127.0.0.1:{port}"
    with running(command, f"{url}/health"):
        yield url


@contextlib.contextmanager
def _side(upstream: str, tmp_path: Path, **settings: Any) -> Iterator[Side]:
    base = Settings(upstream=upstream, db=tmp_path / "side.db", deployment="edge", health_interval_s=3600)
    traffic, _, monitor = create_sidecar(base.with_overrides(**settings))
    assert isinstance(traffic, WatchMiddleware) and isinstance(traffic.app, ProxyApp)
    spy = LoopSpy(traffic)
    with uvicorn_in_thread(spy, loop="uvloop", http="httptools", lifespan="on") as url:
        yield Side(url, upstream, traffic.app, monitor, spy)


@pytest.fixture
def side(upstream: str, tmp_path: Path) -> Iterator[Side]:
    with _side(upstream, tmp_path, upstream_timeout_s=10) as running_side:
        yield running_side


def _idle_tasks(side: Side) -> int:
    """The server's task count once it is idle (no request in flight)."""
    assert httpx.get(f"{side.url}/echo/warm", timeout=10).status_code == 200
    return wait_until(side.spy.tasks, "the server to settle", accept=lambda n: n > 0)


def test_many_simultaneous_streamed_uploads_arrive_intact(side: Side) -> None:
    """32 uploads at once (half with Content-Length, half chunked), 0.5 to 3 MiB each, every byte accounted for."""
    rng = random.Random(7)
    bodies = [os.urandom(rng.randint(512 * 1024, 3 * 1024 * 1024)) for _ in range(32)]

    def upload(index: int) -> dict[str, Any]:
        body = bodies[index]
        if index % 2:  # a generator: sent chunked, re-framed by the sidecar
            content: Any = (body[i : i + 65536] for i in range(0, len(body), 65536))
        else:
            content = body
        response = httpx.post(f"{side.url}/upload", content=content, timeout=60)
        assert response.status_code == 200, response.text
        return dict(response.json())

    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(upload, range(32)))
    for body, answer in zip(bodies, answers, strict=True):
        assert answer == {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    assert side.proxy.pool.in_use == 0
    assert side.proxy.pool.opened <= 32 + 1  # kept alive and reused, never more than one per request in flight
    assert side.statuses().count(200) == 32


def test_a_client_that_hangs_up_mid_upload_leaves_nothing_behind(side: Side) -> None:
    baseline = _idle_tasks(side)
    host, port = side.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as client:
        client.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n" + b"a" * 1_000_000)
        wait_until(lambda: side.proxy.pool.in_use, "the upload to reach the upstream", accept=lambda n: n == 1)
    # The sidecar drops its connection to the upstream (the upstream sees the upload cut), leaks no task, and
    # records a 499.
    wait_until(lambda: side.upstream_stats()["uploads_cut"], "the upstream to see the cut", accept=lambda n: n == 1)
    assert side.proxy.pool.in_use == 0
    wait_until(side.spy.tasks, "the server's tasks to settle", accept=lambda n: n == baseline)
    assert side.statuses()[-1] == 499
    assert httpx.post(f"{side.url}/upload", content=b"after", timeout=10).json()["bytes"] == 5


def test_a_client_that_hangs_up_mid_download_stops_the_upstream_stream(side: Side) -> None:
    baseline = _idle_tasks(side)
    with httpx.stream("GET", f"{side.url}/endless", timeout=10) as response:
        received = 0
        for chunk in response.iter_raw():
            received += len(chunk)
            if received > 1_000_000:
                break  # leaving the block closes the connection mid-download
    stats = wait_until(side.upstream_stats, "the upstream's stream to end", accept=lambda s: s["streams_ended"] == 1)
    assert stats["streams_started"] == 1
    wait_until(lambda: side.proxy.pool.in_use, "the exchange to be released", accept=lambda n: n == 0)
    wait_until(side.spy.tasks, "the server's tasks to settle", accept=lambda n: n == baseline)
    assert side.statuses()[-1] == 499
    assert httpx.get(f"{side.url}/echo/after", timeout=10).status_code == 200


def test_the_upstream_connection_limit_holds_and_queued_requests_are_served(upstream: str, tmp_path: Path) -> None:
    with _side(upstream, tmp_path, upstream_connections=2, upstream_timeout_s=10) as side:
        httpx.delete(f"{upstream}/stats", timeout=10)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(lambda _: httpx.get(f"{side.url}/slow?s=0.4", timeout=30), range(6)))
        assert [answer.status_code for answer in answers] == [200] * 6
        assert side.upstream_stats()["most_in_flight"] == 2
        assert time.monotonic() - started >= 3 * 0.4  # three rounds of two
        assert side.proxy.pool.opened == 2


def test_all_connections_busy_past_the_timeout_is_a_504(upstream: str, tmp_path: Path) -> None:
    with _side(upstream, tmp_path, upstream_connections=1, upstream_timeout_s=1) as side:
        with httpx.stream("GET", f"{side.url}/endless", timeout=10) as holding:  # takes the only connection
            chunks = holding.iter_raw()  # kept: a dropped iterator would close the response
            next(chunks)
            queued = httpx.get(f"{side.url}/echo/queued", timeout=30)
        assert queued.status_code == 504 and "kept all 1 connections busy for 1 s" in queued.json()["error"]
        assert httpx.get(f"{side.url}/echo/after", timeout=30).status_code == 200


def test_kept_alive_connections_are_reused_and_a_closed_one_is_replaced(side: Side) -> None:
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{side.url}/echo/a").status_code == 200
        assert client.head(f"{side.url}/health").status_code == 200  # a HEAD answer has no body to wait for
        assert client.get(f"{side.url}/echo/b").status_code == 200
        assert side.proxy.pool.opened == 1
        # The upstream closes idle connections after 1 s (--timeout-keep-alive 1): the next request gets a new one.
        wait_until(lambda: side.proxy.pool.idle, "the upstream to close the idle connection", accept=lambda n: n == 0)
        assert client.get(f"{side.url}/echo/c").status_code == 200
        assert side.proxy.pool.opened == 2


def test_the_server_stack_is_named_at_start(tmp_path: Path, upstream: str) -> None:
    admin, port = free_port(), free_port()
    command = [sys.executable, "-m", "yolowatch", "sidecar", "--upstream", upstream, "--port", str(port),
               "--admin-port", str(admin), "--db", str(tmp_path / "s.db")]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def answers() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{admin}/health", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(answers, "the sidecar to answer", timeout_s=60)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert "uvloop event loop, httptools HTTP parser" in output


def test_credentials_and_a_path_prefix_in_the_upstream_url_are_used(upstream: str, tmp_path: Path) -> None:
    """user:password in --upstream becomes the upstream's Basic auth (the client's own Authorization is replaced);
    a path in it prefixes every request; the Host header is the upstream's; hop-by-hop headers stay behind."""
    with_credentials = upstream.replace("http://", "http://robot:s3cret@") + "/echo"
    with _side(with_credentials, tmp_path) as side:
        assert side.proxy.shown == upstream + "/echo"
        headers = {"Authorization": "Bearer client-token", "Connection": "keep-alive, X-Hop", "X-Hop": "1",
                   "X-Kept": "yes"}  # fmt: skip
        echoed = httpx.get(f"{side.url}/a/b?q=1", headers=headers, timeout=10).json()
    assert echoed["path"] == "/echo/a/b" and echoed["query"] == "q=1"
    sent = echoed["headers"]
    assert sent["authorization"] == "Basic " + base64.b64encode(b"robot:s3cret").decode()
    assert sent["host"] == upstream.removeprefix("http://")
    assert sent["x-kept"] == "yes" and "x-hop" not in sent
    assert sent["x-forwarded-for"] == "127.0.0.1" and sent["x-forwarded-proto"] == "http"


def test_with_traces_on_the_upstream_is_a_child_of_the_sidecars_span(upstream: str, tmp_path: Path) -> None:
    """--otlp-traces: the upstream gets a traceparent in the client's trace whose parent is the sidecar's own
    exported span (itself the client's span's child), with the client's tracestate; a client without one starts a
    trace the upstream joins, without the tracestate that belonged to no trace. The spans are named by route:
    these paths are none (the probe path is), so by the method."""
    client_trace, client_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    with (
        OtlpReceiver() as collector,
        _side(upstream, tmp_path, otlp_traces=True, otlp_endpoint=collector.endpoint) as side,
    ):
        header, state = f"00-{client_trace}-{client_span}-01", "vendor=opaque"
        sent = httpx.get(f"{side.url}/echo/a", headers={"traceparent": header, "tracestate": state}, timeout=10)
        sent = sent.json()["headers"]
        fresh = httpx.get(f"{side.url}/echo/b", headers={"tracestate": state}, timeout=10).json()["headers"]
        spans = collector.wait_for_spans(lambda found: len(found) == 2, "the sidecar's two spans")
    assert sent["tracestate"] == state and "tracestate" not in fresh  # a caller's state only in the caller's trace
    version, trace_id, parent_id, flags = sent["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", client_trace, "01") and parent_id != client_span
    by_path = {attributes(span.attributes)["url.path"]: span for span in spans}
    ours = by_path["/echo/a"]
    assert {span.name for span in spans} == {"GET"}
    assert (ours.trace_id.hex(), ours.span_id.hex(), ours.parent_span_id.hex()) == (trace_id, parent_id, client_span)
    _, new_trace, new_parent, _ = fresh["traceparent"].split("-")
    started = by_path["/echo/b"]
    assert (started.trace_id.hex(), started.span_id.hex(), started.parent_span_id) == (new_trace, new_parent, b"")
    assert new_trace != client_trace


def test_an_upstream_that_hangs_up_without_answering_is_a_502(tmp_path: Path) -> None:
    """A server that accepts the connection and closes it without a word: 502 (CRITICAL), and the next request
    gets a new connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    hung_up = []

    def hang_up() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connection.recv(65536)
            connection.close()
            hung_up.append(1)

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        with _side(f"http://127.0.0.1:{port}", tmp_path, upstream_timeout_s=5) as side:
            for _ in range(2):
                answer = httpx.get(f"{side.url}/echo/x", timeout=10)
                assert answer.status_code == 502
                assert "failed: closed the connection without answering" in answer.json()["error"]
            assert side.proxy.pool.opened == 2 and side.proxy.pool.in_use == 0
            assert side.statuses() == [502, 502]
    finally:
        listener.close()
    assert len(hung_up) >= 2  # the two requests (and the sidecar's own health probe)


def test_an_upload_that_expects_100_continue_goes_through(side: Side) -> None:
    """curl sends `Expect: 100-continue` before a large body: the client is told to go on (by uvicorn, when the proxy
    first reads the body) and the upstream gets all of it."""
    host, port = side.url.removeprefix("http://").split(":")
    body = os.urandom(300_000)
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        assert client.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        client.sendall(body)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(payload) == {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
