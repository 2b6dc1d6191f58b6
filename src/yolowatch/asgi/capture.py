"""FrameCapture: the sidecar's production frames, from the uploads it relays and the answers it relays back.

While the sampler would keep a frame (`FrameSampler.open_now()`), a predict request's body chunks and its JSON
answer's chunks are kept by reference as they pass (nothing is copied, changed or waited for), and handed to the
sampler once the exchange is over; the sampler parses and judges them on its own thread. Any other request, and
every request while the caps are reached, passes straight through.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yolowatch.framesample import FrameSampler

log = logging.getLogger("yolowatch")

MiB = 1024 * 1024


class _Exchange:
    """What one captured exchange has kept so far; `None` lists mean it is out of the caps (or not a JSON 200)."""

    __slots__ = ("request", "request_bytes", "request_done", "response", "response_bytes", "response_done")

    def __init__(self) -> None:
        self.request: list[bytes] | None = []
        self.request_bytes = 0
        self.request_done = False
        self.response: list[bytes] | None = []
        self.response_bytes = 0
        self.response_done = False


class FrameCapture:
    """Wrap the proxy: `FrameCapture(proxy, sampler, lambda: monitor.drifting)`."""

    def __init__(
        self,
        app: ASGIApp,
        sampler: FrameSampler,
        drifting: Callable[[], bool],
        predict_paths: Iterable[str] = ("/predict",),
        max_request_bytes: int = 20 * MiB,
        max_response_bytes: int = 1 * MiB,
    ) -> None:
        self.app = app
        self.sampler = sampler
        self.drifting = drifting
        self.predict_paths = frozenset(predict_paths)
        self.max_request_bytes = max_request_bytes
        self.max_response_bytes = max_response_bytes
        self._failure_logged = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in self.predict_paths
            or not self.sampler.open_now()
        ):
            await self.app(scope, receive, send)
            return
        content_type = next((value for name, value in scope["headers"] if name == b"content-type"), b"")
        if not content_type.lower().startswith(b"multipart/form-data"):
            await self.app(scope, receive, send)
            return
        exchange = _Exchange()
        max_request, max_response = self.max_request_bytes, self.max_response_bytes

        async def keeping_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and exchange.request is not None:
                body = message.get("body", b"")
                exchange.request_bytes += len(body)
                if exchange.request_bytes > max_request:
                    exchange.request = None
                else:
                    exchange.request.append(body)
                    exchange.request_done = not message.get("more_body", False)
            return message

        async def keeping_send(message: Message) -> None:
            if exchange.response is not None:
                if message["type"] == "http.response.start":
                    if message["status"] != 200 or not _plain_json(message.get("headers", ())):
                        exchange.response = None
                elif message["type"] == "http.response.body":
                    body = message.get("body", b"")
                    exchange.response_bytes += len(body)
                    if exchange.response_bytes > max_response:
                        exchange.response = None
                    else:
                        exchange.response.append(body)
                        exchange.response_done = not message.get("more_body", False)
            await send(message)

        await self.app(scope, keeping_receive, keeping_send)  # an exception: nothing kept, re-raised as it came
        if exchange.request_done and exchange.response_done and exchange.request and exchange.response:
            self._hand_over(content_type, exchange.request, exchange.response)

    def _hand_over(self, content_type: bytes, request: list[bytes], response: list[bytes]) -> None:
        try:
            drifting = bool(self.drifting())
        except Exception:  # the flag's source failed: keep the frame at the normal shares
            drifting = False
            if not self._failure_logged:
                self._failure_logged = True
                log.warning("the drift flag for frame sampling could not be read (logged once)", exc_info=True)
        self.sampler.offer_exchange(content_type, request, response, drifting=drifting)


def _plain_json(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """A JSON body as sent, not compressed."""
    json_type = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-type":
            json_type = b"json" in value.lower()
        elif lowered == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
            return False
    return json_type
