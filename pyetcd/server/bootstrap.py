"""Opening a member: who it is and what its Raft storage starts with.

:func:`take_over_etcd_data` runs first (a data dir restored by the real
etcdctl/etcdutl holds a bbolt backend: it is converted in place).  Then
:func:`open_raft` takes the first path that applies and returns the
member's :class:`RaftStart`:

1. a WAL exists: restart; the newest snapshot the WAL can open at, then
   every entry and the hard state after it (the backend's consistent index
   decides which committed entries still need applying);
2. the backend holds a member list but there is no WAL (a data dir written
   by a restore tool): restart at the backend's applied index with a new WAL;
   the ``--initial-*`` flags are ignored, as etcd ignores them;
3. ``--initial-cluster-state existing`` (after ``member add``): ask a running
   member for the cluster id and member list, find this member by its peer
   URLs, and start empty; the leader sends the log;
4. ``--initial-cluster-state new``: every member of ``--initial-cluster``
   computes the same member ids and cluster id (etcd's formulas) and starts a
   Raft log whose first config holds them all.

Paths 2-4 create the WAL with the storage's starting snapshot (file +
marker) and hard state before anything else is written.
"""
from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from typing import Awaitable, Callable

from pyetcd.cluster import Cluster, Member, MembershipError, compute_cluster_id
from pyetcd.cluster.member import initial_cluster_of, initial_member_ids
from pyetcd.offline import import_etcd_data_dir, is_bbolt
from pyetcd.raft.storage import MemoryStorage, bootstrap
from pyetcd.raft.types import ConfState, HardState, Snapshot, SnapshotMetadata
from pyetcd.storage import schema
from pyetcd.storage import wal as wal_mod
from pyetcd.storage.backend import SENDING_SUFFIX
from pyetcd.storage.snap import Snapshotter
from pyetcd.storage.wal import WAL

from .config import Config
from .stores import Stores, map_size_for

log = logging.getLogger("pyetcd.bootstrap")
_U64 = struct.Struct(">Q")

# (peer URLs of running members) -> (cluster id, member JSONs)
FetchCluster = Callable[[list[str]], Awaitable[tuple[int, list[bytes]]]]


class BootstrapError(Exception):
    pass


@dataclass
class RaftStart:
    member_id: int
    storage: MemoryStorage
    wal: WAL
    applied: int        # the backend's applied index (entries up to it are not re-applied)
    term: int
    snap_index: int     # the index of the newest Raft snapshot
    raft_applied: int = 0  # where the Raft node starts applying: ``applied`` within the log


def member_paths(data_dir: str) -> tuple[str, str, str]:
    """(backend file, WAL dir, snapshot dir) of a data dir (etcd's layout)."""
    member = os.path.join(data_dir, "member")
    return (os.path.join(member, "snap", "db"), os.path.join(member, "wal"),
            os.path.join(member, "snap"))


def take_over_etcd_data(cfg: Config) -> None:
    """A bbolt backend (restored by the real etcdctl/etcdutl, or an etcd
    member's) becomes pyetcd's LMDB backend, in place."""
    db_path, _, _ = member_paths(cfg.data_dir_path)
    if is_bbolt(db_path):
        info = import_etcd_data_dir(cfg.data_dir_path, cfg.initial_advertise_peer_urls,
                                    map_size=map_size_for(cfg.quota_bytes))
        log.info("imported an etcd (bbolt) data dir: member %x of cluster %x",
                 info["member_id"], info["cluster_id"])


def initial_members(cfg: Config) -> dict[str, list[str]]:
    try:
        return initial_cluster_of(cfg.name, cfg.initial_cluster, cfg.initial_advertise_peer_urls)
    except MembershipError as exc:
        raise BootstrapError(str(exc)) from None


def clean_snapshot_dir(snap_dir: str) -> None:
    """Remove snapshot transfers that a stop or crash cut short."""
    for n in os.listdir(snap_dir):
        if n.endswith((SENDING_SUFFIX, ".snap.db.part", ".snap.db")):
            os.remove(os.path.join(snap_dir, n))


async def open_raft(cfg: Config, stores: Stores, snapshotter: Snapshotter,
                    fetch_cluster: FetchCluster) -> RaftStart:
    _, wal_dir, snap_dir = member_paths(cfg.data_dir_path)
    clean_snapshot_dir(snap_dir)
    applied, term = stores.kv.consistent_index()
    storage = MemoryStorage()
    cluster = stores.cluster
    if wal_mod.exists(wal_dir):
        start = _replay_wal(wal_dir, snapshotter, cluster, storage, applied, term)
    else:
        if cluster.members:
            mid = _find_self_in_backend(cfg, stores)
            _restart_from_backend(cluster, storage, applied, term)
            log.info("restarting member %x in cluster %x at applied index %d (new WAL)",
                     mid, cluster.cluster_id, applied)
        elif cfg.initial_cluster_state == "existing":
            mid = await _join_existing(cfg, cluster, fetch_cluster)
        else:
            mid = _bootstrap_new(cfg, cluster, storage)
            log.info("starting member %x in new cluster %x", mid, cluster.cluster_id)
        wal = _create_wal(wal_dir, mid, cluster.cluster_id, storage, snapshotter)
        start = RaftStart(mid, storage, wal, applied, term, applied)
    return _clamp(start)


def _clamp(start: RaftStart) -> RaftStart:
    hs, _ = start.storage.initial_state()
    start.term = max(start.term, hs.term)
    last = start.storage.last_index()
    if start.applied > last:
        # every applied entry was in the synced WAL: entries are missing, so
        # the log lost synced data, and entries this member acknowledged
        # may be gone.  Serving with it would stall the leader (etcd's raft
        # panics at the first heartbeat: "tocommit is out of range").
        start.wal.close()
        raise BootstrapError(
            f"the WAL lost entries that were committed and applied (the backend is at index "
            f"{start.applied}, the WAL ends at {last}): this member's log cannot be trusted; "
            f"remove it from the cluster and add it back with an empty data dir")
    if start.applied > hs.commit:
        log.warning("the backend has applied index %d beyond the WAL's commit %d: the WAL "
                    "lost synced data; entries up to %d are taken from the backend",
                    start.applied, hs.commit, start.applied)
    start.raft_applied = max(min(start.applied, hs.commit), start.storage.first_index() - 1)
    return start


def _wal_metadata(member_id: int, cluster_id: int) -> bytes:
    return _U64.pack(member_id) + _U64.pack(cluster_id)


def _create_wal(wal_dir: str, member_id: int, cluster_id: int, storage: MemoryStorage,
                snapshotter: Snapshotter) -> WAL:
    w = WAL.create(wal_dir, _wal_metadata(member_id, cluster_id))
    snap = storage.snapshot()
    if snap.metadata.index:
        snapshotter.save(snap)
        w.save_snapshot(snap.metadata.index, snap.metadata.term)
    hs, _ = storage.initial_state()
    if hs.term or hs.commit:
        w.save(hs, [], True)
    return w


def _replay_wal(wal_dir: str, snapshotter: Snapshotter, cluster: Cluster,
                storage: MemoryStorage, applied: int, term: int) -> RaftStart:
    allowed = WAL.valid_snapshot_entries(wal_dir)
    snap = snapshotter.load_newest(allowed=allowed)
    si, st = (snap.metadata.index, snap.metadata.term) if snap else (0, 0)
    w = WAL.open(wal_dir, si, st)
    metadata, hs, entries = w.read_all()
    member_id = _U64.unpack(metadata[:8])[0]
    if not cluster.cluster_id:
        cluster.set_cluster_id(_U64.unpack(metadata[8:16])[0])
    if applied > si:
        # the backend is ahead of the Raft snapshot, and Raft restarts at the
        # backend's index: the configuration of that index (the member store,
        # in the same backend) replaces the snapshot's, or conf changes
        # between the two would never reach Raft again
        cs = ConfState(tuple(cluster.voters()), tuple(cluster.learners()))
        snap = Snapshot(snap.data if snap else b"", SnapshotMetadata(cs, si, st))
    if snap is not None:
        storage.apply_snapshot(snap)
    if entries:
        storage.append(entries)
    storage.set_hard_state(hs)
    log.info("restarting member %x in cluster %x: WAL replayed (snapshot %d, %d entries, "
             "commit %d, applied %d)", member_id, cluster.cluster_id, si, len(entries),
             hs.commit, applied)
    return RaftStart(member_id, storage, w, applied, max(term, hs.term), max(applied, si))


def _find_self_in_backend(cfg: Config, stores: Stores) -> int:
    local = stores.backend.get(schema.META, schema.LOCAL_MEMBER_ID)
    if local:
        return _U64.unpack(local)[0]
    m = stores.cluster.find_by_peer_urls(cfg.initial_advertise_peer_urls)
    if m is None:
        raise BootstrapError("cannot find this member in the stored member list")
    return m.id


def _restart_from_backend(cluster: Cluster, storage: MemoryStorage, applied: int,
                          term: int) -> None:
    """Raft storage from the backend's applied index: the state is all there."""
    if not applied:
        return
    cs = ConfState(tuple(cluster.voters()), tuple(cluster.learners()))
    storage.apply_snapshot(Snapshot(b"", SnapshotMetadata(cs, applied, max(term, 1))))
    storage.set_hard_state(HardState(term=max(term, 1), vote=0, commit=applied))


def _bootstrap_new(cfg: Config, cluster: Cluster, storage: MemoryStorage) -> int:
    members = initial_members(cfg)
    try:
        ids = initial_member_ids(members, cfg.initial_cluster_token)
    except MembershipError as exc:
        raise BootstrapError(str(exc)) from None
    cluster.set_cluster_id(compute_cluster_id(ids.values()))
    for name, urls in members.items():
        cluster.add(Member(ids[name], "", urls))
    bootstrap(storage, list(ids.values()))
    return ids[cfg.name]


async def _join_existing(cfg: Config, cluster: Cluster, fetch_cluster: FetchCluster) -> int:
    members = initial_members(cfg)
    urls = [u for name, us in members.items() if name != cfg.name for u in us]
    try:
        cid, member_jsons = await fetch_cluster(urls)
    except ConnectionError as exc:
        raise BootstrapError(str(exc)) from None
    found = [Member.from_json(m) for m in member_jsons]
    mine = sorted(cfg.initial_advertise_peer_urls)
    me = next((m for m in found if sorted(m.peer_urls) == mine), None)
    if me is None:
        raise BootstrapError(
            f"member with peer URLs {','.join(mine)} has not been added to the cluster "
            f"(run 'etcdctl member add {cfg.name} --peer-urls={','.join(mine)}' first)")
    cluster.set_cluster_id(cid)
    for m in found:
        cluster.add(m)
    log.info("joining existing cluster %x as member %x", cid, me.id)
    return me.id
