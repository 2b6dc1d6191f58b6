"""Saturation readings: real CPU time and resident memory of this process; GPU readings where there is a GPU, and
a quiet None where there is not (this machine has none)."""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
from pathlib import Path

import pytest

from yolowatch.saturation import GpuReader, ProcessSample, cpu_percent, sample_process

MIB = 2**20
# What the NVIDIA driver lists; where it lists a GPU, open() finds one (given pynvml) instead of returning None.
HAS_GPU = Path("/proc/driver/nvidia/gpus").is_dir() and any(Path("/proc/driver/nvidia/gpus").iterdir())
HAS_PYNVML = importlib.util.find_spec("pynvml") is not None


def test_busy_loop_shows_as_cpu_use() -> None:
    """Spinning for 0.2 s between two samples reads as CPU use above zero and within this machine's two cores."""
    before = sample_process()
    while time.monotonic() - before.taken_s < 0.2:
        pass
    percent = cpu_percent(before, sample_process())
    assert percent is not None
    assert 25 < percent < 210


def test_touched_memory_shows_in_rss() -> None:
    """Allocating and writing 100 MiB raises the resident size by at least 80 MiB while it is held."""
    before = sample_process()
    block = bytearray(b"\x01") * (100 * MIB)  # every byte written, so every page is resident
    after = sample_process()
    assert after.rss_bytes - before.rss_bytes >= 80 * MIB
    assert len(block) == 100 * MIB


def test_no_time_between_samples_gives_none() -> None:
    """Two samples taken at the same instant have no CPU percentage."""
    sample = ProcessSample(cpu_s=1.0, rss_bytes=1, taken_s=5.0)
    assert cpu_percent(sample, ProcessSample(cpu_s=1.5, rss_bytes=1, taken_s=5.0)) is None


@pytest.mark.skipif(HAS_GPU, reason="a GPU is present, so open() finds it")
def test_open_without_gpu_is_none_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    """Without a GPU (or without pynvml, as in the light install) open() returns None and logs one INFO line."""
    with caplog.at_level(logging.INFO, logger="yolowatch"):
        assert GpuReader.open() is None
    assert [(r.name, r.levelno) for r in caplog.records] == [("yolowatch", logging.INFO)]
    assert caplog.records[0].getMessage().startswith("no GPU readings: ")


def test_open_without_pynvml_is_none(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """With pynvml unimportable open() returns None and names the missing package (mocked: .venv has pynvml)."""
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with caplog.at_level(logging.INFO, logger="yolowatch"):
        assert GpuReader.open() is None
    assert [r.getMessage() for r in caplog.records] == [
        "no GPU readings: pynvml is not installed (the nvidia-ml-py package)"
    ]


class FailingNvml:
    """Stands in for an initialised pynvml whose device queries fail, as after a lost GPU."""

    def __init__(self) -> None:
        self.shutdowns = 0

    def nvmlDeviceGetCount(self) -> int:
        raise RuntimeError("GPU is lost")

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1


def test_failing_read_is_empty_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    """A failing read gives [] with one WARNING however often it fails, and close() shuts NVML down once (mocked:
    there is no GPU here to lose)."""
    nvml = FailingNvml()
    reader = GpuReader(nvml)
    with caplog.at_level(logging.INFO, logger="yolowatch"):
        assert reader.read() == []
        assert reader.read() == []
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "GPU readings failed, going on without them: GPU is lost")
    ]
    reader.close()
    reader.close()
    assert nvml.shutdowns == 1
    assert reader.read() == []


@pytest.mark.skipif(not (HAS_GPU and HAS_PYNVML), reason="needs an NVIDIA GPU and pynvml")
def test_gpu_readings_are_in_range() -> None:
    """On a GPU machine every device reads a utilisation of 0-100 % and memory used within its total."""
    reader = GpuReader.open()
    assert reader is not None
    try:
        samples = reader.read()
    finally:
        reader.close()
    assert [s.index for s in samples] == list(range(len(samples))) and samples
    for sample in samples:
        assert sample.name
        assert 0 <= sample.utilization_percent <= 100
        assert 0 < sample.memory_used_bytes <= sample.memory_total_bytes
