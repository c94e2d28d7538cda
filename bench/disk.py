"""The disk table: fio's etcd profile and a small matrix, beside pyetcd's own
WAL and LMDB commits on the same profiles.

fio (Debian's ``fio``) gives the disk's physical limit for each profile:
sequential writes with the sync engine, a sync after every ``per_sync``
writes (``--fdatasync=N``, ``--fsync=1``) or every write opened O_DSYNC
(``--sync=dsync``); the WAL row writes the same bytes per sync through
``pyetcd.storage.wal.WAL`` with the server's code path, and the LMDB rows
commit transactions with the backend's settings
(:mod:`pyetcd.offline.diskcheck`).  Figures: p50/p99/p99.9 of the sync
(fdatasync or fsync alone; for O_DSYNC the synced write), syncs/s,
records/s, MB/s.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile

from pyetcd.offline import diskcheck

KB, MB = 1024, 1024 * 1024

# (name, record size, records per sync, sync mode)
FIO_PROFILES = [
    ("etcd wal (2300 B, fdatasync each)", 2300, 1, "fdatasync"),
    ("16 KiB, fdatasync each", 16 * KB, 1, "fdatasync"),
    ("64 KiB, fdatasync each", 64 * KB, 1, "fdatasync"),
    ("1 MiB, fdatasync each", 1 * MB, 1, "fdatasync"),
    ("2300 B, fsync each", 2300, 1, "fsync"),
    ("2300 B, O_DSYNC", 2300, 1, "dsync"),
    ("2300 B x8 per fdatasync", 2300, 8, "fdatasync"),
    ("2300 B x64 per fdatasync", 2300, 64, "fdatasync"),
    ("2300 B x256 per fdatasync", 2300, 256, "fdatasync"),
]
# the WAL syncs with fdatasync only, so it runs the fdatasync profiles
WAL_PROFILES = [p for p in FIO_PROFILES if p[3] == "fdatasync"]
LMDB_PROFILES = [(f"lmdb 2300 B x{n} per commit", 2300, n, "commit") for n in (1, 8, 64, 256)]


def fio_path() -> str | None:
    return shutil.which("fio")


def fio_argv(fio: str, directory: str, size: int, per_sync: int, mode: str,
             seconds: float) -> list[str]:
    file_size = max(22 * MB, size * per_sync * 64)
    argv = [fio, "--name=pyetcd-bench", f"--directory={directory}", "--rw=write",
            "--ioengine=sync", f"--bs={size}", f"--size={file_size}",
            f"--runtime={max(1, int(round(seconds)))}", "--time_based", "--output-format=json"]
    if mode == "fdatasync":
        argv.append(f"--fdatasync={per_sync}")
    elif mode == "fsync":
        argv.append(f"--fsync={per_sync}")
    elif mode == "dsync":
        argv.append("--sync=dsync")
    else:
        raise ValueError(f"unknown sync mode {mode}")
    return argv


def _pct(lat: dict, q: str) -> float | None:
    v = (lat.get("percentile") or {}).get(q)
    return None if v is None else round(v / 1e6, 3)


def parse_fio(out: str, per_sync: int, mode: str) -> dict:
    job = json.loads(out[out.index("{"):])["jobs"][0]
    w = job["write"]
    lat = w["clat_ns"] if mode == "dsync" else job["sync"]["lat_ns"]   # clat: the synced write
    secs = job["job_runtime"] / 1000.0 or 1e-9
    records = w["total_ios"]
    syncs = records if mode == "dsync" else lat.get("N", records // max(1, per_sync))
    return {"p50_ms": _pct(lat, "50.000000"), "p99_ms": _pct(lat, "99.000000"),
            "p999_ms": _pct(lat, "99.900000"), "max_ms": round(lat["max"] / 1e6, 3),
            "syncs": syncs, "records": records, "syncs_per_s": round(syncs / secs, 1),
            "records_per_s": round(records / secs, 1),
            "mb_per_s": round(w["bw_bytes"] / 1e6, 2), "seconds": round(secs, 2)}


def run_fio(fio: str, directory: str, size: int, per_sync: int, mode: str,
            seconds: float) -> dict:
    scratch = diskcheck.scratch_dir(directory)
    try:
        p = subprocess.run(fio_argv(fio, scratch, size, per_sync, mode, seconds),
                           capture_output=True, text=True, timeout=seconds + 300)
        if p.returncode != 0:
            raise RuntimeError(f"fio failed (exit {p.returncode}): {p.stderr[-1000:]}")
        return parse_fio(p.stdout, per_sync, mode)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _row(tool: str, name: str, size: int, per_sync: int, mode: str, figures: dict) -> dict:
    keep = ("p50_ms", "p99_ms", "p999_ms", "max_ms", "syncs", "records", "syncs_per_s",
            "records_per_s", "mb_per_s", "seconds")
    return {"kind": "disk", "tool": tool, "profile": name, "record_size": size,
            "per_sync": per_sync, "mode": mode, **{k: figures.get(k) for k in keep}}


def profiles(seconds: float) -> list[tuple]:
    """(tool, name, size, per_sync, mode, run) for every row of the table."""
    out = []
    fio = fio_path()
    for name, size, per, mode in FIO_PROFILES:
        if fio:
            out.append(("fio", name, size, per, mode,
                        lambda d, s=size, p=per, m=mode: run_fio(fio, d, s, p, m, seconds)))
    for name, size, per, mode in WAL_PROFILES:
        out.append(("pyetcd-wal", name, size, per, mode,
                    lambda d, s=size, p=per: diskcheck.wal_profile(
                        d, record_size=s, per_sync=p, seconds=seconds).summary()))
    for name, size, per, mode in LMDB_PROFILES:
        out.append(("pyetcd-lmdb", name, size, per, mode,
                    lambda d, s=size, p=per: diskcheck.backend_profile(
                        d, value_size=s, per_commit=p, seconds=seconds).summary()))
    return out


def run_profile(entry: tuple, directory: str) -> dict:
    tool, name, size, per, mode, fn = entry
    return _row(tool, name, size, per, mode, fn(directory))


def default_dir() -> str:
    """Where the servers' data dirs go (the same filesystem is measured)."""
    return tempfile.gettempdir()
