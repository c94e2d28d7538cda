"""A member with gRPC front-end processes (``--frontends N``, api/relay.py).

Each etcdctl run is a new connection, which the kernel hands to the member
or to one of its front-ends (SO_REUSEPORT), so these checks cross the
processes at random.  The same assertions run against real etcd 3.5 (one
process), so a check only the relay passes is caught."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pyetcd.testing import etcdctl

FRONTENDS = 2


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in
                Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _frontends(pid: int) -> list[int]:
    return [c for c in _children(pid) if "pyetcd.frontend" in _cmdline(c)]


@pytest.fixture(params=["pyetcd", "etcd3.5"])
def member(request, servers, etcd35):
    if request.param == "pyetcd":
        s = servers("pyetcd", extra=["--frontends", str(FRONTENDS)]).start()
        deadline = time.monotonic() + 20
        while len(_frontends(s.pid)) < FRONTENDS and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_frontends(s.pid)) == FRONTENDS, s.log()[-2000:]
        time.sleep(1.0)   # the front-ends listen once they reach the member
    else:
        s = servers("etcd3.5").start()
    return s


def _ctl(ctl, m, *args, **kw):
    r = etcdctl(ctl, m.endpoint, *args, **kw)
    return r


def test_every_connection_sees_the_writes_before_it(member, etcdctl35):
    """A put answered on one connection is in a serializable get on the next
    (etcd's serializable read shows what the member applied), whichever
    process each lands on; a linearizable one too."""
    for i in range(16):
        if i in (6, 12):   # the member replaces its database file: front-ends reopen it
            d = _ctl(etcdctl35, member, "defrag")
            assert d.returncode == 0, d.stderr
        r = _ctl(etcdctl35, member, "put", f"/fe/k{i}", f"v{i}")
        assert r.returncode == 0 and r.stdout.strip() == "OK", r.stderr
        got = _ctl(etcdctl35, member, "get", f"/fe/k{i}", "--consistency=s", "--print-value-only")
        assert got.stdout.strip() == f"v{i}", (i, got.stdout, got.stderr)
        n = _ctl(etcdctl35, member, "get", "/fe/", "--prefix", "--count-only", "-w", "fields",
                 "--consistency=s" if i % 2 else "--consistency=l")
        assert f'"Count" : {i + 1}\n' in n.stdout, (i, n.stdout, n.stderr)


def test_streams_errors_and_auth_through_every_process(member, etcdctl35, tmp_path):
    # watches on several connections all see one put
    watchers = [subprocess.Popen(
        [etcdctl35, f"--endpoints={member.endpoint}", "watch", "/fe/w"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}) for _ in range(6)]
    try:
        time.sleep(1.5)
        assert _ctl(etcdctl35, member, "put", "/fe/w", "hello").returncode == 0
        time.sleep(1.0)
    finally:
        outs = []
        for w in watchers:
            w.send_signal(signal.SIGINT)
            try:
                outs.append(w.communicate(timeout=10)[0])
            except subprocess.TimeoutExpired:
                w.kill()
                outs.append(w.communicate()[0])
    for out in outs:
        assert out.splitlines()[:3] == ["PUT", "/fe/w", "hello"], outs
    # a lease granted on one connection, kept alive and read on others
    g = _ctl(etcdctl35, member, "lease", "grant", "60")
    lease = re.search(r"lease ([0-9a-f]+) granted", g.stdout).group(1)
    ka = _ctl(etcdctl35, member, "lease", "keep-alive", "--once", lease)
    assert f"lease {lease} keepalived with TTL(60)" in ka.stdout, ka.stderr
    assert _ctl(etcdctl35, member, "put", "/fe/l", "x", f"--lease={lease}").returncode == 0
    ttl = _ctl(etcdctl35, member, "lease", "timetolive", lease, "--keys")
    assert "attached keys([/fe/l])" in ttl.stdout, ttl.stdout
    # snapshots stream through (the relay's flow control), each one whole
    for i in range(3):
        path = tmp_path / f"snap{i}.db"
        r = _ctl(etcdctl35, member, "snapshot", "save", str(path))
        assert r.returncode == 0 and "Snapshot saved" in r.stdout + r.stderr, r.stderr
        st = _ctl(etcdctl35, member, "snapshot", "status", str(path), "-w", "json")
        assert '"totalKey"' in st.stdout, st.stdout + st.stderr
    # etcd's errors, whichever process answers
    for _ in range(4):
        e = _ctl(etcdctl35, member, "put", "", "x")
        assert e.returncode != 0 and "etcdserver: key is not provided" in e.stderr, e.stderr
        f = _ctl(etcdctl35, member, "get", "/fe/k", "--rev=100000", "--consistency=s")
        assert "etcdserver: mvcc: required revision is a future revision" in f.stderr, f.stderr
    # auth: a token from one connection's authenticate works on the others
    assert _ctl(etcdctl35, member, "user", "add", "root:pw").returncode == 0
    assert _ctl(etcdctl35, member, "auth", "enable").returncode == 0
    for i in range(6):
        ok = _ctl(etcdctl35, member, "--user=root:pw", "get", "/fe/w", "--print-value-only",
                  "--consistency=s" if i % 2 else "--consistency=l")
        assert ok.stdout.strip() == "hello", ok.stderr
        denied = _ctl(etcdctl35, member, "get", "/fe/w", "--consistency=s")
        assert "user name is empty" in denied.stderr or "permission denied" in denied.stderr, \
            denied.stderr


def test_front_ends_serve_ranges_and_exit_with_the_member(servers, etcdctl35):
    s = servers("pyetcd", extra=["--frontends", str(FRONTENDS)]).start()
    deadline = time.monotonic() + 20
    while len(_frontends(s.pid)) < FRONTENDS and time.monotonic() < deadline:
        time.sleep(0.1)
    fronts = _frontends(s.pid)
    assert len(fronts) == FRONTENDS
    time.sleep(1.0)
    # the database grows well past its size when the front-ends opened it
    from pyetcd.client import Client
    with Client([s.endpoint], timeout=30) as c:
        for i in range(3000):
            c.put(b"/fe/big/%05d" % i, b"x" * 2048)
    assert _ctl(etcdctl35, s, "put", "/fe/a", "1").returncode == 0
    for _ in range(12):
        assert _ctl(etcdctl35, s, "get", "/fe/a", "--consistency=s",
                    "--print-value-only").stdout.strip() == "1"
    # a front-end that dies (here SIGKILLed, by the PID of our member's child)
    # is started again, and meanwhile the others and the member serve
    os.kill(fronts[0], signal.SIGKILL)
    for _ in range(4):
        assert _ctl(etcdctl35, s, "get", "/fe/a", "--consistency=s",
                    "--print-value-only").stdout.strip() == "1"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (
            len(_frontends(s.pid)) < FRONTENDS or fronts[0] in _frontends(s.pid)):
        time.sleep(0.1)
    again = _frontends(s.pid)
    assert len(again) == FRONTENDS and fronts[0] not in again and fronts[1] in again, \
        s.log()[-2000:]
    assert f"gRPC front-end process {fronts[0]} exited" in s.log()
    assert re.search(rf"started gRPC front-end process \d+ in place of {fronts[0]}", s.log())
    time.sleep(1.0)   # the new one listens once it reaches the member
    for _ in range(8):
        assert _ctl(etcdctl35, s, "get", "/fe/a", "--consistency=s",
                    "--print-value-only").stdout.strip() == "1"
    s.stop()   # SIGTERM: the member stops its front-ends, which report what they served
    served = [int(x) for x in re.findall(r"front-end \d+ stopped: (\d+) ranges served here",
                                         s.log())]
    assert len(served) == FRONTENDS, s.log()[-3000:]
    assert sum(served) > 0   # 24 new connections: the front-ends took some of them
    assert "a local read failed" not in s.log()
    # SIGKILLed, the member leaves no front-end behind
    s.start()
    deadline = time.monotonic() + 20
    while len(_frontends(s.pid)) < FRONTENDS and time.monotonic() < deadline:
        time.sleep(0.1)
    fronts = _frontends(s.pid)
    assert len(fronts) == FRONTENDS
    s.kill()
    deadline = time.monotonic() + 15
    alive = fronts
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in fronts if Path(f"/proc/{p}").exists()
                 and "pyetcd.frontend" in _cmdline(p)
                 and "Z" not in Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1][:3]]
    assert not alive, f"front-ends {alive} outlived their member"
