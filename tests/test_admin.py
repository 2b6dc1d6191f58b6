"""The admin API in-process: its router over a temporary SQLite store that a real Recorder and StoreWriter filled,
on a fake clock (no model, no server; tests/test_serve.py has the real-server smoke tests)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Route
from starlette.testclient import TestClient

from helpers import FakeClock, admin_client, registered_store
from yolowatch.admin import admin_router
from yolowatch.admin.fleet import located
from yolowatch.admin.routes import admin_document
from yolowatch.framesample import FrameSampler, SampleRules
from yolowatch.monitor import Monitor
from yolowatch.recorder import Recorder
from yolowatch.records import GoldenRun, HealthResult, ProcessInfo
from yolowatch.store import Store, StoreWriter

KEY = "test-admin-key-7f3c"
RECORDED_AT = 1_800_000_000.0  # the traffic's minute; the admin API looks at it a minute later
# What the bundled model answers for a shapes image (two detections), and what it answers for a text file.
PREDICTED = json.dumps(
    {"images": [{"shape": [640, 640], "results": [
        {"class": 0, "name": "circle", "confidence": 0.91, "box": {"x1": 10, "y1": 10, "x2": 90, "y2": 90}},
        {"class": 2, "name": "triangle", "confidence": 0.64, "box": {"x1": 200, "y1": 40, "x2": 260, "y2": 130}},
    ]}]}
).encode()  # fmt: skip
REFUSED = json.dumps({"error": "file is not an image; send JPEG or PNG"}).encode()
PREDICT_LATENCIES_US = (41_000, 38_500, 44_200, 52_000, 39_900, 61_300)
TRACE, OTHER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b700f067aa0ba902b7"
CALLER = "00f067aa0ba902b7"  # the client's span: these traces are the clients'


async def _record_served_traffic(path: str) -> None:
    """What one `serve --region test-region` recorded for 6 good predictions and 2 refused uploads, and its
    last health probe (healthy)."""
    clock = FakeClock(RECORDED_AT)
    async with Store(path, clock=clock) as store:
        await store.register_deployment(
            "demo", model="shapes-yolo.pt", endpoint="http://127.0.0.1:8000/predict", region="test-region"
        )
        recorder = Recorder(clock=clock)
        for i, latency_us in enumerate(PREDICT_LATENCIES_US):
            trace = (OTHER_TRACE, "", CALLER, False, 0, 0, None) if i == 0 else None
            recorder.record_request("demo", "POST", "/predict", 200, latency_us, f"ok-{i}", PREDICTED, trace=trace)
            clock.advance(2)
        for i in range(2):  # both in the client's trace TRACE
            trace = (TRACE, "", CALLER, False, 0, 0, None)
            recorder.record_request("demo", "POST", "/predict", 415, 3_000, f"refused-{i}", REFUSED, trace=trace)
            clock.advance(2)
        assert await StoreWriter(store, recorder, "w").flush()
        await store.save_health("demo", HealthResult(True, 200, 23.5, None, int(clock() * 1000)))


@pytest.fixture
def admin(database: Callable[[str], str]) -> Iterator[Callable[..., TestClient]]:
    """A factory of admin clients (router options as keywords) over the recorded store (on each backend), each
    closed after the test."""
    path = database("admin.db")
    asyncio.run(_record_served_traffic(path))
    with contextlib.ExitStack() as clients:

        def make(**router_options: object) -> TestClient:
            store = Store(path, clock=FakeClock(RECORDED_AT + 60))
            return clients.enter_context(admin_client(store, **router_options))

        yield make


def test_overview_counts_the_recorded_traffic(admin: Callable[..., TestClient]) -> None:
    """The overview adds up the deployment's requests, error rate and P95, and its row shows the critical state and
    the last probe's health."""
    overview = admin().get("/api/monitoring").json()
    assert overview["totalRequests"] == 8
    assert overview["errorRate"] == pytest.approx(2 / 8)
    assert overview["activeDeployments"] == 1 and overview["p95LatencyMs"] > 0
    (row,) = overview["deployments"]
    assert (row["name"], row["region"], row["requests"]) == ("demo", "test-region", 8)
    assert row["status"] == "critical"  # 25 % errors in the latest hour is past the 10 % threshold
    assert row["health"]["healthy"] is True


def test_deployments_and_unknown_ones(admin: Callable[..., TestClient]) -> None:
    """The deployment is listed with its model, endpoint and state; an unknown one is a 404 naming the known ones."""
    client = admin()
    listed = client.get("/api/deployments").json()["deployments"]
    assert [d["id"] for d in listed] == ["demo"]
    one = client.get("/api/deployments/demo").json()
    assert one["model"] == "shapes-yolo.pt" and one["endpoint"].endswith("/predict") and one["state"] == "active"
    missing = client.get("/api/deployments/nope/metrics")
    assert missing.status_code == 404 and "known: demo" in missing.json()["error"]


def test_metrics_summary_and_sparkline(admin: Callable[..., TestClient]) -> None:
    """The 1h summary counts requests and errors with ordered percentiles and detection figures; the sparkline has
    60 points holding every request; without parameters the range is 24h and there is no sparkline."""
    client = admin()
    body = client.get("/api/deployments/demo/metrics?range=1h&sparkline=true").json()
    summary = body["summary"]
    assert summary["requests"] == 8 and summary["clientErrors"] == 2 and summary["serverErrors"] == 0
    assert 0 < summary["p50Ms"] <= summary["p95Ms"] <= summary["p99Ms"]
    assert summary["detectionsPerRequest"] > 0 and 0 < summary["meanConfidence"] <= 1
    assert summary["healthState"] == "critical"
    points = body["sparkline"]
    assert len(points) == 60 and sum(p["requests"] for p in points) == 8
    assert set(points[0]) == {
        "time",
        "requests",
        "errorRate",
        "p50Ms",
        "p95Ms",
        "p99Ms",
        "detectionsPerRequest",
        "meanConfidence",
    }
    without = client.get("/api/deployments/demo/metrics").json()
    assert without["range"] == "24h" and "sparkline" not in without


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("metrics?range=2h", "range must be one of 1h, 6h, 24h, 7d, 30d"),
        ("metrics?sparkline=maybe", "sparkline must be true/false, 1/0, yes/no or on/off"),
        ("logs?limit=0", "limit must be an integer from 1 to 200"),
        ("logs?limit=500", "limit must be an integer from 1 to 200"),
        ("logs?limit=ten", "limit must be an integer from 1 to 200"),
        ("logs?severity=ERROR,LOUD", "unknown severity LOUD"),
        ("logs?pageToken=garbage", "pageToken is not valid"),
        ("logs?pageToken=abc.%C3%A9t%C3%A9", "pageToken is not valid"),  # non-ASCII: found by schemathesis (a 500)
        ("logs?traceId=4bf92f35", "traceId must be a W3C trace id"),
        (f"logs?traceId={'0' * 32}", "traceId must be a W3C trace id"),
        ("logs?traceId=%3Cscript%3E", "traceId must be a W3C trace id"),
        ("drift?baselineStart=5", "together"),
    ],
)
def test_bad_parameters_say_what_is_allowed(admin: Callable[..., TestClient], query: str, expected: str) -> None:
    """Each bad query parameter is a 400 whose error says what is allowed."""
    response = admin().get(f"/api/deployments/demo/{query}")
    assert response.status_code == 400
    assert expected in response.json()["error"]


def test_logs_page_with_opaque_tokens_and_filter(admin: Callable[..., TestClient]) -> None:
    """Eight entries page as 3/3/2, newest first, without overlap; the warning filter keeps the two refusals."""
    client = admin()
    seen, token, pages = [], None, 0
    while True:  # paging, not waiting: each round asks for the next page
        params = {"limit": "3", **({"pageToken": token} if token else {})}
        page = client.get("/api/deployments/demo/logs", params=params).json()
        seen += page["entries"]
        pages += 1
        token = page["nextPageToken"]
        if token is None:
            break
    assert pages == 3 and len(seen) == 8 and len({e["id"] for e in seen}) == 8
    assert [e["timestampMs"] for e in seen] == sorted((e["timestampMs"] for e in seen), reverse=True)
    warnings = client.get("/api/deployments/demo/logs?severity=warning").json()["entries"]
    assert [e["status"] for e in warnings] == [415, 415] and {e["severity"] for e in warnings} == {"WARNING"}
    assert warnings[0]["message"].startswith("POST /predict 415")


def test_logs_of_one_trace(admin: Callable[..., TestClient]) -> None:
    """`traceId` keeps that trace's entries (any case), paged with its own tokens; each entry says its trace."""
    client = admin()
    url = "/api/deployments/demo/logs"
    first = client.get(url, params={"traceId": TRACE.upper(), "limit": "1"}).json()
    rest = client.get(url, params={"traceId": TRACE, "limit": "1", "pageToken": first["nextPageToken"]}).json()
    entries = first["entries"] + rest["entries"]
    assert [e["requestId"] for e in entries] == ["refused-1", "refused-0"] and rest["nextPageToken"] is None
    assert {e["traceId"] for e in entries} == {TRACE}
    foreign = client.get(url, params={"traceId": OTHER_TRACE, "pageToken": first["nextPageToken"]})
    assert foreign.status_code == 400 and "another query" in foreign.json()["error"]
    everything = {e["requestId"]: e["traceId"] for e in client.get(url).json()["entries"]}
    assert everything["ok-0"] == OTHER_TRACE and everything["ok-1"] is None


def test_forged_and_foreign_page_tokens_are_refused(admin: Callable[..., TestClient]) -> None:
    """A token whose cursor was changed, or one made for another query, is a 400."""
    client = admin()
    url = "/api/deployments/demo/logs"
    token = client.get(url, params={"limit": "2"}).json()["nextPageToken"]
    body, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["i"] += 1000  # move the cursor, keep the old signature
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=") + "." + signature
    refused = client.get(url, params={"pageToken": forged})
    assert refused.status_code == 400 and "not valid" in refused.json()["error"]
    foreign = client.get(url, params={"pageToken": token, "severity": "ERROR"})
    assert foreign.status_code == 400 and "another query" in foreign.json()["error"]


def test_prometheus_metrics_parse_and_add_up(admin: Callable[..., TestClient]) -> None:
    """/metrics is Prometheus text whose request counters, duration histogram, detections and health gauge match
    what was recorded."""
    response = admin().get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    requests_by_class = {
        s.labels["status_class"]: s.value
        for s in families["yolowatch_requests"].samples
        if s.name == "yolowatch_requests_total"
    }
    assert requests_by_class["2xx"] == 6 and requests_by_class["4xx"] == 2
    duration = {
        s.name: s.value
        for s in families["yolowatch_request_duration_seconds"].samples
        if s.labels.get("le") in (None, "+Inf")
    }
    assert duration["yolowatch_request_duration_seconds_count"] == 8
    assert duration["yolowatch_request_duration_seconds_sum"] > 0
    detections = families["yolowatch_detections"].samples[0].value
    assert detections > 0
    up = families["yolowatch_health_up"].samples[0]
    assert up.labels == {"deployment": "demo"} and up.value == 1.0


def test_a_key_guards_the_admin_api_but_not_metrics(admin: Callable[..., TestClient]) -> None:
    """With a key set, /api answers 401 (saying Bearer) without it or with a wrong one and 200 with it; /metrics
    stays open unless a setting closes it."""
    client = admin(keys=[KEY])
    missing = client.get("/api/monitoring")
    assert missing.status_code == 401 and "Bearer" in missing.json()["error"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/api/monitoring", headers={"Authorization": "Bearer not-the-key"}).status_code == 401
    assert client.get("/api/monitoring", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert client.get("/metrics").status_code == 200


def test_openapi_document_lists_every_route_and_method(admin: Callable[..., TestClient]) -> None:
    """The document the router gives describes every admin route with every method it answers, and /health."""
    document = admin().get("/api/openapi.json").json()
    assert document["openapi"] == "3.1.0" and "/health" in document["paths"]
    for route in admin_router(Store(Path("/nonexistent/unused.db"))).routes:
        if isinstance(route, Route) and (route.path.startswith("/api/") or route.path == "/metrics"):
            for method in (route.methods or set()) - {"HEAD"}:
                assert method.lower() in document["paths"].get(route.path, {}), (method, route.path)


def test_openapi_document_names_the_statuses_the_handlers_answer() -> None:
    """Regression (the hand-written document listed 200/400/401/404 everywhere): rule creation documents 201 and
    409, deletion 204, 404 and 409, drift 409 and 501, and the deployment lists take ?archived=."""
    document = admin_document()
    paths = document["paths"]

    def statuses(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert statuses("/api/alerts/rules", "post") == {"201", "400", "401", "409"}
    assert statuses("/api/alerts/rules/{name}", "delete") == {"204", "401", "404", "409"}
    assert {"409", "501"} <= statuses("/api/deployments/{deployment}/drift", "get")
    assert statuses("/api/deployments/{deployment}/health/check", "post") == {"200", "401", "404", "409"}
    for path in ("/api/monitoring", "/api/deployments"):
        assert [p["name"] for p in paths[path]["get"]["parameters"]] == ["archived"]
    assert "204" in statuses("/api/alerts/rules/{name}", "delete")
    assert "content" not in paths["/api/alerts/rules/{name}"]["delete"]["responses"]["204"]
    assert paths["/health"]["get"]["security"] == [] and set(paths["/health"]["get"]["responses"]) == {"200", "503"}


async def _record_fleet(path: str, clock: FakeClock) -> None:
    """One deployment served from two hosts: host-a in eu-west-1 (located by name) answers 30 requests well;
    host-b at a custom place answers 20, two of them 500s (10 % server errors). A third process, on host-c, last
    wrote two hours earlier."""
    async with Store(path, clock=clock) as store:
        await store.register_deployment("demo")
        old = ProcessInfo("host-c", 7, "serve", "us-east-1", started_s=int(clock()) - 7300)
        clock.advance(-7200)
        assert await StoreWriter(store, Recorder(clock=clock), "c", process=old).flush()
        clock.advance(7200)
        writers = [
            StoreWriter(store, Recorder(clock=clock), "a", process=ProcessInfo("host-a", 11, "sidecar", "eu-west-1")),
            StoreWriter(
                store,
                Recorder(clock=clock),
                "b",
                process=ProcessInfo("host-b", 21, "serve", "factory-3", latitude=52.37, longitude=4.9),
            ),
        ]
        for i in range(30):
            writers[0].recorder.record_request("demo", "POST", "/predict", 200, 10_000 + 100 * i, f"a{i}")
        for i in range(20):
            writers[1].recorder.record_request("demo", "POST", "/predict", 500 if i < 2 else 200, 40_000, f"b{i}")
        for writer in writers:
            assert await writer.flush()


@pytest.fixture
def fleet(database: Callable[[str], str]) -> Iterator[tuple[TestClient, FakeClock]]:
    """An admin client over the fleet's store (on each backend), a minute after the traffic, and its clock."""
    path = database("fleet.db")
    clock = FakeClock(RECORDED_AT)
    asyncio.run(_record_fleet(path, clock))
    clock.advance(60)
    with admin_client(Store(path, clock=clock)) as client:
        yield client, clock


def test_fleet_lists_processes_hosts_and_regions(fleet: tuple[TestClient, FakeClock]) -> None:
    """Each live process is listed with its host and region; the deployment's hosts split its requests exactly
    (shares, per-host percentiles equal to the host-filtered metrics); host-b's 10 % server errors make it and its
    region unhealthy; a process last seen before the range is left out."""
    client, _ = fleet
    body = client.get("/api/fleet").json()
    assert body["range"] == "1h"
    processes = {p["writer"]: p for p in body["processes"]}
    assert set(processes) == {"a", "b"}  # c last wrote two hours ago
    assert (processes["a"]["host"], processes["a"]["kind"], processes["a"]["region"]) == (
        "host-a",
        "sidecar",
        "eu-west-1",
    )
    assert (processes["a"]["latitude"], processes["a"]["longitude"]) == (53.35, -6.26)  # from the region's name
    assert (processes["b"]["latitude"], processes["b"]["longitude"]) == (52.37, 4.9)
    assert all(p["alive"] for p in processes.values())
    (deployment,) = body["deployments"]
    hosts = {h["host"]: h for h in deployment["hosts"]}
    assert [h["host"] for h in deployment["hosts"]] == ["host-a", "host-b"]  # busiest first
    assert (hosts["host-a"]["requests"], hosts["host-a"]["share"], hosts["host-a"]["healthy"]) == (30, 0.6, True)
    assert (hosts["host-b"]["requests"], hosts["host-b"]["share"], hosts["host-b"]["healthy"]) == (20, 0.4, False)
    assert hosts["host-b"]["serverErrorRate"] == 0.1 and hosts["host-b"]["errorRate"] == 0.1
    assert hosts["host-a"]["processes"] == hosts["host-b"]["processes"] == 1
    for name, host in hosts.items():
        summary = client.get(f"/api/deployments/demo/metrics?range=1h&host={name}").json()["summary"]
        assert summary["requests"] == host["requests"]
        for q in ("p50", "p95", "p99"):
            assert host[f"{q}LatencyMs"] == pytest.approx(summary[f"{q}Ms"], abs=0.001)
    assert hosts["host-a"]["p50LatencyMs"] == pytest.approx(11.4, rel=0.01)  # the HDR median of 10.0 .. 12.9 ms
    regions = {r["region"]: r for r in body["regions"]}
    assert regions["eu-west-1"] == {
        "region": "eu-west-1", "latitude": 53.35, "longitude": -6.26, "hosts": 1, "requests": 30,
        "p95LatencyMs": hosts["host-a"]["p95LatencyMs"], "healthy": True,
    }  # fmt: skip
    assert (regions["factory-3"]["requests"], regions["factory-3"]["healthy"]) == (20, False)
    assert set(regions) == {"eu-west-1", "factory-3"}


def test_fleet_hosts_turn_unhealthy_when_their_processes_go_quiet(fleet: tuple[TestClient, FakeClock]) -> None:
    """Past 90 s without a write every process is dead, so every host and region is unhealthy; over 6h the
    process that went away two hours ago is back in the list."""
    client, clock = fleet
    clock.advance(60)  # 120 s since the last write
    body = client.get("/api/fleet").json()
    assert not any(p["alive"] for p in body["processes"])
    assert [h["healthy"] for h in body["deployments"][0]["hosts"]] == [False, False]
    assert [h["processes"] for h in body["deployments"][0]["hosts"]] == [0, 0]
    assert not any(r["healthy"] for r in body["regions"])
    six_hours = client.get("/api/fleet?range=6h").json()
    assert {p["host"] for p in six_hours["processes"]} == {"host-a", "host-b", "host-c"}
    assert {r["region"]: r["hosts"] for r in six_hours["regions"]}["us-east-1"] == 1


@pytest.mark.parametrize(
    ("query", "status", "expected"),
    [
        ("/api/fleet?range=2h", 400, "range must be one of 1h, 6h, 24h, 7d, 30d"),
        ("/api/deployments/demo/metrics?host=host-z", 404, "unknown host 'host-z'; known: host-a, host-b, host-c"),
        ("/api/deployments/demo/metrics?host=", 400, "host must be a host name"),
    ],
)
def test_fleet_and_host_parameters_say_what_is_allowed(
    fleet: tuple[TestClient, FakeClock], query: str, status: int, expected: str
) -> None:
    """A bad range or an unknown host is refused saying what is allowed."""
    response = fleet[0].get(query)
    assert response.status_code == status and expected in response.json()["error"]


def test_metrics_of_one_host_and_of_the_fleet(fleet: tuple[TestClient, FakeClock]) -> None:
    """Without `host` the metrics are the fleet's (50 requests); with it, that host's, sparkline included."""
    client, _ = fleet
    whole = client.get("/api/deployments/demo/metrics?range=1h&sparkline=true").json()
    assert whole["host"] is None and whole["summary"]["requests"] == 50
    one = client.get("/api/deployments/demo/metrics?range=1h&sparkline=true&host=host-b").json()
    assert one["host"] == "host-b" and one["summary"]["serverErrors"] == 2
    assert sum(p["requests"] for p in one["sparkline"]) == 20
    assert one["summary"]["healthState"] == "critical"  # 10 % errors in its own snapshot window


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"region": "eu-west-1"}, ("eu-west-1", 53.35, -6.26)),
        ({"region": "EU-West-1", "latitude": None, "longitude": None}, ("eu-west-1", 53.35, -6.26)),
        ({"region": "factory-9@1.5,2.5"}, ("factory-9", 1.5, 2.5)),
        ({"region": "-33.9,18.4"}, ("-33.90,18.40", -33.9, 18.4)),
        ({"region": "lab", "latitude": 3.0, "longitude": 4.0}, ("lab", 3.0, 4.0)),
        ({"region": "somewhere-else"}, ("somewhere-else", None, None)),
        ({"region": None}, (None, None, None)),
        ({"region": ""}, (None, None, None)),
    ],
)
def test_a_process_is_placed_by_its_coordinates_or_its_region_text(
    row: dict[str, object], expected: tuple[object, ...]
) -> None:
    """Coordinates stored with the process win; otherwise its --region text places it (a known name, LAT,LON or
    NAME@LAT,LON); a region it cannot place is listed without a pin."""
    assert located(row) == expected


def test_a_rolled_out_host_does_not_turn_its_region_red() -> None:
    """After a rollout the old pod's host is gone from the region (not seen for minutes) but still in the range: the
    region is as healthy as its live hosts; a region whose hosts are all gone is not."""
    from yolowatch.admin.fleet import fleet_view
    from yolowatch.records import Bucket

    now = 1_800_000_000

    def process(writer: str, host: str, region: str, seen_s: int) -> dict[str, object]:
        return {"writer": writer, "host": host, "pid": 1, "kind": "sidecar", "region": region, "latitude": None,
                "longitude": None, "version": "", "started_s": now - 3000, "seen_s": seen_s}  # fmt: skip

    def traffic(requests: int) -> Bucket:
        bucket = Bucket("edge", 60, now - 600)
        bucket.requests, bucket.status_classes = requests, [0, requests, 0, 0, 0]
        return bucket

    rows = [
        process("old", "pod-old", "eu-west-1", now - 1200),  # rolled out 20 minutes ago
        process("new", "pod-new", "eu-west-1", now - 5),
        process("gone", "pod-gone", "us-east-1", now - 1500),
    ]
    windows = {"pod-old": traffic(40), "pod-new": traffic(60), "pod-gone": traffic(10)}
    fleet = fleet_view(rows, [({"id": "edge", "name": "edge"}, windows)], now, now - 3600)
    assert {r.region: r.healthy for r in fleet.regions} == {"eu-west-1": True, "us-east-1": False}


# Sampled production frames (--sample-dir) and golden-image runs.

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 60  # the sampler keeps bytes by their magic; the size comes from the answer


def png_bytes(width: int, height: int, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A real PNG of one colour, made with zlib."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def box(confidence: float, cls: int, name: str) -> dict[str, object]:
    return {"class": cls, "name": name, "confidence": confidence, "box": {"x1": 4, "y1": 4, "x2": 40, "y2": 30}}


MARKUP = "<img src=x onerror=alert(1)>"
# What 'demo' kept: (seconds after RECORDED_AT, image, detections) -> the rule that keeps it. Two days: the sampler
# writes a folder a day, and the admin API reads the newest back.
DEMO_FRAMES = [
    (-86400, JPEG, [box(0.9, 1, "car")], "class"),
    (-86390, JPEG, [box(0.3, 0, "person"), box(0.8, 0, "person")], "low_confidence"),
    (-600, png_bytes(8, 6), [], "no_detection"),
    (-590, JPEG, [box(0.9, 0, "person"), box(0.95, 5, "bus")], "random"),
    (-580, JPEG, [box(0.97, 2, MARKUP)], "random"),
]


def keep_frames(directory: Path, deployment: str, frames: list[tuple[float, bytes, list[dict[str, object]]]]) -> None:
    """Frames kept by a real FrameSampler (classes: car; everything else at random), written before it closes."""
    clock = FakeClock(RECORDED_AT)
    sampler = FrameSampler(
        directory, deployment, SampleRules(classes=frozenset({"car"}), random_share=1.0), clock=clock
    )
    sampler.start()
    for offset, image, detections in frames:
        clock.now = RECORDED_AT + offset
        assert sampler.offer(image, detections, shape=(480, 640), model="shapes-yolo.pt@abc") is not None
    sampler.close()
    assert sampler.stats.kept == len(frames), sampler.stats


@pytest.fixture
def sampled(
    admin: Callable[..., TestClient], database: Callable[[str], str], tmp_path: Path
) -> Callable[..., TestClient]:
    """A factory of admin clients of a process that samples 'demo' into tmp_path/samples; another process wrote one
    frame of 'other' there."""
    directory = tmp_path / "samples"
    keep_frames(directory, "demo", [frame[:3] for frame in DEMO_FRAMES])
    keep_frames(directory, "other", [(-100, JPEG, [])])
    asyncio.run(registered_store(database("admin.db"), ["other"], clock=FakeClock(RECORDED_AT)))

    def make(**router_options: object) -> TestClient:
        monitor = Monitor(database("admin.db"), "demo", sampler=FrameSampler(directory, "demo"))
        return admin(monitors=[monitor], **router_options)

    return make


def test_samples_lists_the_newest_frames_and_counts_them_all(sampled: Callable[..., TestClient]) -> None:
    """The newest frames come first, across day folders, each with its time, rule, model, size, detections, distinct
    classes and image URL; the summary counts every frame by rule, with the time they span."""
    body = sampled().get("/api/deployments/demo/samples").json()
    assert body["deployment"] == "demo" and body["enabled"] is True
    assert body["summary"] == {
        "frames": 5,
        "bytes": 4 * len(JPEG) + len(png_bytes(8, 6)),
        "oldest": "2027-01-14T08:00:00.000Z",
        "newest": "2027-01-15T07:50:20.000Z",
        "byRule": {"class": 1, "low_confidence": 1, "no_detection": 1, "random": 2},
    }
    samples = body["samples"]
    assert [s["rule"] for s in samples] == [rule for *_, rule in reversed(DEMO_FRAMES)]
    newest = samples[1]
    assert newest["time"] == "2027-01-15T07:50:10.000Z" and newest["model"] == "shapes-yolo.pt@abc"
    assert (newest["width"], newest["height"], newest["detections"]) == (640, 480, 2)
    assert newest["classes"] == ["bus", "person"] and samples[0]["classes"] == [MARKUP]
    assert newest["image"] == f"/api/deployments/demo/samples/{newest['id']}/image"
    assert samples[3]["classes"] == ["person"] and samples[3]["detections"] == 2  # one class, two boxes
    two = sampled().get("/api/deployments/demo/samples?limit=2").json()
    assert [s["id"] for s in two["samples"]] == [s["id"] for s in samples[:2]] and two["summary"]["frames"] == 5
    four = sampled().get("/api/deployments/demo/samples?limit=4").json()["samples"]  # three today, one the day before
    assert [s["id"] for s in four] == [s["id"] for s in samples[:4]]


@pytest.mark.parametrize(
    ("query", "rules"),
    [
        ("rule=random", ["random", "random"]),
        ("class=car", ["class"]),
        ("class=person", ["random", "low_confidence"]),
        ("rule=class&class=car", ["class"]),
        ("rule=class&class=person", []),
        (f"class={quote(MARKUP)}", ["random"]),
        ("rule=&class=", ["random", "random", "no_detection", "low_confidence", "class"]),
    ],
)
def test_samples_filter_by_rule_and_class(sampled: Callable[..., TestClient], query: str, rules: list[str]) -> None:
    """`rule` and `class` narrow the frames shown (empty: no filter); the summary still counts them all."""
    body = sampled().get(f"/api/deployments/demo/samples?{query}").json()
    assert [s["rule"] for s in body["samples"]] == rules
    assert body["summary"]["frames"] == 5


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("limit=0", "limit must be an integer from 1 to 200; got '0'"),
        ("limit=201", "limit must be an integer from 1 to 200"),
        ("limit=-1", "limit must be an integer from 1 to 200"),
        ("rule=sometimes", "rule must be one of class, low_confidence, no_detection, drift, random"),
        ("class=" + "x" * 129, "class must be a class name of at most 128"),
        ("class=%00", "class must be a class name"),
    ],
)
def test_bad_sample_parameters_say_what_is_allowed(
    sampled: Callable[..., TestClient], query: str, expected: str
) -> None:
    """A bad limit, rule or class is a 400 that says what is allowed."""
    response = sampled().get(f"/api/deployments/demo/samples?{query}")
    assert response.status_code == 400 and expected in response.json()["error"]


def test_a_frame_written_after_a_read_is_counted_in_the_next(
    sampled: Callable[..., TestClient], tmp_path: Path
) -> None:
    """Counts are kept per day folder only until the folder changes: a new frame is counted (and shown) at once,
    and a day deleted by retention is no longer counted."""
    client = sampled()
    assert client.get("/api/deployments/demo/samples").json()["summary"]["frames"] == 5
    keep_frames(tmp_path / "samples", "demo", [(-60, JPEG, [box(0.9, 1, "car")])])
    body = client.get("/api/deployments/demo/samples?limit=1").json()
    assert body["summary"]["frames"] == 6 and body["summary"]["byRule"]["class"] == 2
    assert body["samples"][0]["time"] == "2027-01-15T07:59:00.000Z"
    shutil.rmtree(tmp_path / "samples" / "demo" / "2027-01-14")
    assert client.get("/api/deployments/demo/samples").json()["summary"]["byRule"] == {
        "class": 1, "no_detection": 1, "random": 2,
    }  # fmt: skip


def test_samples_of_a_deployment_this_process_does_not_sample(
    sampled: Callable[..., TestClient], admin: Callable[..., TestClient]
) -> None:
    """Another process's deployment in the same sample folder is listed with enabled false; a process that samples
    nothing answers empty counts."""
    other = sampled().get("/api/deployments/other/samples").json()
    assert other["enabled"] is False and other["summary"]["frames"] == 1 and len(other["samples"]) == 1
    assert other["samples"][0]["rule"] == "no_detection"
    nothing = admin().get("/api/deployments/demo/samples").json()
    assert nothing == {
        "deployment": "demo",
        "enabled": False,
        "summary": {"frames": 0, "bytes": 0, "oldest": None, "newest": None, "byRule": {}},
        "samples": [],
    }


def test_a_sample_image_is_served_with_its_type(sampled: Callable[..., TestClient]) -> None:
    """Each frame's image URL answers the bytes as they were uploaded, with their content type, cached privately."""
    client = sampled()
    samples = client.get("/api/deployments/demo/samples").json()["samples"]
    by_rule = {s["rule"]: s for s in samples}
    png = client.get(by_rule["no_detection"]["image"])
    assert png.status_code == 200 and png.content == png_bytes(8, 6)
    assert png.headers["content-type"] == "image/png"
    assert png.headers["cache-control"] == "private, max-age=3600"
    assert png.headers["x-content-type-options"] == "nosniff"
    jpeg = client.get(by_rule["class"]["image"])
    assert jpeg.content == JPEG and jpeg.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize(
    "sample",
    [
        "..",
        "..%2F..%2Fadmin.db",
        "%2e%2e%2f%2e%2e%2fadmin.db",
        "20270115T075000-000-ab-000001",  # the shape of an id, but no such frame
        "20270115T075000-000-ab-000001.json",
        "20270115T075000-000-ab-000001%2F..%2F..%2F..",
        "OTHER",  # replaced by the id of a frame 'other' kept: not one of demo's
    ],
)
def test_unknown_or_ill_formed_sample_ids_are_404(sampled: Callable[..., TestClient], sample: str) -> None:
    """No id that is not one of the deployment's kept frames reaches a file: each is a JSON 404."""
    client = sampled()
    if sample == "OTHER":
        sample = client.get("/api/deployments/other/samples").json()["samples"][0]["id"]
    response = client.get(f"/api/deployments/demo/samples/{sample}/image")
    assert response.status_code == 404 and response.headers["content-type"] == "application/json"
    assert "error" in response.json()


def test_samples_and_their_images_need_the_admin_key(sampled: Callable[..., TestClient]) -> None:
    """With a key set, the list and the images answer 401 without it and 200 with it."""
    client = sampled(keys=[KEY])
    listed = client.get("/api/deployments/demo/samples", headers={"Authorization": f"Bearer {KEY}"})
    assert listed.status_code == 200
    image = listed.json()["samples"][0]["image"]
    assert client.get("/api/deployments/demo/samples").status_code == 401
    refused = client.get(image)
    assert refused.status_code == 401 and refused.headers["content-type"] == "application/json"
    assert client.get(image, headers={"Authorization": "Bearer not-the-key"}).status_code == 401
    assert client.get(image, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


# Golden runs at these seconds before the admin's clock: (images passed of 4, what differed, error).
GOLDEN_RUNS = [
    (600, 4, {}, None),
    (300, 3, {"bus.jpg": ["person moved: IoU 0.61 < 0.80", "extra car 0.41"]}, None),
    (240, 0, {}, "the golden set cannot be read: golden.json is missing"),
    (60, 4, {}, None),
]


async def _save_golden_runs(path: str) -> None:
    async with Store(path, clock=FakeClock(RECORDED_AT)) as store:
        for before_s, passed, differences, error in GOLDEN_RUNS:
            checked_ms = int((RECORDED_AT + 60 - before_s) * 1000)
            worst = max(differences, key=lambda name: len(differences[name])) if differences else None
            images = 0 if error else 4
            run = GoldenRun(checked_ms, images, passed, worst, differences, error, latency_ms=850.25)
            await store.save_golden("demo", run)


def test_golden_series_runs_and_latest(admin: Callable[..., TestClient], database: Callable[[str], str]) -> None:
    """The golden endpoint gives a point a minute over 1h (runs, failing runs, worst pass rate), the runs oldest
    first with what differed, and the newest as latest; no checker runs in this process."""
    asyncio.run(_save_golden_runs(database("admin.db")))
    body = admin().get("/api/deployments/demo/golden?range=1h").json()
    assert (body["deployment"], body["range"], body["checked"], body["set"]) == ("demo", "1h", False, None)
    assert [run["passed"] for run in body["runs"]] == [4, 3, 0, 4]
    failing = body["runs"][1]
    assert failing == {
        "checkedAt": "2027-01-15T07:56:00.000Z", "ok": False, "images": 4, "passed": 3, "passRate": 0.75,
        "worst": "bus.jpg", "differences": {"bus.jpg": ["person moved: IoU 0.61 < 0.80", "extra car 0.41"]},
        "error": None, "latencyMs": 850.2,
    }  # fmt: skip
    assert body["runs"][2]["error"].startswith("the golden set cannot be read") and body["runs"][2]["ok"] is False
    assert body["latest"] == body["runs"][-1] and body["latest"]["ok"] is True
    series = body["series"]
    assert len(series) == 60 and series[-1]["time"] == "2027-01-15T08:01:00.000Z"
    points = {p["time"][11:16]: p for p in series if p["runs"]}
    assert points == {
        "07:51": {"time": "2027-01-15T07:51:00.000Z", "runs": 1, "failing": 0, "worstPassRate": 1.0},
        "07:56": {"time": "2027-01-15T07:56:00.000Z", "runs": 1, "failing": 1, "worstPassRate": 0.75},
        "07:57": {"time": "2027-01-15T07:57:00.000Z", "runs": 1, "failing": 1, "worstPassRate": 0.0},
        "08:00": {"time": "2027-01-15T08:00:00.000Z", "runs": 1, "failing": 0, "worstPassRate": 1.0},
    }
    assert all(p["worstPassRate"] is None and p["failing"] == 0 for p in series if not p["runs"])
    assert admin().get("/api/deployments/demo/golden?range=2h").status_code == 400


def test_openapi_document_describes_samples_and_golden() -> None:
    """The new routes are in the document with their parameters, statuses and media types."""
    paths = admin_document()["paths"]
    listed = paths["/api/deployments/{deployment}/samples"]["get"]
    assert [p["name"] for p in listed["parameters"]] == ["deployment", "limit", "rule", "class"]
    assert set(listed["responses"]) == {"200", "400", "401", "404"}
    image = paths["/api/deployments/{deployment}/samples/{sample}/image"]["get"]
    assert set(image["responses"]) == {"200", "401", "404"}
    assert {"image/jpeg", "image/png"} <= set(image["responses"]["200"]["content"])
    assert set(paths["/api/deployments/{deployment}/golden"]["get"]["responses"]) == {"200", "400", "401", "404"}


SILENCE = {"matchers": [{"name": "deployment", "value": "demo"}], "duration": "2h", "createdBy": "ops",
           "comment": "<script>alert('x')</script> upgrading the GPU driver"}  # fmt: skip


def test_silences_are_created_listed_read_and_expired(admin: Callable[..., TestClient]) -> None:
    """POST answers 201 with the silence in Alertmanager's shape; GET lists it (filtered by state) and reads it;
    DELETE expires it now and it stays listed as expired; unknown ids are 404, bad input and bad states 400."""
    client = admin()
    created = client.post("/api/silences", json=SILENCE)
    assert created.status_code == 201
    silence = created.json()
    assert silence["status"] == {"state": "active"} and silence["comment"] == SILENCE["comment"]
    assert silence["matchers"] == [{"name": "deployment", "value": "demo", "isRegex": False, "isEqual": True}]
    assert (silence["startsAt"], silence["endsAt"]) == ("2027-01-15T08:01:00.000Z", "2027-01-15T10:01:00.000Z")
    pending = client.post("/api/silences", json={**SILENCE, "startsAt": "2027-01-16T00:00:00Z"}).json()
    listed = client.get("/api/silences").json()["silences"]
    assert [(s["id"], s["status"]["state"]) for s in listed] == [(silence["id"], "active"), (pending["id"], "pending")]
    assert [s["id"] for s in client.get("/api/silences?state=pending").json()["silences"]] == [pending["id"]]
    assert client.get(f"/api/silences/{silence['id']}").json() == silence
    expired = client.delete(f"/api/silences/{silence['id']}")
    assert expired.status_code == 200 and expired.json()["status"]["state"] == "expired"
    assert expired.json()["endsAt"] == "2027-01-15T08:01:00.000Z"
    assert [s["id"] for s in client.get("/api/silences?state=expired").json()["silences"]] == [silence["id"]]
    assert client.delete(f"/api/silences/{silence['id']}").status_code == 200  # expiring twice changes nothing
    for path in ("/api/silences/0f0e5b7c-0000-4000-8000-000000000000", "/api/silences/..%2F%00"):
        assert client.get(path).status_code == 404 and client.delete(path).status_code == 404
    bad_state = client.get("/api/silences?state=muted")
    assert bad_state.status_code == 400 and "state must be one of active, pending, expired" in bad_state.json()["error"]
    bad = client.post("/api/silences", json={**SILENCE, "duration": "forever"})
    assert bad.status_code == 400 and "duration must be seconds or a duration" in bad.json()["error"]
    assert client.post("/api/silences", content=b"not json").status_code == 400
    for huge in ('"endsAt": 1e400', '"duration": Infinity', '"duration": NaN'):  # Python's json reads these
        body = json.dumps(SILENCE).replace('"duration": "2h"', huge).encode()
        assert client.post("/api/silences", content=body).status_code == 400, huge


def test_silences_and_acknowledgements_need_the_admin_key(admin: Callable[..., TestClient]) -> None:
    """Every silence route and the acknowledgement answer 401 without the key, like the rest of /api."""
    client = admin(keys=[KEY])
    auth = {"Authorization": f"Bearer {KEY}"}
    silence = client.post("/api/silences", json=SILENCE, headers=auth).json()
    ack = {"rule": "HighErrorRate", "deployment": "demo", "by": "ana"}
    for method, path, body in (
        ("GET", "/api/silences", None),
        ("POST", "/api/silences", SILENCE),
        ("GET", f"/api/silences/{silence['id']}", None),
        ("DELETE", f"/api/silences/{silence['id']}", None),
        ("POST", "/api/alerts/ack", ack),
    ):
        assert client.request(method, path, json=body).status_code == 401, (method, path)
    assert client.get(f"/api/silences/{silence['id']}", headers=auth).json()["status"]["state"] == "active"


def test_openapi_document_describes_silences_and_acknowledgements() -> None:
    """The silence routes and the acknowledgement are in the document with their statuses and body schemas."""
    paths = admin_document()["paths"]
    assert set(paths["/api/silences"]) == {"get", "post"} and set(paths["/api/silences/{id}"]) == {"get", "delete"}
    assert set(paths["/api/silences"]["post"]["responses"]) == {"201", "400", "401"}
    assert set(paths["/api/silences/{id}"]["delete"]["responses"]) == {"200", "401", "404"}
    assert set(paths["/api/alerts/ack"]["post"]["responses"]) == {"200", "400", "401", "404", "409"}
    schemas = admin_document()["components"]["schemas"]
    assert {"silencedBy", "acknowledged"} <= set(schemas["AlertStatus"]["required"])
    assert schemas["SilenceInput"]["additionalProperties"] is False
