"""Key ranges as etcd spells them."""
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
