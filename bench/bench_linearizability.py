"""How fast jepsen-lite's linearizability checker decides one key partition.

    python bench/bench_linearizability.py [--ops 10000] [--repeat 3] [--out FILE]

Histories are generated the way a register workload produces them: clients
whose operations overlap (``--concurrency`` in flight), a linearization
point inside each operation, reads, writes and compare-and-sets on one key,
a share of writes left indeterminate (info, returning at infinity, then
tightened as the register workload does), and, last, the same history
with one stale read planted (the checker must reject it).  Each case runs ``--repeat`` times; the median is reported.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import time

from jepsen_lite.checkers import linear


def history(n: int, concurrency: int, info_rate: float, seed: int) -> list[linear.Call]:
    rng = random.Random(seed)
    spans = []
    for i in range(n):
        start = i * 0.001 + rng.random() * 0.001 * concurrency
        end = start + rng.random() * 0.001 * concurrency
        spans.append((rng.uniform(start, end), start, end))
    spans.sort()
    value, rev, calls = None, 0, []
    for i, (_, start, end) in enumerate(spans):
        r = rng.random()
        if r < 0.5:
            c = linear.Call(i, "read", None, (value, rev), start, end, True)
        elif r < 0.8:
            value, rev = i, i + 2
            c = linear.Call(i, "write", i, rev, start, end, True)
        elif rng.random() < 0.5 and value is not None:
            old, value, rev = value, i, i + 2
            c = linear.Call(i, "cas", (old, i), (True, rev), start, end, True)
        else:
            c = linear.Call(i, "cas", (-1, i), (False, value, rev), start, end, True)
        succeeded = c.f == "write" or c.result[0] is True
        if succeeded and rng.random() < info_rate:
            c.known, c.result, c.end = False, None, float("inf")
        calls.append(c)
    return calls


def plant_stale_read(calls: list[linear.Call]) -> None:
    writes = [c for c in calls if c.f == "write" and c.known]
    old = writes[len(writes) // 2]
    late = next(c for c in calls if c.f == "read" and c.start > old.end + 0.5)
    late.result = (old.value, old.result)


def measure(calls, repeat: int) -> tuple[bool, list[float]]:
    times, valid = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        checked, _ = linear.bound_indeterminate([dataclasses.replace(c) for c in calls])
        v = linear.check(linear.RegisterModel(), {"k": checked})
        times.append(time.perf_counter() - t0)
        valid = v.valid
    return valid, times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out")
    a = ap.parse_args()
    cases = [(10, 0.0), (10, 0.05), (50, 0.05), (10, 0.3)]
    for concurrency, info in cases + [("stale", 0.05)]:
        conc = 10 if concurrency == "stale" else concurrency
        calls = history(a.ops, conc, info, seed=1)
        if concurrency == "stale":
            plant_stale_read(calls)
        valid, times = measure(calls, a.repeat)
        row = {"ops": a.ops, "concurrency": conc, "info_rate": info,
               "planted_stale_read": concurrency == "stale", "valid": valid,
               "median_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times]}
        print(json.dumps(row), flush=True)
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
