"""Pending linearizable reads on the leader (ReadIndex, "safe" mode).

Rules:
- Each read request is keyed by its context bytes; a request is released
  when a quorum of voters acknowledged a heartbeat carrying its context or
  the context of any *later* request (acks are cumulative, so one heartbeat
  round confirms every read queued before it: reads are batched).
- The read index of a request is the leader's commit index when the request
  arrived.
"""
from __future__ import annotations

from .types import Message, ReadOnlyOption


class ReadIndexStatus:
    __slots__ = ("req", "index", "acks")

    def __init__(self, req: Message, index: int) -> None:
        self.req = req
        self.index = index
        self.acks: dict[int, bool] = {}


class ReadOnly:
    __slots__ = ("option", "pending", "queue")

    def __init__(self, option: ReadOnlyOption) -> None:
        self.option = option
        self.pending: dict[bytes, ReadIndexStatus] = {}
        self.queue: list[bytes] = []

    def add_request(self, index: int, m: Message) -> None:
        ctx = m.context
        if ctx in self.pending:
            return
        self.pending[ctx] = ReadIndexStatus(m, index)
        self.queue.append(ctx)

    def recv_ack(self, id: int, ctx: bytes) -> dict[int, bool] | None:
        rs = self.pending.get(ctx)
        if rs is None:
            return None
        rs.acks[id] = True
        return rs.acks

    def advance(self, ctx: bytes) -> list[ReadIndexStatus]:
        """Release every request up to and including ``ctx``."""
        if ctx not in self.pending:
            return []
        i = self.queue.index(ctx)
        released = self.queue[:i + 1]
        del self.queue[:i + 1]
        return [self.pending.pop(c) for c in released]

    def last_pending_request_ctx(self) -> bytes:
        return self.queue[-1] if self.queue else b""
