"""Maintenance operations on a running member: snapshot export, hashes and
defragmentation (etcd's ``maintenance.go``, ``mvcc/hash.go`` and
``backend.Defrag``).

:class:`Maintenance` works on the member's current backend; the server's
facade calls in.  Hash, snapshot and defrag are local to the member (not
proposed), as in etcd.  One lock orders them: no defrag swaps the file under
a snapshot's or a hash's read transaction.

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
"""
from __future__ import annotations

import asyncio
import logging
import queue
import time

from pyetcd import errors
from pyetcd.mvcc import revision as R
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.storage import schema
from pyetcd.storage.etcd_snapshot import crc32c, write_snapshot
from pyetcd.util.sizes import human_bytes

log = logging.getLogger("pyetcd.maintenance")

SNAPSHOT_CHUNK = 1024 * 1024  # etcd sends 32 KiB; larger chunks cost Python less
HASH_STEP = 1 << 20           # bytes hashed per crc32c call


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
        if len(buf) > HASH_STEP:
            h = crc32c(buf, h)
            buf = bytearray()
    return crc32c(buf, h) if buf else h


class Maintenance:
    """``stores()``: the member's current state (its backend is replaced by
    a snapshot install, so it is looked up on every call); ``header(h,
    revision=0)`` fills a response header."""

    def __init__(self, stores, header):
        self.stores = stores
        self.header = header
        self.lock = asyncio.Lock()

    async def flush(self) -> None:
        """Commit everything applied so far to LMDB."""
        backend = self.stores().backend
        ops, _ = await backend.commit_async()
        backend.release(ops)

    # ---- snapshot ---------------------------------------------------------------------
    async def snapshot(self):
        """SnapshotResponses as etcd's maintenance server sends them: chunks
        of the database with remaining_bytes counting down, then the sha256
        with remaining_bytes 0.

        The export is piped: a worker thread writes the bbolt file from one
        LMDB read transaction straight into the stream (its size is known
        once the pages are planned, before the first byte), so the first
        chunk leaves as soon as the plan is done and no temporary file is
        needed."""
        start = time.monotonic()
        loop = asyncio.get_running_loop()
        async with self.lock:
            await self.flush()
            pipe = _Pipe()
            producer = loop.run_in_executor(None, _export, self.stores().backend, pipe)
            try:
                total = await self._size(pipe)
                async for remaining, blob in self._chunks(pipe, total):
                    resp = pb.SnapshotResponse(remaining_bytes=remaining, blob=blob)
                    self.header(resp.header)
                    yield resp
            finally:
                pipe.closed = True
                if not producer.done():
                    await asyncio.shield(producer)  # the read transaction ends with it
        log.info("sent database snapshot to client; total-bytes=%d took=%.3fs", total,
                 time.monotonic() - start)

    @staticmethod
    async def _size(pipe: "_Pipe") -> int:
        first = await asyncio.get_running_loop().run_in_executor(None, pipe.q.get)
        if isinstance(first, BaseException):
            raise first
        total = first[1]
        log.info("sending database snapshot to client; total-bytes=%d size=%s", total,
                 human_bytes(total))
        return total

    @staticmethod
    async def _chunks(pipe: "_Pipe", total: int):
        loop = asyncio.get_running_loop()
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
                yield total - sent, blob
        if sent != total or len(tail) != 32:
            raise errors.EtcdError("Unknown", "etcdserver: snapshot export ended early")
        yield 0, bytes(tail)

    # ---- hashes -----------------------------------------------------------------------
    async def hash_kv(self, rev: int) -> pb.HashKVResponse:
        """etcd's HashByRev: the hash of the key bucket up to ``rev`` (0: the
        current revision), with the compact revision it was taken at."""
        kv = self.stores().kv
        compact_rev, current = kv.compact_main_rev, kv.current_rev
        if 0 < rev < compact_rev:
            raise errors.COMPACTED()
        if rev > 0 and rev > current:
            raise errors.FUTURE_REV()
        if rev == 0:
            rev = current
        async with self.lock:
            await self.flush()
            backend = self.stores().backend
            end = R.main_bytes(rev + 1)

            def work() -> int:
                with backend.read_view() as items:
                    keep = kv.hash_keep(items, rev)
                    return kv_hash(items(schema.KEY, end=end), compact_rev, rev, keep)

            h = await asyncio.get_running_loop().run_in_executor(None, work)
        resp = pb.HashKVResponse(hash=h, compact_revision=compact_rev)
        resp.header.revision = current
        self.header(resp.header)
        return resp

    async def hash(self) -> pb.HashResponse:
        """etcd's Hash RPC: the whole backend, at the current revision."""
        async with self.lock:
            await self.flush()
            st = self.stores()
            rev = st.kv.current_rev
            h = await asyncio.get_running_loop().run_in_executor(None, _hash_all, st.backend)
        resp = pb.HashResponse(hash=h)
        self.header(resp.header, rev)
        return resp

    # ---- defrag -----------------------------------------------------------------------
    async def defragment(self) -> pb.DefragmentResponse:
        """Rewrite the backend compactly.  A cancelled caller (client gone)
        does not cancel the defragmentation: the writer must be resumed
        whatever happens."""
        await asyncio.shield(asyncio.ensure_future(self._defragment()))
        resp = pb.DefragmentResponse()
        self.header(resp.header)
        return resp

    async def _defragment(self) -> tuple[int, int]:
        async with self.lock:
            backend = self.stores().backend
            await self.flush()
            before, in_use = backend.size(), backend.size_in_use()
            log.info("defragmenting; path=%s current-db-size-bytes=%d "
                     "current-db-size-in-use-bytes=%d", backend.path, before, in_use)
            start = time.monotonic()
            tmp = await asyncio.get_running_loop().run_in_executor(None, backend.defrag_copy)
            try:
                backend.defrag_swap(tmp)   # on the loop: no reader sees the swap
            except BaseException:
                log.exception("defragmentation failed")
                raise
            after = backend.size()
            log.info("finished defragmenting directory; path=%s current-db-size-bytes-diff=%d "
                     "current-db-size-bytes=%d current-db-size=%s took=%.3fs", backend.path,
                     after - before, after, human_bytes(after), time.monotonic() - start)
            return before, after


def _export(backend, pipe: "_Pipe") -> None:
    """The snapshot's producer (a worker thread): one read transaction,
    written as an etcd bbolt file into ``pipe``."""
    try:
        with backend.read_view() as items:
            buckets = {name.encode(): items(name, schema.is_member_local)
                       for name in schema.BUCKETS}
            write_snapshot(pipe, buckets,
                           reopen=lambda name: items(name.decode(), schema.is_member_local),
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


def _hash_all(backend) -> int:
    """crc32c over every bucket (name, then keys and values) but the keys
    etcd's hash ignores."""
    h = 0
    with backend.read_view() as items:
        for name in sorted(schema.BUCKETS):
            h = crc32c(name.encode(), h)
            buf = bytearray()
            for k, v in items(name, schema.is_hash_ignored):
                buf += k
                buf += v
                if len(buf) >= HASH_STEP:
                    h = crc32c(buf, h)
                    buf = bytearray()
            if buf:
                h = crc32c(buf, h)
    return h


def alarm_errors(alarms) -> list[str]:
    """Status.errors: one line per active alarm, as etcd (gogo text form)."""
    return [f"memberID:{m.memberID} alarm:{pb.AlarmType.Name(m.alarm)} " for m in alarms.get()]
