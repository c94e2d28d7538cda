"""Crash recovery with real processes and the real etcdctl (issue: WAL).

Writers put keys through etcdctl while the member dies: at every named crash
point (armed through PYETCD_FAILPOINTS) and by SIGKILL at random moments.
After a restart every acknowledged write must be there and the revision must
never go backwards.  Also: a torn WAL tail is repaired, a flipped byte in the
middle of a segment stops the member with the file and offset, and a full
disk (RLIMIT_FSIZE) stops acknowledgements without losing acknowledged data.
"""
from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pyetcd.testing import Server, etcdctl, wait_ready


def _writer(ctl, server, prefix, acked, lock, stop, pad=0):
    i = 0
    while not stop.is_set():
        value = f"v{i}" + "x" * pad
        r = etcdctl(ctl, server.endpoint, "put", f"{prefix}{i:04d}", value, "-w", "json",
                    timeout=20)
        if r.returncode != 0:
            return
        rev = json.loads(r.stdout)["header"]["revision"]
        with lock:
            acked[f"{prefix}{i:04d}"] = (value, rev)
        i += 1


def _check(ctl, server, acked):
    r = etcdctl(ctl, server.endpoint, "get", "", "--prefix", "-w", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    import base64
    have = {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()
            for kv in out.get("kvs", [])}
    lost = {k: v for k, v in acked.items() if have.get(k) != v[0]}
    assert not lost, f"acknowledged writes lost: {sorted(lost)[:5]}"
    if acked:
        assert out["header"]["revision"] >= max(rev for _, rev in acked.values())
    return out["header"]["revision"]


def _run_until_death(ctl, server, prefix, acked, n_writers=3, timeout=30, pad=0):
    lock, stop = threading.Lock(), threading.Event()
    ts = [threading.Thread(target=_writer, args=(ctl, server, f"{prefix}{w}-", acked, lock, stop,
                                                 pad))
          for w in range(n_writers)]
    for t in ts:
        t.start()
    deadline = time.monotonic() + timeout
    while server.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in ts:
        t.join()
    return server.proc.poll()


CRASH_POINTS = ["raftBeforeSave", "raftAfterSave", "walBeforeSync", "walAfterSync",
                "backendBeforeCommit", "backendAfterCommit", "applyBeforeConsistentIndex"]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_point_loses_no_acknowledged_write(point, servers, etcdctl35):
    s = servers("pyetcd", env={"PYETCD_FAILPOINTS": f"{point}=exit(25)"})
    s.start()
    acked: dict = {}
    rc = _run_until_death(etcdctl35, s, "k", acked)
    assert rc == 1, "the member should have died at the crash point"
    s.stop()
    assert f"failpoint {point} hit" in s.log()
    s.env = {}
    s.start()
    _check(etcdctl35, s, acked)
    # and it keeps working
    assert etcdctl(etcdctl35, s.endpoint, "put", "after", "crash").returncode == 0


def test_sigkill_at_random_moments(servers, etcdctl35):
    rng = random.Random(7)
    s = servers("pyetcd").start()
    acked: dict = {}
    last_rev = 0
    for round_ in range(3):
        lock, stop = threading.Lock(), threading.Event()
        ts = [threading.Thread(target=_writer, args=(etcdctl35, s, f"r{round_}w{w}-", acked, lock, stop))
              for w in range(3)]
        for t in ts:
            t.start()
        time.sleep(rng.uniform(0.5, 2.0))
        s.kill()
        stop.set()
        for t in ts:
            t.join()
        s.start()
        rev = _check(etcdctl35, s, acked)
        assert rev >= last_rev, "revision went backwards"
        last_rev = rev
    assert len(acked) > 10


def _segments(data_dir: Path):
    return sorted((data_dir / "member" / "wal").glob("*.wal"))


def test_torn_tail_is_repaired(servers, etcdctl35):
    s = servers("pyetcd").start()
    for i in range(20):
        assert etcdctl(etcdctl35, s.endpoint, "put", f"t{i}", "x").returncode == 0
    s.kill()
    seg = _segments(s.data_dir)[-1]
    data = seg.read_bytes()
    end = len(data.rstrip(b"\0"))
    end += (-end) % 8
    with open(seg, "r+b") as f:  # the start of a record whose write never finished
        f.seek(end)
        f.write(b"\x30\x01\x00\x00\x02\x00\x00")
    s.start()
    assert "repair" in s.log().lower() or "torn" in s.log().lower()
    r = etcdctl(etcdctl35, s.endpoint, "get", "t", "--prefix", "--keys-only")
    assert r.returncode == 0
    assert etcdctl(etcdctl35, s.endpoint, "put", "after-repair", "ok").returncode == 0


def test_flipped_byte_mid_segment_refuses_to_start(servers, etcdctl35):
    s = servers("pyetcd").start()
    for i in range(30):
        assert etcdctl(etcdctl35, s.endpoint, "put", f"f{i}", "y" * 100).returncode == 0
    s.stop()
    seg = _segments(s.data_dir)[-1]
    data = bytearray(seg.read_bytes())
    end = len(bytes(data).rstrip(b"\0"))
    data[end // 2] ^= 0x40
    seg.write_bytes(bytes(data))
    s.start(wait=False)
    rc = s.proc.wait(timeout=30)
    log = s.log()
    assert rc != 0
    assert seg.name in log and "offset" in log, log[-2000:]
    assert "Traceback" not in log.split("ready to serve")[-1]


def test_full_disk_stops_acknowledging_without_losing_data(servers, etcdctl35):
    s = servers("pyetcd").start()
    assert etcdctl(etcdctl35, s.endpoint, "put", "before", "limit").returncode == 0
    s.stop()
    limit = 256 * 1024  # a write past this offset fails with EFBIG, like a full disk

    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    s._log = open(s.log_path, "ab")
    s.proc = subprocess.Popen(s.argv(), cwd=s.workdir, stdout=s._log, stderr=subprocess.STDOUT,
                              env=dict(os.environ, PYTHONUNBUFFERED="1"), preexec_fn=preexec,
                              start_new_session=True)
    wait_ready(s.endpoint, s.proc)
    acked: dict = {"before": ("limit", 0)}
    _run_until_death(etcdctl35, s, "d", acked, timeout=60, pad=4000)
    s.stop()
    log = s.log()
    assert "File too large" in log or "WALWriteError" in log or "backend commit failed" in log, log[-2000:]
    assert len(acked) > 1
    s.start()  # without the limit: everything acknowledged is there
    _check(etcdctl35, s, acked)


def test_wal_that_lost_applied_entries_refuses_to_start(servers, etcdctl35):
    """Found by jepsen-lite (``jepsen-lite run --workload register,set
    --nemesis disk,fuzz --time 30 --rate 100 --seed 4``): a WAL cut short
    behind entries the backend had already applied used to be "repaired"
    and the member started; a follower then stalled forever (the leader's
    heartbeats carried a commit beyond its log), and a lone member would
    have skipped its next writes as already applied.  Now it refuses."""
    s = servers("pyetcd").start()
    for i in range(60):
        assert etcdctl(etcdctl35, s.endpoint, "put", f"w{i}", "z" * 200).returncode == 0
    time.sleep(0.5)  # the backend commits what was applied
    s.kill()
    seg = _segments(s.data_dir)[-1]
    data = seg.read_bytes()
    end = len(data.rstrip(b"\0"))
    with open(seg, "r+b") as f:
        f.truncate(end // 2)
    s.start(wait=False)
    rc = s.proc.wait(timeout=30)
    log = s.log()
    assert rc == 1, log[-2000:]
    assert "the WAL lost entries that were committed and applied" in log
    assert "Traceback" not in log.split("ready to serve")[-1]
