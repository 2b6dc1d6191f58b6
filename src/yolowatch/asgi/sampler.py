"""UploadSampler: the sidecar's image properties, from a sample of the uploads it relays.

A predict server the sidecar fronts may not measure its images (the bundled app does, in its response). With
`--image-sample RATE`, one upload in 1/RATE is copied as it streams to the upstream (the request is relayed
unchanged and unslowed); once the exchange is over, a background task parses the multipart body and hands the
file to `measure` (OpenCV decoding and the properties, given by the composition layer from the `yolo` extra)
on a worker thread, and the recorder adds the properties to the live minute. Unsampled requests pay one
counter step; a sampled one a copy of its body, never a wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from yolowatch.recorder import Recorder

log = logging.getLogger("yolowatch")

Measure = Callable[[bytes], "dict[str, float] | None"]
MAX_SAMPLED_BYTES = 20 * 1024 * 1024  # a bigger body is not copied (the bundled app refuses such uploads anyway)
MAX_MEASURING = 4  # measurements in progress at once; a sample that finds them all busy is skipped


class UploadSampler:
    """Wrap the proxy: `UploadSampler(proxy, recorder, "prod", measure, rate=0.1)`."""

    def __init__(
        self,
        app: ASGIApp,
        recorder: Recorder,
        deployment: str,
        measure: Measure,
        rate: float,
        predict_paths: Iterable[str] = ("/predict",),
    ) -> None:
        if not 0 < rate <= 1:
            raise ValueError(f"the image sample rate must be more than 0 and at most 1; got {rate}")
        self.app = app
        self.recorder = recorder
        self.deployment = deployment
        self.measure = measure
        self.every = max(1, round(1 / rate))
        self.predict_paths = frozenset(predict_paths)
        self.skipped = 0  # samples not measured: every measuring slot busy, or the body too big
        self._seen = 0
        self._measuring: set[asyncio.Task[None]] = set()
        self._failure_logged = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.predict_paths:
            await self.app(scope, receive, send)
            return
        self._seen += 1
        if self._seen % self.every:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] | None = []
        size = 0

        async def copying_receive() -> Message:
            nonlocal chunks, size
            message = await receive()
            if chunks is not None and message["type"] == "http.request":
                body = message.get("body", b"")
                size += len(body)
                if size > MAX_SAMPLED_BYTES:
                    chunks = None
                else:
                    chunks.append(body)
            return message

        try:
            await self.app(scope, copying_receive, send)
        finally:
            if chunks and len(self._measuring) < MAX_MEASURING:
                task = asyncio.get_running_loop().create_task(self._measure(scope, b"".join(chunks)))
                self._measuring.add(task)
                task.add_done_callback(self._measuring.discard)
            else:
                self.skipped += 1

    async def _measure(self, scope: Scope, body: bytes) -> None:
        """Parse the form, measure the file on a worker thread, record the properties. A failure costs the sample."""
        try:
            data = await _uploaded_file(scope, body)
            properties = None if data is None else await asyncio.to_thread(self.measure, data)
            if properties:
                self.recorder.record_image(self.deployment, properties)
        except Exception:
            if not self._failure_logged:
                self._failure_logged = True
                log.warning("an upload sampled for its image properties could not be read (logged once)", exc_info=True)


async def _uploaded_file(scope: Scope, body: bytes) -> bytes | None:
    """The first file of a multipart body, or None (not multipart, malformed, no file)."""
    if not any(
        name == b"content-type" and value.startswith(b"multipart/form-data") for name, value in scope["headers"]
    ):
        return None
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    request = Request({"type": "http", "headers": scope["headers"], "method": "POST"}, replay)
    try:
        form = await request.form(max_files=1, max_fields=16)
    except Exception:  # a malformed body: the upstream refused it too
        return None
    try:
        upload = next((value for value in form.values() if isinstance(value, UploadFile)), None)
        return None if upload is None else await upload.read()
    finally:
        await form.close()
