"""The real etcdctl (3.4 and 3.5) watching pyetcd and real etcd 3.5.1.

Every scenario runs the same commands against a fresh pyetcd and a fresh
etcd and compares exit codes, stdout and stderr exactly, after normalising
what legitimately differs (raft term; lease ids, which each server generates;
the seconds remaining on a lease).  Long-running commands (watch, lock,
elect) run in the background and are killed by the PID this test started.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from pyetcd.testing import etcdctl


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return env


def spawn(ctl, endpoint, *args, stdin=False):
    return subprocess.Popen([ctl, f"--endpoints={endpoint}", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.PIPE if stdin else None,
                            text=True, env=_env(), start_new_session=True)


def finish(p, kill=True):
    if kill and p.poll() is None:
        p.send_signal(signal.SIGKILL)
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return p.returncode, out, err


def normalise(text: str) -> str:
    lines = [ln for ln in text.splitlines() if not ln.startswith('{"level":')]
    text = "\n".join(lines)
    text = re.sub(r'"raft_term":\d+', '"raft_term":T', text)
    text = re.sub(r"raft_term:\d+", "raft_term:T", text)
    text = re.sub(r'"RaftTerm" : \d+', '"RaftTerm" : T', text)
    text = re.sub(r"\b[0-9a-f]{15,16}\b", "LEASE", text)
    text = re.sub(r'"(ID|id|lease)":\d{6,}', r'"\1":LEASE', text)
    text = re.sub(r"remaining\(\d+s\)", "remaining(Ns)", text)
    text = re.sub(r'"ttl":\d+', '"ttl":N', text)   # the remaining TTL: timing (granted-ttl stays)
    return text


def both(servers, scenario, *args):
    ours = servers("pyetcd").start()
    theirs = servers("etcd").start()
    got = scenario(ours.endpoint, *args)
    want = scenario(theirs.endpoint, *args)
    return got, want


def assert_same(got, want):
    bad = [(g[0], g[1:], w[1:]) for g, w in zip(got, want) if g != w]
    assert len(got) == len(want)
    assert not bad, "\n\n".join(f"{c}\n  pyetcd: {g}\n  etcd:   {w}" for c, g, w in bad)


def _ctl(request, etcdctl34, etcdctl35):
    return etcdctl34 if request.param == "3.4" else etcdctl35


@pytest.fixture(params=["3.4", "3.5"])
def ctl(request, etcdctl34, etcdctl35, etcd35):
    return _ctl(request, etcdctl34, etcdctl35)


# ---- watch ------------------------------------------------------------------------------------
WATCHES = [
    ("watch", "k1"),
    ("watch", "k", "--prefix"),
    ("watch", "k1", "--rev=2"),
    ("watch", "k", "--prefix", "--rev=3", "--prev-kv"),
    ("watch", "k", "--prefix", "--rev=2", "-w", "json"),
    ("watch", "k0", "--rev=2", "--prev-kv", "-w", "fields"),
    ("watch", "k", "--prefix", "--rev=5", "--", "sh", "-c",
     'echo "cmd $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY=$ETCD_WATCH_VALUE rev $ETCD_WATCH_REVISION"'),
]


def watch_scenario(ctl, ep):
    out = []
    for args in (("put", "k0", "v0"), ("put", "k1", "v1"), ("put", "k0", "v2"), ("del", "k0"),
                 ("put", "k1", "v3")):
        assert etcdctl(ctl, ep, *args).returncode == 0
    procs = [spawn(ctl, ep, *w) for w in WATCHES]
    inter = spawn(ctl, ep, "watch", "-i", stdin=True)
    inter.stdin.write("watch k1\n")
    inter.stdin.flush()
    time.sleep(1.0)
    inter.stdin.write("progress\n")
    inter.stdin.flush()
    time.sleep(0.3)
    etcdctl(ctl, ep, "put", "k1", "live")
    etcdctl(ctl, ep, "del", "k", "--prefix")  # two deletes in one revision
    etcdctl(ctl, ep, "put", "k0", "again")
    time.sleep(1.0)
    for w, p in zip(WATCHES, procs):
        rc, o, e = finish(p)
        out.append((w, normalise(o), normalise(e)))
    rc, o, e = finish(inter)
    out.append(("interactive", normalise(o)))
    # a compacted start revision: etcd cancels the watch with its reason
    etcdctl(ctl, ep, "compaction", "5")
    for args in (("watch", "k1", "--rev=3"), ("watch", "k1", "--rev=3", "-w", "json")):
        r = etcdctl(ctl, ep, *args, timeout=10)
        out.append((args, r.returncode, normalise(r.stdout), normalise(r.stderr)))
    return out


@pytest.mark.conformance
def test_watch_matches_real_etcd(ctl, servers):
    got, want = both(servers, lambda ep: watch_scenario(ctl, ep))
    assert_same(got, want)
    assert "progress notify" in got[-3][1]
    assert "required revision has been compacted" in got[-2][3]


# ---- lock and elect ----------------------------------------------------------------------------
def lock_scenario(ctl, ep):
    out = []
    first = spawn(ctl, ep, "lock", "L", "--", "sh", "-c", "echo first $ETCD_LOCK_KEY; sleep 1.5")
    time.sleep(0.5)
    t0 = time.monotonic()
    second = spawn(ctl, ep, "lock", "L", "--", "sh", "-c", "echo second")
    rc1, o1, e1 = finish(first, kill=False)
    rc2, o2, e2 = finish(second, kill=False)
    waited = time.monotonic() - t0
    out.append(("lock", rc1, normalise(o1), normalise(e1), rc2, normalise(o2), normalise(e2),
                waited > 0.8))
    holder = spawn(ctl, ep, "lock", "M")
    time.sleep(0.5)
    waiter = spawn(ctl, ep, "lock", "M")
    time.sleep(0.5)
    blocked = waiter.poll() is None and not waiter.stdout.closed
    finish(holder)  # killing the holder leaves its key until its session lease expires...
    keys = etcdctl(ctl, ep, "get", "M", "--prefix", "--keys-only").stdout
    out.append(("lock-keys", blocked, len(normalise(keys).split())))
    finish(waiter)
    return out


def elect_scenario(ctl, ep):
    out = []
    a = spawn(ctl, ep, "elect", "E", "pa")
    time.sleep(0.6)
    obs = spawn(ctl, ep, "elect", "-l", "E")
    b = spawn(ctl, ep, "elect", "E", "pb")
    time.sleep(0.6)
    leader = etcdctl(ctl, ep, "get", "E", "--prefix", "--print-value-only")
    out.append(("values", leader.stdout))
    a.send_signal(signal.SIGINT)  # resigns on interrupt
    time.sleep(1.0)
    for name, p in (("a", a), ("b", b), ("observer", obs)):
        rc, o, e = finish(p)
        out.append((name, normalise(o)))
    return out


@pytest.mark.conformance
def test_lock_matches_real_etcd(ctl, servers):
    got, want = both(servers, lambda ep: lock_scenario(ctl, ep))
    assert_same(got, want)
    assert got[0][2].startswith("first L/LEASE") and got[0][5] == "second" and got[0][7]


@pytest.mark.conformance
def test_elect_matches_real_etcd(ctl, servers):
    got, want = both(servers, lambda ep: elect_scenario(ctl, ep))
    assert_same(got, want)
    assert got[1][1].startswith("E/LEASE\npa") and got[2][1].startswith("E/LEASE\npb")


# ---- lease output shapes ----------------------------------------------------------------------
def lease_scenario(ctl, ep):
    out = []
    r = etcdctl(ctl, ep, "lease", "grant", "100")
    lid = r.stdout.split()[1]
    out.append(("grant", r.returncode, normalise(r.stdout), r.stderr))
    # one attached key: etcd lists a lease's keys in Go map order (random)
    for args in (("put", "lk", "v", f"--lease={lid}"),
                 ("lease", "timetolive", lid), ("lease", "timetolive", lid, "--keys"),
                 ("lease", "timetolive", lid, "--keys", "-w", "json"),
                 ("lease", "keep-alive", "--once", lid), ("lease", "list"),
                 ("lease", "revoke", lid), ("get", "lk", "--prefix"), ("lease", "timetolive", lid),
                 ("lease", "revoke", lid), ("lease", "keep-alive", "--once", lid),
                 ("lease", "list"), ("put", "x", "y", f"--lease={lid}")):
        r = etcdctl(ctl, ep, *args)
        out.append((args[:2], r.returncode, normalise(r.stdout), normalise(r.stderr)))
    return out


@pytest.mark.conformance
def test_lease_output_matches_real_etcd(ctl, servers):
    got, want = both(servers, lambda ep: lease_scenario(ctl, ep))
    assert_same(got, want)
