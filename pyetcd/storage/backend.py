"""The LMDB backend: the only module in pyetcd that imports ``lmdb``.

Layout: one LMDB environment in ``<data-dir>/member/snap/db`` (a single file
plus ``db-lock``) with named databases that mirror etcd's bbolt buckets:
``key`` (revision bytes -> mvccpb.KeyValue), ``meta`` (consistent index, term,
compaction marks), ``lease``, ``members``, ``members_removed``, ``cluster``,
``alarm``, ``auth``, ``authUsers``, ``authRoles``, and pyetcd's derived
databases (the key index and the keys of each lease, ``schema.DERIVED``).

Writes are batched the way etcd's backend batches them.  The apply path calls
:meth:`Backend.put` / :meth:`Backend.delete`, which only record the change in
an in-memory *pending* map; reads (:meth:`Backend.get`, :meth:`scan`,
:meth:`last_in`) look in that map first and then in LMDB, so a reader on the
event loop always sees every applied change, committed or not.  :meth:`Backend.commit` hands everything pending to
one writer thread, which applies it in **one** LMDB write transaction and
commits it (with fsync when ``durable`` is set); the pending entries are
dropped only after LMDB holds them.  Many apply batches that arrive while the
writer is busy are folded into its next transaction (group commit).

What is synced when: the write-ahead log already holds every acknowledged
entry (fsynced before it is applied), so the server acknowledges a write
once it is applied, without waiting for LMDB.  The writer thread commits
each transaction with LMDB's data sync but without its meta-page sync
(``metasync=False``): a power cut may undo the last transactions but never
corrupts the file.  :meth:`sync` forces everything out: the server calls it
before it records a Raft snapshot, so the WAL before that snapshot is only
released once LMDB holds its effects on disk.  After a crash, replaying the
WAL from the last snapshot redoes whatever LMDB lost; ``consistent_index``
(stored in the same transaction as the data it covers) makes that replay
skip what LMDB kept.  With ``metasync=True`` (the default, for tools and
tests) every transaction is fully durable when :meth:`commit` resolves.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from bisect import bisect_left
from collections import deque
from concurrent.futures import Future
from typing import Callable, Iterator

import lmdb

from .schema import ALL_DBS, BUCKETS, DERIVED
from .failpoints import BACKEND_AFTER_COMMIT, BACKEND_BEFORE_COMMIT, failpoint


SENDING_SUFFIX = ".db.sending"  # snapshot_copy's files (removed once sent; stale ones at start)

_DELETED = None  # marker value in the pending map for a buffered delete


class BackendError(Exception):
    """The backend could not persist a change (disk full, I/O error)."""


class Backend:
    """LMDB environment with a buffered, group-committing writer thread."""

    def __init__(self, path: str, map_size: int = 2 * 1024**3, *, durable: bool = True,
                 metasync: bool = True):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = path
        self._derived_bytes = 0  # pages of the derived databases, as of the last commit
        self.durable = durable
        self.metasync = metasync and durable
        self.map_size = map_size
        self._open_env()
        # held by the writer around each LMDB write transaction; defrag holds
        # it across its copy and swap so no commit lands in between
        self._write_lock = threading.Lock()
        # held by other threads that read the environment for long (snapshot
        # copies) so defrag never closes it under them
        self._env_users = threading.Lock()
        # bucket -> {key: op}: applied but not yet in LMDB; an op is the tuple
        # (bucket, key, value or _DELETED) handed to the writer, so release()
        # drops exactly the op that was committed (not a later one to the key)
        self._pending: dict[str, dict[bytes, tuple]] = {name: {} for name in ALL_DBS}
        self._sorted: dict[str, list[bytes]] = {}  # sorted pending keys, by bucket (a cache)
        # ops not yet handed to the writer: (bucket, key, value-or-None) or a job
        self._ops: list = []
        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._closed = False
        # the LMDB read transaction the reads of the owner thread share:
        # opened on first use, dropped at every release() (so it is never
        # older than a commit whose pending ops are gone)
        self._rtxn = None
        self._owner = threading.get_ident()   # the thread that reads (the event loop)
        self.on_commit = None  # called (writer thread) with each commit's seconds
        self.failed: BaseException | None = None
        self._thread = threading.Thread(target=self._writer, name="backend-writer", daemon=True)
        self._thread.start()

    def _open_env(self) -> None:
        self.env = lmdb.open(
            self.path, map_size=self.map_size, subdir=False, max_dbs=len(ALL_DBS) + 2,
            sync=self.durable, metasync=self.metasync, readahead=False, lock=True,
            max_readers=256,
        )
        self.dbs = {name: self.env.open_db(name.encode()) for name in ALL_DBS}
        self._psize = self.env.stat()["psize"]
        self._size = None
        with self.env.begin() as t:
            self._derived_bytes = self._psize * sum(
                st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
                for st in (t.stat(self.dbs[name]) for name in DERIVED))

    # ---- writes (event-loop thread) -------------------------------------------------
    def put(self, bucket: str, key: bytes, value: bytes) -> None:
        op = (bucket, key, value)
        self._pending[bucket][key] = op
        self._ops.append(op)
        if self._sorted:
            self._sorted.pop(bucket, None)

    def delete(self, bucket: str, key: bytes) -> None:
        op = (bucket, key, _DELETED)
        self._pending[bucket][key] = op
        self._ops.append(op)
        if self._sorted:
            self._sorted.pop(bucket, None)

    def schedule(self, job: Callable[["WriteTxn"], object]) -> None:
        """Run ``job(txn)`` inside the writer's next transaction, after every
        change recorded before this call (used by compaction)."""
        self._ops.append(job)

    def commit(self) -> Future:
        """Hand every recorded change to the writer; the future resolves with a
        list of the jobs' results once LMDB holds them (synced if durable)."""
        fut: Future = Future()
        if self.failed is not None:
            fut.set_exception(BackendError(str(self.failed)))
            return fut
        ops, self._ops = self._ops, []
        with self._cond:
            self._queue.append((ops, fut))
            self._cond.notify()
        return fut

    async def commit_async(self) -> list:
        fut = self.commit()
        return await asyncio.wrap_future(fut)

    def release(self, ops: list) -> None:
        """Drop committed ops from the pending map (event-loop thread)."""
        self.drop_reader()
        pending, srt = self._pending, self._sorted
        for op in ops:
            if isinstance(op, tuple):
                d = pending[op[0]]
                if d.get(op[1]) is op:
                    del d[op[1]]
                    if srt:
                        srt.pop(op[0], None)

    # ---- reads (event-loop thread) --------------------------------------------------
    def reader(self):
        """The calling thread's shared LMDB read transaction (see _rtxn): what
        reads without a ``txn`` of their own use; with the pending map over
        it, it shows every applied change."""
        t = self._rtxn
        if t is not None and threading.get_ident() == self._owner:
            return t
        t = self.env.begin(buffers=False)
        if threading.get_ident() == self._owner:
            self._rtxn = t
        return t   # another thread's: its own, gone with the last reference

    def drop_reader(self) -> None:
        t, self._rtxn = self._rtxn, None
        if t is not None:
            t.abort()

    def get(self, bucket: str, key: bytes, txn=None) -> bytes | None:
        op = self._pending[bucket].get(key)
        if op is not None:
            return op[2]
        return (txn or self.reader()).get(key, db=self.dbs[bucket])

    def iterate(self, bucket: str, start: bytes = b"", end: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Committed items of a bucket in key order (start <= k < end).

        Only for use when nothing is pending (start-up, snapshot export)."""
        with self.env.begin(db=self.dbs[bucket], buffers=False) as t:
            cur = t.cursor()
            if not cur.set_range(start):
                return
            for k, v in cur:
                if end is not None and k >= end:
                    break
                yield k, v

    def _pending_keys(self, bucket: str) -> list[bytes]:
        keys = self._sorted.get(bucket)
        if keys is None:
            keys = self._sorted[bucket] = sorted(self._pending[bucket])
        return keys

    def scan(self, bucket: str, start: bytes, end: bytes | None = None,
             txn=None) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of a bucket with start <= key < end (end None: no bound)
        in key order, the pending (applied, not yet committed) changes merged
        over LMDB's: a pending value replaces the committed one, a pending
        delete hides it.  Event-loop thread, like :meth:`get`; consume it
        before writing to the same bucket."""
        if txn is None:
            txn = self.reader()
        d = self._pending[bucket]
        keys, i, n = (), 0, 0
        if d:
            keys = self._pending_keys(bucket)
            i = bisect_left(keys, start)
            n = len(keys) if end is None else bisect_left(keys, end)
        cur = txn.cursor(db=self.dbs[bucket])
        if i >= n:   # nothing pending in range: LMDB's items as they are
            if not cur.set_range(start):
                return
            if end is None:
                yield from cur.iternext()
                return
            for k, v in cur.iternext():
                if k >= end:
                    return
                yield k, v
            return
        more = cur.set_range(start)
        while True:
            ck = cur.key() if more else None
            if ck is not None and end is not None and ck >= end:
                ck, more = None, False
            if i < n and (ck is None or keys[i] <= ck):
                pk = keys[i]
                i += 1
                if pk == ck:
                    more = cur.next()
                v = d[pk][2]
                if v is not None:
                    yield pk, v
                continue
            if ck is None:
                return
            yield ck, cur.value()
            more = cur.next()

    def last_in(self, bucket: str, lo: bytes, hi: bytes | None, txn=None):
        """The greatest (key, value) of a bucket with lo <= key < hi (hi None:
        no bound), pending changes merged as in :meth:`scan`; or None."""
        if txn is None:
            txn = self.reader()
        d = self._pending[bucket]
        best = None
        if d:
            keys = self._pending_keys(bucket)
            j = (len(keys) if hi is None else bisect_left(keys, hi)) - 1
            while j >= 0 and keys[j] >= lo:
                v = d[keys[j]][2]
                if v is not None:
                    best = (keys[j], v)
                    break
                j -= 1
        cur = txn.cursor(db=self.dbs[bucket])
        if hi is not None and cur.set_range(hi):
            ok = cur.prev()
        else:
            ok = cur.last()
        while ok:
            k = cur.key()
            if k < lo or (best is not None and k <= best[0]):
                break
            if k in d:   # a pending delete (a pending value would be ``best``)
                ok = cur.prev()
                continue
            return k, cur.value()
        return best

    def range_key_bucket(self, start: bytes, end: bytes, limit: int = 0) -> list[tuple[bytes, bytes]]:
        """Items of the ``key`` bucket in [start, end) (see :meth:`scan`), at
        most ``limit`` of them (0: all)."""
        out: list[tuple[bytes, bytes]] = []
        for item in self.scan("key", start, end):
            out.append(item)
            if limit and len(out) >= limit:
                break
        return out

    # ---- writer thread --------------------------------------------------------------
    def _writer(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue and self._closed:
                    return
                batch = list(self._queue)
                self._queue.clear()
            try:
                with self._write_lock:
                    results = self._write_batch(batch)
            except BaseException as exc:  # noqa: BLE001 - reported to every waiter
                self.failed = exc
                for _, fut in batch:
                    fut.set_exception(BackendError(f"backend commit failed: {exc}"))
                continue
            for (ops, fut), res in zip(batch, results):
                fut.set_result((ops, res))

    def _write_batch(self, batch) -> list:
        results = []
        dbs = self.dbs
        t0 = time.monotonic()
        with self.env.begin(write=True) as txn:
            self._fill(txn, dbs, batch, results)
            derived = 0
            for name in DERIVED:
                st = txn.stat(dbs[name])
                derived += st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
            failpoint(BACKEND_BEFORE_COMMIT)
        self._derived_bytes = derived * self._psize
        self._size = None   # grown, maybe: size() reads it again
        failpoint(BACKEND_AFTER_COMMIT)
        if self.on_commit is not None:
            self.on_commit(time.monotonic() - t0)
        return results

    @staticmethod
    def _fill(txn, dbs, batch, results) -> None:
        wt = WriteTxn(txn, dbs)
        for ops, _ in batch:
            res = []
            for op in ops:
                if isinstance(op, tuple):
                    bucket, key, value = op
                    if value is _DELETED:
                        txn.delete(key, db=dbs[bucket])
                    else:
                        txn.put(key, value, db=dbs[bucket])
                else:
                    res.append(op(wt))
            results.append(res)

    def sync(self) -> None:
        self.env.sync(True)

    # ---- export and defragmentation ---------------------------------------------------
    def export(self, skip=None) -> dict[bytes, list[tuple[bytes, bytes]]]:
        """Every bucket's committed items from ONE read transaction (a
        consistent view), as {bucket name: [(key, value)]}; ``skip(bucket,
        key)`` drops entries.  Safe from a worker thread."""
        out: dict[bytes, list[tuple[bytes, bytes]]] = {}
        with self.env.begin(buffers=False) as t:
            for name in BUCKETS:
                items = []
                for k, v in t.cursor(db=self.dbs[name]):
                    if skip is None or not skip(name, k):
                        items.append((k, v))
                out[name.encode()] = items
        return out

    @contextlib.contextmanager
    def read_view(self):
        """One read transaction (a consistent view of what is committed) for a
        worker thread; yields ``items(bucket, skip=None, end=None)``, which
        returns a fresh iterator of that bucket's (key, value) in key order
        (below ``end``; ``skip(bucket, key)`` drops entries) each time it is
        called, all from the same view, and ``items.get(bucket, key)`` looks one
        up in it.  Nothing is loaded in memory."""
        with self._env_users, self.env.begin(buffers=False) as t:  # defrag waits for us
            dbs = self.dbs

            def items(bucket: str, skip=None, end: bytes | None = None):
                for k, v in t.cursor(db=dbs[bucket]):
                    if end is not None and k >= end:
                        return
                    if skip is None or not skip(bucket, k):
                        yield k, v
            items.get = lambda bucket, key: t.get(key, db=dbs[bucket])
            yield items

    def defrag_copy(self) -> str:
        """Stop the writer (after its current transaction) and write a
        compacted copy of the database next to it; returns the copy's path.
        Worker thread.  Must be followed by :meth:`defrag_swap` (or
        :meth:`defrag_abort`), which resumes the writer."""
        self._write_lock.acquire()
        self._env_users.acquire()
        tmp = self.path + ".defrag"
        try:
            if os.path.exists(tmp):
                os.remove(tmp)
            self.env.copy(tmp, compact=True)
        except BaseException:
            self._env_users.release()
            self._write_lock.release()
            raise
        return tmp

    def defrag_abort(self, tmp: str) -> None:
        try:
            if os.path.exists(tmp):
                os.remove(tmp)
        finally:
            self._env_users.release()
            self._write_lock.release()

    def defrag_swap(self, tmp: str) -> None:
        """Replace the database with the compacted copy and reopen it; call
        on the thread that does the reads (the event loop) so no reader sees
        the swap, then the writer resumes."""
        try:
            self.drop_reader()
            self.env.close()
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            # the stale lock file goes before the new file appears: a reader
            # in another process (a front-end) that opens the new file then
            # shares the lock file this process opens next
            lock = self.path + "-lock"
            if os.path.exists(lock):
                os.remove(lock)
            os.replace(tmp, self.path)
            dfd = os.open(os.path.dirname(self.path), os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            self._open_env()
        finally:
            self._env_users.release()
            self._write_lock.release()

    def snapshot_copy(self, directory: str, describe: Callable[["WriteTxn"], object] | None = None):
        """A consistent, compacted copy of the committed database in a new
        file in ``directory`` (what a lagging member receives); returns its
        path, which the caller removes, and ``describe(view)`` of exactly the
        state copied (``view.get``/``view.cursor`` by bucket: one read
        transaction serves both).  Worker thread."""
        import tempfile
        fd, path = tempfile.mkstemp(prefix="send-", suffix=SENDING_SUFFIX, dir=directory)
        os.close(fd)
        os.remove(path)  # LMDB creates it
        try:
            with self._env_users:
                with self.env.begin(buffers=False) as txn:
                    info = describe(WriteTxn(txn, self.dbs)) if describe else None
                    self.env.copy(path, compact=True, txn=txn)
        except BaseException:
            if os.path.exists(path):
                os.remove(path)
            raise
        return path, info

    @staticmethod
    def install(path: str, source: str) -> None:
        """Replace the database file at ``path`` with the (synced) file
        ``source``, durably.  The backend on that path must be closed."""
        lock = path + "-lock"   # first, as in defrag_swap
        if os.path.exists(lock):
            os.remove(lock)
        os.replace(source, path)
        dfd = os.open(os.path.dirname(path), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    # ---- sizes and lifecycle --------------------------------------------------------
    def size(self) -> int:
        """Bytes the database file occupies (etcd's dbSize); read once per
        commit (the quota asks for it on every write request)."""
        size = self._size
        if size is None:
            info = self.env.info()
            size = self._size = (info["last_pgno"] + 1) * self._psize
        return size

    def size_for_quota(self) -> int:
        """The size the quota counts: the database file less the pages of
        pyetcd's key index (etcd keeps its index in memory, outside the
        quota; so the same data reaches the same quota on both)."""
        return max(0, self.size() - self._derived_bytes)

    def size_in_use(self) -> int:
        """Bytes of pages holding live data (etcd's dbSizeInUse)."""
        psize = self.env.stat()["psize"]
        pages = 0
        with self.env.begin() as t:
            for name in ALL_DBS:
                st = t.stat(self.dbs[name])
                pages += st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
        return (pages + 2) * psize

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        self.drop_reader()
        self.env.close()


class WriteTxn:
    """What a scheduled job sees: the writer's LMDB transaction by bucket name."""

    __slots__ = ("txn", "dbs")

    def __init__(self, txn, dbs):
        self.txn = txn
        self.dbs = dbs

    def get(self, bucket: str, key: bytes) -> bytes | None:
        return self.txn.get(key, db=self.dbs[bucket])

    def put(self, bucket: str, key: bytes, value: bytes) -> None:
        self.txn.put(key, value, db=self.dbs[bucket])

    def delete(self, bucket: str, key: bytes) -> None:
        self.txn.delete(key, db=self.dbs[bucket])

    def cursor(self, bucket: str):
        return self.txn.cursor(db=self.dbs[bucket])

    def clear(self, bucket: str) -> None:
        """Remove every item of ``bucket``."""
        self.txn.drop(self.dbs[bucket], delete=False)


class ReadOnlyBackend(Backend):
    """Another process's view of a member's backend (a gRPC front-end's,
    api/relay.py): LMDB opened read-only (LMDB serves many reader
    processes), no writer, nothing pending.  Reads use the transaction of
    the current :meth:`view`, which shows what the member has committed."""

    def __init__(self, path: str, map_size: int = 0):   # noqa: D107 - no writer thread
        self.path = path
        self.map_size = map_size   # the writer's (0: what the file says)
        self._pending = {name: {} for name in ALL_DBS}
        self._sorted = {}
        self._rtxn = None
        self._owner = threading.get_ident()
        self._open_ro()

    def _open_ro(self) -> None:
        self.env = lmdb.open(self.path, subdir=False, readonly=True, lock=True,
                             max_dbs=len(ALL_DBS) + 2, readahead=False, max_readers=256,
                             **({"map_size": self.map_size} if self.map_size else {}))
        self.dbs = {name: self.env.open_db(name.encode(), create=False) for name in ALL_DBS}
        self._ino = os.stat(self.path).st_ino

    @contextlib.contextmanager
    def view(self):
        """One read transaction for the reads inside the block; the database
        is reopened first when the member replaced its file (defragment,
        snapshot install)."""
        try:
            ino = os.stat(self.path).st_ino
        except FileNotFoundError:   # mid-swap: the old file still serves
            ino = self._ino
        if ino != self._ino:
            self.env.close()
            self._open_ro()
        try:
            t = self.env.begin(buffers=False)
        except lmdb.MapResizedError:   # the writer grew the map: adopt its size
            self.env.set_mapsize(0)
            t = self.env.begin(buffers=False)
        self._rtxn = t
        try:
            yield t
        finally:
            self._rtxn = None
            t.abort()

    def reader(self):
        if self._rtxn is None:
            raise RuntimeError("ReadOnlyBackend: read outside a view()")
        return self._rtxn

    def put(self, bucket, key, value):   # noqa: D102
        raise TypeError("read-only backend")

    delete = schedule = put

    def commit(self):
        raise TypeError("read-only backend")

    def close(self) -> None:
        self.env.close()
