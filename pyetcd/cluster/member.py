"""Member identity as etcd computes it, so a pyetcd cluster started with the
same flags as an etcd cluster has the same member and cluster ids:

- member id = first 8 bytes (big-endian) of sha1(sorted peer URLs joined +
  cluster token [+ unix time for members added at runtime]);
- cluster id = first 8 bytes of sha1(the sorted member ids, 8 bytes each).

Membership changes travel through Raft as conf changes whose context is the
member as JSON (``{"id":..,"peerURLs":[..],"name":"","isLearner":false}``,
etcd's form) and the id of the request waiting for it; names and client
URLs are published afterwards by each member through an ordinary entry.
"""
from __future__ import annotations

import hashlib
import json
import struct
from urllib.parse import urlsplit

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

_U64 = struct.Struct(">Q")
URL_SCHEMES = ("http", "https", "unix", "unixs")


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
        if u.scheme not in URL_SCHEMES or not u.netloc:
            raise MembershipError(f"URL scheme must be http, https, unix or unixs: {url}")
        out.setdefault(name, []).append(url)
    return out


def initial_cluster_of(name: str, initial_cluster: str, advertise_peer_urls: list[str]
                       ) -> dict[str, list[str]]:
    """The ``--initial-cluster`` members, checked as etcd checks them: this
    member (``name``) is in it with exactly its advertised peer URLs.  An
    empty ``initial_cluster`` means this member alone."""
    text = initial_cluster or ",".join(f"{name}={u}" for u in advertise_peer_urls)
    members = parse_initial_cluster(text)
    if name not in members:
        raise MembershipError(
            f'couldn\'t find local name "{name}" in the initial cluster configuration')
    mine = sorted(members[name])
    if mine != sorted(advertise_peer_urls):
        raise MembershipError(
            f"--initial-cluster has {name}={','.join(mine)} but missing from "
            f"--initial-advertise-peer-urls={','.join(advertise_peer_urls)} "
            f"(failed to resolve urls: mismatch)")
    return members


def initial_member_ids(members: dict[str, list[str]], token: str) -> dict[str, int]:
    """Member ids of a new cluster, by name; peer URLs must not repeat."""
    ids: dict[str, int] = {}
    for name, urls in members.items():
        mid = compute_member_id(urls, token)
        if mid in ids.values():
            raise MembershipError(f"member count is unequal (duplicate peer URLs for {name})")
        ids[name] = mid
    return ids


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


def conf_change_context(member_json: bytes, req_id: int) -> bytes:
    """What a conf change carries: the member and the waiting request's id."""
    return json.dumps({"member": json.loads(member_json), "reqid": req_id},
                      separators=(",", ":")).encode()


def parse_conf_change_context(ctx: bytes) -> tuple[dict | None, int]:
    if not ctx:
        return None, 0
    try:
        d = json.loads(ctx)
    except ValueError:
        return None, 0
    return d.get("member"), int(d.get("reqid", 0))
