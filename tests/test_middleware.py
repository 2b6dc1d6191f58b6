"""WatchMiddleware around small inline apps: what each kind of request is recorded as."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from helpers import FakeClock, uvicorn_in_thread, wait_until, wait_until_async
from yolowatch._types import STAGES_MARK, TRACE_MARK
from yolowatch.asgi.middleware import WatchMiddleware
from yolowatch.logformat import JsonLinesFormatter
from yolowatch.monitor import Monitor
from yolowatch.recorder import Collected, Recorder
from yolowatch.records import Bucket
from yolowatch.store import Store
from yolowatch.tracecontext import Tracer

DETECTIONS = {
    "images": [
        {
            "shape": [100, 100],
            "results": [
                {"class": 0, "name": "circle", "confidence": 0.8, "box": {"x1": 0, "y1": 0, "x2": 10, "y2": 10}},
                {"class": 1, "name": "square", "confidence": 0.6, "box": {"x1": 0, "y1": 0, "x2": 50, "y2": 50}},
            ],
        }
    ]
}


async def predict(request: Request) -> Response:
    if await request.body() == b"text":
        return JSONResponse({"error": "file is not an image;\n send JPEG or PNG"}, status_code=415)
    return JSONResponse(DETECTIONS)


async def crash(request: Request) -> Response:
    raise RuntimeError("the model fell over")


async def slow_stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(4):
            await asyncio.sleep(0.05)
            yield f"chunk {i}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


async def endless_stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        while True:
            yield b"x" * 1024
            await asyncio.sleep(0.02)

    return StreamingResponse(chunks(), media_type="text/plain")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


def inline_app(events: list[str] | None = None) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if events is not None:
            events.append("startup")
        yield
        if events is not None:
            events.append("shutdown")

    return Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/crash", crash),
            Route("/bad", lambda r: JSONResponse({"error": "conf must be a number"}, status_code=422)),
            Route("/unavailable", lambda r: JSONResponse({"error": "loading"}, status_code=503)),
            Route("/text-predict", lambda r: PlainTextResponse("3 circles"), methods=["POST"]),
            Route("/stream", slow_stream),
            Route("/endless", endless_stream),
            Route("/health", lambda r: JSONResponse({"healthy": True})),
            WebSocketRoute("/ws", echo),
        ],
        lifespan=lifespan,
    )


def stored(db: Path, clock: FakeClock) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The 1h summary and all log entries of deployment 'test', read back from the file."""

    async def read() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        store = Store(db, clock=clock)
        try:
            return await store.summary("test", "1h"), (await store.logs("test", limit=200)).entries
        finally:
            await store.close()

    return asyncio.run(read())


@pytest.fixture
def watched(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[TestClient, Path]]:
    db = tmp_path / "watch.db"
    app = WatchMiddleware(inline_app(), monitor=Monitor(db, "test", clock=clock, latency_budget_ms=150))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, db


def test_each_kind_of_response_is_recorded(watched: tuple[TestClient, Path], clock: FakeClock) -> None:
    """Success, 4xx, 5xx and a crash are counted in their classes, with their severities."""
    client, db = watched
    assert client.post("/predict", content=b"img").status_code == 200
    assert client.get("/bad").status_code == 422
    assert client.get("/unavailable").status_code == 503
    assert client.get("/crash").status_code == 500
    client.__exit__(None, None, None)  # shutdown flushes the store
    summary, logs = stored(db, clock)
    assert summary["requests"] == 4
    assert (summary["client_errors"], summary["server_errors"]) == (1, 2)
    by_path = {entry["path"]: entry for entry in logs}
    assert by_path["/predict"]["severity"] == logging.INFO
    assert by_path["/bad"]["severity"] == logging.WARNING
    assert by_path["/unavailable"]["severity"] == logging.ERROR
    assert (by_path["/crash"]["status"], by_path["/crash"]["severity"]) == (500, logging.CRITICAL)


def test_an_exception_is_re_raised(tmp_path: Path, clock: FakeClock) -> None:
    """The app's exception still reaches the server (here: the test client) after being recorded."""
    app = WatchMiddleware(inline_app(), monitor=Monitor(tmp_path / "r.db", "test", clock=clock))
    with TestClient(app) as client, pytest.raises(RuntimeError, match="fell over"):
        client.get("/crash")


def test_detections_are_read_from_json_predict_responses_only(
    watched: tuple[TestClient, Path], clock: FakeClock
) -> None:
    """A JSON predict response feeds the detection stats; a text one and other paths do not."""
    client, db = watched
    client.post("/predict", content=b"img")
    client.post("/text-predict", content=b"img")
    client.__exit__(None, None, None)
    summary, logs = stored(db, clock)
    assert summary["predictions"] == 1
    assert summary["detections_per_request"] == 2
    assert summary["mean_confidence"] == pytest.approx(0.7)
    predict_log = next(entry for entry in logs if entry["path"] == "/predict")
    assert predict_log["message"].endswith(", 2 detections") and predict_log["detections"] == 2


def test_a_refused_predict_request_is_logged_with_its_reason(
    watched: tuple[TestClient, Path], clock: FakeClock
) -> None:
    """The error of a refused request's JSON body follows its status in the request log (one line), and the
    refusal is not counted as a prediction."""
    client, db = watched
    assert client.post("/predict", content=b"text").status_code == 415
    client.__exit__(None, None, None)
    summary, logs = stored(db, clock)
    assert (summary["requests"], summary["predictions"], summary["client_errors"]) == (1, 0, 1)
    (entry,) = logs
    assert entry["severity"] == logging.WARNING
    assert entry["message"].startswith("POST /predict 415 ")
    assert entry["message"].endswith(" ms: file is not an image; send JPEG or PNG")


def test_oversized_predict_bodies_are_not_parsed(tmp_path: Path, clock: FakeClock) -> None:
    """A JSON body over the cap is passed through whole but not parsed."""
    db = tmp_path / "cap.db"
    app = WatchMiddleware(inline_app(), monitor=Monitor(db, "test", clock=clock), max_body_bytes=64)
    with TestClient(app) as client:
        assert client.post("/predict", content=b"img").json() == DETECTIONS
    summary, _ = stored(db, clock)
    assert summary["requests"] == 1 and summary["predictions"] == 0


def test_streaming_latency_runs_to_the_last_byte(watched: tuple[TestClient, Path], clock: FakeClock) -> None:
    """A response streamed over ~200 ms is timed to its last chunk, and slow ones log WARNING."""
    client, db = watched
    assert client.get("/stream").text.count("chunk") == 4
    client.__exit__(None, None, None)
    summary, logs = stored(db, clock)
    assert summary["p50_ms"] >= 190
    assert summary["slow"] == 1 and logs[0]["severity"] == logging.WARNING


def test_websockets_and_excluded_paths_pass_through_unrecorded(
    watched: tuple[TestClient, Path], clock: FakeClock
) -> None:
    """A websocket echo and /health work untouched and are not counted as deployment traffic."""
    client, db = watched
    with client.websocket_connect("/ws") as ws:
        ws.send_text("hello")
        assert ws.receive_text() == "hello"
    assert client.get("/health").json() == {"healthy": True}
    assert "x-request-id" not in client.get("/health").headers
    client.post("/predict", content=b"img")
    client.__exit__(None, None, None)
    summary, logs = stored(db, clock)
    assert summary["requests"] == 1 and [entry["path"] for entry in logs] == ["/predict"]


def test_lifespan_reaches_the_app(tmp_path: Path, clock: FakeClock) -> None:
    """The wrapped app's own startup and shutdown still run."""
    events: list[str] = []
    app = WatchMiddleware(inline_app(events), monitor=Monitor(tmp_path / "l.db", "test", clock=clock))
    with TestClient(app):
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]


def test_request_ids_are_honoured_or_made(watched: tuple[TestClient, Path], clock: FakeClock) -> None:
    """A tame incoming X-Request-ID is echoed and logged; a wild one is replaced; none gets a fresh one."""
    client, db = watched
    assert client.post("/predict", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    replaced = client.post("/predict", headers={"X-Request-ID": "<script>alert(1)</script>"}).headers["x-request-id"]
    fresh = client.post("/predict").headers["x-request-id"]
    assert replaced != "<script>alert(1)</script>" and len(replaced) == 24
    assert len(fresh) == 24 and fresh != replaced
    client.__exit__(None, None, None)
    _, logs = stored(db, clock)
    assert {entry["request_id"] for entry in logs} == {"abc-123", replaced, fresh}


def test_secrets_never_reach_the_database_or_the_logs(
    watched: tuple[TestClient, Path], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Authorization, cookies, API keys in the query and request bodies are neither stored nor logged."""
    client, db = watched
    with caplog.at_level(logging.DEBUG):
        client.post(
            "/predict?api_key=sk-query-secret",
            headers={
                "Authorization": "Bearer sk-header-secret",
                "Cookie": "session=sk-cookie-secret",
                "X-Api-Key": "sk-xheader-secret",
            },
            content=b"sk-body-secret",
        )
        client.__exit__(None, None, None)
    with sqlite3.connect(db) as raw:
        dump = "\n".join(raw.iterdump())
    assert "/predict" in dump  # the request is there...
    ours = [record for record in caplog.records if record.name.startswith("yolowatch")]  # not the test client's
    logged = "\n".join(record.getMessage() + json.dumps(record.__dict__, default=str) for record in ours)
    assert "POST /predict 200" in logged
    for text in (dump, logged):  # ...and none of its secrets
        assert "sk-" not in text


def test_client_disconnect_is_recorded_as_499(tmp_path: Path) -> None:
    """A client that hangs up mid-stream on a real uvicorn server is recorded as 499."""
    db = tmp_path / "d.db"
    app = WatchMiddleware(inline_app(), monitor=Monitor(db, "test"))
    with uvicorn_in_thread(app) as base:
        with httpx.stream("GET", f"{base}/endless", timeout=10) as response:
            next(response.iter_bytes())  # read a little, then hang up
        # The server notices the hang-up at its next write; the writer stores the request within a second.
        wait_until(lambda: stored(db, FakeClock(time.time()))[1], "the hung-up request to be written")
    summary, logs = stored(db, FakeClock(time.time()))
    assert [entry["status"] for entry in logs] == [499]
    assert summary["client_errors"] == 1 and logs[0]["severity"] == logging.WARNING


class BrokenRecorder(Recorder):
    """A recorder that fails: the one fault here we cannot cause for real."""

    def record_request(self, *args: Any, **kwargs: Any) -> None:
        raise ValueError("recorder bug")


class BrokenFold(Recorder):
    """A recorder whose collection fails: a bug in the writer's round, which nothing real can provoke."""

    def collect(self, fold: bool = True) -> Collected:
        raise ValueError("fold bug")


def test_a_monitoring_failure_never_fails_the_request(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Requests succeed while recording fails; failures are counted and logged once."""
    monitor = Monitor(tmp_path / "b.db", "test", clock=clock, recorder=BrokenRecorder(clock=clock))
    app = WatchMiddleware(inline_app(), monitor=monitor)
    with TestClient(app) as client, caplog.at_level(logging.ERROR, logger="yolowatch"):
        assert [client.post("/predict").status_code for _ in range(3)] == [200, 200, 200]
    assert monitor.recorder.stats.monitoring_failures == 3
    assert sum("could not record" in r.getMessage() for r in caplog.records) == 1


def test_request_logs_go_to_python_logging_as_json_lines(
    watched: tuple[TestClient, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Each request is also a `yolowatch.requests` record at its severity, formattable as one JSON line."""
    client, _ = watched
    with caplog.at_level(logging.INFO, logger="yolowatch.requests"):
        client.get("/bad", headers={"X-Request-ID": "rid-7"})
        client.__exit__(None, None, None)
    (record,) = [r for r in caplog.records if r.name == "yolowatch.requests"]
    assert record.levelno == logging.WARNING
    line = json.loads(JsonLinesFormatter().format(record))
    assert line["level"] == "WARNING" and line["request_id"] == "rid-7" and line["status"] == 422
    assert line["message"].startswith("GET /bad 422 ")


def test_servers_without_lifespan_still_get_recorded(tmp_path: Path) -> None:
    """With lifespan off (no startup event), the monitor starts on the first request and writes within seconds."""
    db = tmp_path / "nolife.db"
    app = WatchMiddleware(inline_app(), monitor=Monitor(db, "test"))
    try:
        with uvicorn_in_thread(app, lifespan="off") as base:
            assert httpx.post(f"{base}/predict", content=b"img").status_code == 200
            wait_until(
                lambda: db.exists() and stored(db, FakeClock(time.time()))[0]["requests"] == 1,
                "the request to be written",
                timeout_s=10,
            )
    finally:
        asyncio.run(app.monitor.stop())  # what a lifespan shutdown would have done


@pytest.mark.anyio
async def test_a_failing_writer_round_is_logged_with_its_traceback_and_the_writer_goes_on(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression (background failures were logged without a traceback, and a bug ended the writer task): the
    first failing round logs ERROR with the traceback, later ones stay quiet, and the task keeps running."""
    monitor = Monitor(tmp_path / "w.db", "test", clock=clock, recorder=BrokenFold(clock=clock), flush_interval_s=0)
    caplog.set_level(logging.DEBUG, logger="yolowatch.store")
    await monitor.store.open()
    monitor.writer.start()
    try:
        await wait_until_async(  # rounds run back to back (interval 0): wait for three, not for a time
            lambda: sum("store writer round failed" in r.getMessage() for r in caplog.records) >= 3,
            "three failed writer rounds",
            every_s=0,
        )
        assert monitor.writer.running
    finally:
        await monitor.writer.stop(flush=False)  # a flush would only fail once more
        await monitor.store.close()
    failures = [r for r in caplog.records if "store writer round failed" in r.getMessage()]
    assert [r.levelno for r in failures[:3]] == [logging.ERROR, logging.DEBUG, logging.DEBUG]
    assert failures[0].exc_info is not None and "fold bug" in caplog.text and "Traceback" in caplog.text


def stored_signals(db: Path, deployment: str) -> Bucket:
    """The last hour of `deployment` in the file, with its YOLO signals and versions."""

    async def read() -> Bucket:
        store = Store(db)
        try:
            return (await store.signals(deployment, "1h")).total
        finally:
            await store.close()

    return asyncio.run(read())


# Known stage times (ms): what a pipeline app sleeps in each stage.
KNOWN_STAGES_MS = {"decode": 12.0, "queue": 20.0, "preprocess": 10.0, "inference": 45.0, "postprocess": 15.0}


def staged_app() -> Starlette:
    """A predict app that sleeps a known time in each stage, on a worker thread as a real pipeline computes, and
    reports each stage's measured time in Ultralytics' `speed` object."""

    def sleep_ms(ms: float) -> float:
        started = time.perf_counter()
        time.sleep(ms / 1000)
        return (time.perf_counter() - started) * 1000

    async def staged(request: Request) -> Response:
        speed = {}
        for stage, ms in KNOWN_STAGES_MS.items():
            speed[stage] = await asyncio.to_thread(sleep_ms, ms)
        return JSONResponse({"images": [{**DETECTIONS["images"][0], "speed": speed}]})

    return Starlette(routes=[Route("/predict", staged, methods=["POST"])])


def test_stage_percentiles_match_the_times_each_stage_took(tmp_path: Path) -> None:
    """Through a real uvicorn server, each stage's P50 is within 5 % of the time the app spent in it."""
    db = tmp_path / "stages.db"
    app = WatchMiddleware(staged_app(), monitor=Monitor(db, "staged"))
    with uvicorn_in_thread(app) as base, httpx.Client(timeout=10) as client:
        for _ in range(40):
            assert client.post(f"{base}/predict", content=b"img").status_code == 200

    stages = stored_signals(db, "staged").stages
    p50 = {stage: histogram.get_value_at_percentile(50) / 1000 for stage, histogram in stages.items()}
    assert set(p50) == set(KNOWN_STAGES_MS)
    for stage, known in KNOWN_STAGES_MS.items():
        assert abs(p50[stage] - known) / known < 0.05, (stage, p50[stage], known)


def test_a_model_version_header_names_the_version_a_body_does_not(tmp_path: Path) -> None:
    """An app that says its model only in X-Model-Version gets its requests under that version; a body's own
    `metadata.model` wins over the header."""

    async def headed(request: Request) -> Response:
        body = dict(DETECTIONS)
        if request.query_params.get("named"):
            body["metadata"] = {"model": "from-body.pt"}
        return JSONResponse(body, headers={"X-Model-Version": " canary   7 "})

    db = tmp_path / "headers.db"
    app = WatchMiddleware(Starlette(routes=[Route("/predict", headed, methods=["POST"])]), monitor=Monitor(db, "h"))
    with uvicorn_in_thread(app) as base, httpx.Client(timeout=10) as client:
        for named in ("", "", "1"):
            assert client.post(f"{base}/predict", params={"named": named}, content=b"img").status_code == 200

    versions = stored_signals(db, "h").versions
    assert {name: bucket.requests for name, bucket in versions.items()} == {"canary 7": 2, "from-body.pt": 1}


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = "00f067aa0ba902b7"


def test_a_clients_trace_id_reaches_the_log_entry_without_tracing(
    watched: tuple[TestClient, Path], clock: FakeClock
) -> None:
    """Traces off: a valid traceparent still lends the request's log entry its trace id; a broken one, or two of
    them (the W3C spec's tests: not valid), none."""
    client, db = watched
    client.post("/predict", headers={"traceparent": f"00-{TRACE}-{CALLER}-01", "X-Request-ID": "traced"})
    client.post("/predict", headers={"traceparent": f"00-{TRACE}-zz-01", "X-Request-ID": "broken"})
    twice = [("traceparent", f"00-{TRACE}-{CALLER}-01"), ("traceparent", f"00-{TRACE}-{CALLER}-01")]
    client.post("/predict", headers=[*twice, ("X-Request-ID", "twice")])
    client.post("/predict", headers={"X-Request-ID": "plain"})
    client.__exit__(None, None, None)
    _, logs = stored(db, clock)
    assert {entry["request_id"]: entry["trace_id"] for entry in logs} == {
        "traced": TRACE,
        "broken": None,
        "twice": None,
        "plain": None,
    }


def staged_trace_app(seen: list[Any]) -> Starlette:
    """Keeps the trace the middleware put in each request's scope, and times one stage of a sampled one."""

    async def handler(request: Request) -> Response:
        trace = request.scope.get(TRACE_MARK)
        seen.append(trace)
        if trace is not None and trace[3]:
            begun = time.perf_counter_ns()
            await asyncio.sleep(0.01)
            request.scope[STAGES_MARK] = (("inference", begun, time.perf_counter_ns()),)
        return JSONResponse(DETECTIONS)

    return Starlette(routes=[Route("/predict", handler, methods=["POST"])])


def test_with_traces_on_each_request_is_begun_and_a_sampled_one_keeps_its_stages(tmp_path: Path) -> None:
    """The app sees the request's trace in its scope; the log entries have the trace ids; a sampled request's
    span (with the stage the app timed, inside the request) waits in the recorder for the exporter; one the caller
    did not sample leaves none."""
    seen: list[Any] = []
    clock = FakeClock()
    monitor = Monitor(tmp_path / "t.db", "test", clock=clock)
    monitor.tracer = Tracer(ratio=1.0)  # what starting OtlpTraces does
    with TestClient(WatchMiddleware(staged_trace_app(seen), monitor=monitor)) as client:
        for i, header in enumerate([f"00-{TRACE}-{CALLER}-01", f"00-{TRACE}-{CALLER}-00", None]):
            client.post("/predict", headers={"X-Request-ID": f"r{i}", **({"traceparent": header} if header else {})})
    spans = list(monitor.recorder.spans)  # the last fold's (no exporter takes them here)
    _, logs = stored(tmp_path / "t.db", clock)
    assert [(trace[0] == TRACE, trace[2], trace[3]) for trace in seen] == [
        (True, CALLER, True),
        (True, CALLER, False),
        (False, None, True),
    ]
    assert {entry["request_id"]: entry["trace_id"] for entry in logs} == {f"r{i}": t[0] for i, t in enumerate(seen)}
    assert [span.request_id for span in spans] == ["r0", "r2"]
    assert [span.trace[:4] for span in spans] == [seen[0][:4], seen[2][:4]] and spans[0].detections == 2
    for span in spans:
        ((name, start, end),) = span.stage_times()
        assert name == "inference" and span.start_ns < start < end <= span.end_ns
        assert end - start >= 10_000_000
