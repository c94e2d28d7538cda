"""The member's state kept in the backend, opened together: the backend
itself, the lessor, the MVCC store, alarms, the member list and the auth
store.  Opened when the server is built and again when a snapshot from the
leader replaces the backend file."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from pyetcd.auth.store import AuthStore
from pyetcd.cluster import Cluster
from pyetcd.lease.lessor import Lessor
from pyetcd.mvcc.kvstore import KVStore
from pyetcd.storage.backend import Backend
from pyetcd.storage.failpoints import SKIP_FSYNC, defect

from .alarms import AlarmStore
from .config import Config

MIN_MAP_HEADROOM = 256 * 1024**2


def map_size_for(quota: int) -> int:
    """LMDB's map (address space, not disk) for a quota: the data, the key
    index beside it (not counted in the quota) and room to go over it."""
    return 2 * quota + max(quota // 4, MIN_MAP_HEADROOM)


@dataclass
class Stores:
    backend: Backend
    lessor: Lessor
    kv: KVStore
    alarms: AlarmStore
    cluster: Cluster
    auth: AuthStore

    def close(self) -> None:
        self.backend.close()


def min_lease_ttl(cfg: Config) -> int:
    """etcd's minimum lease TTL: 1.5 election timeouts, in whole seconds."""
    election_ticks = max(2, cfg.election_timeout // cfg.heartbeat_interval)
    min_ttl = -(-(3 * election_ticks // 2) * cfg.heartbeat_interval // 1000)
    return max(1, min_ttl)


def open_stores(cfg: Config, db_path: str, *, on_commit: Callable[[float], None] | None = None,
                clock: Callable[[], float] = time.monotonic,
                previous: Stores | None = None) -> Stores:
    """Open the backend at ``db_path`` and everything kept in it.

    The WAL makes every acknowledged write durable, so LMDB commits sync
    their data but not the meta page (never corrupt; they may lose the last
    commits, which the WAL replays) and are fully synced before a snapshot.
    With ``previous`` (a snapshot install), the member-local auth tokens
    carry over."""
    quota = cfg.quota_bytes
    backend = Backend(db_path, map_size=map_size_for(quota),
                      durable=not defect(SKIP_FSYNC), metasync=False)
    backend.on_commit = on_commit
    lessor = Lessor(backend, min_ttl=min_lease_ttl(cfg), clock=clock)
    auth = AuthStore(backend, token_ttl=float(cfg.auth_token_ttl), bcrypt_cost=cfg.bcrypt_cost,
                     clock=clock)
    if previous is not None and auth.enabled:
        auth.tokens = previous.auth.tokens
    return Stores(backend=backend, lessor=lessor, kv=KVStore(backend, lessor),
                  alarms=AlarmStore(backend), cluster=Cluster(backend), auth=auth)
