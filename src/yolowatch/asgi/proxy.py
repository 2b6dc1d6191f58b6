"""The sidecar's reverse proxy: any request, streamed to the upstream and back (httpx), nothing buffered whole.

Method, path, query, headers (minus hop-by-hop ones) and bodies pass both ways as they are; the
response body is relayed raw (still compressed if the upstream compressed it). An upstream that
cannot be reached is answered 502, one that does not answer in time 504, both as JSON errors; the
502 is marked for WatchMiddleware to log as CRITICAL (DESIGN.md: an unreachable upstream is).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
from starlette.types import Message, Receive, Scope, Send

from yolowatch._types import CRITICAL_MARK
from yolowatch._util import redacted_url
from yolowatch.errors import json_error

log = logging.getLogger("yolowatch.proxy")

# RFC 9110 7.6.1: meaningful for one connection only, never forwarded. Host is the upstream's own.
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
    }
)


def forwarded_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Headers minus hop-by-hop ones, and minus any the Connection header names."""
    named = {
        token.strip().lower() for name, value in headers if name.lower() == b"connection" for token in value.split(b",")
    }
    return [(name, value) for name, value in headers if name.lower() not in HOP_BY_HOP and name.lower() not in named]


class ProxyApp:
    """ASGI app forwarding every http request to `upstream` (e.g. http://127.0.0.1:9000)."""

    def __init__(self, upstream: str, timeout_s: float = 60.0, connect_timeout_s: float = 5.0) -> None:
        self.upstream = httpx.URL(upstream.rstrip("/"))
        self.shown = redacted_url(upstream)  # for messages: never the credentials a URL may carry
        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # servers without lifespan events still work
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, trust_env=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

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

    def _url(self, scope: Scope) -> httpx.URL:
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        target = raw_path + (b"?" + query if query else b"")
        return httpx.URL(str(self.upstream) + target.decode("latin-1"))

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = forwarded_headers(list(scope.get("headers", [])))
        client = scope.get("client")
        if client:
            headers.append((b"x-forwarded-for", client[0].encode()))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
        # A request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112 6.3): send none,
        # rather than an empty chunked one that some servers refuse on GET.
        names = {name.lower() for name, _ in scope.get("headers", [])}
        has_body = b"content-length" in names or b"transfer-encoding" in names
        request = self.client.build_request(
            scope["method"], self._url(scope), headers=headers, content=_request_body(receive) if has_body else None
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TimeoutException:
            await json_error(504, f"upstream {self.shown} did not answer within {self.timeout_s:g} s")(
                scope, receive, send
            )
            return
        except httpx.TransportError as exc:
            scope[CRITICAL_MARK] = True
            reason = str(exc) or type(exc).__name__
            await json_error(502, f"upstream {self.shown} could not be reached: {reason}")(scope, receive, send)
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": forwarded_headers(list(response.headers.raw)),
                }
            )
            async for chunk in response.aiter_raw():
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    """The client's body as it arrives (an upload is never held whole)."""
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return
