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
import os
import struct

from pyetcd.cluster import Member, MembershipError, compute_cluster_id
from pyetcd.cluster.member import initial_cluster_of, initial_member_ids
from pyetcd.storage import schema
from pyetcd.storage.backend import Backend
from pyetcd.storage.bbolt import BboltReader
from pyetcd.storage.etcd_snapshot import SHA256_SIZE, has_checksum, revision_key

_U64 = struct.Struct(">Q")
# buckets the restore writes itself (the new member list and cluster id)
_REPLACED = (schema.MEMBERS, schema.MEMBERS_REMOVED, schema.CLUSTER)
_BATCH_OPS, _BATCH_BYTES = 10000, 32 << 20


class RestoreError(Exception):
    pass


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


class _Pipeline:
    """Unsynced backend commits in bounded batches, the previous one
    committing while the next is read."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.ops = 0
        self.bytes = 0
        self.inflight = None

    def put(self, bucket: str, key: bytes, value: bytes) -> None:
        self.backend.put(bucket, key, value)
        self.ops += 1
        self.bytes += len(key) + len(value)
        if self.ops % _BATCH_OPS == 0 or self.bytes >= _BATCH_BYTES:
            fut = self.backend.commit()
            if self.inflight is not None:
                ops, _ = self.inflight.result()
                self.backend.release(ops)
            self.inflight, self.bytes = fut, 0

    def finish(self) -> None:
        if self.inflight is not None:
            self.inflight.result()
        self.backend.commit().result()
        self.backend.sync()


def _copy_snapshot(snapshot: str, out: _Pipeline) -> int:
    """Every replicated bucket of the snapshot; returns its latest revision."""
    latest = 0
    with BboltReader(snapshot) as r:
        names = set(r.bucket_names())
        for bucket in schema.BUCKETS:
            b = bucket.encode()
            if b not in names or bucket in _REPLACED:
                continue
            for k, v in r.items(b):
                if v is None or schema.is_member_local(bucket, k):
                    continue  # nested buckets are not part of etcd's schema
                out.put(bucket, k, bytes(v))
                if bucket == schema.KEY:
                    latest = max(latest, int.from_bytes(k[:8], "big"))
        if schema.CLUSTER.encode() in names:
            for k, v in r.items(schema.CLUSTER.encode()):
                if v is not None and k != schema.CLUSTER_ID:
                    out.put(schema.CLUSTER, k, bytes(v))
    return latest


def restore(snapshot: str, *, name: str, initial_cluster: str, token: str,
            advertise_peer_urls: list[str], data_dir: str, skip_hash_check: bool = False,
            bump_revision: int = 0, mark_compacted: bool = False,
            map_size: int = 2 * 1024**3) -> dict:
    """Restore ``snapshot`` into ``data_dir``; returns a summary dict."""
    if mark_compacted and not bump_revision:
        raise RestoreError("--mark-compacted requires --bump-revision")
    try:
        members = initial_cluster_of(name, initial_cluster, advertise_peer_urls)
        ids = initial_member_ids(members, token)
    except MembershipError as exc:
        raise RestoreError(str(exc)) from None
    if os.path.exists(data_dir) and os.listdir(data_dir):
        raise RestoreError(f"data-dir {data_dir!r} exists")
    verify_snapshot_hash(snapshot, skip_hash_check)
    cid = compute_cluster_id(ids.values())
    index, term = len(ids), 1
    db_path = os.path.join(data_dir, "member", "snap", "db")
    # unsynced commits, one full sync at the end (a crash mid-restore leaves
    # a data dir to delete, never one that looks complete)
    backend = Backend(db_path, map_size=map_size, durable=False)
    try:
        out = _Pipeline(backend)
        latest = _copy_snapshot(snapshot, out)
        backend.put(schema.CLUSTER, schema.CLUSTER_ID, _U64.pack(cid))
        for n, urls in members.items():
            backend.put(schema.MEMBERS, schema.member_key(ids[n]), Member(ids[n], n, urls).to_json())
        backend.put(schema.META, schema.CONSISTENT_INDEX, _U64.pack(index))
        backend.put(schema.META, schema.TERM, _U64.pack(term))
        backend.put(schema.META, schema.LOCAL_MEMBER_ID, _U64.pack(ids[name]))
        if bump_revision:
            latest += bump_revision
            backend.put(schema.KEY, revision_key(latest), b"")
            if mark_compacted:
                backend.put(schema.META, schema.SCHEDULED_COMPACT_REV, revision_key(latest))
        out.finish()
    finally:
        backend.close()
    return {"member_id": ids[name], "cluster_id": cid, "data_dir": data_dir,
            "members": ids, "revision": latest}
