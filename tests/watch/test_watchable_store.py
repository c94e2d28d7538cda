"""The watchable store against etcd's watch guarantees (robustness checks:
ordered, unique, atomic, reliable, resumable, is-create, filters), with
random writes, random watchers (past, current and future start revisions),
compactions, backend commits (so history is read from both LMDB and the
pending map) and consumers so slow their watchers become victims."""
from __future__ import annotations

import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyetcd.mvcc import watchable_store as wsmod
from pyetcd.mvcc.kvstore import KVStore
from pyetcd.mvcc.watchable_store import WatchableStore, WatchError, WatchResponse
from pyetcd.pb.mvccpb.kv_pb2 import Event
from pyetcd.storage.backend import Backend

KEYS = [b"a", b"ab", b"b", b"ba", b"c"]


@pytest.fixture
def store():
    d = tempfile.mkdtemp(prefix="pyetcd-watch-")
    b = Backend(f"{d}/db", map_size=64 * 1024**2, durable=False)
    kv = KVStore(b)
    yield kv
    b.close()
    shutil.rmtree(d, ignore_errors=True)


def commit(kv):
    ops, _ = kv.backend.commit().result()
    kv.backend.release(ops)


def put(kv, *pairs):
    t = kv.write()
    for k, v in pairs:
        t.put(k, v)
    return t.end()


def delete(kv, key, end=None):
    t = kv.write()
    t.delete_range(key, end)
    return t.end()


def drain(ws):
    out = []
    while True:
        item = ws.pop()
        if item is None:
            return out
        out.append(item)


def settle(store, streams):
    """Run sync and victim rounds, draining every stream, until all is quiet."""
    got = {id(s): [] for s in streams}
    for _ in range(10000):
        for s in streams:
            got[id(s)].extend(drain(s))
        busy = store.move_victims() + store.sync_watchers()
        if not busy and not store.victims and not store.unsynced.watchers and \
                not any(s.queue for s in streams):
            return got
    raise AssertionError("watchers never settled")


def evs(resps):
    return [(e.type, e.kv.key, e.kv.mod_revision) for r in resps for e in r.events]


# ---- examples -----------------------------------------------------------------------------
def test_live_events_one_response_per_revision(store):
    w = WatchableStore(store)
    s = w.new_stream()
    assert s.watch(0, b"a", b"b", 0) == 0
    assert s.watch(0, b"c", None, 0) == 1
    put(store, (b"a", b"1"), (b"ab", b"2"), (b"c", b"3"))
    delete(store, b"a", b"z")
    out = drain(s)
    assert [(r.watch_id, r.revision, len(r.events)) for r in out] == [
        (0, 2, 2), (1, 2, 1), (0, 3, 2), (1, 3, 1)]
    assert out[0].events[0].kv.create_revision == out[0].events[0].kv.mod_revision == 2
    assert [e.type for e in out[2].events] == [Event.DELETE, Event.DELETE]


def test_history_then_live_without_gap_or_duplicate(store):
    for i in range(5):
        put(store, (b"k", b"%d" % i))
        if i == 2:
            commit(store)  # part of the history in LMDB, part still pending
    w = WatchableStore(store)
    s = w.new_stream()
    s.watch(0, b"k", None, 3)
    assert w.unsynced.watchers and not drain(s)
    put(store, (b"k", b"live"))  # arrives while unsynced: read from the store
    got = settle(w, [s])[id(s)]
    put(store, (b"k", b"live2"))
    got += drain(s)
    assert [e[2] for e in evs(got)] == [3, 4, 5, 6, 7, 8]
    assert got[0].revision == 7  # a catch-up response carries the current revision


def test_future_start_revision_waits(store):
    w = WatchableStore(store)
    s = w.new_stream()
    s.watch(0, b"k", None, 4)
    for i in range(5):
        put(store, (b"k", b"%d" % i))
    assert [e[2] for e in evs(drain(s))] == [4, 5, 6]


def test_compacted_start_revision_is_cancelled(store):
    for i in range(6):
        put(store, (b"k", b"%d" % i))
    store.compact(5)
    w = WatchableStore(store)
    s = w.new_stream()
    s.watch(0, b"k", None, 3)
    s.watch(0, b"k", None, 5)  # the compaction revision itself is still readable
    got = settle(w, [s])[id(s)]
    cancel = [r for r in got if r.compact_revision]
    assert [(r.watch_id, r.compact_revision, r.revision) for r in cancel] == [(0, 5, 0)]
    assert [e[2] for r in got if r.watch_id == 1 for e in evs([r])] == [5, 6, 7]


def test_delete_at_compaction_revision_is_delivered(store):
    """etcd #18089, fixed as in #18274: the tombstone at the compaction
    revision stays in the backend."""
    put(store, (b"k", b"1"))
    put(store, (b"k", b"2"))
    rev = delete(store, b"k")
    put(store, (b"k", b"3"))
    store.compact(rev)
    commit(store)
    w = WatchableStore(store)
    s = w.new_stream()
    s.watch(0, b"k", None, rev)
    got = settle(w, [s])[id(s)]
    assert [(e[0], e[2]) for e in evs(got)] == [(Event.DELETE, rev), (Event.PUT, rev + 1)]


def test_watch_ids_and_errors(store):
    w = WatchableStore(store)
    s = w.new_stream()
    assert s.watch(7, b"a", None, 0) == 7
    with pytest.raises(WatchError, match="duplicate watch ID"):
        s.watch(7, b"a", None, 0)
    with pytest.raises(WatchError, match="watcher range is empty"):
        s.watch(0, b"b", b"a", 0)
    assert [s.watch(0, b"a", None, 0) for _ in range(3)] == [0, 1, 2]
    assert s.cancel(1) and not s.cancel(1)
    assert s.watch(0, b"a", None, 0) == 3
    put(store, (b"a", b"x"))
    assert sorted(r.watch_id for r in drain(s)) == [0, 2, 3, 7]


def test_filters(store):
    w = WatchableStore(store)
    s = w.new_stream()
    s.watch(0, b"k", None, 0, no_put=True)
    s.watch(0, b"k", None, 0, no_delete=True)
    put(store, (b"k", b"1"))
    delete(store, b"k")
    assert [(r.watch_id, r.events[0].type) for r in drain(s)] == [(1, Event.PUT), (0, Event.DELETE)]


def test_progress_only_when_synced(store):
    put(store, (b"k", b"1"))
    w = WatchableStore(store)
    s = w.new_stream()
    assert s.request_progress_all()  # no watchers: answered at once
    assert [(r.watch_id, r.revision, r.events) for r in drain(s)] == [(-1, 2, [])]
    s.watch(0, b"k", None, 1)
    assert not s.request_progress_all() and not drain(s)  # still unsynced
    settle(w, [s])
    assert s.request_progress_all()
    assert [(r.watch_id, r.revision) for r in drain(s)] == [(-1, 2)]
    s.request_progress(0)
    assert [(r.watch_id, r.revision) for r in drain(s)] == [(0, 2)]


def test_slow_stream_becomes_victim_and_catches_up(store):
    w = WatchableStore(store)
    slow = w.new_stream(buf=2)
    fast = w.new_stream()
    slow.watch(0, b"k", None, 0)
    fast.watch(0, b"k", None, 0)
    for i in range(20):  # writes never wait for the slow stream
        put(store, (b"k", b"%d" % i))
    assert len(fast.queue) == 20 and len(slow.queue) == 2 and w.victims
    got = settle(w, [slow])[id(slow)]
    assert [e[2] for e in evs(got)] == list(range(2, 22))


def test_batches_cap_revisions(store, monkeypatch):
    monkeypatch.setattr(wsmod, "WATCH_BATCH_MAX_REVS", 3)
    monkeypatch.setattr(wsmod, "SYNC_READ_LIMIT", 4)
    for i in range(10):
        put(store, (b"k", b"%d" % i), (b"k2", b"x"))
    w = WatchableStore(store)
    s = w.new_stream()
    s.watch(0, b"k", b"l", 1)
    got = settle(w, [s])[id(s)]
    assert all(len({e.kv.mod_revision for e in r.events}) <= 3 for r in got)
    revs = [e[2] for e in evs(got)]
    assert revs == sorted(revs) and sorted(set(revs)) == list(range(2, 12)) and len(revs) == 20


def test_attach_new_store_resyncs(store):
    w = WatchableStore(store)
    s = w.new_stream()
    s.watch(0, b"k", None, 0)
    put(store, (b"k", b"1"))
    w.attach(store)  # same store object: nothing to redo
    assert w.synced.watchers
    drain(s)


# ---- property: the guarantees under random histories -------------------------------------------
_PUT = st.tuples(st.just("put"), st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True))
_WATCH = st.tuples(st.just("watch"), st.sampled_from(KEYS), st.sampled_from([None, b"", b"b", b"bb"]),
                   st.integers(-6, 2), st.sampled_from(["", "", "noput", "nodel"]))
OPS = st.lists(st.one_of(
    _PUT, _PUT, _PUT, _PUT, _WATCH, _WATCH,
    st.tuples(st.just("del"), st.sampled_from(KEYS), st.booleans()),
    st.tuples(st.just("commit")),
    st.tuples(st.just("sync")),
    st.tuples(st.just("drain"), st.integers(0, 3)),
    st.tuples(st.just("compact"), st.integers(0, 4)),
    st.tuples(st.just("cancel"), st.integers(0, 10)),
), min_size=20, max_size=100)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=OPS, bufs=st.lists(st.integers(1, 4), min_size=4, max_size=4))
def test_guarantees_random(ops, bufs):
    d = tempfile.mkdtemp(prefix="pyetcd-watch-")
    b = Backend(f"{d}/db", map_size=64 * 1024**2, durable=False)
    try:
        _check_history(KVStore(b), ops, bufs)
    finally:
        b.close()
        shutil.rmtree(d, ignore_errors=True)


def _check_history(kv, ops, bufs):
    history: dict[int, list] = {}  # revision -> its events, as the store applied them
    kv.listeners.append(lambda changes, rev: history.__setitem__(
        rev, [(Event.PUT if c.create_revision else Event.DELETE, c.key, c.SerializeToString())
              for c in changes]))
    w = WatchableStore(kv)
    streams = [w.new_stream(buf=n) for n in bufs]
    received = {id(s): [] for s in streams}
    watchers = []  # (stream, id, key, end, first revision expected, filter, cancelled_at)
    compactions: set[int] = set()
    for op in ops:
        kind = op[0]
        if kind == "put":
            put(kv, *[(k, b"v%d" % kv.current_rev) for k in op[1]])
        elif kind == "del":
            delete(kv, op[1], b"\xff" if op[2] else None)
        elif kind == "watch":
            _, key, end, rel, filt = op
            if end is not None and end and key >= end:
                continue
            start = max(0, kv.current_rev + rel) if rel else 0
            s = streams[len(watchers) % len(streams)]
            wid = s.watch(0, key, end, start, no_put=filt == "noput", no_delete=filt == "nodel")
            first = start if start else kv.current_rev + 1
            watchers.append([s, wid, key, end, first, filt, None])
        elif kind == "commit":
            commit(kv)
        elif kind == "sync":
            w.move_victims()
            w.sync_watchers()
        elif kind == "drain":
            s = streams[op[1]]
            received[id(s)].extend(drain(s))
        elif kind == "compact":
            at = kv.current_rev - op[1]
            if at > kv.compact_main_rev and at >= 1:
                kv.compact(at)
                compactions.add(at)
        elif kind == "cancel" and watchers:
            wt = watchers[op[1] % len(watchers)]
            if wt[6] is None:
                received[id(wt[0])].extend(drain(wt[0]))  # what arrived before the cancel
                wt[0].cancel(wt[1])
                wt[6] = kv.current_rev
    got = settle(w, streams)
    for s in streams:
        received[id(s)].extend(got[id(s)])
    for s, wid, key, end, first, filt, cancelled in watchers:
        resps = [r for r in received[id(s)] if r.watch_id == wid]
        _check_watcher(kv, history, resps, key, end, first, filt, cancelled, compactions)


def _matches(key, end, k):
    if end is None:
        return k == key
    return key <= k and (not end or k < end)


def _check_watcher(kv, history, resps, key, end, first, filt, cancelled, compactions):
    compacted = [r for r in resps if r.compact_revision]
    assert len(compacted) <= 1
    events = []
    for r in resps:
        if r.compact_revision:
            assert r is resps[-1] and not r.events  # nothing after the compaction notice
            continue
        revs = [e.kv.mod_revision for e in r.events]
        assert revs == sorted(revs)  # ordered inside a response
        for e in r.events:
            events.append((e.kv.mod_revision, e.type, e.kv.key, e.kv.SerializeToString()))
    # ordered and unique across responses
    assert [e[0] for e in events] == sorted(e[0] for e in events)
    # atomic: a revision's events all in one response
    seen = {}
    for i, r in enumerate(resps):
        for e in r.events:
            assert seen.setdefault(e.kv.mod_revision, i) == i
    last = cancelled if cancelled is not None else kv.current_rev
    if compacted:
        assert first < compacted[0].compact_revision
        last = max([e[0] for e in events], default=first - 1)
    drop = Event.PUT if filt == "noput" else Event.DELETE if filt == "nodel" else None
    want = [(rev, t, k, data) for rev in range(first, last + 1) for t, k, data in history.get(rev, [])
            if _matches(key, end, k) and t != drop]
    if cancelled is not None or compacted:
        assert events == want[:len(events)]  # a prefix: nothing skipped before the end
    else:
        assert events == want  # reliable: every event, nothing more
    for rev, t, _, data in events:
        from pyetcd.pb.mvccpb.kv_pb2 import KeyValue
        kvm = KeyValue.FromString(data)
        if t == Event.PUT:  # is-create marks agree with the version
            assert (kvm.create_revision == kvm.mod_revision) == (kvm.version == 1)
