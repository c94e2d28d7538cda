"""Cluster membership: member identity, the member list, bootstrap config.

Ids follow etcd exactly, so a pyetcd cluster started with the same flags as
an etcd cluster has the same member and cluster ids:
- member id = first 8 bytes (big-endian) of sha1(sorted peer URLs joined +
  cluster token [+ unix time for members added at runtime]);
- cluster id = first 8 bytes of sha1(the sorted member ids, 8 bytes each).

Membership changes travel through Raft as conf changes whose context is the
member as JSON (``{"id":..,"peerURLs":[..],"name":"","isLearner":false}``,
etcd's form); names and client URLs are published afterwards by each member
through an ordinary entry.  The list is persisted in the backend's
``members`` and ``members_removed`` buckets (key: member id as hex).
"""
from __future__ import annotations

import hashlib
import json
import struct
from urllib.parse import urlsplit

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

_U64 = struct.Struct(">Q")


class MembershipError(Exception):
    pass


def compute_member_id(peer_urls: list[str], token: str, now: int | None = None) -> int:
    b = "".join(sorted(peer_urls)).encode() + token.encode()
    if now is not None:
        b += str(now).encode()
    return _U64.unpack(hashlib.sha1(b).digest()[:8])[0]


def compute_cluster_id(member_ids) -> int:
    b = b"".join(_U64.pack(i) for i in sorted(member_ids))
    return _U64.unpack(hashlib.sha1(b).digest()[:8])[0]


def parse_initial_cluster(text: str) -> dict[str, list[str]]:
    """``a=http://h:2380,b=http://h2:2380,a=http://h3:2380`` -> name -> URLs."""
    out: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, url = part.partition("=")
        if not eq or not name or not url:
            raise MembershipError(f"invalid --initial-cluster entry {part!r} (want name=URL)")
        u = urlsplit(url)
        if u.scheme not in ("http", "https", "unix", "unixs") or not u.netloc:
            raise MembershipError(f"URL scheme must be http, https, unix or unixs: {url}")
        out.setdefault(name, []).append(url)
    return out


class Member:
    __slots__ = ("id", "name", "peer_urls", "client_urls", "is_learner")

    def __init__(self, mid: int, name: str, peer_urls, client_urls=(), is_learner: bool = False):
        self.id = mid
        self.name = name
        self.peer_urls = list(peer_urls)
        self.client_urls = list(client_urls)
        self.is_learner = is_learner

    def to_pb(self) -> pb.Member:
        return pb.Member(ID=self.id, name=self.name, peerURLs=self.peer_urls,
                         clientURLs=self.client_urls, isLearner=self.is_learner)

    def to_json(self) -> bytes:
        return json.dumps({"id": self.id, "peerURLs": self.peer_urls, "name": self.name,
                           "clientURLs": self.client_urls, "isLearner": self.is_learner},
                          separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Member":
        d = json.loads(data)
        return cls(int(d["id"]), d.get("name", ""), d.get("peerURLs") or [],
                   d.get("clientURLs") or [], bool(d.get("isLearner")))

    def __repr__(self) -> str:
        return f"Member({self.id:x}, {self.name!r}, {self.peer_urls}, learner={self.is_learner})"


class Cluster:
    """The member list as applied so far (identical on every member)."""

    def __init__(self, backend, cluster_id: int = 0):
        self.backend = backend
        self.cluster_id = cluster_id
        self.members: dict[int, Member] = {}
        self.removed: set[int] = set()
        self._load()

    def _load(self) -> None:
        for _, v in self.backend.iterate("members"):
            m = Member.from_json(v)
            self.members[m.id] = m
        for k, _ in self.backend.iterate("members_removed"):
            self.removed.add(int(k, 16))
        cid = self.backend.get("cluster", b"clusterID")
        if cid:
            self.cluster_id = _U64.unpack(cid)[0]

    def set_cluster_id(self, cid: int) -> None:
        self.cluster_id = cid
        self.backend.put("cluster", b"clusterID", _U64.pack(cid))

    def _save(self, m: Member) -> None:
        self.backend.put("members", b"%016x" % m.id, m.to_json())

    def add(self, m: Member) -> None:
        if m.id in self.removed:
            raise MembershipError(f"member {m.id:x} was removed and cannot be re-added")
        self.members[m.id] = m
        self._save(m)

    def remove(self, mid: int) -> None:
        self.members.pop(mid, None)
        self.removed.add(mid)
        self.backend.delete("members", b"%016x" % mid)
        self.backend.put("members_removed", b"%016x" % mid, b"removed")

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

    def to_pb(self) -> list[pb.Member]:
        return [m.to_pb() for _, m in sorted(self.members.items())]
