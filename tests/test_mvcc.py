"""The MVCC store against a naive model: a full copy of the key space at
every revision.  Hypothesis drives random puts (some with leases), deletes,
ranges at old revisions, compactions, restarts and index rebuilds; the index
kept in the backend is also compared with etcd's in-memory one (the
reference in tests/mvcc_reference_index.py) for the hash's keep set."""
from __future__ import annotations

import tempfile

from hypothesis import example, given, settings
from hypothesis import strategies as st

from pyetcd.lease.lessor import Lessor
from pyetcd.mvcc import revision as R
from pyetcd.mvcc.index import rev_of12
from pyetcd.mvcc.kvstore import CompactedError, FutureRevError, KVStore
from pyetcd.storage import schema
from pyetcd.storage.backend import Backend
from tests.mvcc_reference_index import TreeIndex

LONG = b"L" * schema.SHORT_IKEY
Z = b"L" * (schema.SHORT_IKEY - 1)   # + 0x00: the escape straddles the short bound
# short keys, keys with 0x00 (escaped in the index), and long keys sharing a
# group prefix (ordered by hash in LMDB, by key in answers)
KEYS = [b"a", b"ab", b"b", b"c", b"\x00", b"\xff", b"a\x00", b"a\x00b", LONG, LONG + b"\x00",
        LONG + b"a", LONG + b"b" * 300, LONG[:-1] + b"M", Z + b"\x00", Z + b"\x00x", Z + b"\x01",
        Z + b"\x00\x00"]
ENDS = [None, b"", b"b", b"c", b"a\x00", LONG + b"a", LONG + b"\x01", Z + b"\x00\x00", Z + b"\x01"]


@given(st.lists(st.binary(max_size=4), max_size=30), st.binary(max_size=4))
def test_ikey_orders_like_keys_and_is_prefix_free(keys, probe):
    keys = sorted(set(keys + [k + b"\x00" for k in keys] + [LONG + k for k in keys]
                      + [Z + k for k in keys] + [Z[:-1] + k for k in keys]))
    iks = [schema.ikey(k) for k in keys]
    # sorted by key: short keys' ikeys are sorted, each long key falls
    # between the short ones exactly where it belongs
    assert sorted(iks) == [ik for ik in sorted(iks)]
    for a, b in zip(keys, keys[1:]):
        ia, ib = schema.ikey(a), schema.ikey(b)
        both_long = schema.ikey_is_long(ia) and schema.ikey_is_long(ib)
        assert ia < ib or (both_long and schema.ikey_group(ia) == schema.ikey_group(ib))
    for k, ik in zip(keys, iks):
        if not schema.ikey_is_long(ik):
            assert schema.ikey_decode(ik) == k
            assert (ik >= schema.ikey_lower(probe)) == (k >= probe)
            assert (ik < schema.ikey_upper(probe)) == (k < probe)
        assert len(schema.ikey(k + b"\x00" * 300)) + 12 <= 511  # KEY_REVS; LEASE_KEYS adds 8
    for a in iks:
        for b in iks:
            assert a == b or not b.startswith(a)


def test_revision_encoding_orders_like_ints():
    revs = [R.rev(m, s) for m in (0, 1, 255, 256, 2**40) for s in (0, 1, 2**31)]
    assert sorted(revs) == sorted(revs, key=R.to_bytes)
    for r in revs:
        assert R.from_bytes(R.to_bytes(r)) == (r, False)
        assert R.from_bytes(R.to_bytes(r, tombstone=True)) == (r, True)


put = st.tuples(st.just("put"), st.sampled_from(KEYS), st.tuples(st.binary(max_size=2),
                                                                st.sampled_from([0, 0, 7, 8])))
op = st.one_of(
    put, put, put,
    st.tuples(st.just("del"), st.sampled_from(KEYS), st.sampled_from(ENDS)),
    st.tuples(st.just("revoke"), st.none(), st.sampled_from([7, 8])),
    st.tuples(st.just("compact"), st.none(), st.integers(0, 30)),
    st.tuples(st.just("restart"), st.none(), st.none()),
    st.tuples(st.just("rebuild"), st.none(), st.none()),
)


class Model:
    def __init__(self):
        self.history = {1: {}}  # main revision -> {key: (value, create, mod, version, lease)}
        self.rev = 1
        self.compacted = -1
        self.ref = TreeIndex()   # etcd's in-memory index, fed the same changes

    def write(self, changes):
        state = dict(self.history[self.rev])
        nxt = self.rev + 1
        for sub, (kind, key, value, lease) in enumerate(changes):
            r = R.rev(nxt, sub)
            if kind == "put":
                old = state.get(key)
                state[key] = (value, old[1] if old else nxt, nxt, old[3] + 1 if old else 1, lease)
                self.ref.put(key, r)
            else:
                state.pop(key, None)
                self.ref.tombstone(key, r)
        self.rev = nxt
        self.history[nxt] = state


def _range_model(state, key, end):
    if end is None:
        return [key] if key in state else []
    return sorted(k for k in state if k >= key and (end == b"" or k < end))


class Store:
    def __init__(self, path):
        self.path = path
        self.open()

    def open(self):
        self.b = Backend(self.path, map_size=64 * 1024**2)
        self.lessor = Lessor(self.b)
        for lease in (7, 8):
            if self.lessor.lookup(lease) is None:
                self.lessor.grant(lease, 100)
        self.kv = KVStore(self.b, self.lessor)

    def close(self):
        ops_, _ = self.b.commit().result()
        self.b.release(ops_)
        self.b.close()


@settings(max_examples=200, deadline=None)
@given(st.lists(op, max_size=40), st.integers(0, 45), st.sampled_from(KEYS),
       st.sampled_from(ENDS), st.integers(0, 3))
@example([("put", LONG + b"a", (b"1", 7)), ("put", LONG + b"\x00", (b"2", 7)),
          ("put", LONG + b"b" * 300, (b"3", 0)), ("compact", None, 3),
          ("del", LONG + b"\x00", None), ("put", LONG + b"\x00", (b"4", 8))], 4, LONG, b"", 2)
def test_kvstore_matches_model(ops, read_rev, rkey, rend, limit):
    with tempfile.TemporaryDirectory() as d:
        s = Store(d + "/db")
        m = Model()
        for kind, key, arg in ops:
            if kind == "put":
                t = s.kv.write()
                t.put(key, arg[0], arg[1])
                t.end()
                m.write([("put", key, arg[0], arg[1])])
            elif kind in ("del", "revoke"):
                state = m.history[m.rev]
                victims = (_range_model(state, key, arg) if kind == "del" else
                           sorted(k for k, v in state.items() if v[4] == arg))
                if kind == "revoke":
                    assert s.lessor.revoke_keys(arg) == victims
                    assert s.lessor.time_to_live(arg)[2] == victims
                t = s.kv.write()
                n = (t.delete_range(key, arg)[0] if kind == "del" else
                     sum(t.delete_range(k, None)[0] for k in victims))
                t.end()
                assert n == len(victims)
                if victims:
                    m.write([("del", k, None, 0) for k in victims])
            elif kind == "compact":
                if arg <= m.compacted or arg > m.rev:
                    try:
                        s.kv.compact(arg)
                        raise AssertionError("compaction should have failed")
                    except (CompactedError, FutureRevError):
                        pass
                else:
                    s.kv.compact(arg)
                    m.compacted = arg
                    m.ref.compact(arg)
                    ops_, _ = s.b.commit().result()
                    s.b.release(ops_)
                    # the key bucket holds exactly the revisions etcd's index still has
                    left = {R.from_bytes(k)[0] for k, _ in s.b.scan(schema.KEY, b"")}
                    assert left == {r for ki in m.ref.visit(b"", b"") for g in ki.generations
                                    for r in g.revs}
                    # and the index's chains link only revisions still there
                    for k, v in s.b.scan(schema.KEY_PREV, b""):
                        assert rev_of12(k) in left and rev_of12(v) in left
            else:
                if kind == "rebuild":   # a backend without the derived databases' marker
                    s.b.delete(schema.LOCAL, schema.INDEX_FORMAT)
                s.close()
                s.open()
            assert s.kv.current_rev == m.rev
        for rev in {read_rev, 0, m.rev}:
            try:
                rr = s.kv.range(b"\x00", b"", rev=rev)
                part = s.kv.range(rkey, rend, rev=rev, limit=limit)
                cnt = s.kv.range(rkey, rend, rev=rev, count_only=True)
            except CompactedError:
                assert 0 < rev < m.compacted
                continue
            except FutureRevError:
                assert rev > m.rev
                continue
            state = m.history[rev or m.rev]
            got = {x.key: (x.value, x.create_revision, x.mod_revision, x.version, x.lease)
                   for x in rr.kvs}
            assert got == state
            assert [x.key for x in rr.kvs] == sorted(state)
            assert rr.count == len(state) and rr.rev == m.rev
            want = _range_model(state, rkey, rend)
            assert [x.key for x in part.kvs] == (want[:limit] if limit else want)
            assert part.count == cnt.count == len(want)
        for lease in (7, 8):
            want = sorted(k for k, v in m.history[m.rev].items() if v[4] == lease)
            assert s.lessor.revoke_keys(lease) == want
        ops_, _ = s.b.commit().result()   # a read view sees committed data (hash_kv flushes)
        s.b.release(ops_)
        for rev in range(max(m.compacted, 1), m.rev + 1):
            with s.b.read_view() as items:
                assert s.kv.hash_keep(items, rev) == m.ref.keep(rev)
        s.close()
