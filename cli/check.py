"""``pyetcdctl check perf``: etcdctl's check.go in Python.

The same workload and verdict: Puts of a 256-byte key (a random varint
padded with zero bytes) under ``--prefix`` with a 1 KiB value of zero bytes,
paced by a token bucket (burst 1) at the load's rate and fed to its number of
clients, each on its own gRPC connection, for 60 seconds; then the prefix is
deleted (``--auto-compact``: compacted at that revision; ``--auto-defrag``:
every endpoint defragmented) and the run passes when there were no errors,
throughput > 90% of the rate, slowest request <= 0.5 s and stddev <= 0.1 s.

A Python load generator is slower than Go's: the l and xl loads (8,000 and
15,000 writes/s) are more than one Python process can send, so those verdicts
say more about the client than the cluster; use the real etcdctl for them.
"""
from __future__ import annotations

import asyncio
import math
import os
import random
import statistics
import sys
import time

import grpc

from pyetcd.client import ClientError, channel_credentials, parse_endpoint
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.etcdserverpb import rpc_pb2_grpc as rpc
from pyetcd.util.keys import prefix_end, put_varint

from .ctl import EXIT_BAD_FEATURE, EXIT_INTERRUPTED, EXIT_INVALID_INPUT
from .spec import Command, arg

LOADS = {"s": (150, 50), "m": (1000, 200), "l": (8000, 500), "xl": (15000, 1000)}
ALIASES = {"s": "s", "small": "s", "m": "m", "medium": "m", "l": "l", "large": "l",
           "xl": "xl", "xLarge": "xl"}
DURATION = 60
KEY_SIZE, VALUE_SIZE = 256, 1024


def _channel(ctl, endpoint: str):
    a = ctl.args
    target, tls = parse_endpoint(endpoint)
    if tls or a.cacert or a.cert:
        return grpc.aio.secure_channel(target, channel_credentials(a.cacert, a.cert, a.tls_key))
    return grpc.aio.insecure_channel(target)


async def _load(ctl, prefix: bytes, limit: int, clients: int, duration: float, metadata) -> dict:
    eps = [e for e in ctl.args.endpoints.split(",") if e]
    chans = [_channel(ctl, eps[i % len(eps)]) for i in range(clients)]
    stubs = [rpc.KVStub(ch) for ch in chans]
    queue: asyncio.Queue = asyncio.Queue(maxsize=clients)
    value = bytes(VALUE_SIZE)
    lats: list[float] = []
    errors: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    start = loop.time()
    rnd = random.Random()

    async def producer():
        interval = 1.0 / limit
        nxt = loop.time()
        end = start + duration
        while True:
            now = loop.time()
            if now >= end:
                break
            if now < nxt:
                await asyncio.sleep(nxt - now)
                continue
            nxt = max(nxt + interval, now - interval)  # burst 1: no catching up beyond one token
            k = put_varint(rnd.randrange(1 << 63))
            await queue.put(prefix + k + bytes(KEY_SIZE - len(k)))
        for _ in range(clients):
            await queue.put(None)

    async def worker(stub):
        while True:
            key = await queue.get()
            if key is None:
                return
            t0 = time.perf_counter()
            try:
                await stub.Put(pb.PutRequest(key=key, value=value), metadata=metadata, timeout=30)
                lats.append(time.perf_counter() - t0)
            except grpc.aio.AioRpcError as exc:
                msg = f"rpc error: code = {exc.code().name} desc = {exc.details()}"
                errors[msg] = errors.get(msg, 0) + 1

    async def bar():
        n = int(duration)
        for i in range(1, n + 1):
            await asyncio.sleep(duration / n)
            width = 60
            done = width * i // n
            line = f" {i} / {n} B{'o' * max(0, done - 2)}m{' ' * (width - done)}! {100.0 * i / n:6.2f}%"
            sys.stdout.write("\r" + line)
            sys.stdout.flush()
        sys.stdout.write("\n")

    try:
        await asyncio.gather(producer(), bar(), *(worker(s) for s in stubs))
    finally:
        for ch in chans:
            await ch.close()
    total = loop.time() - start
    return {"lats": lats, "errors": errors, "total": total}


def check_perf(ctl) -> int:
    a = ctl.args
    model = ALIASES.get(a.load)
    if model is None:
        print(f"Error: unknown load option {a.load}", file=sys.stderr)
        return EXIT_BAD_FEATURE
    limit, clients = LOADS[model]
    # the run lasts 60 s as etcdctl's; tests may shorten it
    duration = float(os.environ.get("PYETCDCTL_CHECK_PERF_SECONDS", DURATION))
    prefix = a.prefix.encode()
    with ctl.client() as c:
        if c.get(prefix, prefix_end(prefix), limit=1).kvs:
            print(f"Error: prefix {ctl.quote(a.prefix)} has keys. Delete with 'etcdctl del --prefix "
                  f"{a.prefix}' first", file=sys.stderr)
            return EXIT_INVALID_INPUT
        metadata = c.metadata
    try:
        import uvloop
        run = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        st = run(_load(ctl, prefix, limit, clients, duration, metadata))
    except KeyboardInterrupt:
        _cleanup(ctl, prefix, False)
        return EXIT_INTERRUPTED
    _cleanup(ctl, prefix, a.auto_compact)
    if a.auto_defrag:
        for ep in ctl.endpoints(False):
            print(f"Defragmenting {ctl.quote(ep)}")
            with ctl.client(ep) as c:
                c.defragment(timeout=30)
            print(f"Defragmented {ctl.quote(ep)}")
    lats, errors = st["lats"], st["errors"]
    rps = len(lats) / st["total"] if st["total"] > 0 else 0.0
    slowest = max(lats) if lats else 0.0
    stddev = statistics.pstdev(lats) if len(lats) > 1 else 0.0
    ok = True
    if errors:
        print("FAIL: too many errors")
        for k, v in errors.items():
            print(f"FAIL: ERROR({k}) -> {v}")
        ok = False
    if rps / limit <= 0.9:
        print(f"FAIL: Throughput too low: {int(rps) + 1} writes/s")
        ok = False
    else:
        print(f"PASS: Throughput is {int(rps) + 1} writes/s")
    if slowest > 0.5:
        print(f"Slowest request took too long: {slowest:f}s")
        ok = False
    else:
        print(f"PASS: Slowest request took {slowest:f}s")
    if stddev > 0.1 or math.isnan(stddev):
        print(f"Stddev too high: {stddev:f}s")
        ok = False
    else:
        print(f"PASS: Stddev is {stddev:f}s")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def _cleanup(ctl, prefix: bytes, auto_compact: bool) -> None:
    try:
        with ctl.client() as c:
            resp = c.delete(prefix, prefix_end(prefix))
            if auto_compact:
                rev = resp.header.revision
                print(f"Compacting with revision {rev}")
                c.compact(rev, physical=True)
                print(f"Compacted with revision {rev}")
    except ClientError as exc:
        print(f"FAIL: Cleanup failed during key deletion: ERROR({exc.message})")


COMMANDS = [
    Command(("check", "perf"), check_perf, (
        arg("--load", default="s"), arg("--prefix", default="/etcdctl-check-perf/"),
        arg("--auto-compact", action="store_true"), arg("--auto-defrag", action="store_true")),
        "Check the performance of the etcd cluster"),
]
