"""pytest-benchmark: KV throughput of a single pyetcd member under many
concurrent clients (the bench/load.py generator, over loopback).

    python -m pytest bench/bench_kv.py --benchmark-enable -s

The figure to read is ``rps`` in the printed extra_info (requests/s); the
benchmark time is the wall time of one batch of requests.
"""
from __future__ import annotations

import asyncio

import pytest

from bench.load import run


@pytest.fixture(scope="module")
def member(tmp_path_factory):
    from pyetcd.testing import Server
    s = Server("pyetcd", tmp_path_factory.mktemp("bench")).start()
    yield s
    s.stop()


@pytest.mark.parametrize("op,total,clients,conns", [
    ("put", 10000, 200, 20),
    ("range", 10000, 200, 20),
    ("srange", 10000, 200, 20),
])
def test_kv_throughput(benchmark, member, op, total, clients, conns):
    if op != "put":  # something to read
        asyncio.run(run([member.endpoint], "put", 2000, 50, 5, keyspace=2000))
    result = {}

    def once():
        result.update(asyncio.run(run([member.endpoint], op, total, clients, conns, keyspace=2000)))

    benchmark.pedantic(once, rounds=3, iterations=1)
    benchmark.extra_info.update(result)
    print(result)
    assert result["errors"] == 0
