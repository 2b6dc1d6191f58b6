"""What the writer's side of monitoring costs the serving process, in CPU time, without a server around it.

The recorder is fed a second of predict requests at a time (the overhead benchmark's response body, which
names its model and carries Ultralytics' three stage times), at the default parse budget; the script times
the fold, the collect (snapshots of the live minute and its rollups) and the encoding of the rows, and then
the cost of reading one body when every body is read. Run it on two versions of the code to compare them
(`PYTHONPATH=<worktree>/src python benchmarks/fold_cost.py`).

    python benchmarks/fold_cost.py [--rate 13000] [--rounds 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from overhead_apps import BODY
from yolowatch.recorder import Recorder
from yolowatch.store.rows import bucket_row

START = 1_800_000_000.0


def second_costs(rate: int, rounds: int) -> tuple[float, float, float]:
    """Median ms of CPU per second of `rate` requests: fold, collect, rows."""
    body = orjson.dumps(BODY)
    now = [START]
    recorder = Recorder(clock=lambda: now[0])
    costs = []
    for _ in range(rounds + 1):  # the first round warms up
        for i in range(rate):
            now[0] += 1 / rate
            recorder.record_request("d", "POST", "/predict", 200, 1000 + i % 300, "r", body)
        started = time.process_time()
        for _ in recorder.folding():
            pass
        folded = time.process_time()
        rows = recorder.collect(fold=False).buckets
        collected = time.process_time()
        for bucket in rows:
            bucket_row(bucket, "w")
        costs.append((folded - started, collected - folded, time.process_time() - collected))
    return tuple(statistics.median(cost[k] for cost in costs[1:]) * 1000 for k in range(3))  # type: ignore[return-value]


def body_cost(rounds: int) -> float:
    """Best µs per request when every body is read (fold, collect and rows included)."""
    body = orjson.dumps(BODY)
    now = [START]
    recorder = Recorder(clock=lambda: now[0], parses_per_second=0)
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(5):
            for i in range(2000):
                now[0] += 1 / 2000
                recorder.record_request("d", "POST", "/predict", 200, 1000 + i % 300, "r", body)
            for bucket in recorder.collect().buckets:
                bucket_row(bucket, "w")
        best = min(best, (time.process_time() - started) / 10_000 * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=13_000, help="requests per second (overhead.py's wrapped rate)")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    fold, collect, rows = second_costs(args.rate, args.rounds)
    total = fold + collect + rows
    print(f"a second of {args.rate:,} requests, default parse budget: fold {fold:.2f} ms, collect {collect:.2f} ms, "
          f"rows {rows:.2f} ms; {total * 1000 / args.rate:.2f} us a request")  # fmt: skip
    print(f"every body read: {body_cost(args.rounds):.1f} us a request")


if __name__ == "__main__":
    main()
