"""The MVCC store against a naive model: a full copy of the key space at
every revision.  Hypothesis drives random puts, deletes, ranges at old
revisions, compactions and restarts (rebuilding the index from LMDB)."""
from __future__ import annotations

import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from pyetcd.mvcc import revision as R
from pyetcd.mvcc.kvstore import CompactedError, FutureRevError, KVStore
from pyetcd.mvcc.sorted_keys import SortedKeys
from pyetcd.storage.backend import Backend

KEYS = [b"a", b"ab", b"b", b"c", b"\x00", b"\xff"]


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=3)), max_size=400),
       st.binary(max_size=3), st.one_of(st.none(), st.binary(max_size=3)))
def test_sorted_keys_model(ops, lo, hi):
    sk, model = SortedKeys(), set()
    for add, k in ops:
        if add and k not in model:
            sk.add(k)
            model.add(k)
        elif not add and k in model:
            sk.remove(k)
            model.discard(k)
    assert list(sk) == sorted(model) and len(sk) == len(model)
    want = sorted(k for k in model if k >= lo and (hi is None or k < hi))
    assert list(sk.irange(lo, hi)) == want


def test_sorted_keys_many_chunks():
    keys = [b"%06d" % i for i in range(5000)]
    sk = SortedKeys()
    for k in reversed(keys):
        sk.add(k)
    assert list(sk) == keys
    assert list(sk.irange(b"001000", b"001010")) == keys[1000:1010]
    for k in keys[::2]:
        sk.remove(k)
    assert list(sk) == keys[1::2]
    assert b"000001" in sk and b"000000" not in sk


def test_revision_encoding_orders_like_ints():
    revs = [R.rev(m, s) for m in (0, 1, 255, 256, 2**40) for s in (0, 1, 2**31)]
    assert sorted(revs) == sorted(revs, key=R.to_bytes)
    for r in revs:
        assert R.from_bytes(R.to_bytes(r)) == (r, False)
        assert R.from_bytes(R.to_bytes(r, tombstone=True)) == (r, True)


op = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(KEYS), st.binary(max_size=2)),
    st.tuples(st.just("del"), st.sampled_from(KEYS), st.sampled_from([None, b"", b"b", b"c"])),
    st.tuples(st.just("compact"), st.none(), st.integers(0, 30)),
    st.tuples(st.just("restart"), st.none(), st.none()),
)


class Model:
    def __init__(self):
        self.history = {1: {}}  # main revision -> {key: (value, create, mod, version)}
        self.rev = 1
        self.compacted = -1

    def write(self, changes):
        state = dict(self.history[self.rev])
        nxt = self.rev + 1
        for kind, key, value in changes:
            if kind == "put":
                old = state.get(key)
                state[key] = (value, old[1] if old else nxt, nxt, old[3] + 1 if old else 1)
            else:
                state.pop(key, None)
        self.rev = nxt
        self.history[nxt] = state


def _range_model(state, key, end):
    if end is None:
        return [key] if key in state else []
    return sorted(k for k in state if k >= key and (end == b"" or k < end))


@settings(max_examples=150, deadline=None)
@given(st.lists(op, max_size=40), st.integers(0, 45))
def test_kvstore_matches_model(ops, read_rev):
    with tempfile.TemporaryDirectory() as d:
        path = d + "/db"
        b = Backend(path, map_size=64 * 1024**2)
        kv = KVStore(b)
        m = Model()
        for kind, key, arg in ops:
            if kind == "put":
                t = kv.write()
                t.put(key, arg)
                t.end()
                m.write([("put", key, arg)])
            elif kind == "del":
                t = kv.write()
                n, _ = t.delete_range(key, arg)
                t.end()
                victims = _range_model(m.history[m.rev], key, arg)
                assert n == len(victims)
                if victims:
                    m.write([("del", k, None) for k in victims])
            elif kind == "compact":
                if arg <= m.compacted or arg > m.rev:
                    try:
                        kv.compact(arg)
                        raise AssertionError("compaction should have failed")
                    except (CompactedError, FutureRevError):
                        pass
                else:
                    kv.compact(arg)
                    m.compacted = arg
            else:
                ops_, _ = b.commit().result()
                b.release(ops_)
                b.close()
                b = Backend(path, map_size=64 * 1024**2)
                kv = KVStore(b)
            assert kv.current_rev == m.rev
        for rev in {read_rev, 0, m.rev}:
            try:
                rr = kv.range(b"\x00", b"", rev=rev)
            except CompactedError:
                assert 0 < rev < m.compacted
                continue
            except FutureRevError:
                assert rev > m.rev
                continue
            state = m.history[rev or m.rev]
            got = {x.key: (x.value, x.create_revision, x.mod_revision, x.version) for x in rr.kvs}
            assert got == state
            assert rr.count == len(state) and rr.rev == m.rev
        b.close()
