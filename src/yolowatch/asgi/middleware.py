"""WatchMiddleware: pure ASGI, times and records every http request of the app it wraps.

Per request it reads the clock twice, keeps a reference to at most `max_body_bytes`
of a JSON predict response, and calls `Recorder.record_request` (an append: no I/O,
no await); with traces on, it also begins the request's trace (`Tracer.begin`: ids
and a sampling choice, about a microsecond). Everything else (reading detections,
aggregating, writing, logging to Python `logging`, making spans) happens in bulk in
the store's writer task and the trace exporter's thread. A failure inside
monitoring is counted and logged once; it never fails the request.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from time import perf_counter_ns

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yolowatch._types import CRITICAL_MARK, GOLDEN_MARK, STAGES_MARK, TRACE_MARK
from yolowatch.asgi.routes import DEFAULT_EXCLUDED_PATHS, DEFAULT_EXCLUDED_PREFIXES
from yolowatch.monitor import Monitor
from yolowatch.store import Store
from yolowatch.tracecontext import TRACEPARENT, Trace, client_trace

log = logging.getLogger("yolowatch")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def request_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, bytes | None]:
    """The client's X-Request-ID if well-formed (ids are echoed in headers and logs: keep them tame), and its
    W3C `traceparent` as sent (parsed only when there is one), in one pass over the headers. Two `traceparent`
    headers make none valid (b""), as the W3C spec's tests expect: the request starts a new trace."""
    request_id = traceparent = None
    for name, value in headers:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            request_id = text if _REQUEST_ID.fullmatch(text) else None
        elif name == TRACEPARENT:
            traceparent = value if traceparent is None else b""
    return request_id, traceparent


def is_golden(headers: Iterable[tuple[bytes, bytes]], token: bytes) -> bool:
    """A golden-image check this process sent itself (its X-Yolowatch-Golden header holds the process's token)."""
    for name, value in headers:
        if name == b"x-yolowatch-golden":
            return value == token
    return False


def _json_under_cap(headers: Iterable[tuple[bytes, bytes]], cap: int) -> tuple[bool, str | None]:
    """Whether the response is JSON within the cap, and the model version its X-Model-Version header names (for
    an app whose body does not say which model answered)."""
    is_json = False
    model = None
    for name, value in headers:
        if name == b"content-type":
            is_json = value.split(b";", 1)[0].strip().lower() == b"application/json"
        elif name == b"content-length" and value.isdigit() and int(value) > cap:
            return False, None
        elif name == b"x-model-version":
            model = value.decode("latin-1")
    return is_json, model


class WatchMiddleware:
    """Wrap any ASGI app: `app = WatchMiddleware(app, store="yolowatch.db", deployment="prod")`.

    Pass `monitor=` instead of `store=` to share a Monitor with an admin router. Lifespan events pass
    through to the app; the middleware uses them to open the store and to flush it on shutdown.
    """

    def __init__(
        self,
        app: ASGIApp,
        store: Store | str | Path | None = None,
        deployment: str = "default",
        *,
        monitor: Monitor | None = None,
        predict_paths: Iterable[str] = ("/predict",),
        excluded_paths: Iterable[str] = DEFAULT_EXCLUDED_PATHS,
        excluded_prefixes: Iterable[str] = DEFAULT_EXCLUDED_PREFIXES,
        max_body_bytes: int = 1024 * 1024,
    ) -> None:
        if monitor is None:
            if store is None:
                raise TypeError(
                    "WatchMiddleware needs store= (an SQLite path, a postgresql:// URL or a Store) or monitor="
                )
            monitor = Monitor(store, deployment)
        self.app = app
        self.monitor = monitor
        self.recorder = monitor.recorder
        self.deployment = monitor.deployment
        self.predict_paths = frozenset(predict_paths)
        self.excluded_paths = frozenset(excluded_paths)
        self.excluded_prefixes = tuple(excluded_prefixes)
        self.max_body_bytes = max_body_bytes
        self.golden_token = monitor.golden_token  # None unless golden checks run through this process
        self._failure_logged = False
        # Request ids: a random per-process prefix and a counter (unique, and no syscall per request).
        self._id_prefix = os.urandom(6).hex()
        self._id_counter = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in self.excluded_paths or path.startswith(self.excluded_prefixes):
            await self.app(scope, receive, send)
            return
        if self.golden_token is not None and is_golden(scope["headers"], self.golden_token):
            scope[GOLDEN_MARK] = True  # not traffic: neither counted, logged nor sampled
            await self.app(scope, receive, send)
            return
        if not self.monitor.started:
            self.monitor.start_soon()

        started_ns = perf_counter_ns()
        request_id, traceparent = request_headers(scope["headers"])
        if request_id is None:
            request_id = f"{self._id_prefix}{next(self._id_counter):012x}"
        tracer = self.monitor.tracer  # None unless traces are exported (--otlp-traces)
        trace: Trace | None
        if tracer is not None:
            trace = scope[TRACE_MARK] = tracer.begin(traceparent, started_ns)
        else:  # the client's trace id still goes into the log entry
            trace = None if traceparent is None else client_trace(traceparent)
        capture = path in self.predict_paths
        cap = self.max_body_bytes
        status = 0
        chunks: list[bytes] | None = None
        model: str | None = None
        captured = 0
        finished_ns = 0
        disconnected = False
        send_failed = False

        async def watched_receive() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            return message

        async def watched_send(message: Message) -> None:
            nonlocal status, chunks, model, captured, finished_ns, send_failed
            if message["type"] == "http.response.body":
                if chunks is not None:
                    body = message.get("body", b"")
                    captured += len(body)
                    if captured > cap:
                        chunks = None  # too big to parse: stop copying
                    else:
                        chunks.append(body)
                if not message.get("more_body", False):
                    finished_ns = perf_counter_ns()
            elif message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", ())
                if capture:
                    is_json, model = _json_under_cap(headers, cap)
                    if is_json:
                        chunks = []
                # In place, as Starlette's own middlewares do: the message is this response's.
                message["headers"] = [*headers, (b"x-request-id", request_id.encode())]
            try:
                await send(message)
            except BaseException:
                send_failed = True
                raise

        recorder = self.recorder
        recorder.in_flight += 1
        try:
            await self.app(scope, watched_receive, watched_send)
        except BaseException:
            recorder.in_flight -= 1
            gone = send_failed or disconnected
            recorded_status = status if finished_ns else 499 if gone else 500
            self._record(scope, recorded_status, started_ns, finished_ns, request_id, None, trace, crashed=not gone)
            raise
        recorder.in_flight -= 1
        if not finished_ns:
            # The app returned without completing a response: the client went away (499) or the app is broken.
            status = 499 if disconnected else (status or 500)
        self._record(scope, status, started_ns, finished_ns, request_id, chunks, trace, CRITICAL_MARK in scope, model)

    def _record(
        self,
        scope: Scope,
        status: int,
        started_ns: int,
        finished_ns: int,
        request_id: str,
        chunks: list[bytes] | None,
        trace: Trace | None,
        crashed: bool = False,
        model: str | None = None,
    ) -> None:
        try:
            if trace is not None and trace[3] and STAGES_MARK in scope:  # a sampled request the app timed
                trace = (*trace[:6], scope[STAGES_MARK])
            latency_us = ((finished_ns or perf_counter_ns()) - started_ns) // 1000
            # 2xx bodies are read for detections, 4xx/5xx ones for the error's reason (both later, in the fold).
            body = (chunks[0] if len(chunks) == 1 else b"".join(chunks)) if chunks and status >= 200 else None
            # With the version a header named, for a body that names none.
            read = (body, model) if model is not None and body is not None else body
            self.recorder.record_request(
                self.deployment, scope["method"], scope["path"], status, latency_us, request_id, read, crashed, trace
            )
        except Exception:
            self.recorder.stats.monitoring_failures += 1
            if not self._failure_logged:
                self._failure_logged = True
                log.exception("yolowatch could not record a request (counted; logged only once)")

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def lifespan_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.monitor.start()
            return message

        async def lifespan_send(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.monitor.stop()
            await send(message)

        await self.app(scope, lifespan_receive, lifespan_send)
