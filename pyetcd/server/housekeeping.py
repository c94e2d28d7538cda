"""Timers that follow Raft time (the member's ticks): garbage-collector
tuning and lease expiry.

- Every second the young generations are collected and the survivors
  frozen: the key index holds millions of long-lived objects, and a full
  collection rescans them all (150 ms per 300k keys), a latency spike for
  every request.
- Every half second the leader revokes the leases that expired (through the
  log, with root's authority when auth is on, as etcd's WithRoot), at most a
  batch at a time (the lessor's limit).
"""
from __future__ import annotations

import asyncio
import gc
import logging

from pyetcd import errors

log = logging.getLogger("pyetcd.housekeeping")

GC_PERIOD_MS = 1000
LEASE_CHECK_MS = 500


class Housekeeping:
    """``server``: the member (its ``raft`` node, ``lessor`` and
    ``revoke_expired(lease_id)``)."""

    def __init__(self, server, tick_ms: int):
        self.s = server
        self.tick_ms = tick_ms
        self._gc_ticks = 0
        self._lease_ticks = 0

    def on_ticks(self, ticks: int) -> None:
        self._gc_ticks += ticks
        if self._gc_ticks * self.tick_ms >= GC_PERIOD_MS:
            self._gc_ticks = 0
            gc.collect(1)
            gc.freeze()
        self._lease_ticks += ticks
        if self._lease_ticks * self.tick_ms >= LEASE_CHECK_MS:
            self._lease_ticks = 0
            if self.s.raft.is_leader:
                loop = asyncio.get_running_loop()
                for lid in self.s.lessor.expired():
                    loop.create_task(self._revoke(lid))

    async def _revoke(self, lid: int) -> None:
        try:
            await self.s.revoke_expired(lid)
        except errors.EtcdError as exc:
            if exc.message != errors.LEASE_NOT_FOUND.message:
                log.warning("failed to revoke expired lease %x: %s", lid, exc.message)
