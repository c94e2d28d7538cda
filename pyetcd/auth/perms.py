"""A user's merged key permissions (etcd's range_perm_cache.go).

Pure: no I/O.  Each permission is a half-open interval ``[key, end)`` where
an empty end means the single key (``[key, key + b"\\0")``) and ``b"\\0"``
means no upper bound.  A single-key request is allowed when some interval
holds the key; a range request when the union of intervals covers the whole
range (etcd's ``Intersects`` on a point / ``Contains`` on an interval).
"""
from __future__ import annotations

from pyetcd.pb.authpb import auth_pb2 as authpb

READ, WRITE, READWRITE = authpb.Permission.READ, authpb.Permission.WRITE, authpb.Permission.READWRITE

# an interval: (begin, end) with end None for +infinity


def perm_interval(key: bytes, end: bytes) -> tuple[bytes, bytes | None]:
    if not end:
        return key, key + b"\x00"
    if end == b"\x00":
        return key, None
    return key, end


def _merge(ivls: list[tuple[bytes, bytes | None]]) -> list[tuple[bytes, bytes | None]]:
    out: list[list] = []
    for b, e in sorted(ivls, key=lambda iv: iv[0]):
        if out and (out[-1][1] is None or b <= out[-1][1]):
            last = out[-1]
            if last[1] is not None and (e is None or e > last[1]):
                last[1] = e
        else:
            out.append([b, e])
    return [(b, e) for b, e in out]


def _holds(ivls, key: bytes) -> bool:
    for b, e in ivls:
        if b <= key and (e is None or key < e):
            return True
    return False


def _covers(ivls, begin: bytes, end: bytes | None) -> bool:
    """Is [begin, end) inside the union (ivls already merged, so a single
    merged interval must hold it)?"""
    for b, e in ivls:
        if b <= begin and (e is None or (end is not None and end <= e)):
            return True
    return False


class UnifiedPerms:
    __slots__ = ("read", "write")

    def __init__(self, perms):
        read, write = [], []
        for p in perms:
            iv = perm_interval(p.key, p.range_end)
            if p.permType in (READ, READWRITE):
                read.append(iv)
            if p.permType in (WRITE, READWRITE):
                write.append(iv)
        self.read = _merge(read)
        self.write = _merge(write)

    def permitted(self, key: bytes, end: bytes, perm: int) -> bool:
        ivls = self.read if perm == READ else self.write if perm == WRITE else None
        if ivls is None:
            return False
        if not end:
            return _holds(ivls, key)
        return _covers(ivls, key, None if end == b"\x00" else end)
