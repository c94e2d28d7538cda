"""The load generator's workloads: etcd's tools/benchmark commands, and
Kubernetes' shape, over raw gRPC stubs.

Each workload has a ``prepare(client, params)`` that runs once in the
coordinating process before the measured phase (writing the keys a range
reads, the events watch-get replays, the pods Kubernetes lists) and an async
``run(ctx)`` that one worker process runs with its share of the connections
and clients.  ``ctx`` (:class:`Ctx`) holds the stubs, the params, the
:class:`Budget` that ends the run (a request count or a duration, with an
optional rate) and the :class:`Recorder` of latencies and errors.

What each measures (its main histogram is the first listed):

- ``put``: Put latency; keys of ``key_size`` bytes (Go's PutVarint of the
  request number, sequential, or of a random one in ``key_space``) after an
  optional ``prefix``, values of ``val_size`` bytes, as ``benchmark put``
  (and, with 512-byte keys and values, ``etcdctl check datascale``).
- ``range``: Range of ``key`` or of a prefix holding ``prefix_keys`` keys;
  ``consistency`` l (linearizable) or s (serializable), ``keys_only``,
  ``count_only``, as ``benchmark range``.
- ``txn-put``: a Txn of ``txn_ops`` Puts, as ``benchmark txn-put``.
- ``txn-mixed``: Txns holding one Range (``read``) or one Put (``write``),
  ``rw_ratio`` reads per write, as etcd 3.5's ``benchmark txn-mixed``.
- ``watch``: ``watchers`` watchers spread over ``streams`` streams on
  ``watched_keys`` keys while one client puts at ``put_rate``; the latency
  from the put being sent to each watcher receiving the event (the value
  carries the send time on the system-wide monotonic clock, so watchers in
  other processes measure it too).  (etcd's ``watch-latency`` starts its
  clock when the put returns; this one starts it when the put is sent.)
- ``watch-get``: serializable Gets while ``watchers`` watchers over
  ``streams`` streams replay ``events`` old events of one key, again and
  again (etcd's ``watch-get``, kept busy for the whole run).
- ``lease-keepalive``: each client grants a lease, then keep-alive round
  trips on its own LeaseKeepAlive stream.
- ``stm``: etcd's STM with repeatable reads (``benchmark stm``): read
  ``keys_per_txn`` random keys of ``keys`` (serializable gets), write back
  ``txn_wr_percent`` of them in a Txn guarded by the read keys' revisions,
  retry on conflict; latency of the committed transaction; conflicts counted.
- ``k8s``: Kubernetes' apiserver over etcd (etcd's robustness
  ``kubernetes`` traffic): ``pods`` pods under ``/registry/pods/``; writers
  do 90% optimistic updates, 5% creates, 5% deletes (Txns guarded by
  mod_revision, the old value fetched on failure); list-and-watch readers
  page through the prefix (``list_limit``) and watch it from the list's
  revision, measuring each event's delay.  Histograms: write, list, event.
"""
from __future__ import annotations

import asyncio
import os
import random
import struct
import time
import zlib
from collections import Counter

import grpc

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.etcdserverpb import rpc_pb2_grpc as rpc
from pyetcd.util.keys import prefix_end, put_varint

from .hdr import Histogram

WATCH_KEY = b"/bench/watch/"
WATCHGET_KEY = b"watchkey"
RANGE_PREFIX = b"/bench/range/"
PODS = b"/registry/pods/default/"
STAMP = struct.Struct("<q")   # monotonic nanoseconds at the head of a value


def varint_key(n: int, size: int) -> bytes:
    """Go's binary.PutVarint(n) into a zeroed ``size``-byte buffer (etcd's keys)."""
    return put_varint(n)[:size].ljust(size, b"\0")


def stamped(size: int) -> bytes:
    v = STAMP.pack(time.monotonic_ns())
    return v + b"x" * max(0, size - len(v))


def delay_of(value: bytes) -> float | None:
    if len(value) < STAMP.size:
        return None
    return (time.monotonic_ns() - STAMP.unpack_from(value)[0]) / 1e9


class Recorder:
    def __init__(self) -> None:
        self.hists: dict[str, Histogram] = {}
        self.errors: Counter = Counter()
        self.counters: Counter = Counter()

    def ok(self, name: str, seconds: float) -> None:
        h = self.hists.get(name)
        if h is None:
            h = self.hists[name] = Histogram()
        h.record(seconds)

    def error(self, exc: BaseException) -> None:
        if isinstance(exc, grpc.aio.AioRpcError):
            self.errors[f"rpc error: code = {exc.code().name} desc = {exc.details()}"] += 1
        else:
            self.errors[f"{type(exc).__name__}: {exc}"] += 1


class Budget:
    """The end of a run: ``total`` requests (this worker's share) or
    ``seconds``; ``rate`` requests/s at most (token bucket, burst 1)."""

    def __init__(self, total: int | None, seconds: float | None, rate: float | None) -> None:
        self.left = total
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = time.monotonic()
        self.n = 0

    def start(self) -> None:
        now = time.monotonic()
        if self.deadline is not None:
            self.deadline += now - self.next_at
        self.next_at = now

    def done(self) -> bool:
        return (self.left is not None and self.left <= 0) or \
            (self.deadline is not None and time.monotonic() >= self.deadline)

    async def take(self) -> int | None:
        """The number of the next request, or None when the run is over."""
        if self.done():
            return None
        if self.left is not None:
            self.left -= 1
        if self.interval:
            now = time.monotonic()
            self.next_at = max(self.next_at + self.interval, now)
            if self.next_at > now:
                await asyncio.sleep(self.next_at - now)
        self.n += 1
        return self.n - 1


class Ctx:
    def __init__(self, channels, params: dict, budget: Budget, rec: Recorder, clients: int,
                 worker: int, workers: int, metadata=None, client_offset: int = 0,
                 clients_total: int | None = None) -> None:
        self.channels = channels
        self.kv = [rpc.KVStub(c) for c in channels]
        self.watch = [rpc.WatchStub(c) for c in channels]
        self.lease = [rpc.LeaseStub(c) for c in channels]
        self.p = params
        self.budget = budget
        self.rec = rec
        self.clients = clients
        self.worker, self.workers = worker, workers
        self.client_offset = client_offset   # this worker's first client, across all workers
        self.clients_total = clients_total or clients
        self.md = metadata
        self.rng = random.Random(params.get("seed", 1) * 1000 + worker)

    def stub(self, kind: str, client: int):
        stubs = getattr(self, kind)
        return stubs[client % len(stubs)]

    def global_number(self, n: int) -> int:
        """The request number across all workers (worker w takes w, w+W, ...)."""
        return n * self.workers + self.worker


async def _timed(ctx: Ctx, name: str, coro) -> object | None:
    t0 = time.perf_counter()
    try:
        r = await coro
    except (grpc.aio.AioRpcError, asyncio.TimeoutError) as exc:
        ctx.rec.error(exc)
        return None
    ctx.rec.ok(name, time.perf_counter() - t0)
    return r


async def _clients(ctx: Ctx, body) -> None:
    await asyncio.gather(*(body(ctx, i) for i in range(ctx.clients)))


# -- put / range / txn ------------------------------------------------------

def _key(ctx: Ctx, n: int) -> bytes:
    p = ctx.p
    space = p.get("key_space", 1)
    k = ctx.global_number(n) % space if p.get("sequential") else ctx.rng.randrange(space)
    return p.get("prefix", "").encode() + varint_key(k, p.get("key_size", 8))


async def run_put(ctx: Ctx) -> None:
    value = os.urandom(ctx.p.get("val_size", 8))

    async def client(ctx, i):
        kv = ctx.stub("kv", i)
        while (n := await ctx.budget.take()) is not None:
            await _timed(ctx, "put", kv.Put(pb.PutRequest(key=_key(ctx, n), value=value),
                                            metadata=ctx.md))
    await _clients(ctx, client)


def range_prefix(n: int) -> bytes:
    """The prefix a range over ``n`` keys reads (one per key count)."""
    return RANGE_PREFIX + b"%d/" % n


def prepare_range(client, p: dict) -> None:
    n = p.get("prefix_keys", 0)
    value = b"v" * p.get("val_size", 8)
    if n:
        prefix = range_prefix(n)
        for start in range(0, n, 100):
            ops = [pb.RequestOp(request_put=pb.PutRequest(key=prefix + b"%08d" % i, value=value))
                   for i in range(start, min(n, start + 100))]
            client.txn(pb.TxnRequest(success=ops))
    else:
        client.put(p.get("key", "foo").encode(), value)


def _range_request(p: dict) -> pb.RangeRequest:
    if p.get("prefix_keys"):
        prefix = range_prefix(p["prefix_keys"])
        req = pb.RangeRequest(key=prefix, range_end=prefix_end(prefix))
    else:
        req = pb.RangeRequest(key=p.get("key", "foo").encode())
    req.serializable = p.get("consistency", "l") == "s"
    req.keys_only = bool(p.get("keys_only"))
    req.count_only = bool(p.get("count_only"))
    return req


async def run_range(ctx: Ctx) -> None:
    req = _range_request(ctx.p)

    async def client(ctx, i):
        kv = ctx.stub("kv", i)
        while await ctx.budget.take() is not None:
            await _timed(ctx, "range", kv.Range(req, metadata=ctx.md))
    await _clients(ctx, client)


async def run_txn_put(ctx: Ctx) -> None:
    value = os.urandom(ctx.p.get("val_size", 8))
    ops = ctx.p.get("txn_ops", 1)

    async def client(ctx, i):
        kv = ctx.stub("kv", i)
        while (n := await ctx.budget.take()) is not None:
            keys = {_key(ctx, n * ops + j) for j in range(ops)}
            while len(keys) < min(ops, ctx.p.get("key_space", 1)):   # a txn may not repeat a key
                keys.add(_key(ctx, n * ops + len(keys)))
            req = pb.TxnRequest(success=[
                pb.RequestOp(request_put=pb.PutRequest(key=k, value=value)) for k in sorted(keys)])
            await _timed(ctx, "txn-put", kv.Txn(req, metadata=ctx.md))
    await _clients(ctx, client)


async def run_txn_mixed(ctx: Ctx) -> None:
    p = ctx.p
    value = os.urandom(p.get("val_size", 8))
    read_share = p.get("rw_ratio", 1.0) / (1.0 + p.get("rw_ratio", 1.0))
    serializable = p.get("consistency", "l") == "s"

    async def client(ctx, i):
        kv = ctx.stub("kv", i)
        while (n := await ctx.budget.take()) is not None:
            key = _key(ctx, n)
            if ctx.rng.random() < read_share:
                op = pb.RequestOp(request_range=pb.RangeRequest(key=key, serializable=serializable))
                name = "read"
            else:
                op = pb.RequestOp(request_put=pb.PutRequest(key=key, value=value))
                name = "write"
            t0 = time.perf_counter()
            r = await _timed(ctx, name, kv.Txn(pb.TxnRequest(success=[op]), metadata=ctx.md))
            if r is not None:
                ctx.rec.ok("txn", time.perf_counter() - t0)
    await _clients(ctx, client)


# -- watch ---------------------------------------------------------------------

async def _watch_stream(ctx: Ctx, conn: int, creates: list[pb.WatchCreateRequest], on_event,
                        started: asyncio.Event | None = None, stop: asyncio.Event | None = None):
    """One Watch stream holding ``creates``; ``on_event(ev, watch_id)`` per event."""
    q: asyncio.Queue = asyncio.Queue()
    for c in creates:
        q.put_nowait(pb.WatchRequest(create_request=c))

    async def requests():
        while True:
            item = await q.get()
            if item is None:
                return
            yield item

    call = ctx.stub("watch", conn).Watch(requests(), metadata=ctx.md)
    want = len(creates)
    try:
        async for resp in call:
            if resp.created:
                want -= 1
                if want == 0 and started is not None:
                    started.set()
            for ev in resp.events:
                on_event(ev, resp.watch_id, q)
            if stop is not None and stop.is_set():
                break
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.CANCELLED:
            ctx.rec.error(exc)
    finally:
        q.put_nowait(None)
        call.cancel()


def _share(total: int, ctx: Ctx) -> int:
    """This worker's share of ``total`` things spread over all workers."""
    return total // ctx.workers + (1 if ctx.worker < total % ctx.workers else 0)


async def run_watch(ctx: Ctx) -> None:
    p = ctx.p
    streams = max(1, _share(p.get("streams", 10), ctx))
    watchers = _share(p.get("watchers", 100), ctx)
    keys = [WATCH_KEY + b"%06d" % i for i in range(p.get("watched_keys", 1))]
    stop = asyncio.Event()
    ready = [asyncio.Event() for _ in range(streams)]

    def on_event(ev, _wid, _q):
        d = delay_of(ev.kv.value)
        if d is not None:
            ctx.rec.ok("event", d)

    per = [watchers // streams + (1 if s < watchers % streams else 0) for s in range(streams)]
    tasks = [asyncio.ensure_future(_watch_stream(
        ctx, s, [pb.WatchCreateRequest(key=keys[(s + j) % len(keys)]) for j in range(per[s])],
        on_event, ready[s], stop)) for s in range(streams) if per[s]]
    await asyncio.gather(*(ready[s].wait() for s in range(streams) if per[s]))
    # every worker's watchers are up before any put: the coordinator's GO
    # comes after all workers report ready, and puts start only then
    if ctx.worker == 0:
        kv = ctx.stub("kv", 0)
        size = p.get("val_size", 32)
        # the writer keeps to put_rate (the run's budget says when it ends)
        puts = Budget(ctx.budget.left, None, p.get("put_rate"))
        puts.deadline = ctx.budget.deadline
        while (n := await puts.take()) is not None:
            await _timed(ctx, "put", kv.Put(pb.PutRequest(key=keys[n % len(keys)],
                                                          value=stamped(size)), metadata=ctx.md))
        await asyncio.sleep(0.5)   # the last events in flight
    else:   # the other workers only watch: until the deadline, or 1 s without events
        seen, idle_since = 0, time.monotonic()
        while not ctx.budget.done():
            await asyncio.sleep(0.05)
            n = ctx.rec.hists["event"].total if "event" in ctx.rec.hists else 0
            if n != seen:
                seen, idle_since = n, time.monotonic()
            elif n and ctx.budget.deadline is None and time.monotonic() - idle_since > 1.0:
                break
        await asyncio.sleep(0.5)
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def prepare_watch_get(client, p: dict) -> dict:
    first = 0
    for i in range(p.get("events", 8)):
        r = client.put(WATCHGET_KEY, b"%d" % i)
        first = first or r.header.revision
    return {"watch_rev": first}


async def run_watch_get(ctx: Ctx) -> None:
    p = ctx.p
    streams = max(1, _share(p.get("streams", 1), ctx))
    watchers = max(1, _share(p.get("watchers", 1000), ctx))
    events = p.get("events", 8)
    rev = p["watch_rev"]
    stop = asyncio.Event()
    seen: Counter = Counter()

    def on_event(_ev, wid, q):
        seen[wid] += 1
        if seen[wid] >= events and not stop.is_set():   # replay it: re-watch from the start
            seen[wid] = 0
            ctx.rec.counters["replays"] += 1
            q.put_nowait(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=wid)))
            q.put_nowait(pb.WatchRequest(create_request=pb.WatchCreateRequest(
                key=WATCHGET_KEY, start_revision=rev)))

    per = [watchers // streams + (1 if s < watchers % streams else 0) for s in range(streams)]
    tasks = [asyncio.ensure_future(_watch_stream(
        ctx, s, [pb.WatchCreateRequest(key=WATCHGET_KEY, start_revision=rev)
                 for _ in range(per[s])], on_event, None, stop))
        for s in range(streams) if per[s]]
    async def getter(ctx, i):
        kv = ctx.stub("kv", i)
        while await ctx.budget.take() is not None:
            await _timed(ctx, "get", kv.Range(pb.RangeRequest(key=b"abc", serializable=True),
                                              metadata=ctx.md))
    await _clients(ctx, getter)
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# -- lease -------------------------------------------------------------------

async def run_lease_keepalive(ctx: Ctx) -> None:
    async def client(ctx, i):
        lease = ctx.stub("lease", i)
        try:
            g = await lease.LeaseGrant(pb.LeaseGrantRequest(TTL=100), metadata=ctx.md)
        except grpc.aio.AioRpcError as exc:
            ctx.rec.error(exc)
            return
        call = lease.LeaseKeepAlive(metadata=ctx.md)
        try:
            while await ctx.budget.take() is not None:
                t0 = time.perf_counter()
                try:
                    await call.write(pb.LeaseKeepAliveRequest(ID=g.ID))
                    r = await call.read()
                except grpc.aio.AioRpcError as exc:
                    ctx.rec.error(exc)
                    return
                if r is grpc.aio.EOF or r.TTL <= 0:
                    ctx.rec.errors["keepalive: lease expired or stream ended"] += 1
                    return
                ctx.rec.ok("keepalive", time.perf_counter() - t0)
        finally:
            call.cancel()
            try:
                await lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=g.ID), metadata=ctx.md)
            except grpc.aio.AioRpcError:   # tidying after the measurement: it expires anyway
                pass
    await _clients(ctx, client)


# -- stm ---------------------------------------------------------------------

async def run_stm(ctx: Ctx) -> None:
    p = ctx.p
    nkeys, per_txn = p.get("keys", 1000), p.get("keys_per_txn", 1)
    writes = int(per_txn * p.get("txn_wr_percent", 50) / 100.0)
    val_size = p.get("val_size", 8)

    async def one(kv, keys) -> bool:
        """One STM attempt (repeatable reads): True when it committed."""
        cmps = []
        for k in keys:   # clientv3's stmRepeatable: guard each key by the revision it was read at
            r = await kv.Range(pb.RangeRequest(key=k, serializable=True), metadata=ctx.md)
            cmps.append(pb.Compare(key=k, target=pb.Compare.MOD, result=pb.Compare.LESS,
                                   mod_revision=r.header.revision + 1))
        puts = [pb.RequestOp(request_put=pb.PutRequest(key=k, value=os.urandom(val_size)))
                for k in keys[:writes]]
        t = await kv.Txn(pb.TxnRequest(compare=cmps, success=puts), metadata=ctx.md)
        return t.succeeded

    async def client(ctx, i):
        kv = ctx.stub("kv", i)
        while await ctx.budget.take() is not None:
            keys = [varint_key(k, 16) for k in ctx.rng.sample(range(nkeys), per_txn)]
            t0 = time.perf_counter()
            try:
                while not await one(kv, keys):
                    ctx.rec.counters["conflicts"] += 1
            except grpc.aio.AioRpcError as exc:
                ctx.rec.error(exc)
                continue
            ctx.rec.ok("stm", time.perf_counter() - t0)
    await _clients(ctx, client)


# -- kubernetes --------------------------------------------------------------

def prepare_k8s(client, p: dict) -> dict:
    value = b"p" * p.get("val_size", 1024)
    n = p.get("pods", 1000)
    for start in range(0, n, 100):
        ops = [pb.RequestOp(request_put=pb.PutRequest(key=PODS + b"pod-%06d" % i, value=value))
               for i in range(start, min(n, start + 100))]
        client.txn(pb.TxnRequest(success=ops))
    return {}


async def _k8s_list(ctx: Ctx, kv, limit: int) -> tuple[int, dict[bytes, int]]:
    """A paged list of the pods prefix at one revision: (revision, key -> mod_revision)."""
    start, end, rev, seen = PODS, prefix_end(PODS), 0, {}
    while True:
        r = await kv.Range(pb.RangeRequest(key=start, range_end=end, limit=limit, revision=rev),
                           metadata=ctx.md)
        rev = rev or r.header.revision
        for x in r.kvs:
            seen[x.key] = x.mod_revision
        if not r.more or not r.kvs:
            return rev, seen
        start = r.kvs[-1].key + b"\0"


async def _k8s_write(ctx: Ctx, kv, i: int, known: dict, value_size: int, n: int) -> None:
    roll = ctx.rng.random()
    if roll < 0.05 or not known:
        kind, key, rev = "create", PODS + b"pod-w%d-c%d-%d" % (ctx.worker, i, n), 0
        cmp = pb.Compare(key=key, target=pb.Compare.MOD, result=pb.Compare.EQUAL, mod_revision=0)
    else:
        key = ctx.rng.choice(list(known))
        rev = known[key]
        kind = "delete" if roll < 0.10 else "update"
        cmp = pb.Compare(key=key, target=pb.Compare.MOD, result=pb.Compare.EQUAL, mod_revision=rev)
    if kind == "delete":
        op = pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key))
    else:
        op = pb.RequestOp(request_put=pb.PutRequest(key=key, value=stamped(value_size)))
    req = pb.TxnRequest(compare=[cmp], success=[op],
                        failure=[pb.RequestOp(request_range=pb.RangeRequest(key=key))])
    r = await _timed(ctx, "write", kv.Txn(req, metadata=ctx.md))
    if r is None:
        return
    ctx.rec.counters[kind] += 1
    if not r.succeeded:
        ctx.rec.counters["conflicts"] += 1
        kvs = r.responses[0].response_range.kvs
        if kvs:
            known[key] = kvs[0].mod_revision
        else:
            known.pop(key, None)
    elif kind == "delete":
        known.pop(key, None)
    else:
        known[key] = r.header.revision


async def run_k8s(ctx: Ctx) -> None:
    p = ctx.p
    limit, value_size = p.get("list_limit", 500), p.get("val_size", 1024)
    readers = max(1, _share(p.get("readers", 2), ctx))
    stop = asyncio.Event()

    def on_event(ev, _wid, _q):
        if ev.type == ev.PUT:
            d = delay_of(ev.kv.value)
            if d is not None:
                ctx.rec.ok("event", d)

    async def reader(r: int):
        kv = ctx.stub("kv", r)
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                rev, _ = await _k8s_list(ctx, kv, limit)
            except grpc.aio.AioRpcError as exc:
                ctx.rec.error(exc)
                await asyncio.sleep(0.1)
                continue
            ctx.rec.ok("list", time.perf_counter() - t0)
            watch = asyncio.ensure_future(_watch_stream(
                ctx, r, [pb.WatchCreateRequest(key=PODS, range_end=prefix_end(PODS),
                                               start_revision=rev + 1, prev_kv=True,
                                               progress_notify=True)], on_event, None, stop))
            # a watch lives a while, then the informer relists (as on a resync)
            try:
                await asyncio.wait_for(asyncio.shield(stop.wait()), p.get("relist_s", 2.0))
            except asyncio.TimeoutError:   # time to relist
                pass
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)

    async def writer(ctx, i):
        # each writer owns a share of the pods (as each controller owns its
        # objects), so conflicts come from the races a real cluster has,
        # not from writers that never see each other's updates
        kv = ctx.stub("kv", i)
        me = ctx.client_offset + i
        try:
            _, listed = await _k8s_list(ctx, kv, limit)
        except grpc.aio.AioRpcError as exc:
            ctx.rec.error(exc)
            return
        known = {k: v for k, v in listed.items() if zlib.crc32(k) % ctx.clients_total == me}
        while (n := await ctx.budget.take()) is not None:
            await _k8s_write(ctx, kv, i, known, value_size, n)

    rtasks = [asyncio.ensure_future(reader(r)) for r in range(readers)]
    await _clients(ctx, writer)
    stop.set()
    await asyncio.gather(*rtasks, return_exceptions=True)


WORKLOADS = {
    "put": (None, run_put, "put"),
    "range": (prepare_range, run_range, "range"),
    "txn-put": (None, run_txn_put, "txn-put"),
    "txn-mixed": (None, run_txn_mixed, "txn"),
    "watch": (None, run_watch, "event"),
    "watch-get": (prepare_watch_get, run_watch_get, "get"),
    "lease-keepalive": (None, run_lease_keepalive, "keepalive"),
    "stm": (None, run_stm, "stm"),
    "k8s": (prepare_k8s, run_k8s, "write"),
}
