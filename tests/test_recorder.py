"""Per-minute buckets: exact counts, percentiles within 1 %, rollups, severities and sampling."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

from helpers import FakeClock
from yolowatch.recorder import Recorder, format_message, severity_for
from yolowatch.records import AREA_BIN_COUNT, CONFIDENCE_BINS, DetectionSummary, area_bin, confidence_bin


def _summary(confidences: list[float], areas: list[float], names: list[str]) -> DetectionSummary:
    return DetectionSummary(
        1, len(confidences), tuple(confidences), tuple(areas), tuple(range(len(names))), tuple(names)
    )


def test_percentiles_match_numpy_within_one_percent(clock: FakeClock) -> None:
    """P50/P95/P99 of 20,000 lognormal latencies agree with numpy's within 1 %."""
    latencies = np.random.default_rng(1).lognormal(np.log(20_000), 0.7, 20_000).astype(int) + 1
    recorder = Recorder(clock=clock)
    for value in latencies:
        recorder.record_request("d", "POST", "/predict", 200, int(value), "r")
    (minute, *_rollups) = recorder.collect().buckets
    assert minute.requests == len(latencies)
    for q in (50, 95, 99):
        ours = minute.latency.get_value_at_percentile(q)
        theirs = np.percentile(latencies, q, method="inverted_cdf")
        assert abs(ours - theirs) / theirs < 0.01, (q, ours, theirs)


def test_status_classes_errors_and_slow_requests_are_counted(clock: FakeClock) -> None:
    """2xx/4xx/5xx land in their classes; errors are >= 400; slow is over the budget."""
    recorder = Recorder(clock=clock, latency_budget_ms=100)
    for status, latency_us in [(200, 5_000), (201, 150_000), (404, 1_000), (422, 1_000), (503, 2_000), (499, 10)]:
        recorder.record_request("d", "POST", "/predict", status, latency_us, "r")
    minute = recorder.collect().buckets[0]
    assert minute.status_classes == [0, 2, 0, 3, 1]
    assert (minute.client_errors, minute.server_errors, minute.errors) == (3, 1, 4)
    assert minute.slow == 1


def test_detection_stats_fill_the_histograms(clock: FakeClock) -> None:
    """Detections per request, confidence bins, box-size bins and class counts add up."""
    recorder = Recorder(clock=clock)
    recorder.record_request("d", "POST", "/predict", 200, 1000, "r", _summary([0.91, 0.42], [0.01, 0.2], ["a", "b"]))
    recorder.record_request("d", "POST", "/predict", 200, 1000, "r", _summary([0.913], [0.01], ["a"]))
    recorder.record_request("d", "GET", "/other", 200, 1000, "r")  # not a predict response
    minute = recorder.collect().buckets[0]
    assert (minute.requests, minute.predictions, minute.detections) == (3, 2, 3)
    assert minute.confidence_hist[confidence_bin(0.91)] == 2 and minute.confidence_hist[confidence_bin(0.42)] == 1
    assert sum(minute.area_hist) == 3 and minute.area_hist[area_bin(0.01)] == 2
    assert minute.classes == {"a": 2, "b": 1}
    assert minute.confidence_sum / minute.confidence_count == pytest.approx((0.91 + 0.42 + 0.913) / 3)


def test_bins_cover_their_ranges() -> None:
    """Confidence 1.0 and tiny or whole-image boxes fall into the edge bins, never outside."""
    assert confidence_bin(0.0) == 0 and confidence_bin(1.0) == CONFIDENCE_BINS - 1
    assert area_bin(1e-9) == 0 and area_bin(1.0) == AREA_BIN_COUNT - 1
    assert area_bin(1e-3) < area_bin(1e-2) < area_bin(1e-1)


def test_minutes_roll_up_into_quarter_hours_and_hours(clock: FakeClock) -> None:
    """Closed minutes come out once, final; the hour rollup holds every minute so far."""
    clock.now = 1_800_000_000 - 1_800_000_000 % 3600  # top of an hour
    recorder = Recorder(clock=clock)
    for minute in range(20):
        for _ in range(minute + 1):
            recorder.record_request("d", "POST", "/predict", 200, 1000 * (minute + 1), "r")
        clock.advance(60)
    buckets = recorder.collect().buckets
    minutes = [b for b in buckets if b.tier_s == 60]
    assert [b.requests for b in minutes] == list(range(1, 21))
    hour = [b for b in buckets if b.tier_s == 3600][-1]
    assert hour.requests == sum(range(1, 21))
    quarters = {b.start_s: b.requests for b in buckets if b.tier_s == 900}
    assert sorted(quarters.values()) == sorted([sum(range(1, 16)), sum(range(16, 21))])
    assert recorder.collect().buckets == []  # nothing new: nothing to write


def test_live_minute_is_a_snapshot(clock: FakeClock) -> None:
    """A collected live bucket does not change when more requests arrive afterwards."""
    recorder = Recorder(clock=clock)
    recorder.record_request("d", "POST", "/predict", 200, 1000, "r")
    live = recorder.collect().buckets[0]
    recorder.record_request("d", "POST", "/predict", 200, 1000, "r")
    assert live.requests == 1
    assert recorder.collect().buckets[0].requests == 2


@pytest.mark.parametrize(
    ("status", "latency_us", "crashed", "level"),
    [
        (200, 1000, False, logging.INFO),
        (302, 1000, False, logging.INFO),
        (200, 900_000, False, logging.WARNING),
        (404, 1000, False, logging.WARNING),
        (499, 1000, False, logging.WARNING),
        (500, 1000, False, logging.ERROR),
        (502, 1000, False, logging.ERROR),
        (500, 1000, True, logging.CRITICAL),
    ],
)
def test_severity_follows_the_design(status: int, latency_us: int, crashed: bool, level: int) -> None:
    """INFO for 2xx/3xx, WARNING for 4xx and slow, ERROR for 5xx, CRITICAL for a crash."""
    assert severity_for(status, latency_us, budget_us=500_000, crashed=crashed) == level


def test_message_reads_like_a_sentence() -> None:
    """Method, path, status, milliseconds and detections, as a person would write them."""
    assert format_message("POST", "/predict", 200, 14_230, _summary([0.5] * 3, [], ["a"] * 3)) == (
        "POST /predict 200 14.2 ms, 3 detections"
    )
    assert format_message("GET", "/x", 404, 800, None) == "GET /x 404 0.8 ms"


def test_info_logs_are_sampled_but_warnings_never(clock: FakeClock) -> None:
    """Past the per-second INFO allowance entries are counted, not kept; every WARNING+ is kept."""
    recorder = Recorder(clock=clock, info_logs_per_second=5)
    for _ in range(20):
        recorder.record_request("d", "POST", "/predict", 200, 1000, "r")
    for _ in range(10):
        recorder.record_request("d", "POST", "/predict", 500, 1000, "r")
    clock.advance(1)
    recorder.record_request("d", "POST", "/predict", 200, 1000, "r")
    collected = recorder.collect()
    levels = [entry.severity for entry in collected.logs]
    assert levels.count(logging.INFO) == 6 and levels.count(logging.ERROR) == 10
    assert recorder.stats.sampled_away == 15
    assert collected.buckets[0].requests == 31  # sampling never touches the metrics


def test_latencies_past_the_range_are_clamped_not_lost(clock: FakeClock) -> None:
    """A 20-minute request counts in the percentiles at the histogram's ceiling (10 minutes)."""
    recorder = Recorder(clock=clock)
    recorder.record_request("d", "POST", "/predict", 200, 20 * 60 * 1_000_000, "r")
    minute = recorder.collect().buckets[0]
    assert minute.latency.get_total_count() == 1
    assert minute.latency.get_value_at_percentile(100) >= 599_000_000


BODY = (
    b'{"images":[{"shape":[100,200],"results":[{"class":0,"name":"a","confidence":0.8,'
    b'"box":{"x1":0,"y1":0,"x2":20,"y2":10}}]}]}'
)


def test_response_bodies_are_read_when_collected(clock: FakeClock) -> None:
    """The middleware hands over raw JSON; detections show up in the bucket and the log message."""
    recorder = Recorder(clock=clock, info_logs_per_second=0)
    recorder.record_request("d", "POST", "/predict", 200, 1000, "r", BODY)
    recorder.record_request("d", "POST", "/predict", 200, 1000, "r", b"not json")
    collected = recorder.collect()
    minute = collected.buckets[0]
    assert (minute.requests, minute.predictions, minute.detections) == (2, 1, 1)
    assert minute.area_hist[area_bin(200 / 20_000)] == 1
    assert [entry.message for entry in collected.logs] == [
        "POST /predict 200 1.0 ms, 1 detection",
        "POST /predict 200 1.0 ms",
    ]


def test_parse_budget_reads_a_spread_out_sample_and_counts_the_rest(clock: FakeClock) -> None:
    """Past the per-second budget every k-th body is read; the budget refills as time passes."""
    recorder = Recorder(clock=clock, parses_per_second=5)
    for i in range(20):
        recorder.record_request("d", "POST", "/predict", 200, 1000 + i, f"r{i}", BODY)
    collected = recorder.collect()
    assert collected.buckets[0].predictions == 5 and recorder.stats.detections_skipped == 15
    read = [entry.request_id for entry in collected.logs if entry.detections is not None]
    assert read == ["r0", "r4", "r8", "r12", "r16"]  # spread over the batch, not the first five
    clock.advance(1)
    for _ in range(3):
        recorder.record_request("d", "POST", "/predict", 200, 1000, "r", BODY)
    assert recorder.collect().buckets[0].predictions == 5 + 3  # refilled: all three read


def test_zero_parse_budget_reads_every_body(clock: FakeClock) -> None:
    """A parse budget of 0 means no limit: every predict body is read."""
    recorder = Recorder(clock=clock, parses_per_second=0)
    for _ in range(2000):
        recorder.record_request("d", "POST", "/predict", 200, 1000, "r", BODY)
    assert recorder.collect().buckets[0].predictions == 2000
    assert recorder.stats.detections_skipped == 0


def test_pending_requests_stay_bounded_without_collect(clock: FakeClock) -> None:
    """Nobody collecting (a stalled writer) folds in place: memory stays bounded and nothing is lost."""
    recorder = Recorder(clock=clock, max_pending=100)
    for _ in range(1050):
        recorder.record_request("d", "POST", "/predict", 200, 1000, "r")
        assert len(recorder._pending) < 100
    assert recorder.collect().buckets[0].requests == 1050


def test_the_in_place_fold_of_an_overload_counts_and_leaves_bodies_unread(clock: FakeClock) -> None:
    """When the writer falls behind, the in-place fold keeps every request's count but reads no body (each
    counted as skipped): its pause stays that of counting, not of parsing thousands of responses."""
    recorder = Recorder(clock=clock, max_pending=100, parses_per_second=0)
    for _ in range(250):
        recorder.record_request("d", "POST", "/predict", 200, 1000, "r", BODY)
    minute = recorder.collect().buckets[0]
    assert minute.requests == 250
    assert recorder.stats.detections_skipped == 200 and minute.predictions == 50  # the last 50 by the collect


def test_a_fault_while_folding_is_counted_and_the_recorder_goes_on(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A summary that breaks aggregation costs (part of) that batch's figures, logged once, never an exception."""
    broken = DetectionSummary(1, 1, ("high",), (), (), ())  # type: ignore[arg-type]
    recorder = Recorder(clock=clock)
    recorder.record_request("d", "POST", "/predict", 200, 1000, "r", broken)
    recorder.record_request("d", "POST", "/predict", 200, 1000, "r")
    with caplog.at_level(logging.ERROR, logger="yolowatch"):
        recorder.collect()
        recorder.record_request("d", "POST", "/predict", 200, 1000, "r", broken)
        recorder.collect()
    assert recorder.stats.monitoring_failures == 3
    assert sum("could not fold" in r.getMessage() for r in caplog.records) == 1
    recorder.record_request("d", "POST", "/predict", 200, 1000, "r")
    collected = recorder.collect()
    assert collected.buckets[0].requests == 4  # counts come first; the broken detections are what is lost
    assert len(collected.logs) == 1


def _mixed_traffic(recorder: Recorder, clock: FakeClock, count: int) -> None:
    """`count` requests over a minute boundary: statuses, latencies, bodies and one crash, in a fixed pattern."""
    for i in range(count):
        status = (200, 200, 200, 404, 503)[i % 5]
        body = BODY if status == 200 and i % 3 == 0 else None
        recorder.record_request("d", "POST", "/predict", status, 500 + (i * 37) % 90_000, f"r{i}", body, i == 7)
        clock.advance(0.02)


def test_a_fold_in_slices_gives_what_a_fold_in_one_piece_gives() -> None:
    """The writer folds in slices (yielding the event loop between them); the figures and logs are the same."""
    whole_clock, sliced_clock = FakeClock(1_800_000_030.0), FakeClock(1_800_000_030.0)
    whole = Recorder(clock=whole_clock, info_logs_per_second=0, parses_per_second=0)
    sliced = Recorder(clock=sliced_clock, info_logs_per_second=0, parses_per_second=0)
    _mixed_traffic(whole, whole_clock, 3000)
    _mixed_traffic(sliced, sliced_clock, 3000)
    slices = sum(1 for _ in sliced.folding(slice_s=0)) + 1
    assert slices >= 3000 // 32
    expected, got = whole.collect(), sliced.collect()
    assert [(b.tier_s, b.start_s) for b in got.buckets] == [(b.tier_s, b.start_s) for b in expected.buckets]
    for ours, theirs in zip(got.buckets, expected.buckets, strict=True):
        assert (ours.requests, ours.status_classes, ours.server_errors, ours.slow, ours.latency_sum_us) == (
            theirs.requests,
            theirs.status_classes,
            theirs.server_errors,
            theirs.slow,
            theirs.latency_sum_us,
        )
        assert (ours.predictions, ours.detections, ours.confidence_hist) == (
            theirs.predictions,
            theirs.detections,
            theirs.confidence_hist,
        )
        assert ours.latency.get_value_at_percentile(99) == theirs.latency.get_value_at_percentile(99)
    assert [(e.request_id, e.severity, e.message) for e in got.logs] == [
        (e.request_id, e.severity, e.message) for e in expected.logs
    ]
    assert sum(b.requests for b in got.buckets if b.tier_s == 60) == 3000


def test_requests_that_arrive_while_a_fold_is_suspended_wait_for_the_next_one(clock: FakeClock) -> None:
    """No second fold starts inside a suspended one (it could reopen an older minute); nothing is lost."""
    recorder = Recorder(clock=clock, max_pending=600)
    for _ in range(500):
        recorder.record_request("d", "POST", "/predict", 200, 1000, "r")
    folding = recorder.folding(slice_s=0)
    next(folding)  # suspended after its first slice
    for _ in range(1000):
        recorder.record_request("d", "POST", "/predict", 200, 1000, "r")
    assert len(recorder._pending) == 1000  # past max_pending, but left for the next fold
    for _ in folding:
        pass
    assert recorder.collect().buckets[0].requests == 1500


def test_a_collect_that_leaves_requests_pending_keeps_their_minute_open(clock: FakeClock) -> None:
    """The writer may leave what an overloaded server recorded during a fold for the next round: the minute those
    requests belong to must not be closed before they are in it (a closed minute's row would be overwritten)."""
    recorder = Recorder(clock=clock)
    minute = int(clock() // 60) * 60
    recorder.record_request("d", "POST", "/predict", 200, 1000, "r")
    recorder.collect()
    recorder.record_request("d", "POST", "/predict", 200, 1000, "r")  # same minute, not folded yet
    clock.advance(60)
    left = recorder.collect(fold=False)
    assert [(b.tier_s, b.start_s, b.requests) for b in left.buckets if b.tier_s == 60] == [(60, minute, 1)]
    assert recorder.pending == 1
    final = [b for b in recorder.collect().buckets if b.tier_s == 60 and b.start_s == minute]
    assert [b.requests for b in final] == [2]


def test_saturation_samples_fold_into_minutes_with_traffic(clock: FakeClock) -> None:
    """A sample is kept as the latest; it adds to the live minute only when that minute has traffic (sums and
    peaks), and rollups keep the peaks as peaks and the sums as sums."""
    recorder = Recorder(clock=clock)
    recorder.record_saturation("d", {"in_flight": 3, "cpu_percent": 50.0, "rss_bytes": 1e9})
    assert recorder.collect().buckets == []  # an idle minute keeps no row
    assert recorder.saturation_now["d"]["in_flight"] == 3
    recorder.record_request("d", "POST", "/predict", 200, 1000, "r")
    recorder.collect()
    for in_flight, rss in ((2, 1.0e9), (6, 1.5e9), (1, 1.2e9)):
        recorder.record_saturation("d", {"in_flight": in_flight, "queue": 1, "cpu_percent": 80.0, "rss_bytes": rss})
    minute, quarter, *_ = recorder.collect().buckets
    for bucket in (minute, quarter):
        assert bucket.saturation["samples"] == 3 and bucket.saturation["in_flight_sum"] == 9
        assert bucket.saturation["in_flight_max"] == 6 and bucket.saturation["rss_max_bytes"] == 1.5e9
        assert bucket.saturation["cpu_percent_sum"] == 240.0 and "gpu_samples" not in bucket.saturation


def test_versions_get_their_own_requests_and_detections(clock: FakeClock) -> None:
    """Responses naming a model go to that version's sub-bucket too (requests, latency, detections); the
    deployment's bucket holds them all."""
    recorder = Recorder(clock=clock)
    a = _summary([0.9], [0.01], ["cat"])
    b = _summary([0.5, 0.6], [0.02, 0.03], ["dog", "dog"])
    for _ in range(3):
        recorder.record_request("d", "POST", "/predict", 200, 10_000, "r", replace(a, model="a.pt@1"))
    recorder.record_request("d", "POST", "/predict", 200, 90_000, "r", replace(b, model="b.pt@2"))
    recorder.record_request("d", "POST", "/predict", 200, 5_000, "r", b)  # no model named
    minute = recorder.collect().buckets[0]
    assert minute.requests == 5 and minute.detections == 7
    assert {name: v.requests for name, v in minute.versions.items()} == {"a.pt@1": 3, "b.pt@2": 1}
    assert minute.versions["b.pt@2"].classes == {"dog": 2}
    assert minute.versions["b.pt@2"].latency.get_value_at_percentile(50) == pytest.approx(90_000, rel=0.01)


def test_image_properties_measured_apart_join_their_live_minute(clock: FakeClock) -> None:
    """Properties recorded after their request (the sidecar's sample) join that minute in the next fold, with
    properties outside IMAGE_PROPERTIES ignored; one whose minute has ended is dropped and counted."""
    recorder = Recorder(clock=clock)
    recorder.record_request("d", "POST", "/predict", 200, 1000, "r")
    recorder.record_image("d", {"brightness": 100.0, "sharpness": 50.0, "hue": 3.0})
    minute = recorder.collect().buckets[0]
    assert sum(minute.image["brightness"]) == 1 and sum(minute.image["sharpness"]) == 1 and "hue" not in minute.image
    recorder.record_image("d", {"brightness": 90.0})
    clock.advance(60)
    recorder.record_request("d", "POST", "/predict", 200, 1000, "r")
    recorder.collect()
    assert recorder.stats.images_dropped == 1


def test_one_model_keeps_its_detection_figures_once_and_writes_them_whole(clock: FakeClock) -> None:
    """With every response naming one model, the version's detection figures are the minute's own: written whole
    in the snapshot, the closed minute and the rollups; a second model then keeps each version's apart."""
    recorder = Recorder(clock=clock)
    a = replace(_summary([0.9, 0.8], [0.01, 0.02], ["cat", "dog"]), model="a.pt@1")
    for _ in range(4):
        recorder.record_request("d", "POST", "/predict", 200, 10_000, "r", a)
    live, quarter, *_ = recorder.collect().buckets
    for bucket in (live, quarter):
        version = bucket.versions["a.pt@1"]
        assert (version.requests, version.predictions, version.detections) == (4, 4, 8)
        assert version.classes == {"cat": 4, "dog": 4} and sum(version.confidence_hist) == 8
    b = replace(_summary([0.5], [0.3], ["cat"]), model="b.pt@2")
    recorder.record_request("d", "POST", "/predict", 200, 10_000, "r", b)
    recorder.record_request("d", "POST", "/predict", 200, 10_000, "r", a)
    clock.advance(60)
    closed = next(bucket for bucket in recorder.collect().buckets if bucket.tier_s == 60)
    assert closed.versions["a.pt@1"].detections == 10 and closed.versions["b.pt@2"].classes == {"cat": 1}
    assert closed.detections == 11
