"""The multi-version key-value store.

Every change gets a revision ``(main, sub)``: ``main`` grows by one per write
transaction (a Put, a DeleteRange that deleted something, a Txn that wrote),
``sub`` counts the changes inside it.  Values live in the backend's ``key``
bucket under the revision's bytes; the in-memory :class:`TreeIndex` maps keys
to revisions.  Deletes write a tombstone (the revision bytes plus ``t``).

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

from . import revision as R
from .key_index import TreeIndex


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
        self.index = TreeIndex()
        self.current_rev = 1  # etcd starts at revision 1 (an empty store)
        self.compact_main_rev = -1
        self.listeners: list[Callable[[list, int], None]] = []
        self._restore()

    # ---- start-up ---------------------------------------------------------------------
    def _restore(self) -> None:
        b = self.backend
        index = self.index
        last_main = 0
        leased: dict[bytes, int] = {}
        parse = KeyValue.FromString
        for k, v in b.iterate(schema.KEY):
            r, tomb = R.from_bytes(k)
            if not v:
                # an empty value marks a bumped revision (etcdutl snapshot
                # restore --bump-revision): it moves the revision, not a key
                last_main = R.main_of(r)
                continue
            kv = parse(v)
            index.restore(kv.key, r, tomb, kv.create_revision, kv.version)
            last_main = R.main_of(r)
            if tomb:
                leased.pop(kv.key, None)
            elif kv.lease:
                leased[kv.key] = kv.lease
            else:
                leased.pop(kv.key, None)
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
            self.index.compact(fin_main)
        if self.lessor is not None:
            for key, lease_id in leased.items():
                self.lessor.attach_on_restore(lease_id, key)

    # ---- reads ------------------------------------------------------------------------
    def range(self, key: bytes, end: bytes | None, rev: int = 0, limit: int = 0,
              count_only: bool = False, cur_rev: int | None = None, txn=None) -> RangeResult:
        """Keys in [key, end) at ``rev`` (0: ``cur_rev``); see TreeIndex.visit for end."""
        cur = self.current_rev if cur_rev is None else cur_rev
        if rev > cur:
            raise FutureRevError()
        if rev <= 0:
            rev = cur
        if rev < self.compact_main_rev:
            raise CompactedError()
        if count_only:
            return RangeResult([], self.index.count_revisions(key, end, rev), cur)
        pairs, total = self.index.revisions(key, end, rev, limit)
        if not pairs:
            return RangeResult([], total, cur)
        get = self.backend.get
        to_bytes = R.to_bytes
        parse = KeyValue.FromString
        if len(pairs) == 1 and txn is None:
            return RangeResult([parse(get(schema.KEY, to_bytes(pairs[0][1])))], total, cur)
        with self.backend.read_txn() as t:
            kvs = [parse(get(schema.KEY, to_bytes(r), t)) for _, r in pairs]
        return RangeResult(kvs, total, cur)

    def write(self) -> "WriteTxn":
        return WriteTxn(self)

    # ---- compaction -------------------------------------------------------------------
    def compact(self, rev: int) -> None:
        """Compact at main revision ``rev``: the index now, the backend's old
        revisions in the next backend commit (a scheduled job)."""
        if rev <= self.compact_main_rev:
            raise CompactedError()
        if rev > self.current_rev:
            raise FutureRevError()
        self.compact_main_rev = rev
        self.backend.put(schema.META, schema.SCHEDULED_COMPACT_REV, R.to_bytes(R.rev(rev)))
        self._schedule_compaction(rev)

    def _schedule_compaction(self, rev: int):
        keep = self.index.compact(rev)
        end = R.main_bytes(rev + 1)
        fin = R.to_bytes(R.rev(rev))

        def job(wt) -> int:
            deleted = 0
            cur = wt.cursor("key")
            if cur.first():
                while True:
                    k = cur.key()
                    if not k or k >= end:
                        break
                    r, _ = R.from_bytes(k)
                    if r not in keep:
                        deleted += 1
                        if not cur.delete():
                            break
                        continue
                    if not cur.next():
                        break
            wt.put(schema.META, schema.FINISHED_COMPACT_REV, fin)
            return deleted

        self.backend.schedule(job)

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
        got = store.index.get(key, main)
        old_lease = 0
        if got is not None:
            _, created, ver = got
            created_main = R.main_of(created)
            if store.lessor is not None:
                old_lease = store.lessor.get_lease(key)
        else:
            created_main, ver = main, 0
        kv = KeyValue(key=key, value=value, create_revision=created_main,
                      mod_revision=main, version=ver + 1, lease=lease)
        store.backend.put(schema.KEY, R.to_bytes(r), kv.SerializeToString())
        store.index.put(key, r)
        self.changes.append(kv)
        if store.lessor is not None:
            if old_lease and old_lease != lease:
                store.lessor.detach(old_lease, key)
            if lease and lease != old_lease:
                store.lessor.attach(lease, key)
        return main

    def delete_range(self, key: bytes, end: bytes | None) -> tuple[int, int]:
        """(number deleted, revision of the response)."""
        store = self.store
        at = self.rev
        keys = [ki.key for ki in store.index.visit(key, end) if ki.get(at) is not None]
        for k in keys:
            self._delete(k)
        if keys or self.changes:
            return len(keys), self.begin_rev + 1
        return 0, self.begin_rev

    def _delete(self, key: bytes) -> None:
        store = self.store
        main = self.begin_rev + 1
        r = R.rev(main, len(self.changes))
        kv = KeyValue(key=key)
        store.backend.put(schema.KEY, R.to_bytes(r, tombstone=True), kv.SerializeToString())
        store.index.tombstone(key, r)
        kv.mod_revision = main
        self.changes.append(kv)
        if store.lessor is not None:
            lease = store.lessor.get_lease(key)
            if lease:
                store.lessor.detach(lease, key)

    def end(self) -> int:
        """Finish: bump the store's revision if anything changed, notify."""
        store = self.store
        if self.changes:
            store.current_rev = self.begin_rev + 1
            for fn in store.listeners:
                fn(self.changes, store.current_rev)
        return store.current_rev
