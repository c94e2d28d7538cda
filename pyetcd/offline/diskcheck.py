"""Disk profiles on pyetcd's own storage code: the WAL and the LMDB backend.

These are what ``pyetcdctl check disk`` and bench/'s disk table run.  They use
the real classes with the server's settings, in a scratch directory made
inside the directory under test (removed afterwards):

- :func:`wal_profile`: ``WAL.save(hard_state, entries)`` with ``per_sync``
  entries of ``record_size`` bytes each on disk (frame included), one
  ``pwrite`` plus one ``fdatasync`` per save: etcd's disk guidance (fio,
  sequential 2,300-byte writes, fdatasync after each) when ``per_sync`` is 1,
  group commit when it is more.  The fdatasync alone is timed (the WAL's
  ``on_fsync`` hook, the figure etcd's ``wal_fsync_duration_seconds``
  reports) and so is the whole save.
- :func:`backend_profile`: one LMDB write transaction of ``per_commit``
  puts of ``value_size`` bytes, committed the way the server's writer thread
  commits (``durable``, no meta-page sync): the figure etcd's
  ``backend_commit_duration_seconds`` reports.

Both stop after ``seconds`` (or ``count`` operations) and return a
:class:`DiskResult` with latency percentiles, operations/s and MB/s.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

from pyetcd.raft.types import Entry, HardState
from pyetcd.storage import walcodec
from pyetcd.storage.backend import Backend
from pyetcd.storage.wal import WAL

# etcd's hardware guidance: the 99th percentile of the WAL's fdatasync
# should stay under 10 ms
WAL_FSYNC_P99_LIMIT = 0.010
ENTRY_HEADER = 17   # <QQB term, index, type before the entry's data
KEY_SPACE = 20000   # keys the backend profile cycles through


@dataclass
class DiskResult:
    """Latencies (seconds) of the synced operations of one profile run."""
    profile: str
    sync_latencies: list[float] = field(default_factory=list)   # the fsync alone
    op_latencies: list[float] = field(default_factory=list)     # the whole write + sync
    records: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @staticmethod
    def percentile(values: list[float], q: float) -> float | None:
        if not values:
            return None
        s = sorted(values)
        return s[min(len(s) - 1, max(0, int(round(q / 100.0 * len(s) + 0.5)) - 1))]

    def summary(self) -> dict:
        lat = self.sync_latencies or self.op_latencies
        ops = len(self.op_latencies)
        secs = self.seconds or 1e-9
        return {
            "profile": self.profile, "syncs": ops, "records": self.records,
            "p50_ms": _ms(self.percentile(lat, 50)), "p99_ms": _ms(self.percentile(lat, 99)),
            "p999_ms": _ms(self.percentile(lat, 99.9)), "max_ms": _ms(max(lat) if lat else None),
            "op_p99_ms": _ms(self.percentile(self.op_latencies, 99)),
            "syncs_per_s": round(ops / secs, 1), "records_per_s": round(self.records / secs, 1),
            "mb_per_s": round(self.bytes / secs / 1e6, 2), "seconds": round(self.seconds, 2),
        }


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000.0, 3)


def entry_data_size(record_size: int) -> int:
    """Data bytes of an entry whose WAL frame is at most ``record_size`` bytes
    (frame header, entry header and padding included), as close as can be."""
    d = max(0, record_size - walcodec.frame_size(ENTRY_HEADER))
    while d > 0 and walcodec.frame_size(ENTRY_HEADER + d) > record_size:
        d -= 1
    return d


def scratch_dir(directory: str) -> str:
    """A fresh directory inside ``directory`` (which must exist and be writable)."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: no such directory")
    return tempfile.mkdtemp(prefix=".pyetcd-check-disk-", dir=directory)


def _run_until(step: Callable[[], None], seconds: float | None, count: int | None,
               progress: Callable[[float], None] | None) -> float:
    """Call ``step`` until ``seconds`` pass or ``count`` calls are made; return
    the elapsed time.  ``progress`` gets the fraction done now and then."""
    t0 = time.perf_counter()
    n, last = 0, t0
    while True:
        now = time.perf_counter()
        elapsed = now - t0
        if (count is not None and n >= count) or (count is None and elapsed >= (seconds or 0)):
            return elapsed
        step()
        n += 1
        if progress is not None and now - last >= 0.2:
            last = now
            progress(min(1.0, n / count) if count else min(1.0, elapsed / (seconds or 1)))


def wal_profile(directory: str, record_size: int = 2300, per_sync: int = 1,
                seconds: float | None = 10.0, count: int | None = None,
                progress: Callable[[float], None] | None = None) -> DiskResult:
    """Saves of ``per_sync`` entries of ``record_size`` bytes on disk, each
    synced, on pyetcd's WAL in a scratch dir under ``directory``."""
    scratch = scratch_dir(directory)
    res = DiskResult(f"wal {record_size}B x{per_sync}/sync")
    try:
        w = WAL.create(os.path.join(scratch, "wal"), b"check-disk")
        w.on_fsync = res.sync_latencies.append
        payload = os.urandom(entry_data_size(record_size))
        per_save = walcodec.frame_size(ENTRY_HEADER + len(payload)) * per_sync
        state = {"index": 0}

        def step():
            i = state["index"]
            ents = [Entry(1, i + k + 1, data=payload) for k in range(per_sync)]
            t0 = time.perf_counter()
            w.save(HardState(1, 1, i), ents)
            res.op_latencies.append(time.perf_counter() - t0)
            state["index"] = i + per_sync
            res.records += per_sync
            res.bytes += per_save
            if len(w.segments) > 2:   # keep the scratch WAL small, as the server does
                w.on_fsync = None
                w.save_snapshot(i + per_sync, 1)
                w.release_to(i + per_sync)
                w.on_fsync = res.sync_latencies.append

        try:
            res.seconds = _run_until(step, seconds, count, progress)
        finally:
            w.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return res


def backend_profile(directory: str, value_size: int = 2300, per_commit: int = 1,
                    seconds: float | None = 10.0, count: int | None = None,
                    progress: Callable[[float], None] | None = None) -> DiskResult:
    """LMDB write transactions of ``per_commit`` puts, committed with the
    server's settings (synced data, no meta-page sync)."""
    scratch = scratch_dir(directory)
    res = DiskResult(f"lmdb {value_size}B x{per_commit}/commit")
    try:
        be = Backend(os.path.join(scratch, "db"), map_size=1 << 30, durable=True, metasync=False)
        value = os.urandom(value_size)
        state = {"rev": 0}

        def step():
            rev = state["rev"]
            for k in range(per_commit):   # a bounded key space: pages are reused
                key = ((rev + k) % KEY_SPACE).to_bytes(8, "big") + b"_" + bytes(8)
                be.put("key", key, value)
            t0 = time.perf_counter()
            be.commit().result()
            res.op_latencies.append(time.perf_counter() - t0)
            state["rev"] = rev + per_commit
            res.records += per_commit
            res.bytes += per_commit * (value_size + 17)

        try:
            res.seconds = _run_until(step, seconds, count, progress)
        finally:
            be.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return res
