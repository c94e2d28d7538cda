"""Three members on loopback, driven by the real etcdctl: the seed's cluster
operations (member list, remove, add, join with state existing), health and
status, leadership (exactly one leader, move-leader, failover), and the ids
real etcd computes for the same flags."""
from __future__ import annotations

import json
import re
import time

import pytest

from pyetcd.peer.transport import SNAPSHOT_CHUNK
from pyetcd.testing import LocalCluster, Server, etcdctl, free_port


def _members(ctl, endpoints):
    r = etcdctl(ctl, endpoints, "member", "list", "-w", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _status(ctl, endpoints):
    r = etcdctl(ctl, endpoints, "endpoint", "status", "-w", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _wait(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _reconfigure(ctl, endpoints, *args):
    """A membership change, retried while strict reconfiguration says the
    cluster is not healthy yet (streams must be up for 5 s; on a loaded
    machine one may have just reconnected)."""
    deadline = time.monotonic() + 20
    while True:
        r = etcdctl(ctl, endpoints, *args)
        if r.returncode == 0 or "unhealthy cluster" not in r.stderr or time.monotonic() > deadline:
            return r
        time.sleep(1)


@pytest.fixture
def cluster(workdir):
    c = LocalCluster("pyetcd", workdir / "pyetcd").start()
    yield c
    c.stop()


@pytest.mark.conformance
def test_ids_match_real_etcd_for_the_same_flags(workdir, etcd35, etcdctl35):
    real = LocalCluster("etcd", workdir / "etcd").start()
    try:
        want = _members(etcdctl35, real.endpoints)
    finally:
        real.stop()
    ours = LocalCluster("pyetcd", workdir / "py")
    for o, r in zip(ours.members, real.members):  # same ports, so the same peer URLs
        o.client_port, o.peer_port, o.endpoint = r.client_port, r.peer_port, r.endpoint
        o.cluster_args = r.cluster_args
    ours.start()
    try:
        got = _members(etcdctl35, ours.endpoints)
    finally:
        ours.stop()
    assert got["header"]["cluster_id"] == want["header"]["cluster_id"]
    strip = lambda ms: sorted((m["ID"], m["name"], tuple(m["peerURLs"]), tuple(m["clientURLs"]))
                              for m in ms)
    assert strip(got["members"]) == strip(want["members"])


@pytest.mark.conformance
@pytest.mark.parametrize("ctl_name", ["etcdctl34", "etcdctl35"])
def test_replication_status_and_one_leader(cluster, ctl_name, request):
    ctl = request.getfixturevalue(ctl_name)
    for i, m in enumerate(cluster.members):
        r = etcdctl(ctl, m.endpoint, "put", f"/k{i}", f"v{i}")
        assert r.returncode == 0 and r.stdout.strip() == "OK", r.stderr
    for m in cluster.members:  # linearizable reads see every acknowledged write
        r = etcdctl(ctl, m.endpoint, "get", "/k", "--prefix", "--print-value-only")
        assert r.stdout.split() == ["v0", "v1", "v2"]
    st = _status(ctl, cluster.endpoints)
    assert len(st) == 3
    leaders = {s["Status"]["leader"] for s in st}
    assert len(leaders) == 1
    assert sum(1 for s in st if s["Status"]["header"]["member_id"] == s["Status"]["leader"]) == 1
    assert len({s["Status"]["header"]["cluster_id"] for s in st}) == 1
    assert len({s["Status"]["raftTerm"] for s in st}) == 1
    r = etcdctl(ctl, cluster.endpoints, "endpoint", "health")
    assert r.returncode == 0 and (r.stdout + r.stderr).count("is healthy") == 3
    r = etcdctl(ctl, cluster.endpoints, "member", "list", "-w", "table")
    assert r.returncode == 0 and all(f"| {m.name} |" in r.stdout.replace("  ", " ") or m.name in r.stdout
                                     for m in cluster.members)


@pytest.mark.conformance
def test_remove_then_add_back_like_the_seed(cluster, workdir, etcdctl35):
    ctl = etcdctl35
    ms = _members(ctl, cluster.endpoints)["members"]
    victim = cluster.members[2]
    vid = next(m["ID"] for m in ms if m["name"] == victim.name)
    survivors = f"{cluster.members[0].endpoint},{cluster.members[1].endpoint}"
    time.sleep(5.2)  # strict reconfig: peers must have been connected for 5 s
    r = _reconfigure(ctl, survivors, "member", "remove", f"{vid:x}")
    assert r.returncode == 0, r.stderr
    cid = _members(ctl, survivors)["header"]["cluster_id"]
    assert r.stdout.strip() == f"Member {vid:16x} removed from cluster {cid:16x}"  # etcdctl prints %16x
    _wait(lambda: victim.proc.poll() is not None, timeout=20,
          what="the removed member to stop itself")
    assert len(_members(ctl, survivors)["members"]) == 2
    r = etcdctl(ctl, survivors, "member", "remove", f"{vid:x}")
    assert r.returncode != 0 and "etcdserver: member not found" in r.stderr

    pp = free_port()
    r = _reconfigure(ctl, survivors, "member", "add", "m3", f"--peer-urls=http://127.0.0.1:{pp}")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Member ") and lines[0].endswith(f" added to cluster {cid:16x}")
    env = dict(l.split("=", 1) for l in lines if l.startswith("ETCD_"))
    env = {k: v.strip('"') for k, v in env.items()}
    assert env["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
    r = etcdctl(ctl, survivors, "member", "add", "dup", f"--peer-urls=http://127.0.0.1:{pp}")
    assert r.returncode != 0 and "etcdserver: Peer URLs already exists" in r.stderr
    etcdctl(ctl, survivors, "put", "before-join", "x")
    new = Server("pyetcd", workdir / "m3", name="m3", peer_port=pp)
    new.cluster_args = ["--initial-advertise-peer-urls", env["ETCD_INITIAL_ADVERTISE_PEER_URLS"],
                        "--initial-cluster", env["ETCD_INITIAL_CLUSTER"],
                        "--initial-cluster-state", "existing"]
    new.start()
    try:
        r = etcdctl(ctl, new.endpoint, "get", "before-join", "--print-value-only")
        assert r.stdout.strip() == "x"
        ms = _members(ctl, survivors)["members"]
        assert sorted(m["name"] for m in ms) == ["m0", "m1", "m3"]
        st = _status(ctl, f"{survivors},{new.endpoint}")
        assert len({s["Status"]["leader"] for s in st}) == 1
    finally:
        new.stop()


@pytest.mark.conformance
def test_move_leader_and_failover(cluster, etcdctl35):
    ctl = etcdctl35
    st = _status(ctl, cluster.endpoints)
    leader = st[0]["Status"]["leader"]
    target = next(s["Status"]["header"]["member_id"] for s in st
                  if s["Status"]["header"]["member_id"] != leader)
    r = etcdctl(ctl, cluster.endpoints, "move-leader", f"{target:x}")
    assert r.returncode == 0, r.stderr
    assert f"Leadership transferred from {leader:x} to {target:x}" in r.stdout
    assert {s["Status"]["leader"] for s in _status(ctl, cluster.endpoints)} == {target}
    # kill the leader: the other two elect a new one and keep taking writes
    ids = {s["Endpoint"]: s["Status"]["header"]["member_id"] for s in st}
    victim = next(m for m in cluster.members if ids[m.endpoint] == target)
    victim.kill()
    rest = ",".join(m.endpoint for m in cluster.members if m is not victim)
    _wait(lambda: etcdctl(ctl, rest, "put", "after-failover", "ok").returncode == 0,
          timeout=15, what="a write after failover")
    st = _status(ctl, rest)
    assert len({s["Status"]["leader"] for s in st}) == 1
    assert st[0]["Status"]["leader"] != target


@pytest.mark.conformance
def test_lease_kept_alive_through_a_follower_then_expires(cluster, etcdctl35):
    import os
    import subprocess
    ctl = etcdctl35
    st = _status(ctl, cluster.endpoints)
    leader = st[0]["Status"]["leader"]
    fol = next(s["Endpoint"] for s in st if s["Status"]["header"]["member_id"] != leader)
    r = etcdctl(ctl, fol, "lease", "grant", "3")
    assert r.returncode == 0 and "granted with TTL(3s)" in r.stdout, r.stderr
    lid = r.stdout.split()[1]
    assert etcdctl(ctl, fol, "put", "leased", "v", f"--lease={lid}").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    ka = subprocess.Popen([ctl, f"--endpoints={fol}", "lease", "keep-alive", lid],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        time.sleep(5)  # longer than the TTL: only the keep-alives keep it
        assert etcdctl(ctl, fol, "get", "leased", "--print-value-only").stdout.strip() == "v"
        r = etcdctl(ctl, fol, "lease", "timetolive", lid, "--keys")
        assert "attached keys([leased])" in r.stdout, r.stdout
    finally:
        ka.kill()
        out = ka.communicate()[0]
    assert f"lease {lid} keepalived with TTL(3)" in out
    _wait(lambda: etcdctl(ctl, fol, "get", "leased").stdout.strip() == "", timeout=10,
          what="the lease to expire and take its key")
    assert "already expired" in etcdctl(ctl, fol, "lease", "timetolive", lid).stdout


@pytest.mark.conformance
def test_lagging_member_catches_up_by_snapshot(workdir, etcdctl35):
    ctl = etcdctl35
    c = LocalCluster("pyetcd", workdir / "snap", extra=[
        "--snapshot-count", "50", "--experimental-snapshot-catchup-entries", "10"]).start()
    try:
        lag = c.members[2]
        lag.stop()
        live = f"{c.members[0].endpoint},{c.members[1].endpoint}"
        for i in range(150):  # some values large, so the backend goes out in several chunks
            value = f"v{i}" + ("x" * 60_000 if i < 80 else "")
            assert etcdctl(ctl, live, "put", f"k{i:03d}", value).returncode == 0
        lag.start()
        r = _wait(lambda: (lambda r: r if "k149" in r.stdout else None)(
            etcdctl(ctl, lag.endpoint, "get", "k", "--prefix", "--keys-only")),
            timeout=15, what="the lagging member to catch up")
        assert r.stdout.split() == [f"k{i:03d}" for i in range(150)]
        assert "installing a snapshot at index" in lag.log()
        got = re.search(r"received a snapshot of (\d+) bytes", lag.log())
        assert got and int(got.group(1)) > SNAPSHOT_CHUNK  # streamed in chunks, not one frame
        assert "sending a snapshot of" in "".join(m.log() for m in c.members[:2])
        assert etcdctl(ctl, lag.endpoint, "get", "k005", "--consistency=s",
                       "--print-value-only").stdout.strip() == "v5" + "x" * 60_000
        assert not [p for p in (lag.data_dir / "member" / "snap").iterdir()
                    if p.name.endswith((".snap.db", ".part"))]
        # and it keeps replicating normally afterwards
        assert etcdctl(ctl, live, "put", "after", "snap").returncode == 0
        _wait(lambda: etcdctl(ctl, lag.endpoint, "get", "after", "--consistency=s",
                              "--print-value-only").stdout.strip() == "snap", what="replication")
    finally:
        c.stop()


@pytest.mark.conformance
def test_write_during_election_waits_for_the_new_leader(cluster, etcdctl35):
    ctl = etcdctl35
    st = _status(ctl, cluster.endpoints)
    ids = {s["Endpoint"]: s["Status"]["header"]["member_id"] for s in st}
    leader = next(m for m in cluster.members if ids[m.endpoint] == st[0]["Status"]["leader"])
    leader.stop()
    other = next(m for m in cluster.members if m is not leader)
    r = etcdctl(ctl, other.endpoint, "put", "during-election", "1")
    assert r.returncode == 0, r.stderr


@pytest.mark.conformance
def test_remove_the_leader(cluster, etcdctl35):
    ctl = etcdctl35
    st = _status(ctl, cluster.endpoints)
    lead = st[0]["Status"]["leader"]
    ids = {s["Endpoint"]: s["Status"]["header"]["member_id"] for s in st}
    victim = next(m for m in cluster.members if ids[m.endpoint] == lead)
    rest = ",".join(m.endpoint for m in cluster.members if m is not victim)
    time.sleep(5.2)
    r = _reconfigure(ctl, cluster.endpoints, "member", "remove", f"{lead:x}")
    assert r.returncode == 0, r.stderr
    _wait(lambda: victim.proc.poll() is not None, timeout=20, what="the removed leader to stop")
    _wait(lambda: etcdctl(ctl, rest, "put", "after-leader-removal", "ok").returncode == 0,
          timeout=15, what="a write after the leader left")
    st = _status(ctl, rest)
    assert len(st) == 2 and len({s["Status"]["leader"] for s in st}) == 1
    assert st[0]["Status"]["leader"] != lead
    assert sorted(m["name"] for m in _members(ctl, rest)["members"]) == sorted(
        m.name for m in cluster.members if m is not victim)


@pytest.mark.conformance
def test_added_member_catches_up_by_snapshot(workdir, etcdctl35):
    """member add after the log was compacted: the newcomer gets the
    leader's backend as a snapshot, then the log."""
    ctl = etcdctl35
    c = LocalCluster("pyetcd", workdir / "add-snap", extra=[
        "--snapshot-count", "50", "--experimental-snapshot-catchup-entries", "10"]).start()
    new = None
    try:
        for i in range(150):
            assert etcdctl(ctl, c.endpoints, "put", f"s{i:03d}", f"v{i}").returncode == 0
        time.sleep(5.2)  # strict reconfig: streams up for 5 s
        pp = free_port()
        r = _reconfigure(ctl, c.endpoints, "member", "add", "m9", f"--peer-urls=http://127.0.0.1:{pp}")
        assert r.returncode == 0, r.stderr
        env = {k: v.strip('"') for k, v in (l.split("=", 1) for l in r.stdout.splitlines()
                                             if l.startswith("ETCD_"))}
        new = Server("pyetcd", workdir / "m9", name="m9", peer_port=pp,
                     extra=["--snapshot-count", "50"])
        new.cluster_args = ["--initial-advertise-peer-urls", env["ETCD_INITIAL_ADVERTISE_PEER_URLS"],
                            "--initial-cluster", env["ETCD_INITIAL_CLUSTER"],
                            "--initial-cluster-state", "existing"]
        new.start()
        r = _wait(lambda: (lambda r: r if "s149" in r.stdout else None)(
            etcdctl(ctl, new.endpoint, "get", "s", "--prefix", "--keys-only")),
            timeout=20, what="the new member to catch up")
        assert r.stdout.split() == [f"s{i:03d}" for i in range(150)]
        assert "installing a snapshot at index" in new.log()
        st = _status(ctl, f"{c.endpoints},{new.endpoint}")
        assert len(st) == 4 and len({s["Status"]["leader"] for s in st}) == 1
    finally:
        if new is not None:
            new.stop()
        c.stop()
