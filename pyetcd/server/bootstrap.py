"""Deciding who this member is and what its Raft storage starts with.

- An existing data dir (members in the backend) wins: the ``--initial-*``
  flags are ignored, as etcd ignores them.
- ``--initial-cluster-state new``: every member of ``--initial-cluster``
  computes the same member ids and cluster id (etcd's formulas) and starts a
  Raft log whose first config holds them all.
- ``--initial-cluster-state existing`` (after ``member add``): the member asks
  a running member for the cluster id and member list, finds itself by its
  peer URLs, and starts empty; the leader sends it the log.
"""
from __future__ import annotations

import logging

from pyetcd.raft.storage import MemoryStorage, bootstrap
from pyetcd.raft.types import ConfState, HardState, Snapshot, SnapshotMetadata

from .config import Config
from .membership import (Cluster, Member, MembershipError, compute_cluster_id,
                         compute_member_id, parse_initial_cluster)

log = logging.getLogger("pyetcd.bootstrap")


class BootstrapError(Exception):
    pass


def initial_members(cfg: Config) -> dict[str, list[str]]:
    text = cfg.initial_cluster
    if not text:
        text = ",".join(f"{cfg.name}={u}" for u in cfg.initial_advertise_peer_urls)
    try:
        members = parse_initial_cluster(text)
    except MembershipError as exc:
        raise BootstrapError(str(exc)) from None
    if cfg.name not in members:
        raise BootstrapError(
            f'couldn\'t find local name "{cfg.name}" in the initial cluster configuration')
    mine = sorted(members[cfg.name])
    if mine != sorted(cfg.initial_advertise_peer_urls):
        raise BootstrapError(
            f"--initial-cluster has {cfg.name}={','.join(mine)} but missing from "
            f"--initial-advertise-peer-urls={','.join(cfg.initial_advertise_peer_urls)} "
            f"(failed to resolve urls: mismatch)")
    return members


def bootstrap_new(cfg: Config, cluster: Cluster, storage: MemoryStorage) -> int:
    """Fill ``cluster`` and ``storage`` for a brand-new cluster; returns our id."""
    members = initial_members(cfg)
    token = cfg.initial_cluster_token
    ids = {}
    for name, urls in members.items():
        mid = compute_member_id(urls, token)
        if mid in ids.values():
            raise BootstrapError(f"member count is unequal (duplicate peer URLs for {name})")
        ids[name] = mid
    cluster.set_cluster_id(compute_cluster_id(ids.values()))
    for name, urls in members.items():
        cluster.add(Member(ids[name], "", urls))
    bootstrap(storage, list(ids.values()))
    return ids[cfg.name]


def restart(cluster: Cluster, storage: MemoryStorage, applied: int, term: int,
            hard_state: HardState | None = None, entries=None,
            snapshot: Snapshot | None = None) -> None:
    """Rebuild Raft storage on restart: from the WAL when there is one, else
    from the backend's applied index (the state is all in the backend)."""
    if snapshot is not None and snapshot.metadata.index:
        storage.apply_snapshot(snapshot)
    elif applied:
        cs = ConfState(tuple(cluster.voters()), tuple(cluster.learners()))
        storage.apply_snapshot(Snapshot(b"", SnapshotMetadata(cs, applied, max(term, 1))))
    if entries:
        storage.append(entries)
    if hard_state is not None:
        storage.set_hard_state(hard_state)
    elif applied:
        storage.set_hard_state(HardState(term=max(term, 1), vote=0, commit=applied))


def find_self(cfg: Config, member_jsons: list[bytes]) -> tuple[int, list[Member]]:
    members = [Member.from_json(m) for m in member_jsons]
    mine = sorted(cfg.initial_advertise_peer_urls)
    for m in members:
        if sorted(m.peer_urls) == mine:
            return m.id, members
    raise BootstrapError(
        f"member with peer URLs {','.join(mine)} has not been added to the cluster "
        f"(run 'etcdctl member add {cfg.name} --peer-urls={','.join(mine)}' first)")
