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

import gc
import logging

from pyetcd import errors
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.util.tasks import spawn

log = logging.getLogger("pyetcd.housekeeping")

GC_PERIOD_MS = 1000
LEASE_CHECK_MS = 500


class Housekeeping:
    """``server``: the member (its ``raft`` node, ``lessor`` and
    ``propose_request``)."""

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
                for lid in self.s.lessor.expired():
                    spawn(self._revoke(lid), log, f"revoke of expired lease {lid:x}")

    async def _revoke(self, lid: int) -> None:
        try:
            await self.s.propose_request("lease_revoke", pb.LeaseRevokeRequest(ID=lid),
                                         as_root=True)
        except errors.EtcdError as exc:
            if exc.message != errors.LEASE_NOT_FOUND.message:
                log.warning("failed to revoke expired lease %x: %s", lid, exc.message)
