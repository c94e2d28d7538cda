"""Revisions: (main, sub) pairs and their encodings (pure).

In memory a revision is one int, ``main << 32 | sub``, so comparing and
sorting revisions is integer comparison.  On disk (the ``key`` bucket) it is
etcd's 17-byte form: big-endian main, ``_``, big-endian sub, with a trailing
``t`` for a tombstone (18 bytes), so LMDB's byte order is revision order.
"""
from __future__ import annotations

import struct

SUB_BITS = 32
SUB_MASK = (1 << SUB_BITS) - 1
_REV = struct.Struct(">QcQ")


def rev(main: int, sub: int = 0) -> int:
    assert 0 <= sub <= SUB_MASK
    return (main << SUB_BITS) | sub


def main_of(r: int) -> int:
    return r >> SUB_BITS


def to_bytes(r: int, tombstone: bool = False) -> bytes:
    b = _REV.pack(r >> SUB_BITS, b"_", r & SUB_MASK)
    return b + b"t" if tombstone else b


def from_bytes(b: bytes) -> tuple[int, bool]:
    """Decode a key-bucket key: (revision int, is_tombstone)."""
    main, _, sub = _REV.unpack_from(b)
    return (main << SUB_BITS) | sub, len(b) == 18 and b[17:18] == b"t"


def main_bytes(main: int) -> bytes:
    """Key-bucket prefix of every revision with this main revision."""
    return _REV.pack(main, b"_", 0)
