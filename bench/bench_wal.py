"""WAL group commit: WAL.save throughput against raw os.pwrite + os.fdatasync.

    python -m pytest bench/bench_wal.py --benchmark-enable -p no:cacheprovider

The fio profile etcd's docs give for disks (sequential 2,300-byte records,
fdatasync after each write) at batch sizes 1, 16 and 256 records per save:
one round = one ``WAL.save(hard_state, batch)`` = one write + one fdatasync.
``raw`` does the same bytes with ``os.pwrite`` + ``os.fdatasync`` into a
preallocated file: the disk's ceiling.  extra_info carries records/s,
fsyncs/s, p50/p99 latency.  ``cpu`` measures the encoding alone (sync=False,
100 small entries per save), the per-Ready CPU cost of the WAL.
"""
from __future__ import annotations

import os

import pytest

from pyetcd.raft.types import Entry, HardState
from pyetcd.storage.wal import WAL

RECORD = 2300
ROUNDS = {1: 300, 16: 150, 256: 40}


def _report(benchmark, batch):
    data = sorted(benchmark.stats.stats.data)
    mean = benchmark.stats.stats.mean
    benchmark.extra_info.update({
        "records_per_s": round(batch / mean),
        "fsyncs_per_s": round(1 / mean),
        "p50_ms": round(data[len(data) // 2] * 1e3, 3),
        "p99_ms": round(data[min(len(data) - 1, int(len(data) * 0.99))] * 1e3, 3),
    })


@pytest.mark.parametrize("batch", [1, 16, 256])
def test_wal_save(benchmark, tmp_path, batch):
    w = WAL.create(str(tmp_path / "wal"), b"bench")
    payload = os.urandom(RECORD - 17)   # entry header (17 bytes) + data = 2,300 bytes
    state = {"i": 0}

    def save():
        i = state["i"]
        w.save(HardState(2, 1, i), [Entry(2, i + k + 1, data=payload) for k in range(batch)])
        state["i"] = i + batch

    benchmark.pedantic(save, rounds=ROUNDS[batch], iterations=1, warmup_rounds=3)
    w.close()
    _report(benchmark, batch)


@pytest.mark.parametrize("batch", [1, 16, 256])
def test_raw_write_fdatasync(benchmark, tmp_path, batch):
    fd = os.open(str(tmp_path / "raw"), os.O_RDWR | os.O_CREAT, 0o600)
    os.posix_fallocate(fd, 0, 64 << 20)
    buf = os.urandom(RECORD * batch)
    state = {"off": 0}

    def write():
        os.pwrite(fd, buf, state["off"])
        os.fdatasync(fd)
        state["off"] += len(buf)

    benchmark.pedantic(write, rounds=ROUNDS[batch], iterations=1, warmup_rounds=3)
    os.close(fd)
    _report(benchmark, batch)


def test_wal_save_cpu_100_small_entries(benchmark, tmp_path):
    w = WAL.create(str(tmp_path / "wal"), b"bench")
    ents = [Entry(2, i + 1, data=b"k" * 64) for i in range(100)]
    hs = HardState(2, 1, 100)
    benchmark.pedantic(lambda: w.save(hs, ents, sync=False), rounds=300, iterations=1)
    w.close()
    benchmark.extra_info["entries_per_s"] = round(100 / benchmark.stats.stats.mean)
