"""A small gRPC load generator for pyetcd/etcd (Put or Range), used by the
benchmarks: N concurrent requests over C channels for a fixed count.

    python bench/load.py --endpoints 127.0.0.1:2379 --op put --total 20000 --clients 200 --conns 20
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import grpc

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.etcdserverpb import rpc_pb2_grpc as pbg


async def run(endpoints: list[str], op: str, total: int, clients: int, conns: int,
              key_size: int = 8, val_size: int = 256, keyspace: int = 10000,
              channel=grpc.aio.insecure_channel, metadata=None) -> dict:
    chans = [channel(endpoints[i % len(endpoints)]) for i in range(conns)]
    stubs = [pbg.KVStub(c) for c in chans]
    value = b"x" * val_size
    counter = iter(range(total))
    lat: list[float] = []
    errors = 0

    async def worker(n: int):
        nonlocal errors
        stub = stubs[n % len(stubs)]
        for i in counter:
            key = (b"%0*d" % (key_size, i % keyspace))[:key_size]
            t0 = time.perf_counter()
            try:
                if op == "put":
                    await stub.Put(pb.PutRequest(key=key, value=value), metadata=metadata)
                else:
                    await stub.Range(pb.RangeRequest(key=key, serializable=(op == "srange")),
                                     metadata=metadata)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(clients)))
    took = time.perf_counter() - t0
    for c in chans:
        await c.close()
    lat.sort()
    return {
        "op": op, "requests": len(lat), "errors": errors, "seconds": round(took, 3),
        "rps": round(len(lat) / took, 1),
        "avg_ms": round(statistics.mean(lat) * 1000, 2) if lat else None,
        "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 2) if lat else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", default="127.0.0.1:2379")
    ap.add_argument("--op", choices=["put", "range", "srange"], default="put")
    ap.add_argument("--total", type=int, default=10000)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--conns", type=int, default=10)
    a = ap.parse_args()
    print(asyncio.run(run(a.endpoints.split(","), a.op, a.total, a.clients, a.conns)))


if __name__ == "__main__":
    main()
