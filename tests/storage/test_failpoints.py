"""Failpoints: parsing, in-process raise, and real process exits (subprocesses)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from pyetcd.raft.types import Entry, HardState
from pyetcd.storage import failpoints as fp
from pyetcd.storage.wal import WAL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_parse():
    assert fp.parse("a=exit; b=exit(3),c=raise(2);d=off") == {
        "a": ("exit", 1), "b": ("exit", 3), "c": ("raise", 2), "d": ("off", 1)}
    assert fp.parse("") == {}
    for bad in ("a", "a=boom", "a=exit(0)", "=exit"):
        with pytest.raises(ValueError):
            fp.parse(bad)


def test_raise_on_nth_hit():
    try:
        fp.arm("walBeforeSync", "raise", 3)
        fp.failpoint("walBeforeSync")
        fp.failpoint("other")
        fp.failpoint("walBeforeSync")
        with pytest.raises(fp.FailpointError):
            fp.failpoint("walBeforeSync")
        fp.failpoint("walBeforeSync")  # fired once, then disarmed
    finally:
        fp.disarm_all()
    assert fp.armed() == {}


WRITER = textwrap.dedent("""
    import sys
    from pyetcd.raft.types import Entry, HardState
    from pyetcd.storage.wal import WAL
    d, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    w = WAL.create(d, b"meta", segment_size=4096)
    for i in range(1, n + 1):
        w.save(HardState(1, 1, i), [Entry(1, i, data=b"v%d" % i * 20)])
        print("acked", i, flush=True)   # acknowledged only after save returned
    if mode == "kill":
        import os
        os._exit(1)                      # no close(), no final sync
    w.close()
""")


def run_writer(d, n, mode="kill", failpoints=""):
    env = {**os.environ, "PYTHONPATH": ROOT, "PYETCD_FAILPOINTS": failpoints}
    return subprocess.run([sys.executable, "-c", WRITER, d, str(n), mode], env=env,
                          capture_output=True, text=True, timeout=60)


def acked(out):
    return [int(line.split()[1]) for line in out.splitlines() if line.startswith("acked")]


def read(d):
    w = WAL.open(d, segment_size=4096)
    try:
        return w.read_all()
    finally:
        w.close()


def test_crash_without_close_keeps_every_acknowledged_save(tmp_path):
    d = str(tmp_path / "wal")
    r = run_writer(d, 120)
    assert r.returncode == 1 and acked(r.stdout) == list(range(1, 121))
    _, hs, es = read(d)
    assert [e.index for e in es] == list(range(1, 121)) and hs == HardState(1, 1, 120)
    assert len(os.listdir(d)) > 3  # crossed segments


@pytest.mark.parametrize("point,nth,expect_acked", [
    ("walBeforeSync", 5, 4),
    ("walAfterSync", 5, 4),
    ("walBeforeWrite", 3, 2),
    ("walBeforeCutRename", 1, None),
    ("walAfterCut", 2, None),
])
def test_failpoint_exits_and_wal_recovers(tmp_path, point, nth, expect_acked):
    d = str(tmp_path / "wal")
    r = run_writer(d, 200, mode="close", failpoints=f"{point}=exit({nth})")
    assert r.returncode == 1, r.stderr
    assert f"failpoint {point} hit" in r.stderr
    got = acked(r.stdout)
    if expect_acked is not None:
        assert len(got) == expect_acked
    _, hs, es = read(d)
    idx = [e.index for e in es]
    # every acknowledged save is there; the one in flight may or may not be
    assert idx[:len(got)] == got and len(idx) <= len(got) + 1
    assert not [n for n in os.listdir(d) if n.endswith(".tmp")]
    w = WAL.open(d, segment_size=4096)
    w.read_all()
    w.save(None, [Entry(2, len(idx) + 1)])
    w.close()
    assert [e.index for e in read(d)[2]] == idx + [len(idx) + 1]


def test_file_size_limit_makes_writes_fail_cleanly(tmp_path):
    """A full disk, approximated by RLIMIT_FSIZE: the WAL fails, acked data stays readable."""
    d = str(tmp_path / "wal")
    code = textwrap.dedent("""
        import resource, signal, sys
        from pyetcd.raft.types import Entry, HardState
        from pyetcd.storage.wal import WAL, WALWriteError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        w = WAL.create(sys.argv[1], b"m", segment_size=65536)
        resource.setrlimit(resource.RLIMIT_FSIZE, (12000, 12000))
        try:
            for i in range(1, 1000):
                w.save(HardState(1, 1, i), [Entry(1, i, data=b"x" * 100)])
                print("acked", i, flush=True)
        except WALWriteError as exc:
            print("failed", exc, flush=True)
            try:
                w.save(None, [Entry(1, 10**6)])
            except WALWriteError:
                print("refused", flush=True)
        w.close()
    """)
    env = {**os.environ, "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-c", code, d], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "failed" in r.stdout and "refused" in r.stdout
    got = acked(r.stdout)
    assert got
    _, hs, es = read(d)
    assert [e.index for e in es][:len(got)] == got
