"""The bundled YOLO predict app: `POST /predict` in the Ultralytics endpoint response shape, and `GET /health`.

Needs the `yolo` extra (ultralytics, OpenCV). Inference runs on one dedicated
thread per model, because an ultralytics model must not be called from several
threads at once; uploads are decoded on the shared thread pool so the event
loop never decodes or infers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive

from yolowatch import __version__
from yolowatch._types import GOLDEN_MARK, STAGES_MARK, TRACE_MARK
from yolowatch._util import BOOL_WORDS, parse_bool
from yolowatch.config import Settings
from yolowatch.detections import model_version
from yolowatch.errors import RequestError, json_error
from yolowatch.framesample import FrameSampler
from yolowatch.tracecontext import Stage
from yolowatch.yolo.imagestats import image_properties
from yolowatch.yolo.offline import prepare_ultralytics
from yolowatch.yolo.uploads import decode_image

log = logging.getLogger("yolowatch.predict")

# Room for the multipart boundaries, part headers and the small parameter fields around the file.
FORM_OVERHEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class PredictParams:
    """Inference parameters of one request, validated."""

    conf: float = 0.25
    iou: float = 0.7
    imgsz: int = 640
    normalize: bool = False
    decimals: int = 5


# name -> (type, low, high), inclusive
PARAM_RANGES: dict[str, tuple[type, float, float]] = {
    "conf": (float, 0.01, 1.0),
    "iou": (float, 0.0, 0.95),
    "imgsz": (int, 32, 1280),
    "decimals": (int, 0, 10),
}


def _parse_number(name: str, raw: str) -> float | int:
    kind, low, high = PARAM_RANGES[name]
    text = raw.strip()
    try:
        value: float | int = int(text) if kind is int else float(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise RequestError(422, f"{name} must be {what} between {low:g} and {high:g}, got {raw!r}") from None
    if not (low <= value <= high) or (isinstance(value, float) and math.isnan(value)):
        raise RequestError(422, f"{name} must be between {low:g} and {high:g}, got {raw!r}")
    return value


def _parse_bool(name: str, raw: str) -> bool:
    try:
        return parse_bool(raw)
    except ValueError:
        raise RequestError(422, f"{name} must be {BOOL_WORDS}, got {raw!r}") from None


def parse_params(fields: Mapping[str, Any]) -> PredictParams:
    """Form fields (or query parameters) to PredictParams; unknown fields are ignored."""
    values: dict[str, Any] = {}
    for name in PARAM_RANGES:
        raw = fields.get(name)
        if raw is not None:
            if not isinstance(raw, str):
                raise RequestError(422, f"{name} must be a form field, not a file")
            values[name] = _parse_number(name, raw)
    raw_normalize = fields.get("normalize")
    if isinstance(raw_normalize, str):
        values["normalize"] = _parse_bool("normalize", raw_normalize)
    return PredictParams(**values)


def format_detections(
    xyxy: np.ndarray,
    confidences: np.ndarray,
    class_ids: np.ndarray,
    names: Mapping[int, str],
    shape: tuple[int, int],
    params: PredictParams,
) -> list[dict[str, Any]]:
    """Boxes as the contract's result dicts; pixels, or 0-1 when `normalize` is set."""
    height, width = shape
    scale = np.array([width, height, width, height], dtype=np.float64) if params.normalize else 1.0
    boxes = np.asarray(xyxy, dtype=np.float64) / scale
    results = []
    for (x1, y1, x2, y2), confidence, class_id in zip(boxes, confidences, class_ids, strict=True):
        cls = int(class_id)
        results.append(
            {
                "class": cls,
                "name": names.get(cls, str(cls)),
                "confidence": round(float(confidence), params.decimals),
                "box": {
                    k: round(float(v), params.decimals)
                    for k, v in zip(("x1", "y1", "x2", "y2"), (x1, y1, x2, y2), strict=True)
                },
            }
        )
    return results


@dataclass(frozen=True)
class Decoded:
    """An upload decoded on the thread pool: the image, how long decoding took, and the image's properties; when
    decoding started, ended and the measuring ended (perf_counter_ns: a traced request's stages)."""

    image: np.ndarray
    decode_ms: float
    properties: dict[str, float]
    started_ns: int = 0
    decoded_ns: int = 0
    measured_ns: int = 0


def decode_upload(data: bytes, max_pixels: int) -> Decoded:
    """Decode, then measure the image (brightness, contrast, sharpness) on the same worker thread, off the loop."""
    started = time.perf_counter_ns()
    image = decode_image(data, max_pixels)
    decoded = time.perf_counter_ns()
    properties = image_properties(image)
    return Decoded(image, (decoded - started) / 1e6, properties, started, decoded, time.perf_counter_ns())


def stage_timings(
    received_ns: int, read_ns: int, decoded: Decoded, submitted_ns: int, speed: dict[str, float]
) -> tuple[Stage, ...]:
    """A traced request's stages (perf_counter_ns), for its trace's child spans: reading the upload, decoding,
    measuring the image, waiting for the model thread, then Ultralytics' own three, which run back to back after
    the wait (it reports their durations, in ms, not their times)."""
    stages: list[Stage] = [
        ("upload", received_ns, read_ns),
        ("decode", decoded.started_ns, decoded.decoded_ns),
        ("image properties", decoded.decoded_ns, decoded.measured_ns),
    ]
    at = submitted_ns + round(speed.get("queue", 0.0) * 1e6)
    stages.append(("queue", submitted_ns, at))
    for name in ("preprocess", "inference", "postprocess"):
        if name in speed:
            end = at + round(speed[name] * 1e6)
            stages.append((name, at, end))
            at = end
    return tuple(stages)


def weights_digest(path: Path) -> str:
    """The first 12 hex digits of the weights file's SHA-256: a new file is a new model version, whatever its name."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


class Detector:
    """One YOLO model behind one thread. Loading happens on that thread too, so requests queue behind it."""

    def __init__(self, weights: Path) -> None:
        self.weights = weights
        self.error: str | None = None
        self.digest = ""  # of the weights file, once loaded
        self.names: dict[int, str] = {}  # the model's class names, once loaded
        self.queued = 0  # requests waiting for the model thread or on it (the inference queue's depth)
        self._model: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="yolowatch-model")
        self._loading: asyncio.Future[None] | None = None

    @property
    def ready(self) -> bool:
        return self._model is not None

    def _load(self) -> None:
        prepare_ultralytics()
        from ultralytics.models import YOLO

        if not self.weights.is_file():
            raise FileNotFoundError(f"model weights not found: {self.weights}")
        model = YOLO(str(self.weights))
        if model.task != "detect":
            raise ValueError(f"{self.weights.name} is a {model.task} model; yolowatch serves detect models")
        # One warm-up inference, so the first request does not pay for lazy initialisation.
        model.predict(np.zeros((64, 64, 3), dtype=np.uint8), imgsz=64, verbose=False)
        self.digest = weights_digest(self.weights)
        self.names = {int(k): str(v) for k, v in model.names.items()}
        self._model = model

    def start_loading(self) -> asyncio.Future[None]:
        """Begin loading in the model thread; the returned future completes when the model is ready or failed."""
        if self._loading is None:
            future = asyncio.get_running_loop().run_in_executor(self._executor, self._load)
            future.add_done_callback(self._loaded)
            self._loading = future
        return self._loading

    def _loaded(self, future: asyncio.Future[None]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("model %s failed to load: %s", self.weights, self.error)
        else:
            log.info("model %s loaded", self.weights.name)

    def _infer(self, image: np.ndarray, params: PredictParams, submitted: float) -> dict[str, Any]:
        queue_ms = (time.perf_counter() - submitted) * 1000
        result = self._model.predict(image, conf=params.conf, iou=params.iou, imgsz=params.imgsz, verbose=False)[0]
        boxes = result.boxes
        shape = (int(result.orig_shape[0]), int(result.orig_shape[1]))
        return {
            "shape": list(shape),
            "speed": {"queue": round(queue_ms, 3), **{k: round(float(v), 3) for k, v in result.speed.items()}},
            "results": format_detections(
                boxes.xyxy.cpu().numpy(),
                boxes.conf.cpu().numpy(),
                boxes.cls.cpu().numpy(),
                self._model.names,
                shape,
                params,
            ),
        }

    async def predict(self, image: np.ndarray, params: PredictParams) -> dict[str, Any]:
        if not self.ready:
            raise RequestError(503, self.not_ready_message(), headers={"Retry-After": "5"})
        self.queued += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, self._infer, image, params, time.perf_counter()
            )
        finally:
            self.queued -= 1

    async def probe(self) -> tuple[int, float]:
        """The health probe: a tiny inference through the model thread, and how long it took. A model still
        loading is waited for first, and the wait is not the probe's latency (a cold start is not slowness)."""
        while self._loading is None:  # the app's lifespan has not started loading yet
            await asyncio.sleep(0.05)
        await asyncio.shield(self._loading)  # raises the load error, if loading failed
        started = time.perf_counter()
        await self.predict(np.zeros((64, 64, 3), dtype=np.uint8), PredictParams(imgsz=64))
        return 200, (time.perf_counter() - started) * 1000

    def not_ready_message(self) -> str:
        if self.error:
            return f"model failed to load: {self.error}"
        return "model is still loading; retry shortly"

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _limit_body(receive: Receive, max_bytes: int) -> Receive:
    """Refuse a body as soon as it passes `max_bytes`, so an enormous upload is never spooled whole."""
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > max_bytes:
                raise RequestError(413, f"request body is larger than the {max_bytes:,}-byte limit")
        return message

    return limited


def _too_large(size: int, limit: int) -> RequestError:
    return RequestError(413, f"file is {size:,} bytes; the limit is {limit:,} bytes")


async def _read_upload(request: Request, settings: Settings) -> tuple[bytes, PredictParams]:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        shown = content_type or "none"
        raise RequestError(415, f"send the image as multipart/form-data (field 'file'); content type was {shown}")
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, f"Content-Length is not a number: {declared!r}")
        if int(declared) > limit + FORM_OVERHEAD_BYTES:
            raise _too_large(int(declared), limit)
    limited = Request(request.scope, _limit_body(request.receive, limit + FORM_OVERHEAD_BYTES))
    try:
        form = await limited.form(max_files=1, max_fields=16)
    except MultiPartException as exc:
        raise RequestError(400, f"malformed multipart body: {exc.message}") from None
    except HTTPException as exc:  # Starlette's wrapping of MultiPartException inside an app
        raise RequestError(400, f"malformed multipart body: {exc.detail}") from None
    try:
        upload = form.get("file")
        if upload is None:
            raise RequestError(400, "no file: send the image as multipart/form-data field 'file'")
        if not isinstance(upload, UploadFile):
            raise RequestError(400, "field 'file' must be a file upload, not a text field")
        params = parse_params(form)
        data = await upload.read()
    finally:
        await form.close()
    if len(data) > limit:
        raise _too_large(len(data), limit)
    return data, params


def _metadata(detector: Detector, params: PredictParams) -> dict[str, Any]:
    """Echoes the parameters and names the model (with its weights' digest), so that a middleware or a sidecar
    reading this response knows what a confidence histogram was cut at, and which model version answered."""
    import ultralytics

    return {
        "imageCount": 1,
        "task": "detect",
        "model": detector.weights.name,
        "modelHash": detector.digest,
        "params": {"conf": params.conf, "iou": params.iou, "imgsz": params.imgsz},
        "version": {"ultralytics": ultralytics.__version__, "yolowatch": __version__},
    }


def predict_endpoint(
    settings: Settings,
    detector: Detector,
    sampler: FrameSampler | None = None,
    drifting: Callable[[], bool] | None = None,
) -> Callable[[Request], Awaitable[Response]]:
    """POST /predict. With a sampler (--sample-dir), each answered upload is offered to it: the rules are checked
    here (microseconds), and a kept frame is written on the sampler's thread, never before the answer."""

    async def predict(request: Request) -> Response:
        if not detector.ready:
            # Refuse before reading the upload: the model cannot answer anyway.
            raise RequestError(503, detector.not_ready_message(), headers={"Retry-After": "5"})
        received_ns = time.perf_counter_ns()
        data, params = await _read_upload(request, settings)
        read_ns = time.perf_counter_ns()
        decoded = await run_in_threadpool(decode_upload, data, settings.max_image_pixels)
        submitted_ns = time.perf_counter_ns()
        result = await detector.predict(decoded.image, params)
        trace = request.scope.get(TRACE_MARK)
        if trace is not None and trace[3]:  # a sampled request: its stages become its trace's child spans
            request.scope[STAGES_MARK] = stage_timings(received_ns, read_ns, decoded, submitted_ns, result["speed"])
        result["speed"] = {"decode": round(decoded.decode_ms, 3), **result["speed"]}
        result["properties"] = decoded.properties
        metadata = _metadata(detector, params)
        if sampler is not None and GOLDEN_MARK not in request.scope:  # a golden image is no production frame
            sampler.offer(
                data,
                result["results"],
                shape=(result["shape"][0], result["shape"][1]),
                normalized=params.normalize,
                model=model_version(metadata),
                params=metadata["params"],
                names=detector.names,
                drifting=drifting() if drifting is not None else False,
            )
        return JSONResponse({"images": [result], "metadata": metadata})

    return predict


def health_endpoint(detector: Detector) -> Callable[[Request], Awaitable[Response]]:
    async def health(request: Request) -> Response:
        body: dict[str, Any] = {
            "healthy": detector.ready,
            "modelLoaded": detector.ready,
            "model": detector.weights.name,
        }
        if not detector.ready:
            body["error"] = detector.not_ready_message()
        return JSONResponse(body, status_code=200 if detector.ready else 503)

    return health


async def _request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    log.warning("%s %s refused with %d: %s", request.method, request.url.path, exc.status, exc.message)
    return json_error(exc.status, exc.message, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code >= 400:
        log.warning("%s %s refused with %d: %s", request.method, request.url.path, exc.status_code, exc.detail)
    return json_error(exc.status_code, str(exc.detail), dict(exc.headers) if exc.headers else None)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return json_error(500, "internal error while predicting; see the server log")


def create_predict_app(
    settings: Settings,
    detector: Detector | None = None,
    sampler: FrameSampler | None = None,
    drifting: Callable[[], bool] | None = None,
) -> Starlette:
    """The predict app. The model starts loading at startup; `/health` is 503 until it is ready. With a sampler,
    answered uploads are offered to it (its monitor starts and closes it)."""
    detector = detector if detector is not None else Detector(settings.model)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        detector.start_loading()
        try:
            yield
        finally:
            detector.close()

    app = Starlette(
        routes=[
            Route("/predict", predict_endpoint(settings, detector, sampler, drifting), methods=["POST"]),
            Route("/health", health_endpoint(detector), methods=["GET"]),
        ],
        exception_handlers={RequestError: _request_error, HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.detector = detector
    return app
