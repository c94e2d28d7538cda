"""The write-ahead log's record codec: pure functions over bytes (no os, no io).

Frame layout (all integers little-endian, every frame 8-byte aligned)::

    offset  size  field
    0       4     length   n = payload length in bytes
    4       1     kind     1 METADATA, 2 ENTRY, 3 HARD_STATE, 4 CRC, 5 SNAPSHOT
    5       1     flags    0 (reserved)
    6       2     reserved 0
    8       4     crc      chained CRC-32 (see below)
    12      4     hcrc     CRC-32 of bytes 0..12 of this header
    16      n     payload
    16+n    p     padding: p in 1..8 so that 16+n+p is a multiple of 8;
                  p-1 zero bytes then one trailer byte 0x80|p

CRC: ``zlib.crc32`` (CRC-32/IEEE, not Castagnoli: no C Castagnoli is in
the standard library and a pure-Python one would cost ~100x).  For every
record but CRC, ``crc = crc32(payload, previous crc)``; the chain runs
through all records of all segments.  A CRC record (empty payload) stores
the chain value reached so far; it opens every segment so that a segment
can be read without its predecessors.  The header CRC catches a damaged
length (which would otherwise make a record look cut short at the tail).
The trailer byte has two bits set, so no single bit flip turns it into 0,
while a frame whose write was cut short ends in 0 (segments are
preallocated with zeros).

Payloads: ENTRY ``<QQB`` term, index, type + data; HARD_STATE ``<QQQ`` term,
vote, commit; SNAPSHOT ``<QQ`` index, term; METADATA opaque bytes; CRC empty.

Decoding stops at the first frame that fails; :class:`RecordError` says
where and whether the damage looks like a *torn write* (bytes that were
never written, i.e. zeros, at the end of what was written) or like
corruption.  Torn, when the frame at ``offset``:

a. has fewer than 16 bytes left, or a valid header whose frame runs past
   the end of the buffer (file cut short);
b. has a header of 16 zero bytes while something non-zero follows (its
   sector was never written, later ones were);
c. has an invalid header and only zeros after the header;
d. has a valid header but a bad payload CRC or padding, only zeros after
   the frame, and either a zero trailer byte or a whole 512-byte sector
   inside the frame that is all zeros.

Known ambiguity (as in etcd): a frame in the *last* record carrying 512+
aligned zero bytes whose other bytes rot is taken for a torn write.  Only
the caller knows whether the buffer is the last segment; everywhere else
any RecordError is corruption.
"""
from __future__ import annotations

import struct
from typing import NamedTuple
from zlib import crc32

from pyetcd.raft.types import Entry, EntryType, HardState

METADATA = 1
ENTRY = 2
HARD_STATE = 3
CRC = 4
SNAPSHOT = 5
KIND_NAMES = {METADATA: "metadata", ENTRY: "entry", HARD_STATE: "hard state",
              CRC: "crc", SNAPSHOT: "snapshot"}

HEADER_SIZE = 16
SECTOR = 512
_HDR12 = struct.Struct("<IBBHI")
_HCRC = struct.Struct("<I")
_HDR = struct.Struct("<IBBHII")
_ENT = struct.Struct("<QQB")
_HS = struct.Struct("<QQQ")
_SNAP = struct.Struct("<QQ")
_ZERO_HEADER = bytes(HEADER_SIZE)
_ENTRY_TYPES = {int(t): t for t in EntryType}
_HS_FRAME = (HEADER_SIZE + _HS.size + 8) & ~7


class RecordError(Exception):
    """A frame that failed to decode at ``offset``; ``torn`` per the module rules."""

    def __init__(self, offset: int, reason: str, torn: bool) -> None:
        super().__init__(f"offset {offset}: {reason}")
        self.offset = offset
        self.reason = reason
        self.torn = torn


class Scan(NamedTuple):
    """Result of :func:`decode_segment`."""
    records: list        # [(kind, value)]: Entry, HardState, (index, term), bytes, int
    end: int             # offset just past the last good frame
    crc: int             # chain value after the last good frame
    error: RecordError | None


def frame_size(payload_len: int) -> int:
    return (HEADER_SIZE + payload_len + 8) & ~7


def _finish(buf: bytearray, mv: memoryview, off: int, n: int, kind: int, crc: int) -> int:
    """Write header, padding and trailer of the frame at ``off``; return its size."""
    size = (HEADER_SIZE + n + 8) & ~7
    _HDR12.pack_into(buf, off, n, kind, 0, 0, crc)
    _HCRC.pack_into(buf, off + 12, crc32(mv[off:off + 12]))
    buf[off + size - 1] = 0x80 | (size - HEADER_SIZE - n)
    return size


def encode_record(kind: int, payload: bytes, crc: int) -> tuple[bytearray, int]:
    """One frame; returns (frame, new chain crc).  For CRC records ``crc`` is stored as is."""
    n = len(payload)
    buf = bytearray(frame_size(n))
    buf[HEADER_SIZE:HEADER_SIZE + n] = payload
    if kind != CRC:
        crc = crc32(payload, crc)
    with memoryview(buf) as mv:
        _finish(buf, mv, 0, n, kind, crc)
    return buf, crc


def encode_batch(hard_state: HardState | None, entries, crc: int) -> tuple[bytearray, int]:
    """Entries then the hard state, as frames in one buffer (one allocation)."""
    total = 0
    for e in entries:
        total += (HEADER_SIZE + 17 + 8 + len(e.data)) & ~7
    if hard_state is not None:
        total += _HS_FRAME
    buf = bytearray(total)
    off = 0
    ent_pack = _ENT.pack_into
    hdr12 = _HDR12.pack
    hdr_pack = _HDR.pack_into
    with memoryview(buf) as mv:
        for e in entries:
            d = e.data
            p = off + HEADER_SIZE
            n = 17 + len(d)
            ent_pack(buf, p, e.term, e.index, e.type)
            buf[p + 17:p + n] = d
            crc = crc32(mv[p:p + n], crc)
            hdr_pack(buf, off, n, ENTRY, 0, 0, crc, crc32(hdr12(n, ENTRY, 0, 0, crc)))
            off = (p + n + 8) & ~7
            buf[off - 1] = 0x80 | (off - p - n)
        if hard_state is not None:
            p = off + HEADER_SIZE
            _HS.pack_into(buf, p, hard_state.term, hard_state.vote, hard_state.commit)
            crc = crc32(mv[p:p + _HS.size], crc)
            off += _finish(buf, mv, off, _HS.size, HARD_STATE, crc)
    return buf, crc


def encode_hard_state(hs: HardState) -> bytes:
    return _HS.pack(hs.term, hs.vote, hs.commit)


def encode_snapshot_marker(index: int, term: int) -> bytes:
    return _SNAP.pack(index, term)


def encode_entry(e: Entry) -> bytes:
    return _ENT.pack(e.term, e.index, e.type) + e.data


def _has_zero_sector(buf, start: int, end: int) -> bool:
    s = (start + SECTOR - 1) // SECTOR * SECTOR
    zero = bytes(SECTOR)
    while s + SECTOR <= end:
        if buf[s:s + SECTOR] == zero:
            return True
        s += SECTOR
    return False


def _nonzero_end(buf) -> int:
    """Offset just past the last non-zero byte of ``buf``."""
    return len(bytes(buf).rstrip(b"\0")) if not isinstance(buf, bytes) \
        else len(buf.rstrip(b"\0"))


def _decode_payload(kind: int, buf, p: int, n: int):
    if kind == ENTRY:
        if n < 17:
            raise ValueError("short entry payload")
        term, index, t = _ENT.unpack_from(buf, p)
        return Entry(term, index, _ENTRY_TYPES[t], bytes(buf[p + 17:p + n]))
    if kind == HARD_STATE:
        if n != _HS.size:
            raise ValueError("bad hard state size")
        return HardState(*_HS.unpack_from(buf, p))
    if kind == SNAPSHOT:
        if n != _SNAP.size:
            raise ValueError("bad snapshot marker size")
        return _SNAP.unpack_from(buf, p)
    if kind == METADATA:
        return bytes(buf[p:p + n])
    raise ValueError(f"unknown record kind {kind}")


def decode_segment(buf, crc: int = 0, start: int = 0) -> Scan:
    """Decode frames from ``buf[start:]`` until the end of data or the first bad frame.

    ``crc`` is the chain value before ``start`` (0 = unknown: taken from the
    first CRC record).  The end of data is EOF or a zero header followed by
    zeros only.
    """
    records: list = []
    size = len(buf)
    off = start
    nz_end = -1
    hdr = _HDR.unpack_from
    with memoryview(buf) as mv:
        while off < size:
            if size - off < HEADER_SIZE:
                return Scan(records, off, crc, RecordError(off, "truncated header", True))
            n, kind, flags, rsv, rcrc, hcrc = hdr(buf, off)
            if hcrc != crc32(mv[off:off + 12]) or flags or rsv:
                if nz_end < 0:
                    nz_end = _nonzero_end(buf)
                if buf[off:off + HEADER_SIZE] == _ZERO_HEADER:
                    if nz_end <= off:
                        return Scan(records, off, crc, None)
                    return Scan(records, off, crc,
                                RecordError(off, "zero header followed by data", True))
                return Scan(records, off, crc, RecordError(
                    off, "header checksum mismatch", nz_end <= off + HEADER_SIZE))
            p = off + HEADER_SIZE
            end = (p + n + 8) & ~7
            if end > size:
                return Scan(records, off, crc, RecordError(off, "frame past end of file", True))
            reason = None
            pad = end - p - n
            if buf[end - 1] != 0x80 | pad or buf[p + n:end - 1] != bytes(pad - 1):
                reason = "bad padding"
            elif kind == CRC:
                if n:
                    reason = "crc record with payload"
                elif crc and rcrc != crc:
                    reason = f"crc chain mismatch (expected {crc:#010x}, record says {rcrc:#010x})"
            elif crc32(mv[p:p + n], crc) != rcrc:
                reason = f"{KIND_NAMES.get(kind, kind)} record checksum mismatch"
            if reason is not None:
                if nz_end < 0:
                    nz_end = _nonzero_end(buf)
                torn = nz_end <= end and (buf[end - 1] == 0 or _has_zero_sector(buf, off, end))
                return Scan(records, off, crc, RecordError(off, reason, torn))
            if kind != CRC:
                try:
                    value = _decode_payload(kind, buf, p, n)
                except (ValueError, KeyError, struct.error) as exc:
                    return Scan(records, off, crc, RecordError(off, str(exc), False))
            else:
                value = rcrc
            crc = rcrc
            records.append((kind, value))
            off = end
    return Scan(records, off, crc, None)
