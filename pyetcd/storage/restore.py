"""Offline snapshot restore: an etcd snapshot file (bbolt + sha256, made by
pyetcd or by real etcd) -> a pyetcd data dir for a NEW cluster.

What etcd's ``snapshot restore`` (etcdutl/snapshot/v3_snapshot.go) does, on
pyetcd's layout (``<data-dir>/member/snap/db``, an LMDB backend):

- the sha256 trailer is checked unless ``skip_hash_check`` (a file without one
  needs ``skip_hash_check``);
- every bucket is copied except ``members`` and ``members_removed``, which
  get the new member list (ids from peer URLs + cluster token, cluster id from
  the ids: etcd's formulas, so every member restored from the same file with
  the same ``--initial-cluster`` forms one cluster);
- the Raft state starts at index = number of members, term 1 (etcd writes one
  conf-change entry per member and a snapshot at that index): meta
  consistent_index/term say so, and the server's restart path (members in the
  backend) rebuilds its Raft storage from them;
- ``bump_revision`` adds a marker revision (empty value) that far above the
  latest one; ``mark_compacted`` schedules a compaction at that revision;
- ``meta/local_member_id`` names the restored member.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from urllib.parse import urlsplit

from .backend import BUCKETS, Backend
from .bbolt import BboltReader
from .etcd_snapshot import SHA256_SIZE, has_checksum, revision_key

_U64 = struct.Struct(">Q")


class RestoreError(Exception):
    pass


def member_id(peer_urls: list[str], token: str) -> int:
    """etcd's computeMemberId (same as pyetcd.server.membership)."""
    b = "".join(sorted(peer_urls)).encode() + token.encode()
    return _U64.unpack(hashlib.sha1(b).digest()[:8])[0]


def cluster_id(ids) -> int:
    b = b"".join(_U64.pack(i) for i in sorted(ids))
    return _U64.unpack(hashlib.sha1(b).digest()[:8])[0]


def parse_initial_cluster(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, url = part.partition("=")
        if not eq or not name or not url:
            raise RestoreError(f"invalid --initial-cluster entry {part!r} (want name=URL)")
        if urlsplit(url).scheme not in ("http", "https", "unix", "unixs"):
            raise RestoreError(f"URL scheme must be http, https, unix or unixs: {url}")
        out.setdefault(name, []).append(url)
    return out


def verify_snapshot_hash(path: str, skip_hash_check: bool) -> int:
    """Check the trailer; returns the size of the bbolt part."""
    size = os.path.getsize(path)
    if not has_checksum(size):
        if not skip_hash_check:
            raise RestoreError("snapshot missing hash but --skip-hash-check=false")
        return size
    db = size - SHA256_SIZE
    if skip_hash_check:
        return db
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = db
        while left:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                raise RestoreError("snapshot file is truncated")
            h.update(chunk)
            left -= len(chunk)
        want = f.read(SHA256_SIZE)
    got = h.digest()
    if got != want:
        raise RestoreError(f"expected sha256 {list(want)}, got {list(got)}")
    return db


def restore(snapshot: str, *, name: str, initial_cluster: str, token: str,
            advertise_peer_urls: list[str], data_dir: str, skip_hash_check: bool = False,
            bump_revision: int = 0, mark_compacted: bool = False,
            map_size: int = 2 * 1024**3) -> dict:
    """Restore ``snapshot`` into ``data_dir``; returns a summary dict."""
    if mark_compacted and not bump_revision:
        raise RestoreError("--mark-compacted requires --bump-revision")
    members = parse_initial_cluster(initial_cluster or
                                    ",".join(f"{name}={u}" for u in advertise_peer_urls))
    if name not in members:
        raise RestoreError(f'couldn\'t find local name "{name}" in the initial cluster configuration')
    if sorted(members[name]) != sorted(advertise_peer_urls):
        raise RestoreError(f"--initial-cluster has {name}={','.join(members[name])} but missing "
                           f"from --initial-advertise-peer-urls={','.join(advertise_peer_urls)}")
    if os.path.exists(data_dir) and os.listdir(data_dir):
        raise RestoreError(f"data-dir {data_dir!r} exists")
    verify_snapshot_hash(snapshot, skip_hash_check)
    ids = {n: member_id(urls, token) for n, urls in members.items()}
    if len(set(ids.values())) != len(ids):
        raise RestoreError("duplicate peer URLs in --initial-cluster")
    cid = cluster_id(ids.values())
    index, term = len(ids), 1

    db_path = os.path.join(data_dir, "member", "snap", "db")
    # unsynced commits, one full sync at the end (a crash mid-restore leaves
    # a data dir to delete, never one that looks complete)
    backend = Backend(db_path, map_size=map_size, durable=False)
    try:
        latest = 0
        n = 0
        batch_bytes = 0
        inflight = None  # the previous batch commits while the next is read
        with BboltReader(snapshot) as r:
            names = set(r.bucket_names())
            for bucket in BUCKETS:
                b = bucket.encode()
                if b not in names or bucket in ("members", "members_removed", "cluster"):
                    continue
                for k, v in r.items(b):
                    if v is None:
                        continue  # nested bucket: not part of etcd's schema
                    if bucket == "meta" and k == b"local_member_id":
                        continue
                    backend.put(bucket, k, bytes(v))
                    n += 1
                    batch_bytes += len(k) + len(v)
                    if n % 10000 == 0 or batch_bytes >= 32 << 20:  # bound the pending map
                        fut = backend.commit()
                        if inflight is not None:
                            ops, _ = inflight.result()
                            backend.release(ops)
                        inflight, batch_bytes = fut, 0
                    if bucket == "key":
                        latest = max(latest, int.from_bytes(k[:8], "big"))
            if b"cluster" in names:
                for k, v in r.items(b"cluster"):
                    if v is not None and k != b"clusterID":
                        backend.put("cluster", k, bytes(v))
        backend.put("cluster", b"clusterID", _U64.pack(cid))
        for n, urls in members.items():
            m = {"id": ids[n], "peerURLs": urls, "name": n, "clientURLs": [], "isLearner": False}
            backend.put("members", b"%016x" % ids[n],
                        json.dumps(m, separators=(",", ":")).encode())
        backend.put("meta", b"consistent_index", _U64.pack(index))
        backend.put("meta", b"term", _U64.pack(term))
        backend.put("meta", b"local_member_id", _U64.pack(ids[name]))
        if bump_revision:
            latest += bump_revision
            backend.put("key", revision_key(latest), b"")
            if mark_compacted:
                backend.put("meta", b"scheduledCompactRev", revision_key(latest))
        if inflight is not None:
            inflight.result()
        backend.commit().result()
        backend.sync()
    finally:
        backend.close()
    return {"member_id": ids[name], "cluster_id": cid, "data_dir": data_dir,
            "members": ids, "revision": latest}


BBOLT_MAGIC = 0xED0CDAED


def is_bbolt(path: str) -> bool:
    """True for a bbolt file (etcd's backend) rather than LMDB."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except OSError:
        return False
    return len(head) >= 20 and struct.unpack_from("<I", head, 16)[0] == BBOLT_MAGIC


def import_etcd_data_dir(data_dir: str, advertise_peer_urls: list[str],
                         map_size: int = 2 * 1024**3) -> dict:
    """Turn a data dir written by real etcd tools (``etcdctl``/``etcdutl
    snapshot restore``, or an etcd member) into pyetcd's layout, in place.

    etcd's bbolt backend is read bucket by bucket into LMDB; the member list
    comes from its ``members`` bucket (etcd stores the same JSON), this member
    is found by its advertised peer URLs, the cluster id is computed from the
    member ids (etcd's formula), and the consistent index is kept, so the
    member restarts where the etcd data left off.  The etcd files are kept
    beside it (``db.etcd-bbolt``, ``wal.etcd``) rather than deleted."""
    snap_dir = os.path.join(data_dir, "member", "snap")
    db_path = os.path.join(snap_dir, "db")
    old_db = db_path + ".etcd-bbolt"
    os.replace(db_path, old_db)
    wal_dir = os.path.join(data_dir, "member", "wal")
    if os.path.isdir(wal_dir):
        os.replace(wal_dir, wal_dir + ".etcd")
    for name in os.listdir(snap_dir):  # etcd's raft snapshot files
        if name.endswith(".snap"):
            os.replace(os.path.join(snap_dir, name), os.path.join(snap_dir, name + ".etcd"))
    members: dict[int, dict] = {}
    backend = Backend(db_path, map_size=map_size, durable=True)
    try:
        with BboltReader(old_db) as r:
            names = set(r.bucket_names())
            for bucket in BUCKETS:
                b = bucket.encode()
                if b not in names:
                    continue
                for k, v in r.items(b):
                    if v is None:
                        continue
                    if bucket == "members":
                        m = json.loads(bytes(v))
                        members[int(m["id"])] = m
                        backend.put("members", b"%016x" % int(m["id"]), bytes(v))
                        continue
                    backend.put(bucket, k, bytes(v))
        mine = sorted(advertise_peer_urls)
        local = next((i for i, m in members.items() if sorted(m.get("peerURLs") or []) == mine), None)
        if local is None:
            raise RestoreError(f"no member with peer URLs {','.join(mine)} in the etcd data "
                               f"(members: {[m.get('peerURLs') for m in members.values()]})")
        cid = cluster_id(members)
        backend.put("cluster", b"clusterID", _U64.pack(cid))
        backend.put("meta", b"local_member_id", _U64.pack(local))
        backend.commit().result()
        backend.sync()
    finally:
        backend.close()
    return {"member_id": local, "cluster_id": cid, "members": sorted(members)}
