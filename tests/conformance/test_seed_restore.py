"""The seed's backup and restore, word for word with the real etcdctl and the
binary swapped: snapshot save from a pyetcd cluster, `etcdctl snapshot
restore` (real etcdctl 3.5, which writes etcd's bbolt data dirs), then pyetcd
started on those dirs with the seed's flags serves the data."""
from __future__ import annotations

import pytest

from pyetcd.testing import LocalCluster, etcdctl


@pytest.mark.conformance
def test_real_etcdctl_restore_then_pyetcd(workdir, etcdctl35):
    ctl = etcdctl35
    c = LocalCluster("pyetcd", workdir / "orig").start()
    try:
        assert etcdctl(ctl, c.members[0].endpoint, "put", "name", "张三").returncode == 0
        backup = workdir / "2022-11-13.db"
        r = etcdctl(ctl, c.members[0].endpoint, "snapshot", "save", str(backup))
        assert r.returncode == 0, r.stderr
        r = etcdctl(ctl, c.members[0].endpoint, "del", "name")
        assert r.stdout.strip() == "1"
    finally:
        c.stop()
    r = etcdctl(ctl, "", "snapshot", "status", str(backup), "-w", "table")
    assert r.returncode == 0 and "TOTAL KEYS" in r.stdout, r.stderr
    # restore every member from the same file into a fresh dir, as the seed does
    new = LocalCluster("pyetcd", workdir / "restored")
    initial = new.members[0].cluster_args[3]
    for m in new.members:
        peer = f"http://127.0.0.1:{m.peer_port}"
        r = etcdctl(ctl, "", "snapshot", "restore", str(backup), "--name", m.name,
                    "--initial-cluster", initial, "--initial-cluster-token", "etcd-cluster",
                    "--initial-advertise-peer-urls", peer, f"--data-dir={m.data_dir}")
        assert r.returncode == 0, r.stderr
    new.start()
    try:
        for m in new.members:
            r = etcdctl(ctl, m.endpoint, "get", "name")
            assert r.stdout.split() == ["name", "张三"], (m.name, r.stdout, r.stderr)
        assert etcdctl(ctl, new.endpoints, "put", "after", "restore").returncode == 0
        r = etcdctl(ctl, new.endpoints, "member", "list")
        assert sorted(l.split(", ")[2] for l in r.stdout.splitlines()) == ["m0", "m1", "m2"]
        assert "imported an etcd (bbolt) data dir" in new.members[0].log()
    finally:
        new.stop()
