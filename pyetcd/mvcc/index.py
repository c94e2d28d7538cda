"""The key index, kept in the backend: key -> revisions.

etcd keeps this index in memory and rebuilds it from the key bucket at every
start, so its start-up time and memory grow with the data.  pyetcd keeps it in
LMDB, written in the same transactions as the key bucket (``storage/schema.py``):
restart reads nothing, memory holds nothing per key, and other processes can
read it.

- ``KEY_INDEX``: every key -> its newest revision (a tombstone when the key is
  deleted; the entry goes when a compaction removes that tombstone), the
  create revision and version of its generation and its lease.  Reads at the
  current revision and every write use only this.
- ``KEY_PREV``: each key-bucket revision -> the same key's previous revision
  (and whether that one is a tombstone), a chain back to the oldest revision
  compaction kept.  Its keys grow with the revision, so it is written in
  order (one random B-tree insert per put, in ``KEY_INDEX``, not two).

A read at main revision ``at`` follows the chain of each key from its newest
revision down to the first at or below ``at``; the key is absent there when
there is none or it is a tombstone.  Compaction at ``at`` keeps, per key, that
revision (not when it is a tombstone below ``at``; a tombstone exactly at
``at`` stays, so a watch from ``at`` still sees the delete, etcd #18089) and
every later one; it runs in the backend writer's transaction.

Long keys (``schema.SHORT_IKEY``) group by hash inside their prefix; scans
sort such a group by the key itself, read from the key bucket.  Revisions are
ints ``main << 32 | sub`` (revision.py).
"""
from __future__ import annotations

import struct

from pyetcd.pb.mvccpb.kv_pb2 import KeyValue
from pyetcd.storage import schema
from pyetcd.storage.schema import ikey, ikey_decode, ikey_group, ikey_is_long

from . import revision as R
from .revision import SUB_BITS, SUB_MASK

# newest revision int, create main, version, lease, is a tombstone
LATEST = struct.Struct(">QQQq?")
_REV12 = struct.Struct(">QI")      # main, sub: in revision order
PUT, TOMB = b"p", b"t"

KIDX, KPREV, LKEYS = schema.KEY_INDEX, schema.KEY_PREV, schema.LEASE_KEYS


def rev12(r: int) -> bytes:
    return _REV12.pack(r >> SUB_BITS, r & SUB_MASK)


def rev_of12(b: bytes) -> int:
    main, sub = _REV12.unpack_from(b)
    return (main << SUB_BITS) | sub


def _prev_value(r: int, tomb: bool) -> bytes:
    return rev12(r) + (TOMB if tomb else PUT)


class Latest:
    __slots__ = ("mod", "created", "version", "lease", "tomb")

    def __init__(self, mod: int, created: int, version: int, lease: int, tomb: bool):
        self.mod, self.created, self.version, self.lease, self.tomb = \
            mod, created, version, lease, tomb


def _latest(v: bytes) -> Latest:
    return Latest(*LATEST.unpack_from(v))


def _bounds(key: bytes, end: bytes | None):
    """(lo, hi) ikey bounds of [key, end) (end b"": every key >= key)."""
    lo = schema.ikey_lower(key)
    hi = schema.ikey_upper(end) if end else None
    return lo, hi


def walk(get, e: Latest, at_main: int):
    """(revision, is tombstone) of the key of entry ``e`` at ``at_main``: its
    newest revision at or below it, following the chain with
    ``get(KEY_PREV, rev12)``; None when there is none."""
    r, tomb = e.mod, e.tomb
    upper = (at_main + 1) << SUB_BITS
    while r >= upper:
        pv = get(KPREV, rev12(r))
        if not pv:
            return None
        r, tomb = rev_of12(pv), pv[12:13] == TOMB
    return r, tomb


class _Ordered:
    """Collects items in index order, up to ``limit`` (0: all), counting all.
    A group of long keys is put in key order and, when it straddles a bound
    of [start, end), filtered by key; ``key_of(item)`` reads an item's key,
    only for such groups (a lone long key inside the bounds needs nothing)."""

    __slots__ = ("start", "end", "out", "group", "gkey", "limit", "total", "key_of", "edges")

    def __init__(self, start: bytes, end: bytes | None, limit: int, key_of):
        self.start, self.end, self.limit, self.key_of = start, end, limit, key_of
        self.out: list = []
        self.group: list = []
        self.gkey = None
        self.total = 0
        lo, hi = _bounds(start, end)
        self.edges = {lo if ikey_is_long(lo) else None,
                      hi[:-1] + b"\x02" if hi is not None and ikey_is_long(hi) else None}

    def add_short(self, item) -> None:
        if self.group:
            self.flush()
        self.total += 1
        if self.limit <= 0 or len(self.out) < self.limit:
            self.out.append(item)

    def add_long(self, ik: bytes, item) -> None:
        g = ikey_group(ik)
        if self.group and g != self.gkey:
            self.flush()
        self.gkey = g
        self.group.append(item)

    def flush(self) -> None:
        group, self.group = self.group, []
        if len(group) > 1 or self.gkey in self.edges:
            start, end, key_of = self.start, self.end, self.key_of
            keyed = sorted(((key_of(it), n, it) for n, it in enumerate(group)),
                           key=lambda x: (x[0], x[1]))
            group = [it for k, _, it in keyed if k >= start and (not end or k < end)]
        for item in group:
            self.total += 1
            if self.limit <= 0 or len(self.out) < self.limit:
                self.out.append(item)

    def done(self):
        if self.group:
            self.flush()
        return self.out, self.total


class KeyIndex:
    """The index in ``backend``; reads see applied, uncommitted writes (the
    backend's pending changes), like every other read of the store."""

    def __init__(self, backend):
        self.backend = backend

    # ---- writes (the apply path) ---------------------------------------------------------
    def entry(self, ik: bytes, txn=None) -> Latest | None:
        """The KEY_INDEX entry of the key whose ikey is ``ik`` (maybe a tombstone)."""
        v = self.backend.get(KIDX, ik, txn)
        return _latest(v) if v else None

    def latest(self, key: bytes, txn=None) -> Latest | None:
        """The key's newest revision when it is alive, else None."""
        e = self.entry(ikey(key), txn)
        return e if e is not None and not e.tomb else None

    def put(self, ik: bytes, r: int, created_main: int, version: int, lease: int,
            prev: Latest | None) -> None:
        b = self.backend
        b.put(KIDX, ik, LATEST.pack(r, created_main, version, lease, False))
        if prev is not None:
            b.put(KPREV, rev12(r), _prev_value(prev.mod, prev.tomb))

    def tombstone(self, ik: bytes, r: int, prev: Latest) -> None:
        b = self.backend
        b.put(KIDX, ik, LATEST.pack(r, 0, 0, 0, True))
        b.put(KPREV, rev12(r), _prev_value(prev.mod, prev.tomb))

    def _key_at(self, r: int, txn) -> bytes:
        """The key of revision ``r`` (a long key's, from the key bucket)."""
        return KeyValue.FromString(self.backend.get(schema.KEY, R.to_bytes(r), txn)).key

    # ---- reads ------------------------------------------------------------------------
    def live(self, key: bytes, end: bytes | None, txn=None) -> list[tuple[bytes, bytes, Latest]]:
        """(key, ikey, entry) of the live keys in [key, end) in key order (end
        None: just ``key``; end b"": every key >= ``key``)."""
        if end is None:
            ik = ikey(key)
            e = self.entry(ik, txn)
            return [(key, ik, e)] if e is not None and not e.tomb else []
        lo, hi = _bounds(key, end)
        acc = _Ordered(key, end, 0, lambda it: it[0])
        for ik, v in self.backend.scan(KIDX, lo, hi, txn):
            e = _latest(v)
            if e.tomb:
                continue
            if ikey_is_long(ik):
                acc.add_long(ik, (self._key_at(e.mod, txn), ik, e))
            else:
                acc.add_short((ikey_decode(ik), ik, e))
        return acc.done()[0]

    def revisions(self, key: bytes, end: bytes | None, at_main: int, cur_rev: int,
                  limit: int = 0, txn=None) -> tuple[list[int], int]:
        """([revision of each key alive at ``at_main``, in key order] up to
        ``limit`` (0: all), how many there are)."""
        old = at_main < cur_rev
        get = self.backend.get
        lookup = (lambda bucket, k: get(bucket, k, txn))
        if end is None:
            e = self.entry(ikey(key), txn)
            got = (e.mod, e.tomb) if e is not None and not old else \
                walk(lookup, e, at_main) if e is not None else None
            return ([got[0]], 1) if got is not None and not got[1] else ([], 0)
        lo, hi = _bounds(key, end)
        acc = _Ordered(key, end, limit, lambda r: self._key_at(r, txn))
        unpack = LATEST.unpack_from
        for ik, v in self.backend.scan(KIDX, lo, hi, txn):
            if old:
                got = walk(lookup, _latest(v), at_main)
                if got is None or got[1]:
                    continue
                r = got[0]
            else:
                r, _, _, _, tomb = unpack(v)
                if tomb:
                    continue
            if ikey_is_long(ik):
                acc.add_long(ik, r)
            else:
                acc.add_short(r)
        return acc.done()

    def count(self, key: bytes, end: bytes | None, at_main: int, cur_rev: int, txn=None) -> int:
        return self.revisions(key, end, at_main, cur_rev, 1, txn)[1]


# ---- work inside a backend transaction (the writer thread, or a read view) ---------------
def compact_in(wt, at_main: int) -> int:
    """Compact the index and the key bucket at ``at_main`` inside the writer's
    transaction ``wt``; returns how many revisions were removed."""
    get = wt.get
    upper = (at_main + 1) << SUB_BITS
    drop: list[tuple[int, bool]] = []   # key-bucket records (and their KEY_PREV)
    ends: list[int] = []                # revisions whose chain now ends (KEY_PREV goes)
    gone: list[bytes] = []              # KEY_INDEX entries (a tombstone that is removed)
    for ik, v in wt.cursor(KIDX).iternext():
        r, _, _, _, tomb = LATEST.unpack_from(v)
        newer = None
        while r >= upper:
            pv = get(KPREV, rev12(r))
            if not pv:
                r = None
                break
            newer = r
            r, tomb = rev_of12(pv), pv[12:13] == TOMB
        if r is None:
            continue
        older = get(KPREV, rev12(r))
        if tomb and (r >> SUB_BITS) != at_main:
            drop.append((r, True))
            if newer is None:
                gone.append(ik)
            else:
                ends.append(newer)
        elif older:
            ends.append(r)
        while older:
            o, otomb = rev_of12(older), older[12:13] == TOMB
            drop.append((o, otomb))
            older = get(KPREV, rev12(o))
    for r, tomb in drop:
        wt.delete(schema.KEY, R.to_bytes(r, tombstone=tomb))
        wt.delete(KPREV, rev12(r))
    for r in ends:
        wt.delete(KPREV, rev12(r))
    for ik in gone:
        wt.delete(KIDX, ik)
    return len(drop)


def hash_keep(items, at_main: int) -> set[int]:
    """etcd's Keep(rev) for the hash: per key, the newest revision at or below
    ``at_main`` unless it is a tombstone (from a read view, Backend.read_view)."""
    keep: set[int] = set()
    for _, v in items(KIDX):
        got = walk(items.get, _latest(v), at_main)
        if got is not None and not got[1]:
            keep.add(got[0])
    return keep


def rebuild_in(wt) -> int:
    """Rebuild the derived databases from the key bucket (writer thread):
    a backend restored from a snapshot, imported from etcd or written by an
    older pyetcd.  Returns the number of key-bucket records read."""
    for name in (KIDX, KPREV, LKEYS):
        wt.clear(name)
    parse = KeyValue.FromString
    n = 0
    last: dict[bytes, bytes] = {}   # ikey -> its newest LATEST so far
    for k, v in wt.cursor(schema.KEY).iternext():
        n += 1
        if not v:   # a bumped revision (etcdutl snapshot restore --bump-revision)
            continue
        r, tomb = R.from_bytes(k)
        kv = parse(v)
        ik = ikey(kv.key)
        prev = last.get(ik)
        old_lease = 0
        if prev is not None:
            p = _latest(prev)
            wt.put(KPREV, rev12(r), _prev_value(p.mod, p.tomb))
            old_lease = 0 if p.tomb else p.lease
        if old_lease and (tomb or old_lease != kv.lease):
            wt.delete(LKEYS, schema.lease_ikey(old_lease, ik))
        if tomb:
            last[ik] = LATEST.pack(r, 0, 0, 0, True)
            continue
        last[ik] = LATEST.pack(r, kv.create_revision, kv.version, kv.lease, False)
        if kv.lease:
            wt.put(LKEYS, schema.lease_ikey(kv.lease, ik), kv.key)
    for ik, v in last.items():
        wt.put(KIDX, ik, v)
    wt.put(schema.LOCAL, schema.INDEX_FORMAT, schema.INDEX_FORMAT_VERSION)
    return n
