"""EtcdServer: propose-and-wait, the apply loop, member identity, timers.

A write travels: gRPC handler -> :meth:`EtcdServer.propose` (validated,
encoded as an ``InternalRequest`` with a member-unique id, a waiter
registered) -> the commit pipeline -> :meth:`EtcdServer.apply_entries`
(committed entries in index order, one backend batch for the whole run,
``consistent_index`` stored with it, entries at or below it skipped) -> the
waiter gets the response.

The commit pipeline is pluggable (:class:`LocalLog` here: a single member
without Raft that commits every proposal batch at once and acknowledges after
the backend has fsynced it).  Proposals that arrive while a batch is being
made durable are gathered into the next batch, so the cost of an fsync is
shared by every request in it.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import struct
import time

from pyetcd import errors
from pyetcd.lease.lessor import Lessor
from pyetcd.mvcc.kvstore import KVStore
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.pyetcdpb.internal_pb2 import InternalRequest
from pyetcd.storage.backend import Backend

from .alarms import AlarmStore
from .apply import Applier
from .config import Config

log = logging.getLogger("pyetcd.server")
_U64 = struct.Struct(">Q")


def compute_member_id(peer_urls: list[str], token: str, now: int | None = None) -> int:
    b = "".join(sorted(peer_urls)).encode() + token.encode()
    if now is not None:
        b += str(now).encode()
    return _U64.unpack(hashlib.sha1(b).digest()[:8])[0]


def compute_cluster_id(member_ids: list[int]) -> int:
    b = b"".join(_U64.pack(i) for i in sorted(member_ids))
    return _U64.unpack(hashlib.sha1(b).digest()[:8])[0]


class IDGenerator:
    """Member-unique request ids: low 16 bits of the member id, then a
    millisecond timestamp and a counter (etcd's idutil layout)."""

    def __init__(self, member_id: int, now_ms: int):
        self.prefix = (member_id & 0xFFFF) << 48
        self.suffix = (now_ms & ((1 << 40) - 1)) << 8

    def next(self) -> int:
        self.suffix += 1
        return self.prefix | (self.suffix & ((1 << 48) - 1))


class Member:
    __slots__ = ("id", "name", "peer_urls", "client_urls", "is_learner")

    def __init__(self, mid: int, name: str, peer_urls, client_urls=(), is_learner=False):
        self.id = mid
        self.name = name
        self.peer_urls = list(peer_urls)
        self.client_urls = list(client_urls)
        self.is_learner = is_learner

    def to_pb(self) -> pb.Member:
        return pb.Member(ID=self.id, name=self.name, peerURLs=self.peer_urls,
                         clientURLs=self.client_urls, isLearner=self.is_learner)


class EtcdServer:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.data_dir = cfg.data_dir_path
        self.max_request_bytes = cfg.max_request_bytes
        self.max_txn_ops = cfg.max_txn_ops
        peer_urls = cfg.initial_advertise_peer_urls
        self.member_id = compute_member_id(peer_urls, cfg.initial_cluster_token)
        self.cluster_id = compute_cluster_id([self.member_id])
        self.members = {self.member_id: Member(self.member_id, cfg.name, peer_urls,
                                               cfg.advertise_client_urls)}
        db_path = os.path.join(self.data_dir, "member", "snap", "db")
        quota = cfg.quota_bytes
        self.backend = Backend(db_path, map_size=quota + max(quota // 4, 256 * 1024**2), durable=True)
        election_ticks = max(1, cfg.election_timeout // cfg.heartbeat_interval)
        min_ttl = -(-(3 * election_ticks // 2) * cfg.heartbeat_interval // 1000)
        self.lessor = Lessor(self.backend, min_ttl=max(1, min_ttl))
        self.kv = KVStore(self.backend, self.lessor)
        self.alarms = AlarmStore(self.backend)
        self.applier = Applier(self.kv, self.lessor, self.alarms)
        self.applied_index, self.term = self.kv.consistent_index()
        self.term = max(self.term, 1)
        self.committed_index = self.applied_index
        self.leader_id = self.member_id
        self.idgen = IDGenerator(self.member_id, int(time.time() * 1000))
        self._waiters: dict[int, asyncio.Future] = {}
        self.log = LocalLog(self)
        self._tasks: list[asyncio.Task] = []
        self.stopped = False

    # ---- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self.lessor.promote(extend=0.0)
        self._tasks.append(asyncio.get_running_loop().create_task(self._lease_loop()))

    async def stop(self) -> None:
        self.stopped = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        await self.log.drain()
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(errors.STOPPED())
        self.backend.close()

    # ---- proposals ----------------------------------------------------------------------
    def propose_nowait(self, req: InternalRequest) -> asyncio.Future:
        if self.stopped:
            raise errors.STOPPED()
        rid = self.idgen.next()
        req.header.ID = rid
        data = req.SerializeToString()
        if len(data) > self.max_request_bytes:
            raise errors.REQUEST_TOO_LARGE()
        fut = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        self.log.propose(data)
        return fut

    async def propose(self, req: InternalRequest):
        result = await self.propose_nowait(req)
        if isinstance(result, errors.EtcdError):
            raise result
        return result

    def next_lease_id(self) -> int:
        return self.idgen.next() & ((1 << 63) - 1)

    # ---- apply ----------------------------------------------------------------------------
    def apply_entries(self, entries: list[tuple[int, int, bytes]]) -> list[tuple[int, object]]:
        """Apply committed (index, term, data) entries in order; returns the
        (request id, result) pairs for the waiters."""
        results = []
        applier = self.applier
        parse = InternalRequest.FromString
        last_index, last_term = self.applied_index, self.term
        for index, term, data in entries:
            if index <= self.applied_index:
                continue  # already in the backend (consistent_index guard)
            last_index, last_term = index, term
            if not data:
                continue
            req = parse(data)
            try:
                result = self._apply_one(applier, req)
            except errors.EtcdError as exc:
                result = exc
            results.append((req.header.ID, result))
        if last_index > self.applied_index:
            self.kv.set_consistent_index(last_index, last_term)
            self.applied_index = last_index
        return results

    def _apply_one(self, applier: Applier, req: InternalRequest):
        if req.HasField("put"):
            return applier.put(req.put)
        if req.HasField("delete_range"):
            return applier.delete_range(req.delete_range)
        if req.HasField("txn"):
            return applier.txn(req.txn)
        if req.HasField("compaction"):
            return applier.compaction(req.compaction)
        if req.HasField("lease_grant"):
            return applier.lease_grant(req.lease_grant)
        if req.HasField("lease_revoke"):
            return applier.lease_revoke(req.lease_revoke)
        if req.HasField("alarm"):
            return applier.alarm(req.alarm)
        if req.HasField("lease_checkpoint"):
            return applier.lease_checkpoint(req.lease_checkpoint)
        raise errors.EtcdError("Unknown", "etcdserver: unknown request in log entry")

    def resolve(self, results: list[tuple[int, object]]) -> None:
        waiters = self._waiters
        for rid, result in results:
            fut = waiters.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_result(result)

    # ---- reads ------------------------------------------------------------------------
    async def linearizable_read(self) -> None:
        """Wait until this member has applied everything committed before now.
        With a single member every acknowledged write is already applied."""
        await self.log.read_barrier()

    async def alarm(self, request: pb.AlarmRequest) -> pb.AlarmResponse:
        req = InternalRequest()
        req.alarm.CopyFrom(request)
        return await self.propose(req)

    # ---- leases ------------------------------------------------------------------------
    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for lid in self.lessor.expired():
                req = InternalRequest()
                req.lease_revoke.ID = lid
                try:
                    await self.propose(req)
                except errors.EtcdError as exc:
                    if exc.message != errors.LEASE_NOT_FOUND.message:
                        log.warning("failed to revoke expired lease %x: %s", lid, exc.message)

    # ---- status ----------------------------------------------------------------------
    def header(self, h: pb.ResponseHeader, revision: int = 0) -> None:
        h.cluster_id = self.cluster_id
        h.member_id = self.member_id
        h.raft_term = self.term
        if not h.revision:
            h.revision = revision or self.kv.current_rev


class LocalLog:
    """The commit pipeline of a single member without Raft: each batch of
    proposals is applied at once and acknowledged after one backend fsync."""

    def __init__(self, server: EtcdServer):
        self.server = server
        self.pending: list[bytes] = []
        self.scheduled = False
        self.inflight: set[asyncio.Future] = set()

    def propose(self, data: bytes) -> None:
        self.pending.append(data)
        if not self.scheduled and not self.inflight:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Apply everything pending as one batch.  While a batch's fsync is in
        flight new proposals only accumulate; the fsync's completion flushes
        them, so the batch size adapts to the disk's speed."""
        self.scheduled = False
        batch, self.pending = self.pending, []
        if not batch:
            return
        s = self.server
        first = s.committed_index + 1
        s.committed_index += len(batch)
        entries = [(first + i, s.term, data) for i, data in enumerate(batch)]
        results = s.apply_entries(entries)
        fut = asyncio.wrap_future(s.backend.commit())
        self.inflight.add(fut)
        fut.add_done_callback(lambda f: self._committed(f, results))

    def _committed(self, fut: asyncio.Future, results) -> None:
        self.inflight.discard(fut)
        if self.pending and not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)
        s = self.server
        if fut.cancelled() or fut.exception() is not None:
            exc = fut.exception() if not fut.cancelled() else None
            log.critical("backend commit failed; no further writes are acknowledged: %s", exc)
            s.resolve([(rid, errors.EtcdError("Unavailable", f"etcdserver: backend write failed: {exc}"))
                       for rid, _ in results])
            return
        ops, _ = fut.result()
        s.backend.release(ops)
        s.resolve(results)

    async def read_barrier(self) -> None:
        return None

    async def drain(self) -> None:
        if self.pending:
            self.flush()
        while self.inflight:
            await asyncio.wait(list(self.inflight))
