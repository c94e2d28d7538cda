"""Taking over a data dir written by real etcd tools (``etcdctl``/``etcdutl
snapshot restore``, or an etcd member): etcd's bbolt backend becomes
pyetcd's LMDB backend, in place."""
from __future__ import annotations

import json
import os
import struct

from pyetcd.cluster import compute_cluster_id
from pyetcd.storage import schema
from pyetcd.storage.backend import Backend
from pyetcd.storage.bbolt import BboltReader

from .restore import RestoreError

_U64 = struct.Struct(">Q")
BBOLT_MAGIC = 0xED0CDAED


def is_bbolt(path: str) -> bool:
    """True for a bbolt file (etcd's backend) rather than LMDB."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except OSError:
        return False
    return len(head) >= 20 and struct.unpack_from("<I", head, 16)[0] == BBOLT_MAGIC


def _set_aside(data_dir: str) -> str:
    """Rename etcd's files out of the way (kept, not deleted); returns the
    bbolt file's new path."""
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
    return old_db


def _copy_backend(old_db: str, backend: Backend) -> dict[int, dict]:
    """Every bucket into LMDB; returns the stored members by id."""
    members: dict[int, dict] = {}
    with BboltReader(old_db) as r:
        names = set(r.bucket_names())
        for bucket in schema.BUCKETS:
            b = bucket.encode()
            if b not in names:
                continue
            for k, v in r.items(b):
                if v is None:
                    continue
                if bucket == schema.MEMBERS:
                    m = json.loads(bytes(v))
                    members[int(m["id"])] = m
                    k = schema.member_key(int(m["id"]))
                backend.put(bucket, k, bytes(v))
    return members


def import_etcd_data_dir(data_dir: str, advertise_peer_urls: list[str],
                         map_size: int = 2 * 1024**3) -> dict:
    """Convert ``data_dir`` (etcd's layout) to pyetcd's.

    The member list comes from etcd's ``members`` bucket (etcd stores the
    same JSON), this member is found by its advertised peer URLs, the cluster
    id is computed from the member ids (etcd's formula), and the consistent
    index is kept, so the member restarts where the etcd data left off.  The
    etcd files are kept beside it (``db.etcd-bbolt``, ``wal.etcd``)."""
    old_db = _set_aside(data_dir)
    backend = Backend(os.path.join(data_dir, "member", "snap", "db"), map_size=map_size,
                      durable=True)
    try:
        members = _copy_backend(old_db, backend)
        mine = sorted(advertise_peer_urls)
        local = next((i for i, m in members.items() if sorted(m.get("peerURLs") or []) == mine), None)
        if local is None:
            raise RestoreError(f"no member with peer URLs {','.join(mine)} in the etcd data "
                               f"(members: {[m.get('peerURLs') for m in members.values()]})")
        cid = compute_cluster_id(members)
        backend.put(schema.CLUSTER, schema.CLUSTER_ID, _U64.pack(cid))
        backend.put(schema.META, schema.LOCAL_MEMBER_ID, _U64.pack(local))
        backend.commit().result()
        backend.sync()
    finally:
        backend.close()
    return {"member_id": local, "cluster_id": cid, "members": sorted(members)}
