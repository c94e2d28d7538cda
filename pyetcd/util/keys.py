"""Key ranges as etcd spells them, and the varint keys its tools write."""
from __future__ import annotations


def prefix_end(key: bytes) -> bytes:
    """The range end that selects every key starting with ``key`` (etcd's
    ``GetPrefixRangeEnd``): the key with its last byte below 0xff incremented
    and the rest cut; ``b"\\0"`` (every key) when there is no such byte."""
    b = bytearray(key)
    for i in range(len(b) - 1, -1, -1):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[:i + 1])
    return b"\x00"


def put_varint(n: int) -> bytes:
    """Go's ``binary.PutVarint(n)`` (zig-zag), the key bytes of etcd's
    benchmark and ``etcdctl check`` tools."""
    ux = (n << 1) ^ (n >> 63)
    out = bytearray()
    while ux >= 0x80:
        out.append((ux & 0x7F) | 0x80)
        ux >>= 7
    out.append(ux)
    return bytes(out)
