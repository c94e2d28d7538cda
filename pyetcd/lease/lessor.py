"""The lessor: leases, their TTLs and the keys attached to them.

State changes (grant, revoke, checkpoint) arrive through the apply path, so
every member holds the same leases; *expiry* is decided only by the leader
(the member whose lessor is promoted), which proposes a revoke for each
expired lease.  Followers keep leases without a deadline, as etcd's do; when a
new leader has applied every entry of the terms before its own (its empty
entry), it gives every lease a fresh full TTL (etcd's ``Promote`` with
extension), so a leader change never revokes a lease early, and a revoke the
old leader proposed is applied before any lease is renewed.  An expired lease
is not renewed: its revoke may be on its way through Raft (etcd's ``Renew``
waits for the revoke and answers "not found").

Leases are persisted in the backend's ``lease`` bucket (8-byte big-endian ID
-> leasepb.Lease) in the same batch as the apply that changed them, and the
keys attached to each in ``pyetcd_lease_keys`` (so nothing per key is held in
memory or rebuilt at start; the MVCC store's index knows each key's lease).  Time is
an injected monotonic clock (seconds), so tests can drive it.
"""
from __future__ import annotations

import math
import struct
import time
from typing import Callable

from pyetcd.pb.leasepb.lease_pb2 import Lease as LeasePB
from pyetcd.storage import schema

MAX_LEASE_TTL = 9_000_000_000
FOREVER = math.inf
_ID = struct.Struct(">q")


class LeaseNotFound(Exception):
    pass


class NotPrimary(Exception):
    """This lessor does not decide expiry now (a follower, or a leader that
    has not yet applied the entries of earlier terms)."""


class LeaseExpired(Exception):
    """The lease is past its deadline; its revoke is pending."""


class LeaseExists(Exception):
    pass


class LeaseTTLTooLarge(Exception):
    pass


class Lease:
    __slots__ = ("id", "ttl", "remaining_ttl", "expiry")

    def __init__(self, lease_id: int, ttl: int, remaining_ttl: int = 0):
        self.id = lease_id
        self.ttl = ttl
        self.remaining_ttl = remaining_ttl
        self.expiry = FOREVER

    def remaining(self, now: float) -> float:
        if self.expiry == FOREVER:
            return float(self.ttl)
        return self.expiry - now


class Lessor:
    def __init__(self, backend, min_ttl: int = 2, clock: Callable[[], float] = time.monotonic):
        self.backend = backend
        self.min_ttl = min_ttl
        self.clock = clock
        self.leases: dict[int, Lease] = {}
        self.primary = False
        self._restore()

    def _restore(self) -> None:
        for _, v in self.backend.iterate(schema.LEASE):
            pb = LeasePB.FromString(v)
            ttl = max(pb.TTL, self.min_ttl)
            self.leases[pb.ID] = Lease(pb.ID, ttl, pb.RemainingTTL)

    def _persist(self, lease: Lease) -> None:
        pb = LeasePB(ID=lease.id, TTL=lease.ttl, RemainingTTL=lease.remaining_ttl)
        self.backend.put(schema.LEASE, _ID.pack(lease.id), pb.SerializeToString())

    # ---- applied state changes ----------------------------------------------------------
    def grant(self, lease_id: int, ttl: int) -> Lease:
        if lease_id == 0:
            raise LeaseNotFound()
        if ttl > MAX_LEASE_TTL:
            raise LeaseTTLTooLarge()
        if lease_id in self.leases:
            raise LeaseExists()
        lease = Lease(lease_id, max(ttl, self.min_ttl))
        if self.primary:
            lease.expiry = self.clock() + lease.ttl
        self.leases[lease_id] = lease
        self._persist(lease)
        return lease

    def revoke_keys(self, lease_id: int) -> list[bytes]:
        """The keys a revoke must delete (sorted, as etcd deletes them)."""
        if lease_id not in self.leases:
            raise LeaseNotFound()
        return self.keys(lease_id)

    def keys(self, lease_id: int) -> list[bytes]:
        """The keys attached to ``lease_id``, sorted."""
        lo, hi = schema.lease_prefix(lease_id)
        return sorted(v for _, v in self.backend.scan(schema.LEASE_KEYS, lo, hi))

    def remove(self, lease_id: int) -> None:
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            return
        lo, hi = schema.lease_prefix(lease_id)
        for k in [k for k, _ in self.backend.scan(schema.LEASE_KEYS, lo, hi)]:
            self.backend.delete(schema.LEASE_KEYS, k)
        self.backend.delete(schema.LEASE, _ID.pack(lease_id))

    def checkpoint(self, lease_id: int, remaining_ttl: int) -> None:
        lease = self.leases.get(lease_id)
        if lease is None:
            return
        lease.remaining_ttl = remaining_ttl
        self._persist(lease)
        if self.primary:
            lease.expiry = self.clock() + remaining_ttl

    # ---- key attachment (called by the kv store) -----------------------------------------
    def lookup(self, lease_id: int) -> Lease | None:
        return self.leases.get(lease_id)

    def attach(self, lease_id: int, key: bytes) -> None:
        if lease_id not in self.leases:
            raise LeaseNotFound()
        self.backend.put(schema.LEASE_KEYS, schema.lease_ikey(lease_id, schema.ikey(key)), key)

    def detach(self, lease_id: int, key: bytes) -> None:
        self.backend.delete(schema.LEASE_KEYS, schema.lease_ikey(lease_id, schema.ikey(key)))

    # ---- leader-only timing ----------------------------------------------------------------
    def promote(self, extend: float = 0.0) -> None:
        """Become the member that decides expiry: every lease gets a deadline."""
        self.primary = True
        now = self.clock()
        for lease in self.leases.values():
            ttl = lease.remaining_ttl if lease.remaining_ttl > 0 else lease.ttl
            lease.expiry = now + ttl + extend

    def demote(self) -> None:
        self.primary = False
        for lease in self.leases.values():
            lease.expiry = FOREVER

    def renew(self, lease_id: int) -> int:
        """Keep-alive on the primary: reset the deadline; returns the TTL granted."""
        if not self.primary:
            raise NotPrimary()
        lease = self.leases.get(lease_id)
        if lease is None:
            raise LeaseNotFound()
        now = self.clock()
        if lease.expiry <= now:
            raise LeaseExpired()
        lease.expiry = now + lease.ttl
        return lease.ttl

    def expired(self, limit: int = 1000) -> list[int]:
        if not self.primary:
            return []
        now = self.clock()
        out = [lid for lid, lease in self.leases.items() if lease.expiry <= now]
        return out[:limit]

    def time_to_live(self, lease_id: int) -> tuple[int, int, list[bytes]]:
        """(remaining TTL in whole seconds, granted TTL, keys)."""
        lease = self.leases.get(lease_id)
        if lease is None:
            raise LeaseNotFound()
        remaining = lease.remaining(self.clock())
        return max(0, int(remaining)), lease.ttl, self.keys(lease_id)
