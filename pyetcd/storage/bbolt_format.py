"""The bbolt file format (format version 2): page and element layouts,
the meta page checksum, errors.  Shared by the reader (:mod:`.bbolt`) and
the writer (:mod:`.bbolt_write`); the layout is described in :mod:`.bbolt`."""
from __future__ import annotations

import struct

MAGIC = 0xED0CDAED
VERSION = 2
PGID_NO_FREELIST = 0xFFFFFFFFFFFFFFFF

BRANCH_PAGE = 0x01
LEAF_PAGE = 0x02
META_PAGE = 0x04
FREELIST_PAGE = 0x10
BUCKET_LEAF_FLAG = 0x01

PAGE_HEADER = struct.Struct("<QHHI")          # id, flags, count, overflow
LEAF_ELEM = struct.Struct("<IIII")            # flags, pos, ksize, vsize
BRANCH_ELEM = struct.Struct("<IIQ")           # pos, ksize, pgid
META = struct.Struct("<IIIIQQQQQ")            # without checksum (56 bytes)
U64 = struct.Struct("<Q")
BUCKET_HEADER = struct.Struct("<QQ")          # root pgid, sequence
PAGE_HEADER_SIZE = 16
ELEM_SIZE = 16                                # leaf and branch elements are both 16 bytes
BUCKET_HEADER_SIZE = 16
MAX_ELEMS_PER_PAGE = 0xFFFE                   # page.count is a u16; 0xFFFF is reserved

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_M64 = 0xFFFFFFFFFFFFFFFF


class BboltError(ValueError):
    """The file is not a valid bbolt database (or the input cannot be written)."""


def fnv1a64(data: bytes) -> int:
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _M64
    return h
