"""Percentile error, memory and decode cost of the latency histogram at 2 and 3 significant digits.

python benchmarks/hdr_precision.py
"""

from __future__ import annotations

import time

import numpy as np
from hdrh.histogram import HdrHistogram

from yolowatch.records import LATENCY_MAX_US, LATENCY_MIN_US


def main() -> None:
    latencies = np.random.default_rng(0).lognormal(np.log(15_000), 0.6, 20_000).astype(int) + 1
    print(f"{'digits':<8}{'max error P50/95/99':>20}{'KiB live':>10}{'bytes encoded':>15}{'decode ms':>11}")
    for digits in (2, 3):
        histogram = HdrHistogram(LATENCY_MIN_US, LATENCY_MAX_US, digits)
        for value in latencies:
            histogram.record_value(int(value))
        errors = [
            abs(histogram.get_value_at_percentile(q) - np.percentile(latencies, q, method="inverted_cdf"))
            / np.percentile(latencies, q, method="inverted_cdf")
            for q in (50, 95, 99)
        ]
        encoded = histogram.encode()
        started = time.perf_counter()
        for _ in range(200):
            HdrHistogram.decode(encoded)
        decode_ms = (time.perf_counter() - started) / 200 * 1000
        print(
            f"{digits:<8}{max(errors) * 100:>19.2f}%{histogram.counts_len * 8 / 1024:>10.0f}"
            f"{len(encoded):>15}{decode_ms:>11.3f}"
        )


if __name__ == "__main__":
    main()
