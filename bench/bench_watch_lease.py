"""Watch fan-out and lease keep-alive benchmarks (issue: Watch and Lease).

    python -m pytest bench/bench_watch_lease.py --benchmark-enable -s

- fan-out: 1,000 watchers on one prefix over 10 streams, puts at a fixed
  rate; events delivered per second and p99 delivery latency (put sent ->
  event received), on a three-member cluster (watchers on a follower).
- leases: 10,000 leases granted, then kept alive at the rate clients use
  (every TTL/3); CPU seconds the cluster uses per second.
"""
from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

import grpc
import pytest

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.etcdserverpb import rpc_pb2_grpc as pbg
from pyetcd.testing import LocalCluster


def _cpu(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def cluster():
    with tempfile.TemporaryDirectory() as d:
        c = LocalCluster("pyetcd", Path(d)).start()
        yield c
        c.stop()


async def _fanout(endpoints, watchers=1000, streams=10, rate=100, seconds=10.0):
    sent: dict[int, float] = {}
    lat: list[float] = []
    delivered = 0
    ready = asyncio.Event()
    created = 0
    chans = [grpc.aio.insecure_channel(endpoints[1]) for _ in range(streams)]

    async def stream(ch, n):
        nonlocal delivered, created
        q: asyncio.Queue = asyncio.Queue()
        for _ in range(n):
            q.put_nowait(pb.WatchRequest(create_request=pb.WatchCreateRequest(
                key=b"/fan/", range_end=b"/fan0")))

        async def reqs():
            while True:
                yield await q.get()
        async for resp in pbg.WatchStub(ch).Watch(reqs()):
            if resp.created:
                created += 1
                if created == watchers:
                    ready.set()
            now = time.perf_counter()
            for ev in resp.events:
                delivered += 1
                t = sent.get(ev.kv.mod_revision)
                if t is not None:
                    lat.append(now - t)

    tasks = [asyncio.create_task(stream(ch, watchers // streams)) for ch in chans]
    await asyncio.wait_for(ready.wait(), 60)
    async with grpc.aio.insecure_channel(endpoints[0]) as wch:
        kv = pbg.KVStub(wch)
        t0 = time.perf_counter()
        i = 0
        while time.perf_counter() - t0 < seconds:
            target = t0 + i / rate
            await asyncio.sleep(max(0.0, target - time.perf_counter()))
            ts = time.perf_counter()
            r = await kv.Put(pb.PutRequest(key=b"/fan/k%d" % (i % 100), value=b"v" * 64))
            sent[r.header.revision] = ts
            i += 1
        await asyncio.sleep(2.0)
        took = time.perf_counter() - t0
    for t in tasks:
        t.cancel()
    for ch in chans:
        await ch.close()
    lat.sort()
    return {"watchers": watchers, "streams": streams, "puts": i, "events_delivered": delivered,
            "events_per_s": round(delivered / took), "expected_events": i * watchers,
            "p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
            "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 1) if lat else None}


def test_watch_fanout(benchmark, cluster):
    eps = [m.endpoint for m in cluster.members]
    out = {}
    benchmark.pedantic(lambda: out.update(asyncio.run(_fanout(eps))), rounds=1, iterations=1)
    benchmark.extra_info.update(out)
    print("\nwatch fan-out:", out)
    assert out["events_delivered"] == out["expected_events"]


async def _leases(endpoints, n=10000, ttl=30, seconds=15.0, pids=()):
    chans = [grpc.aio.insecure_channel(ep) for ep in endpoints]
    stubs = [pbg.LeaseStub(c) for c in chans]
    ids: list[int] = []
    sem = asyncio.Semaphore(200)

    async def grant(i):
        async with sem:
            r = await stubs[i % len(stubs)].LeaseGrant(pb.LeaseGrantRequest(TTL=ttl))
            ids.append(r.ID)

    await asyncio.gather(*(grant(i) for i in range(n)))
    cpu0 = sum(_cpu(p) for p in pids)
    t0 = time.perf_counter()
    per_round = ttl / 3.0
    sent = 0

    async def keeper(k):
        nonlocal sent
        q: asyncio.Queue = asyncio.Queue()
        mine = ids[k::len(stubs)]

        async def reqs():
            while True:
                yield await q.get()
        call = stubs[k].LeaseKeepAlive(reqs())

        async def feed():
            nonlocal sent
            while time.perf_counter() - t0 < seconds:
                start = time.perf_counter()
                for lid in mine:
                    q.put_nowait(pb.LeaseKeepAliveRequest(ID=lid))
                    sent += 1
                await asyncio.sleep(max(0.0, per_round - (time.perf_counter() - start)))
        async def drain():
            got = 0
            async for resp in call:
                got += 1
                assert resp.TTL > 0
        d = asyncio.create_task(drain())
        await feed()
        await asyncio.sleep(1.0)  # let the last answers arrive
        call.cancel()
        d.cancel()

    await asyncio.gather(*(keeper(k) for k in range(len(stubs))))
    took = time.perf_counter() - t0
    cpu = sum(_cpu(p) for p in pids) - cpu0
    for c in chans:
        await c.close()
    return {"leases": n, "keepalives_sent": sent, "seconds": round(took, 1),
            "keepalives_per_s": round(sent / took), "cluster_cpu_s_per_s": round(cpu / took, 3)}


def test_leases_kept_alive(benchmark, cluster):
    eps = [m.endpoint for m in cluster.members]
    pids = [m.proc.pid for m in cluster.members]
    out = {}
    benchmark.pedantic(lambda: out.update(asyncio.run(_leases(eps, pids=pids))), rounds=1,
                       iterations=1)
    benchmark.extra_info.update(out)
    print("\nleases:", out)
