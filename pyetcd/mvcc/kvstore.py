"""The multi-version key-value store.

Every change gets a revision ``(main, sub)``: ``main`` grows by one per write
transaction (a Put, a DeleteRange that deleted something, a Txn that wrote),
``sub`` counts the changes inside it.  Values live in the backend's ``key``
bucket under the revision's bytes; the key index (index.py, also in the
backend) maps keys to revisions.  Deletes write a tombstone (the revision
bytes plus ``t``).

Semantics follow etcd's ``mvcc`` package:
- a read at revision ``r`` fails with :class:`CompactedError` when
  ``r < compact_main_rev`` and :class:`FutureRevError` when ``r > current``;
  the result's revision is the store's current revision, not ``r``;
- inside a write transaction reads see its own earlier writes;
- compaction keeps, per key, the newest revision at or below the compaction
  revision, and removes older ones from the backend in a scheduled job.
"""
from __future__ import annotations

import struct
from typing import Callable

from pyetcd.pb.mvccpb.kv_pb2 import KeyValue
from pyetcd.storage import schema
from pyetcd.storage.backend import Backend
from pyetcd.storage.schema import ikey

from . import revision as R
from .index import KeyIndex, compact_in, hash_keep, rebuild_in


_U64 = struct.Struct(">Q")
COMPACTION_BATCH = 1000


class MVCCError(Exception):
    pass


class CompactedError(MVCCError):
    pass


class FutureRevError(MVCCError):
    pass


class RangeResult:
    __slots__ = ("kvs", "count", "rev")

    def __init__(self, kvs: list, count: int, rev: int):
        self.kvs = kvs
        self.count = count
        self.rev = rev


class KVStore:
    def __init__(self, backend: Backend, lessor=None):
        self.backend = backend
        self.lessor = lessor
        self.index = KeyIndex(backend)
        self.current_rev = 1  # etcd starts at revision 1 (an empty store)
        self.compact_main_rev = -1
        self.listeners: list[Callable[[list, int], None]] = []
        self._restore()

    # ---- start-up ---------------------------------------------------------------------
    def _restore(self) -> None:
        """Nothing per key: the index is in the backend.  A backend without it
        (restored, imported, older) gets it built once, here."""
        b = self.backend
        if b.get(schema.LOCAL, schema.INDEX_FORMAT) != schema.INDEX_FORMAT_VERSION:
            b.schedule(rebuild_in)
            ops, _ = b.commit().result()
            b.release(ops)
        last = b.last_in(schema.KEY, b"", None)
        last_main = R.main_of(R.from_bytes(last[0])[0]) if last else 0
        sched = b.get(schema.META, schema.SCHEDULED_COMPACT_REV)
        fin = b.get(schema.META, schema.FINISHED_COMPACT_REV)
        sched_main = R.main_of(R.from_bytes(sched)[0]) if sched else -1
        fin_main = R.main_of(R.from_bytes(fin)[0]) if fin else -1
        self.current_rev = max(last_main, sched_main, 1)
        if sched_main > fin_main:
            # a compaction was scheduled but not finished before a crash: redo it
            self.compact_main_rev = sched_main
            self._schedule_compaction(sched_main)
            ops, _ = self.backend.commit().result()
            self.backend.release(ops)
        elif fin_main >= 0:
            self.compact_main_rev = fin_main

    # ---- reads ------------------------------------------------------------------------
    def range(self, key: bytes, end: bytes | None, rev: int = 0, limit: int = 0,
              count_only: bool = False, cur_rev: int | None = None, txn=None) -> RangeResult:
        """Keys in [key, end) at ``rev`` (0: ``cur_rev``); end None: just
        ``key``, end b"": every key >= ``key``."""
        cur = self.current_rev if cur_rev is None else cur_rev
        if rev > cur:
            raise FutureRevError()
        if rev <= 0:
            rev = cur
        if rev < self.compact_main_rev:
            raise CompactedError()
        backend = self.backend
        t = backend.reader()
        if count_only:
            return RangeResult([], self.index.count(key, end, rev, cur, t), cur)
        revs, total = self.index.revisions(key, end, rev, cur, limit, t)
        if not revs:
            return RangeResult([], total, cur)
        get = backend.get
        to_bytes = R.to_bytes
        parse = KeyValue.FromString
        kvs = [parse(get(schema.KEY, to_bytes(r), t)) for r in revs]
        return RangeResult(kvs, total, cur)

    def write(self) -> "WriteTxn":
        return WriteTxn(self)

    # ---- compaction -------------------------------------------------------------------
    def compact(self, rev: int) -> None:
        """Compact at main revision ``rev``: reads below it fail from now on;
        the index's and the key bucket's old revisions go in the next backend
        commit (a scheduled job)."""
        if rev <= self.compact_main_rev:
            raise CompactedError()
        if rev > self.current_rev:
            raise FutureRevError()
        self.compact_main_rev = rev
        self.backend.put(schema.META, schema.SCHEDULED_COMPACT_REV, R.to_bytes(R.rev(rev)))
        self._schedule_compaction(rev)

    def _schedule_compaction(self, rev: int):
        fin = R.to_bytes(R.rev(rev))

        def job(wt) -> int:
            deleted = compact_in(wt, rev)
            wt.put(schema.META, schema.FINISHED_COMPACT_REV, fin)
            return deleted

        self.backend.schedule(job)

    def hash_keep(self, items, rev: int) -> set[int]:
        """The revisions below the compaction that the hash at ``rev`` covers,
        from a backend view's ``items`` (``Backend.read_view``)."""
        return hash_keep(items, rev)

    # ---- consistent index (apply idempotence) ------------------------------------------
    def consistent_index(self) -> tuple[int, int]:
        ci = self.backend.get(schema.META, schema.CONSISTENT_INDEX)
        term = self.backend.get(schema.META, schema.TERM)
        return (_U64.unpack(ci)[0] if ci else 0, _U64.unpack(term)[0] if term else 0)

    def set_consistent_index(self, index: int, term: int) -> None:
        self.backend.put(schema.META, schema.CONSISTENT_INDEX, _U64.pack(index))
        self.backend.put(schema.META, schema.TERM, _U64.pack(term))

class WriteTxn:
    """One write transaction: all its changes share main revision begin_rev+1."""

    __slots__ = ("store", "begin_rev", "changes")

    def __init__(self, store: KVStore):
        self.store = store
        self.begin_rev = store.current_rev
        self.changes: list[KeyValue] = []

    @property
    def rev(self) -> int:
        """The revision reads inside this txn see."""
        return self.begin_rev + 1 if self.changes else self.begin_rev

    def range(self, key: bytes, end: bytes | None, rev: int = 0, limit: int = 0,
              count_only: bool = False) -> RangeResult:
        return self.store.range(key, end, rev, limit, count_only, cur_rev=self.rev, txn=True)

    def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        store = self.store
        main = self.begin_rev + 1
        r = R.rev(main, len(self.changes))
        ik = ikey(key)
        got = store.index.entry(ik)
        if got is not None and not got.tomb:
            created_main, ver, old_lease = got.created, got.version, got.lease
        else:
            created_main, ver, old_lease = main, 0, 0
        kv = KeyValue(key=key, value=value, create_revision=created_main,
                      mod_revision=main, version=ver + 1, lease=lease)
        store.backend.put(schema.KEY, R.to_bytes(r), kv.SerializeToString())
        store.index.put(ik, r, created_main, ver + 1, lease, got)
        self.changes.append(kv)
        if store.lessor is not None:
            if old_lease and old_lease != lease:
                store.lessor.detach(old_lease, key)
            if lease and lease != old_lease:
                store.lessor.attach(lease, key)
        return main

    def delete_range(self, key: bytes, end: bytes | None) -> tuple[int, int]:
        """(number deleted, revision of the response)."""
        live = self.store.index.live(key, end)
        for k, ik, e in live:
            self._delete(k, ik, e)
        if live or self.changes:
            return len(live), self.begin_rev + 1
        return 0, self.begin_rev

    def _delete(self, key: bytes, ik: bytes, e) -> None:
        store = self.store
        main = self.begin_rev + 1
        r = R.rev(main, len(self.changes))
        kv = KeyValue(key=key)
        store.backend.put(schema.KEY, R.to_bytes(r, tombstone=True), kv.SerializeToString())
        store.index.tombstone(ik, r, e)
        kv.mod_revision = main
        self.changes.append(kv)
        if store.lessor is not None and e.lease:
            store.lessor.detach(e.lease, key)

    def end(self) -> int:
        """Finish: bump the store's revision if anything changed, notify."""
        store = self.store
        if self.changes:
            store.current_rev = self.begin_rev + 1
            for fn in store.listeners:
                fn(self.changes, store.current_rev)
        return store.current_rev


class ViewStore(KVStore):
    """The store as another process sees it in a read-only backend
    (storage.backend.ReadOnlyBackend): :meth:`refresh` inside each of the
    backend's views reads the current and compacted revisions of that view."""

    def __init__(self, backend):   # noqa: D107 - nothing to restore: read-only
        self.backend = backend
        self.lessor = None
        self.index = KeyIndex(backend)
        self.current_rev = 1
        self.compact_main_rev = -1
        self.listeners = []

    def refresh(self) -> int:
        """Read this view's revisions; returns the current one."""
        b = self.backend
        last = b.last_in(schema.KEY, b"", None)
        last_main = R.main_of(R.from_bytes(last[0])[0]) if last else 0
        sched = b.get(schema.META, schema.SCHEDULED_COMPACT_REV)
        sched_main = R.main_of(R.from_bytes(sched)[0]) if sched else -1
        self.current_rev = max(last_main, sched_main, 1)
        self.compact_main_rev = sched_main
        return self.current_rev

    def write(self):
        raise TypeError("read-only store")
