"""The member list as applied so far (identical on every member), persisted
in the backend: ``members`` (id -> member JSON), ``members_removed`` (ids
that may never come back) and ``cluster/clusterID``."""
from __future__ import annotations

import struct

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.storage import schema

from .member import Member, MembershipError

_U64 = struct.Struct(">Q")


class Cluster:
    def __init__(self, backend, cluster_id: int = 0):
        self.backend = backend
        self.cluster_id = cluster_id
        self.members: dict[int, Member] = {}
        self.removed: set[int] = set()
        self._load()

    def _load(self) -> None:
        for _, v in self.backend.iterate(schema.MEMBERS):
            m = Member.from_json(v)
            self.members[m.id] = m
        for k, _ in self.backend.iterate(schema.MEMBERS_REMOVED):
            self.removed.add(int(k, 16))
        cid = self.backend.get(schema.CLUSTER, schema.CLUSTER_ID)
        if cid:
            self.cluster_id = _U64.unpack(cid)[0]

    def set_cluster_id(self, cid: int) -> None:
        self.cluster_id = cid
        self.backend.put(schema.CLUSTER, schema.CLUSTER_ID, _U64.pack(cid))

    def _save(self, m: Member) -> None:
        self.backend.put(schema.MEMBERS, schema.member_key(m.id), m.to_json())

    def add(self, m: Member) -> None:
        if m.id in self.removed:
            raise MembershipError(f"member {m.id:x} was removed and cannot be re-added")
        self.members[m.id] = m
        self._save(m)

    def remove(self, mid: int) -> None:
        self.members.pop(mid, None)
        self.removed.add(mid)
        self.backend.delete(schema.MEMBERS, schema.member_key(mid))
        self.backend.put(schema.MEMBERS_REMOVED, schema.member_key(mid), schema.REMOVED)

    def update_peer_urls(self, mid: int, urls) -> None:
        m = self.members.get(mid)
        if m is not None:
            m.peer_urls = list(urls)
            self._save(m)

    def promote(self, mid: int) -> None:
        m = self.members.get(mid)
        if m is not None:
            m.is_learner = False
            self._save(m)

    def set_attributes(self, mid: int, name: str, client_urls) -> None:
        m = self.members.get(mid)
        if m is not None:
            m.name = name
            m.client_urls = list(client_urls)
            self._save(m)

    def voters(self) -> list[int]:
        return sorted(i for i, m in self.members.items() if not m.is_learner)

    def learners(self) -> list[int]:
        return sorted(i for i, m in self.members.items() if m.is_learner)

    def peer_url_owner(self, url: str) -> int | None:
        for m in self.members.values():
            if url in m.peer_urls:
                return m.id
        return None

    def find_by_peer_urls(self, urls) -> Member | None:
        mine = sorted(urls)
        return next((m for m in self.members.values() if sorted(m.peer_urls) == mine), None)

    def to_pb(self) -> list[pb.Member]:
        return [m.to_pb() for _, m in sorted(self.members.items())]
