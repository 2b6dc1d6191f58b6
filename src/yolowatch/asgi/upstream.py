"""The sidecar's client side: keep-alive HTTP/1.1 connections to one upstream, bounded in number.

Why not a general client: the sidecar needs only one origin, HTTP/1.1 and streaming both ways, and
general clients (httpx, aiohttp) spend most of a proxied request in their own bookkeeping (the
benchmarks measured each: benchmarks/README.md, "Sidecar"). Here a connection is an asyncio
Protocol fed straight into httptools' C parser (llhttp, uvicorn's own): bytes that arrive are
parsed in the callback that received them, and the request task waits on one future at a time.

An exchange on a connection: `start` writes the request head, `write`/`drain` stream the request
body with the transport's flow control, `response_head` waits for the status line and headers,
`read` hands the body over as it arrives (reading pauses while more than `READ_HIGH_WATER` bytes wait
to be relayed, so a slow client never makes the sidecar hold a large download).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import httptools

from yolowatch._util import http_url, redacted_url

READ_HIGH_WATER = 256 * 1024  # bytes of response body buffered before the socket stops being read


class UpstreamError(Exception):
    """The upstream could not be reached, or broke the exchange (502 when nothing was relayed yet)."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer, read or send in time (504 when nothing was relayed yet)."""


class PoolTimeout(UpstreamTimeout):
    """Every connection to the upstream stayed busy for the whole timeout."""


class Unreachable(UpstreamError):
    """No connection could be made."""


@dataclass(frozen=True)
class Origin:
    """Where requests go: scheme, host, port, a path prefix, and the Authorization its URL's credentials imply."""

    scheme: str
    host: str
    port: int
    prefix: bytes
    host_header: bytes
    authorization: bytes | None
    shown: str  # the URL without credentials, for messages

    @classmethod
    def parse(cls, url: str) -> Origin:
        parsed = http_url(url.rstrip("/"), "the upstream", "http://127.0.0.1:9000")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        host = parsed.host
        netloc = f"[{host}]" if ":" in host else host
        if parsed.port is not None:
            netloc += f":{parsed.port}"
        authorization = None
        if parsed.username or parsed.password:
            token = base64.b64encode(f"{parsed.username}:{parsed.password}".encode()).decode()
            authorization = f"Basic {token}".encode()
        return cls(
            parsed.scheme,
            host,
            port,
            parsed.raw_path.split(b"?", 1)[0].rstrip(b"/"),
            netloc.encode("idna"),
            authorization,
            redacted_url(url),
        )


class Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time. Callbacks only note state and wake the waiting task."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.exchange = 0  # increments per request: a late wake-up for an earlier one is ignored
        self._parser: httptools.HttpResponseParser | None = None
        self._head_only = False
        self._interim = False
        self._head_done = False
        self._body_done = False
        self._keep_alive = False
        self._framed = False  # Content-Length or chunked: a close before the end is a truncation
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._reading_paused = False
        self._write_paused = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.received_any = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or self._body_done:  # bytes nobody asked for: the connection cannot be trusted
            self.abort()
            return
        self.received_any = True
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamError("switched protocols, which the sidecar does not relay"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"sent a malformed response ({exc})"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._parser is not None and self._head_done and not self._body_done and not self._framed:
            self._body_done = True  # a body delimited by the close (no Content-Length, not chunked)
            self._keep_alive = False
            self._wake()
        elif self._parser is not None and not self._body_done:
            reason = f": {exc}" if exc else ""
            what = "before the response was complete" if self.received_any else "without answering"
            self._fail(UpstreamError(f"closed the connection {what}{reason}"))
        self._wake()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake()

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
            self._framed = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim response (100 Continue, 103 Early Hints): the real one follows
            self._interim = True
            self.headers = []
            self._framed = False
            return
        self.status = status
        self._head_done = True
        if self._head_only or status in (204, 304):
            self._body_done = True
            self._keep_alive = self._parser.should_keep_alive()
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._head_only:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > READ_HIGH_WATER and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        assert self._parser is not None
        self._body_done = True
        self._keep_alive = self._parser.should_keep_alive()
        self._wake()

    # the request task's side

    def start(self, head: bytes, head_only: bool) -> None:
        """Begin an exchange: a fresh parser (a HEAD response's Content-Length must not be waited for)."""
        self.exchange += 1
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = head_only
        self._interim = self._head_done = self._body_done = self._keep_alive = self._framed = False
        self.status = 0
        self.headers = []
        self._chunks.clear()
        self._buffered = 0
        self._error = None
        self.received_any = False
        self.write(head)

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    async def drain(self, timeout_s: float) -> None:
        """Wait while the socket's send buffer is full (the upstream reads slower than the client sends)."""
        while self._write_paused and not self.closed and self._error is None:
            await self._wait(timeout_s, "take the request body")

    async def response_head(self, timeout_s: float) -> tuple[int, list[tuple[bytes, bytes]]]:
        while not self._head_done:
            if self._error is not None:
                raise self._error
            if self.closed:
                raise UpstreamError("closed the connection without answering")
            await self._wait(timeout_s, "answer")
        return self.status, self.headers

    async def read(self, timeout_s: float) -> bytes:
        """The body received so far (joined), waiting for some if none; b"" once the body is complete."""
        while True:
            if self._chunks:
                data = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
                self._chunks.clear()
                self._buffered = 0
                if self._reading_paused and self.transport is not None and not self.closed:
                    self._reading_paused = False
                    self.transport.resume_reading()
                return data
            if self._body_done:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait(timeout_s, "send the rest of its response")

    @property
    def body_complete(self) -> bool:
        """The whole response body has been handed over by `read`."""
        return self._body_done and not self._chunks

    @property
    def reusable(self) -> bool:
        return self._body_done and self._keep_alive and not self.closed and self._error is None

    def interrupt(self, exchange: int, error: UpstreamError) -> None:
        """Stop exchange `exchange` (the client went away): the connection is dropped, never reused."""
        if exchange == self.exchange and not self._body_done:
            self._fail(error)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, error: UpstreamError) -> None:
        if self._error is None:
            self._error = error
        self.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, timeout_s: float, doing: str) -> None:
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout_s, _time_out, waiter, doing, timeout_s)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None


def _time_out(waiter: asyncio.Future[None], doing: str, timeout_s: float) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamTimeout(f"did not {doing} within {timeout_s:g} s"))


class UpstreamPool:
    """Connections to one origin: at most `limit` at once, idle ones kept for reuse (newest first).

    An idle connection older than `idle_timeout_s` is closed rather than reused: servers close idle
    keep-alive connections on their own schedule (uvicorn after 5 s), and a request sent on one the
    server is closing would fail.
    """

    def __init__(
        self,
        origin: Origin,
        limit: int = 100,
        connect_timeout_s: float = 5.0,
        idle_timeout_s: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError("the upstream connection limit must be at least 1")
        self.origin = origin
        self.limit = limit
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock
        self.in_use = 0
        self.opened = 0  # connections ever opened (the tests and benchmarks read it)
        self._idle: list[Connection] = []
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if origin.scheme == "https" else None

    @property
    def idle(self) -> int:
        return sum(1 for connection in self._idle if not connection.closed)

    async def acquire(self, timeout_s: float) -> tuple[Connection, bool]:
        """A connection and whether it was reused; waits (up to `timeout_s`) while `limit` are busy."""
        now = self.clock()
        while self._idle:
            connection = self._idle.pop()
            if connection.closed or now - connection.idle_since > self.idle_timeout_s:
                connection.abort()
                continue
            self.in_use += 1
            return connection, True
        if self.in_use >= self.limit:
            await self._wait_for_slot(timeout_s)
            return await self.acquire(timeout_s)
        self.in_use += 1
        try:
            connection = await self._connect()
        except BaseException:
            self.in_use -= 1
            self._wake_one()
            raise
        return connection, False

    def release(self, connection: Connection, reusable: bool) -> None:
        self.in_use -= 1
        if reusable and connection.reusable:
            connection.idle_since = self.clock()
            self._idle.append(connection)
        else:
            connection.abort()
        self._wake_one()

    def close(self) -> None:
        for connection in self._idle:
            connection.abort()
        self._idle.clear()

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        origin = self.origin
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    Connection,
                    origin.host,
                    origin.port,
                    ssl=self._ssl,
                    server_hostname=origin.host if self._ssl is not None else None,
                ),
                self.connect_timeout_s,
            )
        except asyncio.TimeoutError:
            raise UpstreamTimeout(f"accepted no connection within {self.connect_timeout_s:g} s") from None
        except OSError as exc:
            raise Unreachable(exc.strerror or str(exc) or type(exc).__name__) from exc
        self.opened += 1
        return connection

    async def _wait_for_slot(self, timeout_s: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout_s)
        except asyncio.TimeoutError:
            raise PoolTimeout(f"kept all {self.limit} connections busy for {timeout_s:g} s") from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._wake_one()  # the slot this task was woken for goes to the next in line
            raise
        finally:
            if waiter in self._waiting:
                self._waiting.remove(waiter)

    def _wake_one(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
