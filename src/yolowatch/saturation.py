"""How busy the serving process and its GPUs are: CPU time and resident memory from the standard library, GPU
utilisation and memory from NVIDIA's management library (`pynvml`, from nvidia-ml-py) where it is installed.

The light install has neither psutil nor pynvml, so this module imports only the standard library at load time;
pynvml is imported by `GpuReader.open()`, and a missing library or driver means no GPU readings, never an error.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("yolowatch")

STATM_PATH = "/proc/self/statm"


@dataclass(frozen=True)
class ProcessSample:
    """CPU time used so far, resident memory now, and when: two samples give the CPU use between them."""

    cpu_s: float  # user + system CPU seconds of this process (all threads) since it started
    rss_bytes: int
    taken_s: float  # time.monotonic()


@dataclass(frozen=True)
class GpuSample:
    """One device as NVML reports it: busy percent over its last sample period, and memory in bytes."""

    index: int
    name: str
    utilization_percent: float
    memory_used_bytes: int
    memory_total_bytes: int


def sample_process() -> ProcessSample:
    """This process's CPU seconds and resident memory, stamped with the monotonic clock."""
    # process_time() is user + system time like os.times(), but with nanosecond resolution rather than clock ticks
    # (10 ms on Linux), which matters for samples a second apart.
    return ProcessSample(cpu_s=time.process_time(), rss_bytes=_rss_bytes(), taken_s=time.monotonic())


def _rss_bytes() -> int:
    """Resident set size now from /proc (Linux); elsewhere the peak, which is what getrusage offers."""
    try:
        with open(STATM_PATH, "rb") as statm:
            resident_pages = int(statm.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        pass
    # ru_maxrss is the PEAK resident size, not the current one: kilobytes on Linux and the BSDs, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def cpu_percent(before: ProcessSample, after: ProcessSample) -> float | None:
    """CPU use between two samples in percent of one core (100 = one core busy, 200 = two); None when no time
    passed between them (or they are in the wrong order)."""
    elapsed_s = after.taken_s - before.taken_s
    if elapsed_s <= 0:
        return None
    return max(0.0, after.cpu_s - before.cpu_s) / elapsed_s * 100.0


class GpuReader:
    """Reads every GPU that NVML sees, through one NVML session.

    That is all devices on the machine: CUDA_VISIBLE_DEVICES is not applied (NVML ignores it, and its indices
    are NVML's, which can differ from CUDA's ordering). Get one with `open()`; `close()` when done.
    """

    def __init__(self, nvml: Any) -> None:
        """Use `open()`: this takes an NVML module that is already initialised."""
        self._nvml = nvml
        self._open = True
        self._warned = False

    @classmethod
    def open(cls) -> GpuReader | None:
        """A reader, or None where pynvml is missing or NVML cannot start (no driver, no GPU); logged at INFO."""
        reader, reason = cls.start()
        if reader is None:
            log.info("no GPU readings: %s", reason)
        return reader

    @classmethod
    def start(cls) -> tuple[GpuReader | None, str]:
        """A reader, or None and why not, without logging (for a caller on a worker thread, which logs once it is
        back on its event loop: a thread that outlives its caller must not log into a closed handler)."""
        try:
            import pynvml
        except ImportError:
            return None, "pynvml is not installed (the nvidia-ml-py package)"
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...: no GPU to read either way
            return None, f"NVML did not start ({exc})"
        return cls(pynvml), ""

    def read(self) -> list[GpuSample]:
        """One sample per device; [] once closed, or when NVML fails (logged once at WARNING per reader), so that a
        lost GPU costs the readings and not the monitor."""
        if not self._open:
            return []
        try:
            return [self._read_device(index) for index in range(self._nvml.nvmlDeviceGetCount())]
        except Exception as exc:
            if not self._warned:
                self._warned = True
                log.warning("GPU readings failed, going on without them: %s", exc)
            return []

    def _read_device(self, index: int) -> GpuSample:
        nvml = self._nvml
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        return GpuSample(
            index=index,
            name=name.decode() if isinstance(name, bytes) else str(name),  # bytes from older nvidia-ml-py releases
            utilization_percent=float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
            memory_used_bytes=int(memory.used),
            memory_total_bytes=int(memory.total),
        )

    def close(self) -> None:
        """End the NVML session; calling it again does nothing."""
        if not self._open:
            return
        self._open = False
        try:
            self._nvml.nvmlShutdown()
        except Exception as exc:
            log.warning("NVML did not shut down cleanly: %s", exc)
