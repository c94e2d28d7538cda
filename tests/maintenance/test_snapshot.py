"""Maintenance.Snapshot against the real etcdctl, and the backup/restore flow
of the seed's section 2 (save, status, restore into a new cluster)."""
from __future__ import annotations

import json
import time

import pytest

from pyetcd.testing import LocalCluster, Server, etcdctl

from .common import CTL34, CTL35, ETCDUTL, offline, ok, pyetcdctl

pytestmark = pytest.mark.conformance


def test_real_etcdctl_saves_and_reads_pyetcd_snapshot(servers, workdir, etcdctl34, etcdctl35):
    s = servers("pyetcd").start()
    ok(etcdctl(etcdctl35, s.endpoint, "put", "name", "张三"))
    for i in range(50):
        ok(etcdctl(etcdctl35, s.endpoint, "put", f"k{i % 7}", "v" * (i * 40)))
    ok(etcdctl(etcdctl35, s.endpoint, "del", "k3"))
    lease = ok(etcdctl(etcdctl35, s.endpoint, "lease", "grant", "600")).split()[1]
    ok(etcdctl(etcdctl35, s.endpoint, "put", "leased", "x", "--lease", lease))
    f34, f35 = workdir / "s34.db", workdir / "s35.db"
    out34 = ok(etcdctl(etcdctl34, s.endpoint, "snapshot", "save", str(f34)))
    out35 = ok(etcdctl(etcdctl35, s.endpoint, "snapshot", "save", str(f35)))
    assert f"Snapshot saved at {f34}" in out34 and f"Snapshot saved at {f35}" in out35
    assert f34.stat().st_size % 512 == 32
    for fmt in ("table", "json", "simple", "fields"):
        real = ok(offline(etcdctl35, "snapshot", "status", str(f35), "-w", fmt))
        ours = ok(pyetcdctl("snapshot", "status", str(f35), "-w", fmt))
        assert ours == real, (fmt, ours, real)
    st = json.loads(ok(offline(etcdctl34, "snapshot", "status", str(f34), "-w", "json")))
    assert st["revision"] == 54
    # pyetcdctl save gives the same file content as etcdctl's
    f_ours = workdir / "ours.db"
    ok(pyetcdctl("--endpoints", s.endpoint, "snapshot", "save", str(f_ours)))
    assert ok(offline(etcdctl35, "snapshot", "status", str(f_ours), "-w", "json")) == \
        ok(offline(etcdctl35, "snapshot", "status", str(f35), "-w", "json"))


def _restore_each(cluster_like, snap, workdir, token="etcd-cluster-2"):
    """pyetcdctl snapshot restore for every member (same file, own name/URL/dir)."""
    initial = ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in cluster_like.members)
    for m in cluster_like.members:
        m.data_dir = workdir / "restored" / f"{m.name}.etcd"
        out = pyetcdctl("snapshot", "restore", str(snap), "--name", m.name,
                        "--initial-cluster", initial, "--initial-cluster-token", token,
                        "--initial-advertise-peer-urls", f"http://127.0.0.1:{m.peer_port}",
                        f"--data-dir={m.data_dir}")
        ok(out)
        # a restored member keeps the --initial-* flags, as etcd's do (ignored on restart)
        m.cluster_args = ["--initial-advertise-peer-urls", f"http://127.0.0.1:{m.peer_port}",
                          "--initial-cluster", initial, "--initial-cluster-token", token]


def test_seed_backup_and_restore_three_members(workdir, etcdctl35):
    c = LocalCluster("pyetcd", workdir / "c", 3).start()
    try:
        ep0 = c.members[0].endpoint
        ok(etcdctl(etcdctl35, ep0, "put", "name", "张三"))
        for i in range(20):
            ok(etcdctl(etcdctl35, ep0, "put", f"key{i}", f"value{i}"))
        # HashKV and Hash: every member the same value once all applied the writes
        from pyetcd.client import Client
        for _ in range(50):
            out = ok(etcdctl(etcdctl35, c.endpoints, "endpoint", "hashkv", "-w", "json"))
            hkv = {e["HashKV"]["hash"] for e in json.loads(out)}
            hs = set()
            for m in c.members:
                with Client(m.endpoint) as cl:
                    hs.add(cl.hash().hash)
            if len(hkv) == 1 and len(hs) == 1:
                break
            time.sleep(0.1)
        assert len(hkv) == 1 and len(hs) == 1, (out, hs)
        snap = workdir / "backup.db"
        ok(etcdctl(etcdctl35, ep0, "snapshot", "save", str(snap)))
        table = ok(offline(etcdctl35, "snapshot", "status", str(snap), "-w", "table"))
        assert "| REVISION |" in table.replace("  ", " ") or "REVISION" in table
        assert table == ok(pyetcdctl("snapshot", "status", str(snap), "-w", "table"))
        ok(etcdctl(etcdctl35, ep0, "del", "name"))
        assert ok(etcdctl(etcdctl35, ep0, "get", "name")) == ""
    finally:
        c.stop()
    _restore_each(c, snap, workdir)
    try:
        c.start()
        out = ok(etcdctl(etcdctl35, c.members[1].endpoint, "get", "name"))
        assert out == "name\n张三\n"
        ids = {m.split(", ")[0] for m in ok(etcdctl(etcdctl35, c.endpoints, "member", "list")).splitlines()}
        assert len(ids) == 3
        ok(etcdctl(etcdctl35, c.members[2].endpoint, "put", "after", "restore"))
        assert ok(etcdctl(etcdctl35, c.members[0].endpoint, "get", "after")) == "after\nrestore\n"
        assert ok(etcdctl(etcdctl35, c.members[0].endpoint, "get", "key7",
                          "--print-value-only")) == "value7\n"
    finally:
        c.stop()


def test_restore_real_etcd_snapshot_into_pyetcd(servers, workdir, etcd35, etcdctl35):
    real = servers("etcd").start()
    ok(etcdctl(etcdctl35, real.endpoint, "put", "name", "张三"))
    ok(etcdctl(etcdctl35, real.endpoint, "put", "a", "1"))
    ok(etcdctl(etcdctl35, real.endpoint, "put", "a", "2"))
    snap = workdir / "real.db"
    ok(etcdctl(etcdctl35, real.endpoint, "snapshot", "save", str(snap)))
    real.stop()
    s = servers("pyetcd", name="r1")
    data = workdir / "r1.etcd"
    ok(pyetcdctl("snapshot", "restore", str(snap), "--name", "r1",
                 "--initial-cluster", f"r1=http://127.0.0.1:{s.peer_port}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{s.peer_port}",
                 "--data-dir", str(data), "--bump-revision", "100", "--mark-compacted"))
    s.data_dir = data
    s.cluster_args = ["--initial-advertise-peer-urls", f"http://127.0.0.1:{s.peer_port}",
                      "--initial-cluster", f"r1=http://127.0.0.1:{s.peer_port}"]
    s.start()
    assert ok(etcdctl(etcdctl35, s.endpoint, "get", "name")) == "name\n张三\n"
    assert ok(etcdctl(etcdctl35, s.endpoint, "get", "a", "--print-value-only")) == "2\n"
    # revision bumped past the snapshot's (4) by 100, and compacted there
    hdr = json.loads(ok(etcdctl(etcdctl35, s.endpoint, "get", "a", "-w", "json")))["header"]
    assert hdr["revision"] == 104
    p = etcdctl(etcdctl35, s.endpoint, "get", "a", "--rev", "3")
    assert "required revision has been compacted" in p.stderr
    ok(etcdctl(etcdctl35, s.endpoint, "put", "b", "x"))
    assert json.loads(ok(etcdctl(etcdctl35, s.endpoint, "get", "b", "-w", "json")))["kvs"][0]["mod_revision"] == 105


@pytest.mark.skipif(ETCDUTL is None, reason="etcdutl binary not found")
def test_real_etcdutl_restores_pyetcd_snapshot(servers, workdir, etcd35, etcdctl35):
    s = servers("pyetcd").start()
    ok(etcdctl(etcdctl35, s.endpoint, "put", "name", "张三"))
    ok(etcdctl(etcdctl35, s.endpoint, "put", "x", "y"))
    snap = workdir / "py.db"
    ok(etcdctl(etcdctl35, s.endpoint, "snapshot", "save", str(snap)))
    s.stop()
    real = servers("etcd", name="e1")
    data = workdir / "e1.etcd"
    ok(offline(ETCDUTL, "snapshot", "restore", str(snap), "--name", "e1",
               "--initial-cluster", "e1=http://localhost:2380",
               "--initial-advertise-peer-urls", "http://localhost:2380", "--data-dir", str(data)))
    real.data_dir = data
    real.start()
    assert ok(etcdctl(etcdctl35, real.endpoint, "get", "name")) == "name\n张三\n"
    assert ok(etcdctl(etcdctl35, real.endpoint, "get", "x", "--print-value-only")) == "y\n"


def test_snapshot_streams_and_survives_a_client_that_leaves(servers):
    """The export is piped into the stream: remaining_bytes counts down to 0
    over the database's bytes, the sha256 comes last; a client that hangs up
    mid-stream stops the export, and defrag and the next snapshot still work."""
    import hashlib

    import grpc

    from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
    from pyetcd.pb.etcdserverpb import rpc_pb2_grpc as pbg
    s = servers("pyetcd").start()
    with grpc.insecure_channel(s.endpoint) as ch:
        kv, m = pbg.KVStub(ch), pbg.MaintenanceStub(ch)
        for i in range(30):
            kv.Put(pb.PutRequest(key=b"big%02d" % i, value=bytes([i]) * (1 << 20)))
        stream = m.Snapshot(pb.SnapshotRequest())
        first = next(stream)
        assert first.remaining_bytes > 20 << 20
        stream.cancel()
        t0 = time.monotonic()
        m.Defragment(pb.DefragmentRequest(), timeout=30)
        assert time.monotonic() - t0 < 30
        parts = list(m.Snapshot(pb.SnapshotRequest(), timeout=60))
        db = b"".join(p.blob for p in parts[:-1])
        assert [p.remaining_bytes for p in parts[:-1]] == [
            len(db) - sum(len(q.blob) for q in parts[:i + 1]) for i in range(len(parts) - 1)]
        assert parts[-1].remaining_bytes == 0 and len(parts[-1].blob) == 32
        assert parts[-1].blob == hashlib.sha256(db).digest()
        assert len(db) % 4096 == 0
