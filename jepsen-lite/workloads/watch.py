"""watch: writers put and delete keys under a prefix while watchers on
every member (and one filtered watcher) stream the prefix, resume from the
revision after their last event when a stream breaks, and ask for progress
notifications.  After the faults a reference stream (one watch from the
earliest revision any watcher started at) is read from a healthy member.

The checks are etcd's robustness guarantees (tests/robustness/validate):
ordered, unique, atomic (a revision's events in one response), reliable (no
gap against the reference), resumable (a resumed stream continues exactly
where it broke), bookmarkable (no event at or below a progress
notification's revision after it), prev_kv (the previous value is the
reference's), is_create (version 1 exactly when the key did not exist) and
filters (a NODELETE watcher never sees a delete)."""
from __future__ import annotations

import queue
import threading
import time

import grpc

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

from ..client import EtcdClient, Indeterminate, Refused
from ..history import OK, pairs
from .base import Workload

PREFIX = b"/jl/watch/"
END = b"/jl/watch0"
KEYS = 10
PROGRESS_EVERY = 1.0


def _events(resp) -> list:
    return [[e.kv.mod_revision, int(e.type), e.kv.key.decode(), e.kv.value.decode(),
             e.kv.create_revision, e.kv.version,
             e.prev_kv.value.decode() if e.HasField("prev_kv") else None] for e in resp.events]


class Watcher:
    """One watcher thread: streams the prefix from ``next_rev`` and
    resumes after errors; every response is recorded."""

    def __init__(self, ctx, member, wid: str, filters=()):
        self.ctx, self.member, self.wid, self.filters = ctx, member, wid, list(filters)
        self.next_rev = 0
        self.thread = threading.Thread(target=self.run, daemon=True, name=f"watcher-{wid}")

    def _record(self, f: str, value) -> None:
        rec = self.ctx.recorder
        inv = rec.invoke(f"watcher-{self.wid}", f, None, member=self.member.endpoint,
                         workload="watch")
        rec.complete(inv, OK, value)

    def run(self) -> None:
        client = EtcdClient(self.member.endpoint, 2.0)
        try:
            while self.ctx.running():
                if self.next_rev == 0:
                    try:
                        self.next_rev = client.get(PREFIX, END, count_only=True).header.revision + 1
                    except (Refused, Indeterminate):
                        time.sleep(0.3)
                        continue
                self._record("watch-start", {"w": self.wid, "from": self.next_rev,
                                             "filters": self.filters})
                why = self._stream(client)
                self._record("watch-end", {"w": self.wid, "why": why, "next": self.next_rev})
                time.sleep(0.2)
        finally:
            client.close()

    def _stream(self, client: EtcdClient) -> str:
        reqs: queue.Queue = queue.Queue()
        reqs.put(pb.WatchRequest(create_request=pb.WatchCreateRequest(
            key=PREFIX, range_end=END, start_revision=self.next_rev, prev_kv=True,
            filters=self.filters)))

        def gen():
            while True:
                r = reqs.get()
                if r is None:
                    return
                yield r

        stream = client.watch.Watch(gen(), metadata=(("hasleader", "true"),))
        ticker = threading.Thread(target=self._progress, args=(reqs,), daemon=True)
        ticker.start()
        try:
            for resp in stream:
                evs = _events(resp)
                self._record("watch-resp", {"w": self.wid, "rev": resp.header.revision,
                                            "events": evs, "created": resp.created,
                                            "canceled": resp.canceled,
                                            "compact": resp.compact_revision})
                if evs:
                    self.next_rev = evs[-1][0] + 1
                if resp.compact_revision:
                    self.next_rev = max(self.next_rev, resp.compact_revision)
                if resp.canceled:
                    return f"canceled: {resp.cancel_reason}"
                if not self.ctx.running():
                    return "done"
            return "stream ended"
        except grpc.RpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
        finally:
            reqs.put(None)
            stream.cancel()

    def _progress(self, reqs: queue.Queue) -> None:
        while self.ctx.running():
            time.sleep(PROGRESS_EVERY)
            reqs.put(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))


class WatchWorkload(Workload):
    name = "watch"

    def setup(self, ctx) -> None:
        self.watchers = [Watcher(ctx, m, f"{m.name}") for m in ctx.cluster.members]
        self.watchers.append(Watcher(ctx, ctx.cluster.members[0], "nodelete",
                                     [pb.WatchCreateRequest.NODELETE]))

    def threads(self, ctx, processes):
        return super().threads(ctx, processes) + [w.thread for w in self.watchers]

    def operation(self, rng, process, state):
        state["n"] = state.get("n", 0) + 1
        k = rng.randrange(KEYS)
        if rng.random() < 0.2:
            return "del", k
        return "put", (k, f"{process}-{state['n']}")

    def apply(self, client, f, value, state):
        if f == "del":
            return client.delete(PREFIX + b"%d" % value).header.revision
        k, v = value
        return client.put(PREFIX + b"%d" % k, v.encode()).header.revision

    def final(self, ctx) -> None:
        """The reference: one stream from the earliest start, to now."""
        starts = [p.result["from"] for p in pairs(ctx.recorder.ops, self.name)
                  if p.inv.f == "watch-start" and p.result]
        if not starts:
            return
        for m in ctx.cluster.members:
            ref = _reference(m, min(starts))
            if ref is not None:
                inv = ctx.recorder.invoke("final", "reference", None, member=m.endpoint,
                                          workload=self.name)
                ctx.recorder.complete(inv, OK, ref)
                return

    def check(self, ops, info: dict) -> dict:
        from ..checkers.watch import check_watch
        return check_watch(pairs(ops, self.name))


def _reference(m, start: int) -> dict | None:
    """Every event of the prefix from ``start`` up to a sentinel put now
    (the watchers have stopped), or from the compaction revision when
    ``start`` is compacted."""
    client = EtcdClient(m.endpoint, 5.0)
    try:
        head = client.put(PREFIX + b"sentinel", b"end").header.revision
    except (Refused, Indeterminate):
        client.close()
        return None
    done = threading.Event()

    def gen():
        yield pb.WatchRequest(create_request=pb.WatchCreateRequest(
            key=PREFIX, range_end=END, start_revision=start, prev_kv=True))
        done.wait(30)

    events, compact = [], 0
    try:
        for resp in client.watch.Watch(gen(), timeout=30):
            if resp.compact_revision:
                compact = resp.compact_revision
                break
            events += _events(resp)
            if events and events[-1][0] >= head:
                break
    except grpc.RpcError:
        return None
    finally:
        done.set()
        client.close()
    if compact:
        return _reference(m, compact) if compact > start else None
    return {"from": start, "head": head, "events": [e for e in events if e[0] < head]}
