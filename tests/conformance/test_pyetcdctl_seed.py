"""The seed's commands with pyetcdctl, output compared with the real etcdctl
3.5.1 on the same cluster: member list / remove / add (and joining the added
member), watch (live, from a revision, compacted), check perf."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from pyetcd.testing import LocalCluster, Server, etcdctl, free_port

pytestmark = pytest.mark.conformance


@pytest.fixture
def cluster(workdir):
    c = LocalCluster("pyetcd", workdir / "pyetcd").start()
    yield c
    c.stop()


def pyctl(endpoints, *args, timeout=60, env=None):
    return subprocess.run([sys.executable, "-m", "pyetcdctl.main", f"--endpoints={endpoints}", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def _last_err(stderr: str) -> str:
    """etcdctl's own error line (grpc-go's retry warnings are JSON lines before it)."""
    return [ln for ln in stderr.splitlines() if not ln.startswith("{")][-1]


def _retry(fn, timeout=20.0):
    """A membership change, retried while strict reconfiguration says the
    cluster is not healthy yet."""
    deadline = time.monotonic() + timeout
    while True:
        r = fn()
        if r.returncode == 0 or "unhealthy cluster" not in r.stderr or time.monotonic() > deadline:
            return r
        time.sleep(0.5)


def test_member_commands_match_etcdctl(cluster, workdir, etcdctl35):
    ctl, eps = etcdctl35, cluster.endpoints
    for fmt in ([], ["-w", "table"], ["-w", "json"]):
        want = etcdctl(ctl, eps, "member", "list", *fmt)
        got = pyctl(eps, "member", "list", *fmt)
        if fmt == ["-w", "json"]:
            continue  # raft_term and the answering member may differ between two calls
        assert (got.returncode, got.stdout) == (want.returncode, want.stdout)
    ids = {ln.split(", ")[2]: ln.split(", ")[0] for ln in etcdctl(ctl, eps, "member", "list").stdout.splitlines()}
    victim = cluster.members[2]
    survivors = f"{cluster.members[0].endpoint},{cluster.members[1].endpoint}"
    cid_line = etcdctl(ctl, survivors, "endpoint", "status", "-w", "json").stdout
    cid = int(re.search(r'"cluster_id":(\d+)', cid_line).group(1))
    time.sleep(5.2)  # strict reconfig: peers connected for 5 s
    r = _retry(lambda: pyctl(survivors, "member", "remove", ids[victim.name]))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"Member {int(ids[victim.name], 16):16x} removed from cluster {cid:16x}\n"
    # errors: the same text and exit code as etcdctl
    for args in (["member", "remove", ids[victim.name]], ["member", "remove", "zz"],
                 ["member", "remove"], ["member", "add", "x"], ["member", "add"],
                 ["member", "add", "x", "http://1.2.3.4:2380"]):
        want, got = etcdctl(ctl, survivors, *args), pyctl(survivors, *args)
        assert got.returncode == want.returncode, (args, got.stderr, want.stderr)
        assert _last_err(got.stderr) == _last_err(want.stderr), args
    # member add: pyetcdctl's output, then (the member removed again) etcdctl's
    pp = free_port()
    url = f"http://127.0.0.1:{pp}"
    got = _retry(lambda: pyctl(survivors, "member", "add", "m3", f"--peer-urls={url}"))
    assert got.returncode == 0, got.stderr
    gid = got.stdout.split()[1]
    r = _retry(lambda: etcdctl(ctl, survivors, "member", "remove", gid))
    assert r.returncode == 0, r.stderr
    # an added member's id hashes its URLs with the time in seconds (etcd's
    # computeMemberId): the same URLs again within that second would get the
    # removed id back, refused as `member not found` (etcd does the same)
    time.sleep(1.1)
    want = _retry(lambda: etcdctl(ctl, survivors, "member", "add", "m3", f"--peer-urls={url}"))
    assert want.returncode == 0, want.stderr
    wid = want.stdout.split()[1]
    def norm(text):
        """The new member's id differs between the two adds, and the
        ETCD_INITIAL_CLUSTER entries follow the member ids' order."""
        text = re.sub(r"^Member +[0-9a-f]+ ", "Member <id> ", text)
        return re.sub(r'^ETCD_INITIAL_CLUSTER="(.*)"$',
                      lambda m: 'ETCD_INITIAL_CLUSTER="%s"' % ",".join(sorted(m.group(1).split(","))),
                      text, flags=re.M)
    assert norm(got.stdout) == norm(want.stdout)
    assert got.stdout.splitlines()[0] == f"Member {int(gid, 16):16x} added to cluster {cid:16x}"
    assert want.stdout.splitlines()[0] == f"Member {int(wid, 16):16x} added to cluster {cid:16x}"
    env = {k: v.strip('"') for k, v in (ln.split("=", 1) for ln in want.stdout.splitlines()
                                         if ln.startswith("ETCD_"))}
    ok = pyctl(survivors, "put", "before-join", "x")
    assert ok.returncode == 0
    new = Server("pyetcd", workdir / "m3", name="m3", peer_port=pp)
    new.cluster_args = ["--initial-advertise-peer-urls", env["ETCD_INITIAL_ADVERTISE_PEER_URLS"],
                        "--initial-cluster", env["ETCD_INITIAL_CLUSTER"],
                        "--initial-cluster-state", env["ETCD_INITIAL_CLUSTER_STATE"]]
    new.start()
    try:
        r = pyctl(new.endpoint, "get", "before-join", "--print-value-only")
        assert r.stdout == "x\n"
        names = sorted(ln.split(", ")[2] for ln in pyctl(survivors, "member", "list").stdout.splitlines())
        assert names == ["m0", "m1", "m3"]
    finally:
        new.stop()


def _watchers(ctl, endpoint, *args):
    """The same watch with pyetcdctl and etcdctl, started together."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    procs = [subprocess.Popen([sys.executable, "-m", "pyetcdctl.main", f"--endpoints={endpoint}",
                               "watch", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env),
             subprocess.Popen([ctl, f"--endpoints={endpoint}", "watch", *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(env, ETCDCTL_API="3"))]
    return procs


def _finish(procs, wait=1.5):
    time.sleep(wait)
    out = []
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        try:
            o, e = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            o, e = p.communicate()
        out.append((o, e, p.returncode))
    return out


def test_watch_matches_etcdctl(servers, etcdctl35):
    s = servers("pyetcd").start()
    ep = s.endpoint
    live = _watchers(etcdctl35, ep, "/name", "--prev-kv")
    prefix = _watchers(etcdctl35, ep, "/n", "--prefix")
    time.sleep(1.5)  # both watchers established (a Python interpreter starts slower)
    for args in (["put", "/name", "wang"], ["put", "/name", "张三"], ["put", "/nx", "1"],
                 ["del", "/name"]):
        assert pyctl(ep, *args).returncode == 0
    (g, _, _), (w, _, _) = _finish(live)
    assert g == w and g.startswith("PUT\n/name\nwang\nPUT\n/name\nwang\n/name\n张三\n")
    (g, _, _), (w, _, _) = _finish(prefix, wait=0)
    assert g == w and g.count("PUT") == 3 and g.count("DELETE") == 1
    # history from a revision
    (g, _, _), (w, _, _) = _finish(_watchers(etcdctl35, ep, "/", "--prefix", "--rev=2", "--prev-kv"))
    assert g == w and g.count("\n") > 8
    # a compacted revision: the server cancels the watch
    assert pyctl(ep, "compaction", "4").returncode == 0
    (g, ge, grc), (w, we, wrc) = _finish(_watchers(etcdctl35, ep, "/name", "--rev=2"))
    assert (g, grc) == (w, wrc) == ("", 5)
    assert [ln for ln in ge.splitlines() if not ln.startswith("{")] == \
        [ln for ln in we.splitlines() if not ln.startswith("{")] == [
        "watch was canceled (etcdserver: mvcc: required revision has been compacted)",
        "Error: watch is canceled by the server"]


def test_check_perf(servers, etcdctl35):
    s = servers("pyetcd").start()
    ep = s.endpoint
    r = pyctl(ep, "check", "perf", "--load=s", "--auto-compact", "--auto-defrag",
              env={"PYETCDCTL_CHECK_PERF_SECONDS": "4"}, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[-4].startswith("PASS: Throughput is ") and lines[-1] == "PASS"
    assert re.fullmatch(r"PASS: Slowest request took \d+\.\d{6}s", lines[-3])
    assert f'Defragmented "{ep}"' in lines
    rev = int(re.search(r"Compacted with revision (\d+)", r.stdout).group(1))
    assert rev >= 4 * 150 * 0.9  # the puts landed
    assert pyctl(ep, "get", "/etcdctl-check-perf/", "--prefix", "--keys-only").stdout == ""
    # a prefix with keys: refused before any load, as etcdctl refuses it
    assert pyctl(ep, "put", "/etcdctl-check-perf/x", "y").returncode == 0
    got, want = pyctl(ep, "check", "perf"), etcdctl(etcdctl35, ep, "check", "perf")
    assert got.returncode == want.returncode == 3
    assert _last_err(got.stderr) == _last_err(want.stderr) == (
        "Error: prefix \"/etcdctl-check-perf/\" has keys. Delete with 'etcdctl del --prefix "
        "/etcdctl-check-perf/' first")
    got, want = pyctl(ep, "check", "perf", "--load=huge"), etcdctl(etcdctl35, ep, "check", "perf", "--load=huge")
    assert (got.returncode, _last_err(got.stderr)) == (want.returncode, _last_err(want.stderr))


def test_lease_commands_match_etcdctl(servers, etcdctl35):
    s = servers("pyetcd").start()
    ep, ctl = s.endpoint, etcdctl35

    def both(*args):
        return pyctl(ep, *args), etcdctl(ctl, ep, *args)

    def same(got, want, norm=lambda t: t):
        assert got.returncode == want.returncode, (got.stderr, want.stderr)
        assert norm(got.stdout) == norm(want.stdout)
        if got.returncode:
            assert _last_err(got.stderr) == _last_err(want.stderr)

    ids = re.compile(r"lease [0-9a-f]{16} ")
    got, want = both("lease", "grant", "600")
    same(got, want, lambda t: ids.sub("lease <id> ", t))
    a, b = got.stdout.split()[1], want.stdout.split()[1]
    assert got.stdout == f"lease {a} granted with TTL(600s)\n"
    assert pyctl(ep, "put", "k1", "v", f"--lease={a}").returncode == 0
    assert pyctl(ep, "put", "k2", "v", f"--lease={a}").returncode == 0
    remaining = re.compile(r"remaining\(\d+s\)")
    for args in (["lease", "timetolive", a], ["lease", "timetolive", a, "--keys"]):
        same(*both(*args), lambda t: remaining.sub("remaining(<n>s)", t))
    assert "attached keys([k1 k2])" in pyctl(ep, "lease", "timetolive", a, "--keys").stdout
    same(*both("lease", "list"))
    same(*both("lease", "keep-alive", "--once", a))
    for args in (["lease", "keep-alive", "--once", "ffff"], ["lease", "revoke", "ffff"],
                 ["lease", "timetolive", "ffff"], ["lease", "grant"], ["lease", "grant", "x"],
                 ["lease", "revoke", "zz"], ["lease", "revoke"], ["lease", "keep-alive"],
                 ["lease", "grant", "99999999999"]):
        same(*both(*args))
    # a keep-alive that runs until the lease is revoked under it (renewals every TTL/3 = 2 s)
    b = pyctl(ep, "lease", "grant", "6").stdout.split()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    procs = [subprocess.Popen([sys.executable, "-m", "pyetcdctl.main", f"--endpoints={ep}",
                               "lease", "keep-alive", b], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env),
             subprocess.Popen([ctl, f"--endpoints={ep}", "lease", "keep-alive", b],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(env, ETCDCTL_API="3"))]
    try:
        first = [p.stdout.readline() for p in procs]
        assert first[0] == first[1] == f"lease {b} keepalived with TTL(6)\n"
        assert pyctl(ep, "lease", "revoke", b).stdout == f"lease {b} revoked\n"
        outs = [p.communicate(timeout=30) for p in procs]  # the next renewal finds it gone
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0]
    rest = [o for o, _ in outs]
    assert rest[0].endswith(f"lease {b} expired or revoked.\n")
    assert rest[1].endswith(f"lease {b} expired or revoked.\n")
    same(*both("lease", "timetolive", b))
    assert pyctl(ep, "lease", "timetolive", b).stdout == f"lease {b} already expired\n"
