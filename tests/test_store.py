"""The store on both backends (a real SQLite file, a real PostgreSQL server): writes, queries, paging, retention,
migrations, faults, processes, the fleet, silences and acknowledgements."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from helpers import FakeClock
from yolowatch.alerts import Acknowledgement, silence_from_json
from yolowatch.metrics import RANGES
from yolowatch.recorder import Recorder
from yolowatch.records import AlertState, Bucket, DetectionSummary, GoldenRun, Notification, new_latency_histogram
from yolowatch.store import MIGRATIONS, SCHEMA_VERSION, SchemaTooNew, Store, StoreWriter
from yolowatch.store.rows import BUCKET_COLUMNS, bucket_from_row, bucket_row
from yolowatch.store.writer import SEEN_EVERY_S

pytestmark = pytest.mark.anyio


async def _filled(store: Store, clock: FakeClock, latencies: list[int], statuses: list[int] | None = None) -> Store:
    """`store` with one request per latency (and status) written, 100 at a time, 20 clock seconds apart."""
    recorder = Recorder(clock=clock)
    writer = StoreWriter(store, recorder, "w1")
    statuses = statuses or [200] * len(latencies)
    for i, (latency, status) in enumerate(zip(latencies, statuses, strict=True)):
        recorder.record_request("demo", "POST", "/predict", status, latency, f"r{i}")
        if i % 100 == 99:
            clock.advance(20)
            await writer.flush()
    assert await writer.flush()
    return store


async def test_summary_matches_numpy_and_counts_exactly(make_store: Callable[..., Store], clock: FakeClock) -> None:
    """Requests written over ~30 minutes give exact counts and P50/P95/P99 within 1 % of numpy's."""
    latencies = [int(v) + 1 for v in np.random.default_rng(2).lognormal(np.log(30_000), 0.5, 9_000)]
    statuses = [500 if i % 50 == 0 else 404 if i % 20 == 0 else 200 for i in range(len(latencies))]
    store = await _filled(make_store("m.db"), clock, latencies, statuses)
    summary = await store.summary("demo", "1h")
    assert summary["requests"] == len(latencies)
    assert summary["server_errors"] == statuses.count(500) and summary["client_errors"] == statuses.count(404)
    assert summary["error_rate"] == pytest.approx((statuses.count(500) + statuses.count(404)) / len(latencies))
    for q in (50, 95, 99):
        theirs = np.percentile(latencies, q, method="inverted_cdf")
        assert abs(summary[f"p{q}_ms"] * 1000 - theirs) / theirs < 0.01


@pytest.mark.parametrize("range_name", list(RANGES))
async def test_every_range_has_60_to_100_points_that_add_up(
    make_store: Callable[..., Store], clock: FakeClock, range_name: str
) -> None:
    """Each range's sparkline has 60-100 evenly spaced points whose requests sum to the summary's."""
    store = await _filled(make_store("r.db"), clock, [5_000] * 1_000)
    points = await store.series("demo", range_name)
    summary = await store.summary("demo", range_name)
    assert 60 <= len(points) <= 100
    steps = {b["start_s"] - a["start_s"] for a, b in itertools.pairwise(points)}
    assert len(steps) == 1
    assert sum(p["requests"] for p in points) == summary["requests"] == 1_000
    with pytest.raises(ValueError, match="1h, 6h, 24h, 7d, 30d"):
        await store.summary("demo", "2h")


async def test_logs_page_newest_first_with_severity_filter(make_store: Callable[..., Store], clock: FakeClock) -> None:
    """120 entries page as 50/50/20 newest first without overlap; a severity filter keeps only those."""
    statuses = [500 if i % 4 == 0 else 200 for i in range(120)]
    store = make_store("l.db")
    recorder = Recorder(clock=clock, info_logs_per_second=0)
    writer = StoreWriter(store, recorder, "w1")
    for i, status in enumerate(statuses):
        recorder.record_request("demo", "POST", "/predict", status, 1000, f"req-{i}")
        clock.advance(0.5)
    await writer.flush()
    seen: list[str] = []
    cursor = None
    sizes = []
    while True:  # paging, not waiting: each round reads the next page
        page = await store.logs("demo", limit=50, before=cursor)
        sizes.append(len(page.entries))
        seen += [entry["request_id"] for entry in page.entries]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sizes == [50, 50, 20]
    assert seen == [f"req-{i}" for i in reversed(range(120))]
    errors = await store.logs("demo", limit=200, severities=["ERROR"])
    assert [e["status"] for e in errors.entries] == [500] * 30 and errors.next_cursor is None


async def test_logs_keep_the_trace_id_and_find_one_trace(make_store: Callable[..., Store], clock: FakeClock) -> None:
    """A request's trace id reaches its log row; `trace_id` keeps that trace's entries (both severities, paged),
    and a request outside any trace has none."""
    store = make_store("t.db")
    recorder = Recorder(clock=clock, info_logs_per_second=0)
    writer = StoreWriter(store, recorder, "w1")
    traced = "4bf92f3577b34da6a3ce929d0e0e4736"
    other = "00f067aa0ba902b700f067aa0ba902b7"
    for i in range(7):
        trace = traced if i % 2 == 0 else other
        recorder.record_request(
            "demo", "POST", "/predict", 500 if i == 4 else 200, 1000, f"req-{i}",
            trace=(trace, f"{i + 1:016x}", None, True, 0, 0, None),
        )  # fmt: skip
        clock.advance(0.5)
    recorder.record_request("demo", "POST", "/predict", 200, 1000, "req-plain")
    await writer.flush()
    first = await store.logs("demo", limit=2, trace_id=traced)
    rest = await store.logs("demo", limit=2, trace_id=traced, before=first.next_cursor)
    assert [e["request_id"] for e in first.entries + rest.entries] == ["req-6", "req-4", "req-2", "req-0"]
    assert {e["trace_id"] for e in first.entries + rest.entries} == {traced}
    errors = await store.logs("demo", severities=["ERROR"], trace_id=traced)
    assert [e["request_id"] for e in errors.entries] == ["req-4"]
    assert (await store.logs("demo", trace_id="1" * 32)).entries == []
    everything = {e["request_id"]: e["trace_id"] for e in (await store.logs("demo", limit=20)).entries}
    assert everything["req-plain"] is None and everything["req-1"] == other


async def test_a_version_12_database_gains_trace_ids(
    make_store: Callable[..., Store], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Log rows written before version 13 read back with no trace id, and new rows carry theirs."""
    monkeypatch.setattr("yolowatch.store.schema.SCHEMA_VERSION", 12)
    store = make_store("v12.db")
    await store.db.execute(
        "INSERT INTO logs (deployment, ts_ms, severity, method, path, status, latency_us, request_id, message) "
        "VALUES ('demo', 1000, 20, 'POST', '/predict', 200, 1000, 'old', 'POST /predict 200 1.0 ms')"
    )
    await store.close()
    monkeypatch.undo()
    store = make_store("v12.db")
    assert await store.schema_version() == SCHEMA_VERSION
    recorder = Recorder(clock=clock)
    recorder.record_request("demo", "GET", "/x", 200, 10, "new", trace=("a" * 32, "", "b" * 16, False, 0, 0, None))
    await StoreWriter(store, recorder, "w1").flush()
    rows = {e["request_id"]: e["trace_id"] for e in (await store.logs("demo")).entries}
    assert rows == {"old": None, "new": "a" * 32}


async def test_data_survives_a_restart(make_store: Callable[..., Store], clock: FakeClock) -> None:
    """Close and reopen the file: metrics and logs are all still there."""
    store = await _filled(make_store("s.db"), clock, [2_000] * 300)
    await store.close()
    reopened = make_store("s.db")
    assert (await reopened.summary("demo", "1h"))["requests"] == 300
    assert len((await reopened.logs("demo", limit=200)).entries) == 200


async def test_retention_deletes_only_what_is_past_it(make_store: Callable[..., Store], clock: FakeClock) -> None:
    """Metrics older than 30 days and logs older than 7 days go; newer ones stay."""
    store = make_store("ret.db")
    recorder = Recorder(clock=clock)
    writer = StoreWriter(store, recorder, "w1")
    recorder.record_request("demo", "POST", "/predict", 200, 1000, "old")
    await writer.flush()
    clock.advance(8 * 86400)
    recorder.record_request("demo", "POST", "/predict", 200, 1000, "newer")
    await writer.flush()
    assert await store.enforce_retention() == (0, 1)  # the 8-day-old log entry
    clock.advance(23 * 86400)  # the first bucket is now 31 days old
    deleted_buckets, _ = await store.enforce_retention()
    assert deleted_buckets == 4  # its minute, quarter-hour, hour and eight-hour rows
    assert (await store.summary("demo", "30d"))["requests"] == 1


async def test_schema_is_versioned_and_a_newer_one_is_refused(make_store: Callable[..., Store]) -> None:
    """A new database gets the current version; one from a newer yolowatch is refused with a clear error."""
    store = make_store("v.db")
    await store.open()
    assert await store.schema_version() == SCHEMA_VERSION
    await store.db.execute("INSERT INTO schema_version (version) VALUES (99)")
    await store.close()
    with pytest.raises(SchemaTooNew, match="upgrade"):
        await make_store("v.db").open()


@pytest.mark.parametrize("backend", ["sqlite"])  # files from before PostgreSQL was supported
async def test_version_1_file_is_migrated_with_eight_hour_rollups(
    make_store: Callable[..., Store], tmp_path: Path, clock: FakeClock
) -> None:
    """A file written before eight-hour rollups existed answers 30-day queries from its hour rows after upgrade."""
    path = tmp_path / "v1.db"
    rng = np.random.default_rng(5)
    hours = []
    for hour in range(40):  # 40 hours, two writers: five eight-hour periods
        for writer in ("a", "b"):
            bucket = Bucket("demo", 3600, int(clock.now) - (hour + 1) * 3600)
            latencies = [int(v) + 1 for v in rng.lognormal(np.log(20_000), 0.6, 50)]
            bucket.add_requests(Counter([200] * len(latencies)), Counter(latencies), budget_us=500_000)
            row = list(bucket_row(bucket, writer))[:-2]  # version 1 had no signals or versions columns
            row[-4], row[-3] = json.dumps([1] * 20), json.dumps([2] * 25)  # version 1 kept 20 and 25 bins
            hours.append(tuple(row))
    with sqlite3.connect(path) as db:
        for statement in MIGRATIONS[1]:
            db.execute(statement)
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version (version) VALUES (1)")
        db.executemany(f"INSERT INTO buckets VALUES ({', '.join('?' * len(hours[0]))})", hours)
    store = make_store("v1.db")
    await store.open()
    assert await store.schema_version() == SCHEMA_VERSION
    with sqlite3.connect(path) as db:
        eight_hour_rows = db.execute("SELECT count(*), sum(requests) FROM buckets WHERE tier_s = 28800").fetchone()
    assert eight_hour_rows[1] == 40 * 2 * 50 and eight_hour_rows[0] in (10, 12)  # 5 or 6 periods, per writer
    expected = new_latency_histogram()
    for row in hours:
        expected.add(HdrHistogram.decode(row[-1]))
    summary = await store.summary("demo", "30d")
    assert summary["requests"] == 40 * 2 * 50
    merged = await store.aggregate("demo", "30d")  # version 4 split the bins: finer, with the same totals
    assert len(merged.confidence_hist) == 100 and sum(merged.confidence_hist) == len(hours) * 20
    assert len(merged.area_hist) == 100 and sum(merged.area_hist) == len(hours) * 2 * 25
    assert summary["p95_ms"] == expected.get_value_at_percentile(95) / 1000


@pytest.mark.parametrize("backend", ["sqlite"])  # PostgreSQL's faults: test_fleet.py
async def test_locked_database_keeps_the_backlog_and_catches_up(
    make_store: Callable[..., Store], tmp_path: Path, clock: FakeClock
) -> None:
    """While another connection holds an exclusive lock, flushes fail and keep data; after it, all is written."""
    store = make_store("lock.db")
    recorder = Recorder(clock=clock, info_logs_per_second=0)
    writer = StoreWriter(store, recorder, "w1")
    assert await writer.flush()
    blocker = sqlite3.connect(tmp_path / "lock.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    for i in range(50):
        recorder.record_request("demo", "POST", "/predict", 200, 1000, f"r{i}")
    assert not await writer.flush()
    assert writer.stats.failures == 1 and "locked" in (writer.stats.last_error or "")
    assert writer.backlog > 0
    blocker.execute("COMMIT")
    blocker.close()
    assert await writer.flush()
    assert (await store.summary("demo", "1h"))["requests"] == 50
    assert len((await store.logs("demo", limit=200)).entries) == 50


@pytest.mark.parametrize("backend", ["sqlite"])  # SQLite's page cap stands in for a full disk
async def test_full_database_drops_oldest_logs_past_the_cap_then_recovers(
    make_store: Callable[..., Store], clock: FakeClock
) -> None:
    """SQLite 'database or disk is full': the backlog stays bounded (drops counted) and writing resumes."""
    store = make_store("full.db")
    recorder = Recorder(clock=clock, info_logs_per_second=0)
    writer = StoreWriter(store, recorder, "w1", max_backlog_logs=300)
    assert await writer.flush()
    await store.set_max_pages(1)  # SQLite clamps this to the current size: no room to grow
    for i in range(1_000):
        recorder.record_request("demo", "POST", "/predict", 200, 1000, f"request-{i:04d}-" + "x" * 40)
    assert not await writer.flush()
    assert "full" in (writer.stats.last_error or "")
    assert writer.stats.logs_dropped == 700  # bounded: the oldest went first
    await store.set_max_pages(1_000_000)  # space is back
    assert await writer.flush()
    entries = (await store.logs("demo", limit=200)).entries
    assert entries[0]["request_id"].startswith("request-0999")
    assert (await store.summary("demo", "1h"))["requests"] == 1_000  # metrics were never dropped


WRITER_SCRIPT = """
import asyncio, sys, json
sys.path.insert(0, {tests!r})
from helpers import FakeClock
from yolowatch.recorder import Recorder
from yolowatch.store import Store, StoreWriter
latencies = json.loads(sys.argv[1])
async def main():
    clock = FakeClock()
    store = Store({db!r}, clock=clock)
    recorder = Recorder(clock=clock)
    writer = StoreWriter(store, recorder, sys.argv[2])
    for value in latencies:
        recorder.record_request("demo", "POST", "/predict", 200, value, "r")
    assert await writer.flush()
    await store.close()
asyncio.run(main())
"""


async def test_two_processes_merge_to_the_percentiles_of_the_union(
    make_store: Callable[..., Store], database: Callable[[str], str], clock: FakeClock
) -> None:
    """Two processes write one database; the merged percentiles equal those of the union of their values."""
    db = database("shared.db")
    rng = np.random.default_rng(3)
    fast = [int(v) + 1 for v in rng.lognormal(np.log(5_000), 0.3, 4_000)]
    slow = [int(v) + 1 for v in rng.lognormal(np.log(80_000), 0.3, 1_000)]
    script = WRITER_SCRIPT.format(tests=str(Path(__file__).parent), db=db)
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", script, json.dumps(values), name)
        for values, name in ((fast, "worker-a"), (slow, "worker-b"))
    ]
    assert [await p.wait() for p in procs] == [0, 0]
    store = make_store("shared.db")
    summary = await store.summary("demo", "1h")
    union = new_latency_histogram()
    for value in fast + slow:
        union.record_value(value)
    assert summary["requests"] == 5_000
    for q in (50, 95, 99):
        assert summary[f"p{q}_ms"] == union.get_value_at_percentile(q) / 1000
        theirs = np.percentile(fast + slow, q, method="inverted_cdf")
        assert abs(summary[f"p{q}_ms"] * 1000 - theirs) / theirs < 0.01
    writers = {row["writer"] for row in await store.db.fetch_all("SELECT writer FROM buckets")}
    assert writers == {"worker-a", "worker-b"}


async def test_aggregate_keeps_the_detection_distributions(make_store: Callable[..., Store], clock: FakeClock) -> None:
    """Confidence and box-size histograms and class counts come back from the file as they were recorded."""
    from yolowatch.records import DetectionSummary

    store = make_store("dist.db")
    recorder = Recorder(clock=clock)
    writer = StoreWriter(store, recorder, "w1")
    summary = DetectionSummary(1, 2, (0.9, 0.3), (0.01, 0.2), (0, 1), ("circle", "square"))
    for _ in range(5):
        recorder.record_request("demo", "POST", "/predict", 200, 1000, "r", summary)
    expected = recorder.collect().buckets[0]
    recorder.record_request("demo", "POST", "/predict", 200, 1000, "r", summary)
    clock.advance(60)
    assert await writer.flush()
    merged = await store.aggregate("demo", "1h")
    assert merged.classes == {"circle": 6, "square": 6}
    assert sum(merged.confidence_hist) == 12 and sum(merged.area_hist) == 12
    assert merged.confidence_hist == [6 * v // 5 for v in expected.confidence_hist]


async def test_a_window_is_exact_to_the_minute_across_hours(make_store: Callable[..., Store], clock: FakeClock) -> None:
    """Whole hours come from the hour rollups, the ragged edges from minute rows: every minute counted once."""
    clock.now -= clock.now % 3600
    hour = int(clock.now)
    store = make_store("w.db")
    writer = StoreWriter(store, Recorder(clock=clock), "w")
    for minute in range(180):  # three hours, minute m gets m + 1 requests
        for _ in range(minute + 1):
            writer.recorder.record_request("d", "POST", "/predict", 200, 1000, "r")
        clock.advance(60)
        if minute % 30 == 29:
            assert await writer.flush()

    def expected(first: int, last: int) -> int:
        return sum(m + 1 for m in range(first, last))

    for first, last in ((45, 75), (10, 170), (0, 180), (60, 120), (61, 62), (0, 1)):
        window = await store.window("d", hour + first * 60, hour + last * 60)
        assert window.requests == expected(first, last), (first, last)


async def test_overlapping_flushes_write_each_log_entry_once(
    make_store: Callable[..., Store], clock: FakeClock
) -> None:
    """Two flushes at once (a shutdown flush while the writer task's round runs, say) take turns: every request's
    log entry is stored exactly once."""
    store = make_store("twice.db")
    recorder = Recorder(clock=clock)
    writer = StoreWriter(store, recorder, "w")
    for i in range(50):
        recorder.record_request("demo", "POST", "/predict", 200, 1000 + i, f"r{i}")
    assert await asyncio.gather(writer.flush(), writer.flush()) == [True, True]
    page = await store.logs("demo", limit=200)
    assert sorted(entry["request_id"] for entry in page.entries) == sorted(f"r{i}" for i in range(50))


async def test_the_fleet_is_every_writing_process_and_traffic_splits_by_host(
    make_store: Callable[..., Store], clock: FakeClock
) -> None:
    """Three processes on two hosts write one database: each has its row (last seen moving with its flushes, idle
    ones too), the deployment's traffic splits by host exactly, and a host's summary is its own."""
    from yolowatch.records import ProcessInfo

    store = make_store("fleet.db")
    writers = {
        "a1": StoreWriter(
            store, Recorder(clock=clock), "a1", process=ProcessInfo("host-a", 11, "sidecar", "eu-west-1")
        ),
        "a2": StoreWriter(
            store, Recorder(clock=clock), "a2", process=ProcessInfo("host-a", 12, "sidecar", "eu-west-1")
        ),
        "b1": StoreWriter(store, Recorder(clock=clock), "b1", process=ProcessInfo("host-b", 21, "serve", "us-east-1")),
    }
    latencies = {"a1": [1_000] * 30, "a2": [3_000] * 20, "b1": [90_000] * 10}
    start = int(clock.now) - int(clock.now) % 60
    for name, values in latencies.items():
        for value in values:
            writers[name].recorder.record_request("demo", "POST", "/predict", 200, value, "r")
        assert await writers[name].flush()
    clock.advance(60)
    for writer in writers.values():
        assert await writer.flush()  # closes the minute
    clock.advance(30)
    assert await writers["b1"].flush()  # nothing new, and seen 30 s ago: not rewritten yet
    clock.advance(SEEN_EVERY_S)
    assert await writers["b1"].flush()  # idle, but its row says it is still there
    processes = {p["writer"]: p for p in await store.fleet_processes()}
    assert {w: (p["host"], p["kind"], p["region"]) for w, p in processes.items()} == {
        "a1": ("host-a", "sidecar", "eu-west-1"),
        "a2": ("host-a", "sidecar", "eu-west-1"),
        "b1": ("host-b", "serve", "us-east-1"),
    }
    assert (
        processes["b1"]["seen_s"] == int(clock.now) and processes["a1"]["seen_s"] == int(clock.now) - 30 - SEEN_EVERY_S
    )
    hosts = await store.host_windows("demo", start, start + 120)
    assert {host: bucket.requests for host, bucket in hosts.items()} == {"host-a": 50, "host-b": 10}
    assert hosts["host-b"].latency.get_value_at_percentile(50) == pytest.approx(90_000, rel=0.01)
    assert (await store.summary("demo", "1h", host="host-a"))["requests"] == 50
    assert (await store.summary("demo", "1h"))["requests"] == 60
    assert sum(p["requests"] for p in await store.series("demo", "1h", host="host-b")) == 10
    anonymous = StoreWriter(store, Recorder(clock=clock), "old-writer")  # no process row: written before the fleet
    for _ in range(5):
        anonymous.recorder.record_request("demo", "POST", "/predict", 200, 1_000, "r")
    assert await anonymous.flush()
    assert (await store.summary("demo", "1h", host="unknown"))["requests"] == 5
    assert (await store.summary("demo", "1h"))["requests"] == 65


def _yolo_body(rng: np.random.Generator, model: str, conf: float, stages_ms: dict[str, float]) -> bytes:
    """A bundled app's response: a few detections above `conf`, stage times, parameters, the model, image
    properties."""
    results = []
    for _ in range(int(rng.integers(0, 4))):
        name = str(rng.choice(["person", "car", "dog"]))
        confidence = round(float(rng.uniform(conf, 1.0)), 4)
        results.append({"class": 0, "name": name, "confidence": confidence,
                        "box": {"x1": 0, "y1": 0, "x2": 20, "y2": 30}})  # fmt: skip
    body = {
        "images": [{"shape": [480, 640], "speed": stages_ms, "results": results,
                    "properties": {"brightness": float(rng.uniform(60, 180)), "contrast": 30.0, "sharpness": 250.0}}],
        "metadata": {"model": model, "modelHash": "abc123", "params": {"conf": conf, "iou": 0.7, "imgsz": 640}},
    }  # fmt: skip
    return json.dumps(body).encode()


async def test_yolo_signals_and_versions_are_stored_and_read_back(
    make_store: Callable[..., Store], clock: FakeClock
) -> None:
    """Stage times, per-class counts and confidences, parameters, image properties and each model version's own
    requests go through the writer and come back exactly, for the whole deployment and per version."""
    rng = np.random.default_rng(21)
    store = make_store("signals.db")
    recorder = Recorder(clock=clock)
    writer = StoreWriter(store, recorder, "w1")
    sent: list[tuple[str, float, dict]] = []
    for i in range(400):
        model, conf = ("a.pt", 0.25) if i < 300 else ("b.pt", 0.5)
        body = _yolo_body(rng, model, conf, {"inference": 30.0 + i % 7, "decode": 2.0})
        sent.append((model, conf, json.loads(body)))
        recorder.record_request("demo", "POST", "/predict", 200, 40_000, f"r{i}", body)
        if i % 50 == 49:
            clock.advance(15)
            assert await writer.flush()
    total, series, seen = await store.signals("demo", "1h")
    expected_classes = Counter(r["name"] for _, _, b in sent for r in b["images"][0]["results"])
    assert total.classes == dict(expected_classes)
    for name, count in expected_classes.items():
        confidences = [r["confidence"] for _, _, b in sent for r in b["images"][0]["results"] if r["name"] == name]
        assert total.class_confidence[name] / count == pytest.approx(sum(confidences) / len(confidences))
    assert total.stages["inference"].get_total_count() == 400 and total.stages["decode"].get_total_count() == 400
    assert abs(total.stages["inference"].get_value_at_percentile(50) - 33_000) <= 33_000 * 0.01
    assert total.params == {"conf=0.25 iou=0.7 imgsz=640": 300, "conf=0.5 iou=0.7 imgsz=640": 100}
    assert sum(total.image["brightness"]) == 400 and sum(total.image["aspect"]) == 400
    assert {name: bucket.requests for name, bucket in total.versions.items()} == {
        "a.pt@abc123": 300,
        "b.pt@abc123": 100,
    }
    assert seen["a.pt@abc123"][0] < seen["b.pt@abc123"][0]  # the canary answered later
    b_only = (await store.signals("demo", "1h", version="b.pt@abc123")).total
    assert b_only.requests == 100 and b_only.params == {"conf=0.5 iou=0.7 imgsz=640": 100}
    b_classes = Counter(r["name"] for m, _, b in sent if m == "b.pt" for r in b["images"][0]["results"])
    assert b_only.classes == dict(b_classes)
    assert sum(1 for point in series if point["stages"]["inference"] is not None) >= 1
    # The minute rows carry the same: a summary that does not ask for them is unchanged.
    summary = await store.summary("demo", "1h")
    assert summary["requests"] == 400 and summary["predictions"] == 400
    await store.close()


def test_a_one_model_bucket_is_written_with_its_version_whole() -> None:
    """A minute whose responses all named one model shares its detection figures with that version until written:
    the row carries them in the version, and writing it leaves the minute as it was."""
    minute = Bucket("demo", 60, 0)
    summary = DetectionSummary(1, 2, (0.9, 0.8), (0.01, 0.02), (0, 1), ("cat", "dog"), (0.9, 0.8), model="a.pt@1")
    for _ in range(3):
        minute.add_parsed(summary)
    minute.version("a.pt@1").add_requests(Counter({200: 3}), Counter({40_000: 3}), 500_000)  # as the fold does
    assert minute.sole_version == "a.pt@1"
    row = dict(zip(BUCKET_COLUMNS, bucket_row(minute, "w"), strict=True))
    version = bucket_from_row(row, signals=True).versions["a.pt@1"]
    assert (version.requests, version.predictions, version.detections) == (3, 3, 6)
    assert version.classes == {"cat": 3, "dog": 3}
    assert minute.sole_version == "a.pt@1" and minute.versions["a.pt@1"].detections == 0


async def test_golden_runs_are_a_series_with_slots_latest_and_retention(
    make_store: Callable[..., Store], clock: FakeClock
) -> None:
    """Runs come back oldest first with what differed; slots count failing runs and the worst pass rate; the
    latest before a time is the one alerts read; retention deletes runs with the metrics."""
    store = make_store("golden.db")
    start_ms = int(clock() * 1000)
    for minute, passed in enumerate([3, 3, 1, 3]):
        failing = {"b.jpg": ["missing circle 0.91"]} if passed < 3 else {}
        run = GoldenRun(start_ms + minute * 60_000, 3, passed, "b.jpg" if failing else None, failing, None, 12.5)
        await store.save_golden("demo", run)
    await store.save_golden("other", GoldenRun(start_ms, 0, 0, None, {}, "golden.json is missing"))
    runs = await store.golden_runs("demo", start_ms, start_ms + 4 * 60_000)
    assert [run.passed for run in runs] == [3, 3, 1, 3]
    assert runs[2].differences == {"b.jpg": ["missing circle 0.91"]} and runs[2].worst == "b.jpg"
    assert runs[2].pass_rate == pytest.approx(1 / 3) and not runs[2].ok and runs[3].ok
    assert [run.passed for run in await store.golden_runs("demo", start_ms, start_ms + 4 * 60_000, limit=2)] == [1, 3]
    latest = await store.latest_golden("demo", before_ms=start_ms + 2 * 60_000)
    assert latest is not None and latest.passed == 1
    other = await store.latest_golden("other")
    assert other is not None and other.error == "golden.json is missing" and not other.ok and other.pass_rate is None
    slots = await store.golden_slots("demo", start_ms, 120_000, 2)
    assert slots == {
        0: {"runs": 2, "failing": 0, "worst": 1.0},
        1: {"runs": 2, "failing": 1, "worst": pytest.approx(1 / 3)},
    }
    clock.advance(31 * 86400)
    await store.enforce_retention()
    assert await store.latest_golden("demo") is None


async def test_silences_are_shared_expired_and_forgotten_five_days_after(
    make_store: Callable[..., Store], clock: FakeClock
) -> None:
    """A silence one process stores is read back whole by another on the database; it is active from its start to
    its end; expiring it ends it now; five days after its end retention forgets it."""
    now = int(clock())
    body = {"matchers": [{"name": "deployment", "value": "prod-.*", "isRegex": True},
                         {"name": "class", "value": "person", "isEqual": False}],
            "duration": "2h", "createdBy": "ops", "comment": "maintenance"}  # fmt: skip
    silence = silence_from_json(body, now)
    later = silence_from_json({**body, "startsAt": now + 3600}, now)
    one, other = make_store("silences.db"), make_store("silences.db")
    await one.add_silence(silence)
    await one.add_silence(later)
    assert await other.silence(silence.id) == silence and await other.silence("nope") is None
    assert [s.id for s in await other.active_silences()] == [silence.id]
    clock.advance(3600)
    assert {s.id for s in await other.active_silences()} == {silence.id, later.id}
    expired = await other.expire_silence(silence.id)
    assert expired is not None and expired.ends_at == now + 3600 and expired.state(clock()) == "expired"
    assert [s.id for s in await one.active_silences()] == [later.id]
    assert await one.expire_silence("nope") is None
    assert {s.id for s in await one.silences()} == {silence.id, later.id}  # the expired one is still listed
    clock.advance(3600 + 5 * 86400)
    assert {s.id for s in await one.silences()} == {later.id}  # ended 5 days and an hour ago: no longer listed
    await one.enforce_retention()
    assert await one.silence(silence.id) is None and await one.silence(later.id) is not None


async def test_notifications_are_marked_silenced_and_acknowledgements_last_while_firing(
    make_store: Callable[..., Store],
) -> None:
    """A notification stored silenced is never undelivered; one marked silenced later is, unless a sink claimed it
    first; an acknowledgement lands only on a pending or firing alert and goes when the alert turns inactive."""
    store = make_store("outbox.db")
    firing = AlertState("A", "prod", "firing", 60, 120, 1.0)
    notes = [Notification("A", "prod", "firing", 60, None, 1.0, "warning", "r"),
             Notification("B", "prod", "firing", 60, None, 1.0, "warning", "r"),
             Notification("C", "prod", "firing", 60, None, 1.0, "warning", "r")]  # fmt: skip
    await store.save_alerts([firing], notes, [["s1"], [], []])
    assert [n.rule for n in await store.undelivered("webhook")] == ["B", "C"]
    ids = {n.rule: n.id for n in await store.undelivered("webhook")}
    assert await store.claim_deliveries("log", [ids["B"]]) == [ids["B"]]  # a log line reaches nobody: not sent
    assert await store.claim_deliveries("chat", [ids["C"]]) == [ids["C"]]
    assert await store.mark_silenced({ids["B"]: ["s2"], ids["C"]: ["s2"]}) == [ids["B"]]
    assert await store.claim_deliveries("email", [ids["B"], ids["C"]]) == [ids["C"]]  # a silenced one: never
    assert [n.rule for n in await store.undelivered("webhook")] == ["C"]  # claimed by chat: goes everywhere
    history = {row["rule"]: row["silenced_by"] for row in await store.alert_history("prod")}
    assert history == {"A": ["s1"], "B": ["s2"], "C": []}

    ack = Acknowledgement("ana", 1_800_000_000, "on it")
    assert await store.acknowledge("A", "prod", ack) == "firing"
    assert await store.acknowledgements() == {("prod", "A"): ack}
    assert await store.acknowledge("Z", "prod", ack) is None
    await store.save_alerts([AlertState("A", "prod", "firing", 60, 180, 2.0)], [])
    assert await store.acknowledgements("prod") == {("prod", "A"): ack}  # still firing: kept
    await store.save_alerts([AlertState("A", "prod", "inactive")], [])
    assert await store.acknowledgements() == {}
    assert await store.acknowledge("A", "prod", ack) == "inactive"


async def test_a_version_11_database_gains_silences_and_acknowledgements(
    make_store: Callable[..., Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alert states and notifications written before version 12 read back unsilenced and unacknowledged."""
    monkeypatch.setattr("yolowatch.store.schema.SCHEMA_VERSION", 11)
    store = make_store("v11.db")
    await store.db.execute(
        "INSERT INTO alert_notifications (rule, deployment, status, starts_at, ends_at, value, severity, runbook, "
        "created_s, class_name) VALUES ('A', 'prod', 'firing', 60, NULL, 1.0, 'warning', 'r', 1800000000, '')"
    )
    await store.db.execute("INSERT INTO alert_state (rule, deployment, state) VALUES ('A', 'prod', 'firing')")
    await store.close()
    monkeypatch.undo()
    store = make_store("v11.db")
    assert await store.schema_version() == SCHEMA_VERSION
    assert [row["silenced_by"] for row in await store.alert_history()] == [[]]
    assert [n.rule for n in await store.undelivered("webhook")] == ["A"]
    assert await store.acknowledgements() == {} and await store.silences() == []
