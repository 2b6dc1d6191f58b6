"""Prometheus exposition: per-process totals summed per deployment, stage histograms, bounded class labels."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from yolowatch.exporters import exposition
from yolowatch.records import STAGE_BOUNDS_S, DetectionSummary, Lifetime

# What the writer stores with each process's Lifetime (store/writer.py).
PROCESS_STATS = dict.fromkeys(
    ("sampled_away", "detections_skipped", "monitoring_failures", "logs_dropped", "rows_dropped", "backlog"), 0
)
NEW_KEYS = ("classes", "class_confidence", "stage_counts", "stage_sum_us")


def _summary(stages: Sequence[dict[str, float]] = (), classes: Sequence[tuple[str, float]] = ()) -> DetectionSummary:
    """One predict response: its images' stage times (ms) and its detections as (class, confidence)."""
    return DetectionSummary(
        images=max(1, len(stages)),
        count=len(classes),
        confidences=tuple(confidence for _, confidence in classes),
        box_areas=(),
        class_ids=tuple(range(len(classes))),
        class_names=tuple(name for name, _ in classes),
        class_confidences=tuple(confidence for _, confidence in classes),
        stages=tuple(stages),
    )


def _row(writer: str, deployment: str, *summaries: DetectionSummary, old: bool = False) -> dict[str, Any]:
    """A `process_totals` row of one process that answered `summaries` (old: written before the new keys)."""
    lifetime = Lifetime()
    lifetime.add_requests(Counter({200: len(summaries) or 1}), Counter({2_000: len(summaries) or 1}))
    for summary in summaries:
        lifetime.add_detections(summary)
    totals = {**asdict(lifetime), **PROCESS_STATS}
    if old:
        for key in NEW_KEYS:
            del totals[key]
    return {"writer": writer, "deployment": deployment, "totals": totals}


def _samples(rows: list[dict[str, Any]], family: str, max_classes: int = 20) -> list[Sample]:
    text = exposition(rows, {}, max_classes=max_classes).decode()
    return [s for f in text_string_to_metric_families(text) if f.name == family for s in f.samples]


def test_stage_histograms_sum_two_processes_into_cumulative_buckets() -> None:
    """Stage times of two processes add up per stage: buckets are cumulative, le is inclusive, count and sum match."""
    rows = [
        _row("a", "prod", _summary([{"inference": 3.0, "preprocess": 0.4}, {"inference": 5.0}]),
             _summary([{"inference": 20.0}])),
        _row("b", "prod", _summary([{"inference": 0.7}, {"inference": 3000.0}])),
    ]  # fmt: skip
    samples = _samples(rows, "yolowatch_stage_duration_seconds")
    inference = [s for s in samples if s.labels["stage"] == "inference"]
    buckets = {s.labels["le"]: s.value for s in inference if s.name.endswith("_bucket")}
    assert list(buckets) == [repr(bound) for bound in STAGE_BOUNDS_S] + ["+Inf"]
    assert buckets["0.0005"] == 0 and buckets["0.001"] == 1 and buckets["0.005"] == 3  # 5.0 ms is in le=0.005
    assert buckets["0.025"] == 4 and buckets["2.5"] == 4 and buckets["5.0"] == 5 and buckets["+Inf"] == 5
    assert list(buckets.values()) == sorted(buckets.values())
    totals = {s.name.rsplit("_", 1)[1]: s.value for s in inference if not s.name.endswith("_bucket")}
    assert totals["count"] == 5 and totals["sum"] == pytest.approx(3.0287)
    assert {s.labels["stage"] for s in samples} == {"inference", "preprocess"}  # no series for unseen stages


@pytest.mark.parametrize("max_classes", [20, 5, 0])
def test_a_thousand_classes_keep_the_top_ones_and_sum_the_rest_as_other(max_classes: int) -> None:
    """Of 1,000 classes only the top `max_classes` by detections (ties by name) get a label; "other" holds the rest."""
    counts = {f"class{i:04d}": 1 + i % 10 for i in range(1000)}  # 100 classes tie at 10 detections
    confidence = {name: 0.25 + (i % 2) * 0.5 for i, name in enumerate(counts)}
    detections = [(name, confidence[name]) for name, count in counts.items() for _ in range(count)]
    firsts = {name: (name, confidence[name]) for name in counts}  # one detection of each class in process a
    rest = list((Counter(detections) - Counter(firsts.values())).elements())
    rows = [_row("a", "prod", _summary(classes=list(firsts.values()))), _row("b", "prod", _summary(classes=rest))]
    top = [f"class{i:04d}" for i in range(9, 1000, 10)][:max_classes]  # the ties at 10, by name
    named = {s.labels["class"]: s.value for s in _samples(rows, "yolowatch_class_detections", max_classes)}
    assert list(named) == [*top, "other"]
    assert all(named[name] == 10 for name in top) and named["other"] == 5500 - 10 * max_classes
    assert sum(named.values()) == len(detections) == 5500
    sums = {s.labels["class"]: s.value for s in _samples(rows, "yolowatch_class_confidence_sum", max_classes)}
    assert list(sums) == [*top, "other"] and all(sums[name] == 7.5 for name in top)
    assert sum(sums.values()) == pytest.approx(sum(conf for _, conf in detections))


def test_a_class_named_other_is_folded_into_other() -> None:
    """A real class called "other" shares the "other" series rather than making a second one."""
    rows = [_row("a", "prod", _summary(classes=[("other", 0.5), ("person", 0.5), ("person", 0.5), ("dog", 0.5)]))]
    named = {s.labels["class"]: s.value for s in _samples(rows, "yolowatch_class_detections", max_classes=1)}
    assert named == {"person": 2, "other": 2}


def test_old_totals_rows_without_the_new_keys_still_render() -> None:
    """Rows written before stages and classes were kept render as before, alone or summed with newer rows."""
    newer = _summary([{"inference": 3.0}], [("person", 0.5)])
    rows = [_row("a", "old", newer, old=True), _row("a", "mixed", newer, old=True), _row("b", "mixed", newer)]
    assert {s.labels["deployment"]: s.value for s in _samples(rows, "yolowatch_detections")} == {"mixed": 2, "old": 1}
    classes = {
        (s.labels["deployment"], s.labels["class"]): s.value for s in _samples(rows, "yolowatch_class_detections")
    }
    assert classes == {("mixed", "person"): 1, ("mixed", "other"): 0}
    stages = _samples(rows, "yolowatch_stage_duration_seconds")
    assert {s.labels["deployment"] for s in stages} == {"mixed"}


def test_saturation_gauges_come_from_live_processes_only() -> None:
    """In-flight, queue, CPU and memory add up over the processes that wrote lately; GPU readings take the
    highest (processes on a host share its GPUs); a process silent for a minute is left out."""
    rows = []
    for writer, updated_s, sample in (
        ("a", 1000, {"in_flight": 2, "queue": 1, "cpu_percent": 90.0, "rss_bytes": 1e9, "gpu_utilization": 40.0}),
        ("b", 995, {"in_flight": 3, "queue": 0, "cpu_percent": 60.0, "rss_bytes": 2e9, "gpu_utilization": 70.0}),
        ("gone", 900, {"in_flight": 50, "queue": 9, "cpu_percent": 99.0, "rss_bytes": 9e9}),
    ):
        row = _row(writer, "d")
        row["updated_s"] = updated_s
        row["totals"]["saturation"] = sample
        rows.append(row)
    families = {f.name: f for f in text_string_to_metric_families(exposition(rows, {}, now_s=1005).decode())}
    gauges = ("yolowatch_requests_in", "yolowatch_inference", "yolowatch_process_", "yolowatch_gpu")
    value = {name: f.samples[0].value for name, f in families.items() if name.startswith(gauges) and f.samples}
    assert value == {
        "yolowatch_requests_in_flight": 5.0,
        "yolowatch_inference_queue_depth": 1.0,
        "yolowatch_process_cpu_percent": 150.0,
        "yolowatch_process_resident_memory_bytes": 3e9,
        "yolowatch_gpu_utilization_percent": 70.0,
    }
    assert families["yolowatch_gpu_memory_used_bytes"].samples == []  # nobody read GPU memory


def test_dropped_spans_add_up_over_processes_and_old_rows_count_none() -> None:
    """Each process's dropped spans (backlog full, or export failed) are summed per deployment; a row written
    before traces existed has no such key and counts 0."""
    rows = [_row("a", "prod"), _row("b", "prod"), _row("c", "old")]
    rows[0]["totals"]["spans_dropped"], rows[1]["totals"]["spans_dropped"] = 3, 4
    dropped = {s.labels["deployment"]: s.value for s in _samples(rows, "yolowatch_spans_dropped")}
    assert dropped == {"prod": 7, "old": 0}
