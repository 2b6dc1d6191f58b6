"""The sidecar's reverse proxy: any request, streamed to the upstream and back, nothing buffered whole.

Method, path, query, headers (minus hop-by-hop ones) and bodies pass both ways as they are; the
response body is relayed raw (still compressed if the upstream compressed it). Connections to the
upstream are kept alive and bounded in number (`asgi.upstream`). An upstream that cannot be reached
is answered 502, one that does not answer in time (or whose connections all stay busy) 504, both as
JSON errors; the 502 is marked for WatchMiddleware to log as CRITICAL (DESIGN.md: an unreachable
upstream is). A client that hangs up mid-upload or mid-download ends the exchange: the upstream
connection is dropped, not reused, and nothing is left running.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import Message, Receive, Scope, Send

from yolowatch._types import CRITICAL_MARK, TRACE_MARK
from yolowatch.asgi.upstream import Connection, Origin, Unreachable, UpstreamError, UpstreamPool, UpstreamTimeout
from yolowatch.errors import json_error
from yolowatch.tracecontext import TRACEPARENT, TRACESTATE, traceparent_header

log = logging.getLogger("yolowatch.proxy")

# RFC 9110 7.6.1: meaningful for one connection only, never forwarded. Host is the upstream's own;
# Expect is answered by the server in front (uvicorn sends 100 Continue when the body is first read).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"expect",
    }
)
DEFAULT_CONNECTIONS = 100


def forwarded_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Headers minus hop-by-hop ones, and minus any the Connection header names."""
    named = {
        token.strip().lower() for name, value in headers if name.lower() == b"connection" for token in value.split(b",")
    }
    return [(name, value) for name, value in headers if name.lower() not in HOP_BY_HOP and name.lower() not in named]


class ClientGone(UpstreamError):
    """The client hung up: the exchange with the upstream is abandoned."""


class ProxyApp:
    """ASGI app forwarding every http request to `upstream` (e.g. http://127.0.0.1:9000)."""

    def __init__(
        self,
        upstream: str,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        max_connections: int = DEFAULT_CONNECTIONS,
    ) -> None:
        self.origin = Origin.parse(upstream)
        self.shown = self.origin.shown  # for messages: never the credentials a URL may carry
        self.timeout_s = timeout_s
        self.pool = UpstreamPool(self.origin, max_connections, connect_timeout_s)

    async def aclose(self) -> None:
        self.pool.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._forward(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _request_head(self, scope: Scope) -> tuple[bytes, bool | None]:
        """The request line and headers for the upstream, and the body's framing: None (no body), False
        (Content-Length, relayed as is) or True (chunked: re-framed here, the server in front de-chunked it)."""
        origin = self.origin
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        target = origin.prefix + raw_path + (b"?" + query if query else b"")
        received = scope.get("headers", [])
        framing: bool | None = None
        lines = [scope["method"].encode(), b" ", target, b" HTTP/1.1\r\nhost: ", origin.host_header, b"\r\n"]
        trace = scope.get(TRACE_MARK)  # traces on: the upstream's work is a child of this request's span
        # Ours replaces the caller's traceparent; its tracestate goes on only within the caller's trace (W3C).
        replaced = () if trace is None else (TRACEPARENT, TRACESTATE) if trace[2] is None else (TRACEPARENT,)
        for name, value in forwarded_headers(received):
            lowered = name.lower()
            if (lowered == b"authorization" and origin.authorization is not None) or lowered in replaced:
                continue
            if lowered == b"content-length":
                framing = False
            lines += (name, b": ", value, b"\r\n")
        if framing is None and any(name.lower() == b"transfer-encoding" for name, _ in received):
            framing = True
            lines.append(b"transfer-encoding: chunked\r\n")
        if origin.authorization is not None:
            lines += (b"authorization: ", origin.authorization, b"\r\n")
        if trace is not None:
            lines += (TRACEPARENT, b": ", traceparent_header(trace), b"\r\n")
        client = scope.get("client")
        if client:
            lines += (b"x-forwarded-for: ", client[0].encode(), b"\r\n")
        lines += (b"x-forwarded-proto: ", scope.get("scheme", "http").encode(), b"\r\n\r\n")
        return b"".join(lines), framing

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        head, framing = self._request_head(scope)
        head_only = scope["method"] == "HEAD"
        for attempt in (1, 2):
            try:
                connection, reused = await self.pool.acquire(self.timeout_s)
            except UpstreamError as exc:
                await self._error(exc, scope, receive, send)
                return
            reusable = False
            try:
                connection.start(head, head_only)
                if framing is not None and not await self._send_body(connection, receive, framing):
                    return  # the client hung up mid-upload: no one to answer
                try:
                    status, headers = await connection.response_head(self.timeout_s)
                except UpstreamError as exc:
                    stale = reused and not isinstance(exc, UpstreamTimeout) and not connection.received_any
                    if stale and framing is None and attempt == 1:
                        continue  # a kept-alive connection the upstream had just closed: once more, on a new one
                    await self._error(exc, scope, receive, send)
                    return
                await send({"type": "http.response.start", "status": status, "headers": forwarded_headers(headers)})
                reusable = await self._relay_body(connection, receive, send)
                return
            finally:
                self.pool.release(connection, reusable)

    async def _send_body(self, connection: Connection, receive: Receive, chunked: bool) -> bool:
        """Stream the client's body to the upstream as it arrives; False if the client hung up first."""
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                connection.abort()
                return False
            body = message.get("body", b"")
            if body and not connection.closed:
                if chunked:
                    connection.write(b"%x\r\n" % len(body))
                    connection.write(body)
                    connection.write(b"\r\n")
                else:
                    connection.write(body)
                await connection.drain(self.timeout_s)
            if not message.get("more_body", False):
                if chunked:
                    connection.write(b"0\r\n\r\n")
                return True
            if connection.closed:
                return True  # the upstream answered early (or failed): its answer, or the failure, is what counts

    async def _relay_body(self, connection: Connection, receive: Receive, send: Send) -> bool:
        """Relay the response body; True when it ended cleanly. A body that arrives in more than one piece
        gets a watcher for the client's disconnect (uvicorn drops sends to a gone client without a word)."""
        chunk = await connection.read(self.timeout_s)
        if connection.body_complete:
            await send({"type": "http.response.body", "body": chunk, "more_body": False})
            return True
        exchange = connection.exchange
        watcher = asyncio.get_running_loop().create_task(_until_disconnect(receive))
        watcher.add_done_callback(
            lambda _: connection.interrupt(exchange, ClientGone("the client closed the connection"))
        )
        try:
            while True:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                try:
                    chunk = await connection.read(self.timeout_s)
                except ClientGone:
                    return False  # nothing to tell anyone: the middleware records the 499
                if connection.body_complete:
                    await send({"type": "http.response.body", "body": chunk, "more_body": False})
                    return True
        finally:
            watcher.cancel()

    async def _error(self, exc: UpstreamError, scope: Scope, receive: Receive, send: Send) -> None:
        """504 for a timeout; 502 (marked CRITICAL) for an upstream that cannot be reached or broke the exchange."""
        if isinstance(exc, UpstreamTimeout):
            await json_error(504, f"upstream {self.shown} {exc}")(scope, receive, send)
            return
        scope[CRITICAL_MARK] = True
        what = "could not be reached" if isinstance(exc, Unreachable) else "failed"
        await json_error(502, f"upstream {self.shown} {what}: {exc}")(scope, receive, send)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
