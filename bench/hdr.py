"""An HDR-style latency histogram: log-linear buckets, mergeable, small.

Values are recorded in microseconds.  Each power of two is split into
``SUB`` linear sub-buckets, so a percentile read back is within 1/SUB
(1.6%) of the true value, whatever the range (1 us to hours), in a few
hundred integers: cheap to send from a load-generator process and to merge.
"""
from __future__ import annotations

SUB_BITS = 6
SUB = 1 << SUB_BITS


def _index(us: int) -> int:
    if us < SUB:
        return us
    e = us.bit_length() - 1 - SUB_BITS        # us >> e is in [SUB, 2*SUB)
    return (e + 1) * SUB + ((us >> e) - SUB)


def _lower(index: int) -> int:
    if index < SUB:
        return index
    e = index // SUB - 1
    return (SUB + index % SUB) << e


class Histogram:
    __slots__ = ("counts", "total", "max_us", "min_us", "sum_us")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.max_us = 0
        self.min_us = 0
        self.sum_us = 0

    def record(self, seconds: float) -> None:
        us = max(0, int(seconds * 1e6))
        i = _index(us)
        self.counts[i] = self.counts.get(i, 0) + 1
        if self.total == 0 or us < self.min_us:
            self.min_us = us
        self.total += 1
        self.sum_us += us
        if us > self.max_us:
            self.max_us = us

    def merge(self, other: "Histogram") -> "Histogram":
        for i, n in other.counts.items():
            self.counts[i] = self.counts.get(i, 0) + n
        if other.total:
            self.min_us = other.min_us if not self.total else min(self.min_us, other.min_us)
        self.total += other.total
        self.sum_us += other.sum_us
        self.max_us = max(self.max_us, other.max_us)
        return self

    def percentile(self, q: float) -> float | None:
        """The value (seconds) at percentile ``q`` (0..100): the middle of its bucket."""
        if not self.total:
            return None
        if q >= 100:
            return self.max_us / 1e6
        rank = max(1, int(q / 100.0 * self.total + 0.999999))
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= rank:
                lo, hi = _lower(i), _lower(i + 1)
                return min(self.max_us, (lo + hi) / 2.0) / 1e6
        return self.max_us / 1e6

    def mean(self) -> float | None:
        return self.sum_us / self.total / 1e6 if self.total else None

    def cdf(self) -> list[tuple[float, float]]:
        """(seconds, fraction <= it) per bucket, for plots."""
        out, seen = [], 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            out.append((min(self.max_us, _lower(i + 1)) / 1e6, seen / self.total))
        return out

    def summary(self) -> dict:
        def ms(v):
            return None if v is None else round(v * 1000, 3)
        return {"count": self.total, "mean_ms": ms(self.mean()),
                "p50_ms": ms(self.percentile(50)), "p90_ms": ms(self.percentile(90)),
                "p99_ms": ms(self.percentile(99)), "p999_ms": ms(self.percentile(99.9)),
                "max_ms": ms(self.max_us / 1e6 if self.total else None)}

    def to_dict(self) -> dict:
        return {"counts": {str(k): v for k, v in self.counts.items()}, "total": self.total,
                "max_us": self.max_us, "min_us": self.min_us, "sum_us": self.sum_us}

    @classmethod
    def from_dict(cls, d: dict) -> "Histogram":
        h = cls()
        h.counts = {int(k): v for k, v in d["counts"].items()}
        h.total, h.max_us, h.min_us, h.sum_us = d["total"], d["max_us"], d["min_us"], d["sum_us"]
        return h
