"""etcd snapshot files on top of :mod:`pyetcd.storage.bbolt`.

An etcd v3 snapshot (what ``Maintenance.Snapshot`` streams and ``etcdctl
snapshot save`` stores) is a bbolt database file followed by the sha256 of
those database bytes.  bbolt files are whole pages, so the database part is a
multiple of 512 bytes and the complete snapshot is 32 more than a multiple of
512; that is how ``etcdctl``/``etcdutl`` (``hasChecksum``) detect the hash.

This module provides:

* :func:`append_sha256` / :func:`verify_sha256` for the trailing hash;
* :func:`snapshot_stats` - what ``etcdctl snapshot status -w json`` prints;
* :func:`revision_key` / :func:`parse_revision_key` and :func:`etcd_buckets`
  to lay out etcd's schema (buckets ``key``, ``meta``, ``lease``, ...).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import BinaryIO, Iterable, NamedTuple

from pyetcd.storage import schema
from pyetcd.storage.bbolt import BboltError, BboltReader, write_bbolt

__all__ = [
    "SHA256_SIZE", "ETCD_BUCKETS", "SnapshotStatus", "append_sha256", "verify_sha256",
    "has_checksum", "db_size_of", "snapshot_stats", "revision_key", "parse_revision_key",
    "etcd_buckets", "crc32c", "snapshot_storage_version", "write_snapshot",
]

SHA256_SIZE = 32

# Every bucket etcd 3.5 creates (server/mvcc/buckets); restore and a starting
# server write into several of them, so a snapshot must contain them all.
ETCD_BUCKETS = tuple(name.encode() for name in schema.BUCKETS)
_META = schema.META.encode()


# --------------------------------------------------------------------------- sha256


def has_checksum(size: int) -> bool:
    """etcd's hasChecksum: a snapshot of ``size`` bytes carries a trailing sha256."""
    return size % 512 == SHA256_SIZE


def _hash_range(f: BinaryIO, length: int) -> bytes:
    h = hashlib.sha256()
    f.seek(0)
    left = length
    while left > 0:
        chunk = f.read(min(left, 1 << 20))
        if not chunk:
            raise ValueError("file shorter than expected")
        h.update(chunk)
        left -= len(chunk)
    return h.digest()


def append_sha256(fileobj: BinaryIO) -> bytes:
    """Append sha256(current contents) to a seekable, readable, writable file object.

    The contents must be a bbolt file (a multiple of 512 bytes) so the result
    satisfies ``size % 512 == 32``.  Returns the digest.
    """
    fileobj.seek(0, os.SEEK_END)
    size = fileobj.tell()
    if size % 512:
        raise ValueError(f"database size {size} is not a multiple of 512; etcd tools "
                         "would not recognise the trailing hash")
    digest = _hash_range(fileobj, size)
    fileobj.seek(0, os.SEEK_END)
    fileobj.write(digest)
    fileobj.flush()
    return digest


def verify_sha256(path: str | os.PathLike) -> bool:
    """True when ``path`` ends with the sha256 of the bytes before it (and its
    size says so, as ``etcdutl snapshot restore`` checks)."""
    size = os.path.getsize(path)
    if not has_checksum(size):
        return False
    with open(path, "rb") as f:
        f.seek(size - SHA256_SIZE)
        want = f.read(SHA256_SIZE)
        return _hash_range(f, size - SHA256_SIZE) == want


def db_size_of(path: str | os.PathLike) -> int:
    """Size of the database part of a snapshot file (without a trailing hash)."""
    size = os.path.getsize(path)
    return size - SHA256_SIZE if has_checksum(size) else size


# --------------------------------------------------------------------------- crc32c

_CASTAGNOLI = 0x82F63B78
_T8: list[int] = []
_T16: list[int] | None = None
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ _CASTAGNOLI if _c & 1 else _c >> 1
    _T8.append(_c)
del _i, _c

try:                                         # optional accelerators, never required
    from crc32c import crc32c as _fast_crc32c  # type: ignore
except Exception:                            # pragma: no cover - depends on the env
    try:
        import google_crc32c as _g  # type: ignore

        def _fast_crc32c(data, value=0):
            return _g.extend(value, bytes(data))
    except Exception:
        _fast_crc32c = None


def crc32c(data, crc: int = 0) -> int:
    """CRC-32C (Castagnoli), as Go's ``crc32.MakeTable(crc32.Castagnoli)``;
    ``crc`` continues a previous value.  Pure Python (about 15 MB/s) unless the
    ``crc32c`` or ``google-crc32c`` package is installed."""
    global _T16
    if _fast_crc32c is not None:
        return _fast_crc32c(data, crc)
    crc ^= 0xFFFFFFFF
    mv = memoryview(data).cast("B")
    n = 0
    if sys.byteorder == "little" and len(mv) >= 64:
        if _T16 is None:
            t8 = _T8
            _T16 = [(t8[x & 0xFF] >> 8) ^ t8[(t8[x & 0xFF] ^ (x >> 8)) & 0xFF]
                    for x in range(65536)]
        t16 = _T16
        n = len(mv) & ~1
        for w in mv[:n].cast("H"):
            crc = t16[(crc ^ w) & 0xFFFF] ^ (crc >> 16)
    t8 = _T8
    for b in mv[n:]:
        crc = t8[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class _Crc:
    """Incremental crc32c fed with many small writes (buffered)."""

    def __init__(self):
        self.value = 0
        self.buf = bytearray()

    def write(self, b) -> None:
        if b:
            self.buf += b
            if len(self.buf) >= 1 << 20:
                self.flush()

    def flush(self) -> None:
        if self.buf:
            self.value = crc32c(self.buf, self.value)
            self.buf = bytearray()

    def sum32(self) -> int:
        self.flush()
        return self.value


# --------------------------------------------------------------------------- status


class SnapshotStatus(NamedTuple):
    hash: int
    revision: int
    total_key: int
    total_size: int

    def to_json(self, version: str | None = None) -> str:
        """The line ``etcdctl snapshot status -w json`` prints (Go json.Marshal).
        etcd 3.5 has no version field; pass ``version`` to add 3.6's."""
        d = {"hash": self.hash, "revision": self.revision, "totalKey": self.total_key,
             "totalSize": self.total_size}
        if version is not None:
            d["version"] = version
        return json.dumps(d, separators=(",", ":"))


def revision_key(main: int, sub: int = 0, tombstone: bool = False) -> bytes:
    """etcd's key-bucket key: main (8 bytes BE) '_' sub (8 bytes BE) [+ 't']."""
    k = (main & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big") + b"_" + \
        (sub & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
    return k + b"t" if tombstone else k


def _signed64(b: bytes) -> int:
    return int.from_bytes(b, "big", signed=True)


def parse_revision_key(k: bytes) -> tuple[int, int, bool]:
    """(main, sub, is_tombstone) of a key-bucket key."""
    if len(k) < 17 or k[8:9] != b"_":
        raise ValueError(f"not a revision key: {k!r}")
    return _signed64(k[:8]), _signed64(k[9:17]), len(k) == 18 and k[17:18] == b"t"


def snapshot_stats(path: str | os.PathLike, mode: str = "3.5") -> SnapshotStatus:
    """What ``etcdctl snapshot status`` reports for the snapshot at ``path``.

    hash: crc32c over, for every top-level bucket in order, its name then each
    key and value; revision: main revision of the last key in the ``key``
    bucket; total_size: bbolt's Tx.Size() (high-water mark x page size, without
    the trailing sha256).  total_key follows ``mode``: "3.5" (etcdctl/etcdutl
    3.5) counts every entry of every bucket; "3.6" counts the distinct live
    keys of the key bucket (see :func:`snapshot_storage_version` for 3.6's
    version field).
    """
    if mode not in ("3.5", "3.6"):
        raise ValueError("mode must be '3.5' or '3.6'")
    from pyetcd.pb.mvccpb import kv_pb2

    with BboltReader(path) as r:
        errors = r.check()
        if errors:
            raise BboltError(f"snapshot file integrity check failed. {len(errors)} errors "
                             "found.\n" + "\n".join(errors))
        h = _Crc()
        total = 0
        revision = 0
        live: set[bytes] = set()
        root_entries = list(r._root_entries())
        for flags, name, _ in root_entries:
            if not flags & 1:
                raise BboltError(f"cannot get hash of bucket {name.decode(errors='replace')}")
        for flags, name, value in root_entries:
            h.write(name)
            is_key = name == schema.KEY.encode()
            for f, k, v in r._iter_bucket_value(value):
                h.write(k)
                if not f & 1:
                    h.write(v)
                if is_key:
                    revision = _signed64(k[:8]) if len(k) >= 8 else 0
                    if mode == "3.6":
                        kv = kv_pb2.KeyValue()
                        kv.ParseFromString(v)
                        if len(k) == 18 and k[17:18] == b"t":
                            live.discard(kv.key)
                        else:
                            live.add(kv.key)
                total += 1
        if mode == "3.6":
            total = len(live)
        return SnapshotStatus(h.sum32(), revision, total, r.db_size)


def snapshot_storage_version(path: str | os.PathLike) -> str:
    """meta/storageVersion (what etcd 3.6's status prints as version), or ""."""
    with BboltReader(path) as r:
        if _META not in r.bucket_names():
            return ""
        for k, v in r.items(_META):
            if k == b"storageVersion" and v is not None:
                return v.decode(errors="replace")
    return ""


class _HashingWriter:
    def __init__(self, dest: BinaryIO):
        self.dest = dest
        self.sha = hashlib.sha256()

    def write(self, b) -> int:
        self.sha.update(b)
        return self.dest.write(b)


def write_snapshot(dest: str | os.PathLike | BinaryIO,
                   buckets: dict[bytes, Iterable[tuple[bytes, bytes]]],
                   page_size: int = 4096, *, reopen=None, on_size=None) -> int:
    """Write a complete etcd snapshot (bbolt file + its sha256) in one pass.

    ``dest`` may be a path or any object with ``write`` (it need not be
    seekable, e.g. a chunker feeding Maintenance.Snapshot).  Returns the total
    number of bytes (``% 512 == 32``).
    """
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "wb") as f:
            n = write_snapshot(f, buckets, page_size, reopen=reopen, on_size=on_size)
            f.flush()
            os.fsync(f.fileno())
            return n
    if page_size % 512:
        raise ValueError("page size must be a multiple of 512")
    hw = _HashingWriter(dest)
    n = write_bbolt(hw, buckets, page_size, reopen=reopen, on_size=on_size)
    dest.write(hw.sha.digest())
    return n + SHA256_SIZE


# --------------------------------------------------------------------------- schema


def etcd_buckets(revisions: Iterable[tuple[int, int, bytes, bool]] = (), *,
                 consistent_index: int = 0, term: int = 0,
                 compact_revision: int | None = None,
                 extra: dict[bytes, Iterable[tuple[bytes, bytes]]] | None = None,
                 ) -> dict[bytes, list[tuple[bytes, bytes]]]:
    """etcd's bucket layout, ready for :func:`pyetcd.storage.bbolt.write_bbolt`.

    ``revisions``: (main, sub, serialized mvccpb.KeyValue, is_tombstone) for the
    key bucket.  ``extra`` adds or replaces entries of any bucket (for example
    lease or auth records).  meta gets consistent_index and term (8 bytes BE)
    and, with ``compact_revision``, scheduled/finishedCompactRev.
    """
    out: dict[bytes, list[tuple[bytes, bytes]]] = {name: [] for name in ETCD_BUCKETS}
    out[schema.KEY.encode()] = [(revision_key(m, s, t), bytes(v)) for m, s, v, t in revisions]
    meta = {schema.CONSISTENT_INDEX: consistent_index.to_bytes(8, "big"),
            schema.TERM: term.to_bytes(8, "big")}
    if compact_revision is not None:
        meta[schema.SCHEDULED_COMPACT_REV] = revision_key(compact_revision)
        meta[schema.FINISHED_COMPACT_REV] = revision_key(compact_revision)
    for name, items in (extra or {}).items():
        if name == _META:
            meta.update(dict(items))
        else:
            merged = dict(out.get(name, []))
            merged.update(dict(items))
            out[name] = list(merged.items())
    out[_META] = sorted(meta.items())
    return out
