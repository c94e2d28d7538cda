"""Member-unique ids for requests and leases (etcd's ``pkg/idutil``)."""
from __future__ import annotations


class IDGenerator:
    """Member-unique request ids: low 16 bits of the member id, then a
    millisecond timestamp and a counter (etcd's idutil layout)."""

    def __init__(self, member_id: int, now_ms: int):
        self.prefix = (member_id & 0xFFFF) << 48
        self.suffix = (now_ms & ((1 << 40) - 1)) << 8

    def next(self) -> int:
        self.suffix += 1
        return self.prefix | (self.suffix & ((1 << 48) - 1))
