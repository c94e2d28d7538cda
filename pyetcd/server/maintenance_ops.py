"""Maintenance operations on a running member: snapshot export, hashes,
defragmentation and the backend quota (etcd's ``maintenance.go``,
``mvcc/hash.go``, ``backend.Defrag`` and ``quota.go``).

Everything here takes the :class:`~pyetcd.server.server.EtcdServer` and works
on its backend; the gRPC layer (api/maintenance.py, api/kv.py, api/lease.py)
calls in.  Hash, snapshot and defrag are local to the member (not proposed),
as in etcd; only the NOSPACE alarm travels through the log.

- Snapshot: every pending change is committed, then one LMDB read
  transaction is exported as an etcd bbolt file (all of etcd's buckets, with
  meta/consistent_index and term) followed by its sha256, piped from a
  worker thread into the response stream (two passes over the transaction:
  keys and sizes to plan the pages, then the values; never all in memory).
- HashKV: crc32c (Castagnoli) of the bucket name ``key`` then every
  (revision key, value) of the key bucket up to the revision, skipping the
  revisions below the compaction that a compaction at that revision would not
  keep: the same data gives the same value on every member and in real etcd.
- Hash: crc32c over every bucket (name, then keys and values) except
  meta/consistent_index and meta/term (etcd's DefaultIgnores) and pyetcd's
  member-local meta/local_member_id.
- Defragment: the writer is paused after its current transaction, LMDB
  writes a compacted copy, the copy replaces the file on the event loop and
  the writer resumes; requests that commit meanwhile wait.
- Quota (etcd's backendQuota): a Put, Txn or LeaseGrant whose cost would take
  the database over ``--quota-backend-bytes`` is refused with ``database
  space exceeded`` and the member proposes a NOSPACE alarm; once the alarm is
  applied every member refuses writes (the capped applier in apply.py) until
  ``alarm disarm``.
"""
from __future__ import annotations

import asyncio
import logging
import os
import queue
import time

from pyetcd import errors
from pyetcd.mvcc import revision as R
from pyetcd.mvcc.kvstore import CompactedError, FutureRevError
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.pyetcdpb.internal_pb2 import InternalRequest
from pyetcd.storage.backend import BUCKETS
from pyetcd.storage.etcd_snapshot import crc32c, write_snapshot

log = logging.getLogger("pyetcd.maintenance")

SNAPSHOT_CHUNK = 1024 * 1024  # etcd sends 32 KiB; larger chunks cost Python less

# etcd's quota.go cost model
KV_OVERHEAD = 256
LEASE_OVERHEAD = 64


def _skip_local(bucket: str, key: bytes) -> bool:
    """Member-local entries that are not part of the replicated state."""
    return bucket == "meta" and key == b"local_member_id"


def _skip_hash(bucket: str, key: bytes) -> bool:
    return bucket == "meta" and key in (b"consistent_index", b"term", b"local_member_id")


def _lock(server) -> asyncio.Lock:
    lk = getattr(server, "_maintenance_lock", None)
    if lk is None:
        lk = server._maintenance_lock = asyncio.Lock()
    return lk


async def flush_backend(server) -> None:
    """Commit everything applied so far to LMDB."""
    ops, _ = await server.backend.commit_async()
    server.backend.release(ops)


# --------------------------------------------------------------------------- snapshot


class _Pipe:
    """The exporting thread's ``write`` target: cuts the stream into chunks
    for the event loop through a bounded queue (so a slow client slows the
    export instead of filling memory).  ``closed`` stops the producer when
    the client has gone."""

    def __init__(self, depth: int = 8):
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.buf = bytearray()
        self.closed = False

    def put(self, item) -> None:
        while not self.closed:
            try:
                self.q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise _ClientGone()

    def write(self, b) -> int:
        self.buf += b
        while len(self.buf) >= SNAPSHOT_CHUNK:
            self.put(bytes(self.buf[:SNAPSHOT_CHUNK]))
            del self.buf[:SNAPSHOT_CHUNK]
        return len(b)

    def finish(self) -> None:
        if self.buf:
            self.put(bytes(self.buf))
            self.buf = bytearray()


class _ClientGone(Exception):
    """The client hung up: the exporting thread stops writing."""


async def snapshot_stream(server):
    """Yield SnapshotResponses as etcd's maintenance server does: chunks of
    the database with remaining_bytes counting down, then one message with
    the sha256 (remaining_bytes 0).

    The export is piped: a worker thread writes the bbolt file from one LMDB
    read transaction straight into the response stream (its size is known
    once the pages are planned, before the first byte), so the first chunk
    leaves as soon as the plan is done and no temporary file is needed."""
    start = time.monotonic()
    loop = asyncio.get_running_loop()
    async with _lock(server):  # no defrag swaps the file under the read transaction
        await flush_backend(server)
        backend = server.backend
        pipe = _Pipe()

        def produce() -> None:
            try:
                with backend.read_view() as items:
                    buckets = {name.encode(): items(name, _skip_local) for name in BUCKETS}
                    write_snapshot(pipe, buckets,
                                   reopen=lambda name: items(name.decode(), _skip_local),
                                   on_size=lambda n: pipe.put(("size", n)))
                pipe.finish()
                pipe.put(None)
            except _ClientGone:
                return  # nobody is reading: end the read transaction
            except BaseException as exc:  # noqa: BLE001 - handed to the stream
                try:
                    pipe.put(exc)
                except _ClientGone:
                    return

        producer = loop.run_in_executor(None, produce)
        try:
            first = await loop.run_in_executor(None, pipe.q.get)
            if isinstance(first, BaseException):
                raise first
            total = first[1]
            log.info("sending database snapshot to client; total-bytes=%d size=%s", total,
                     _human(total))
            sent, tail = 0, bytearray()
            while True:
                item = pipe.q.get_nowait() if not pipe.q.empty() else \
                    await loop.run_in_executor(None, pipe.q.get)
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                # the database's bytes, then its sha256 (the last 32 bytes)
                room = total - sent
                blob, extra = (item, b"") if len(item) <= room else (item[:room], item[room:])
                tail += extra
                if blob:
                    sent += len(blob)
                    resp = pb.SnapshotResponse(remaining_bytes=total - sent, blob=blob)
                    server.header(resp.header)
                    yield resp
            if sent != total or len(tail) != 32:
                raise errors.EtcdError("Unknown", "etcdserver: snapshot export ended early")
            resp = pb.SnapshotResponse(remaining_bytes=0, blob=bytes(tail))
            server.header(resp.header)
            yield resp
        finally:
            pipe.closed = True
            if not producer.done():
                await asyncio.shield(producer)  # the read transaction ends with it
    log.info("sent database snapshot to client; total-bytes=%d took=%.3fs", total,
             time.monotonic() - start)


def _human(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return str(n)


# --------------------------------------------------------------------------- hashes


def kv_hash(items, compact_rev: int, rev: int, keep: set[int]) -> int:
    """etcd's kvHasher over (revision key, value) pairs of the key bucket."""
    h = crc32c(b"key")
    upper = R.rev(rev + 1)
    lower = R.rev(compact_rev + 1) if compact_rev >= -1 else 0
    buf = bytearray()
    for k, v in items:
        r, tomb = R.from_bytes(k)
        if r >= upper:
            continue
        if r < lower and keep and r not in keep:
            continue
        if tomb and R.main_of(r) == compact_rev:
            continue
        buf += k
        buf += v
        if len(buf) > 1 << 20:
            h = crc32c(buf, h)
            buf = bytearray()
    return crc32c(buf, h) if buf else h


async def hash_kv(server, rev: int) -> tuple[int, int, int]:
    """(hash, compact revision, current revision) as etcd's HashByRev."""
    kv = server.kv
    compact_rev, current = kv.compact_main_rev, kv.current_rev
    if 0 < rev < compact_rev:
        raise errors.COMPACTED()
    if rev > 0 and rev > current:
        raise errors.FUTURE_REV()
    if rev == 0:
        rev = current
    keep = kv.index.keep(rev)
    async with _lock(server):
        await flush_backend(server)
        backend = server.backend
        end = R.main_bytes(rev + 1)

        def work() -> int:
            with backend.read_view() as items:
                return kv_hash(items("key", end=end), compact_rev, rev, keep)

        h = await asyncio.get_running_loop().run_in_executor(None, work)
    return h, compact_rev, current


async def hash_backend(server) -> tuple[int, int]:
    """(hash of the whole backend, current revision) as etcd's Hash RPC."""
    async with _lock(server):
        await flush_backend(server)
        rev = server.kv.current_rev
        backend = server.backend

        def work() -> int:
            h = 0
            with backend.read_view() as items:
                for name in sorted(BUCKETS):
                    h = crc32c(name.encode(), h)
                    buf = bytearray()
                    for k, v in items(name, _skip_hash):
                        buf += k
                        buf += v
                        if len(buf) >= 1 << 20:
                            h = crc32c(buf, h)
                            buf = bytearray()
                    if buf:
                        h = crc32c(buf, h)
            return h

        return await asyncio.get_running_loop().run_in_executor(None, work), rev


# --------------------------------------------------------------------------- defrag


async def defragment(server) -> tuple[int, int]:
    """Rewrite the backend compactly; returns (size before, size after).
    A cancelled caller (client gone) does not cancel the defragmentation:
    the writer must be resumed whatever happens."""
    return await asyncio.shield(asyncio.ensure_future(_defragment(server)))


async def _defragment(server) -> tuple[int, int]:
    async with _lock(server):
        backend = server.backend
        await flush_backend(server)
        before, in_use = backend.size(), backend.size_in_use()
        log.info("defragmenting; path=%s current-db-size-bytes=%d current-db-size-in-use-bytes=%d",
                 backend.path, before, in_use)
        start = time.monotonic()
        loop = asyncio.get_running_loop()
        tmp = await loop.run_in_executor(None, backend.defrag_copy)
        try:
            backend.defrag_swap(tmp)   # on the loop: no reader sees the swap
        except BaseException:
            log.exception("defragmentation failed")
            raise
        after = backend.size()
        log.info("finished defragmenting directory; path=%s current-db-size-bytes-diff=%d "
                 "current-db-size-bytes=%d current-db-size=%s took=%.3fs", backend.path,
                 after - before, after, _human(after), time.monotonic() - start)
        return before, after


# --------------------------------------------------------------------------- quota


def quota_bytes(server) -> int:
    return server.cfg.quota_bytes


def cost(request) -> int:
    """etcd's quota cost of a request (quota.go)."""
    if isinstance(request, pb.PutRequest):
        return KV_OVERHEAD + len(request.key) + len(request.value)
    if isinstance(request, pb.TxnRequest):
        def side(ops):
            return sum(KV_OVERHEAD + (len(op.request_put.key) + len(op.request_put.value)
                                      if op.WhichOneof("request") == "request_put" else 0)
                       for op in ops)
        return max(side(request.success), side(request.failure))
    if isinstance(request, pb.LeaseGrantRequest):
        return LEASE_OVERHEAD
    return 0


def available(server, request) -> bool:
    return server.backend.size() + cost(request) < quota_bytes(server)


def _raise_alarm(server) -> None:
    if getattr(server, "_nospace_raising", False) or server.alarms.has(pb.NOSPACE):
        return
    server._nospace_raising = True

    async def go():
        try:
            req = InternalRequest()
            req.alarm.CopyFrom(pb.AlarmRequest(action=pb.AlarmRequest.ACTIVATE,
                                               memberID=server.member_id, alarm=pb.NOSPACE))
            await server.propose(req)
        except errors.EtcdError as exc:
            log.warning("failed to raise the NOSPACE alarm: %s", exc.message)
        finally:
            server._nospace_raising = False

    log.warning("database space exceeded; raising alarm; quota-size-bytes=%d current-db-size-bytes=%d",
                quota_bytes(server), server.backend.size())
    asyncio.get_running_loop().create_task(go())


def check_quota(server, request) -> None:
    """etcd's quotaKVServer / quotaLeaseServer check, before proposing."""
    if available(server, request):
        return
    _raise_alarm(server)
    raise errors.NO_SPACE()


def _install_applier(server) -> None:
    """Give the applier etcd's quotaApplierV3 behaviour: a write that took the
    backend over the quota is applied but answered with NOSPACE, and the
    member raises the alarm."""
    applier = server.applier
    applier.quota_ok = lambda request: available(server, request)
    applier.on_nospace = lambda: _raise_alarm(server)


def install(server) -> None:
    """Wire the quota into the server's applier (again after a snapshot from
    the leader replaced the state)."""
    _install_applier(server)
    server.state_hooks.append(lambda: _install_applier(server))


def errors_of(server) -> list[str]:
    """Status.errors: one line per active alarm, as etcd (gogo text form)."""
    return [f"memberID:{m.memberID} alarm:{pb.AlarmType.Name(m.alarm)} "
            for m in server.alarms.get()]


def map_mvcc_error(exc: Exception) -> errors.EtcdError:
    if isinstance(exc, CompactedError):
        return errors.COMPACTED()
    if isinstance(exc, FutureRevError):
        return errors.FUTURE_REV()
    raise exc
