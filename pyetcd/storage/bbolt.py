"""Reading and writing bbolt database files in pure Python (stdlib only).

bbolt (go.etcd.io/bbolt) is the B+tree store real etcd keeps its backend in, and
the format of the file that ``etcdctl snapshot save`` produces.  This module
implements the on-disk layout (format version 2) so pyetcd can export snapshots
the real tools accept and import snapshots made by real etcd.

Layout summary (all integers little-endian, as on every platform Go etcd ships):

* The file is an array of pages of ``page_size`` bytes.  A page starts with a
  16-byte header ``id u64, flags u16, count u16, overflow u32``; a page with
  ``overflow = n`` occupies ``n + 1`` consecutive pages.
  Flags: branch 0x01, leaf 0x02, meta 0x04, freelist 0x10.
* Pages 0 and 1 are meta pages.  After the header: ``magic u32 (0xED0CDAED),
  version u32 (2), page_size u32, flags u32, root bucket (root pgid u64,
  sequence u64), freelist pgid u64, high-water pgid u64, txid u64, checksum
  u64`` where the checksum is FNV-1a/64 of the 56 bytes before it.  The valid
  meta with the higher txid wins.
* The freelist page holds ``count`` page ids (u64) after the header; when
  count is 0xFFFF the real count is the first u64.  A meta freelist pgid of
  2**64-1 means the freelist was not synced (etcd's NoFreelistSync).
* Leaf elements are 16 bytes ``flags u32, pos u32, ksize u32, vsize u32`` and
  branch elements ``pos u32, ksize u32, pgid u64``; ``pos`` is the offset of the
  key from the element itself and the value follows the key.  A leaf element
  with flag 0x01 is a nested bucket whose value is a 16-byte bucket header
  ``root pgid u64, sequence u64``; a root of 0 means the bucket is inline, with
  a page image (header plus elements) following the header inside the value.
* Branch keys are the first key of the child page; keys are compared as bytes.

This module is the reader and the consistency check (bbolt's Tx.Check);
the writer is :mod:`.bbolt_write`, the constants :mod:`.bbolt_format`.
"""
from __future__ import annotations

import io
import mmap
import os
import struct
from typing import Iterator

from .bbolt_format import (BRANCH_ELEM, BRANCH_PAGE, BUCKET_HEADER, BUCKET_HEADER_SIZE,
                           BUCKET_LEAF_FLAG, ELEM_SIZE, FREELIST_PAGE, LEAF_ELEM, LEAF_PAGE, MAGIC,
                           META, META_PAGE,
                           PAGE_HEADER, PAGE_HEADER_SIZE, PGID_NO_FREELIST, U64, VERSION,
                           BboltError, fnv1a64)
from .bbolt_write import write_bbolt

__all__ = [
    "BboltError", "BboltReader", "write_bbolt", "read_bbolt", "check_bbolt",
    "MAGIC", "VERSION", "PGID_NO_FREELIST", "META_PAGE",
]


# --------------------------------------------------------------------------- reader


class _Meta:
    __slots__ = ("magic", "version", "page_size", "flags", "root", "sequence", "freelist",
                 "pgid", "txid", "checksum", "valid", "error")

    def __init__(self, raw: bytes):
        (self.magic, self.version, self.page_size, self.flags, self.root, self.sequence,
         self.freelist, self.pgid, self.txid) = META.unpack_from(raw, 0)
        self.checksum = U64.unpack_from(raw, 56)[0]
        self.error = None
        if self.magic != MAGIC:
            self.error = "invalid magic"
        elif self.version != VERSION:
            self.error = f"version mismatch ({self.version})"
        elif self.checksum != fnv1a64(raw[:56]):
            self.error = "checksum error"
        self.valid = self.error is None


class BboltReader:
    """Read-only access to a bbolt file (a path, bytes, or a binary file object).

    Bytes after the high-water mark (such as etcd's trailing sha256) are ignored.
    """

    def __init__(self, source):
        self._mm = None
        self._file = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._buf = memoryview(source)
        else:
            if isinstance(source, (str, os.PathLike)):
                self._file = open(source, "rb")
                f = self._file
            else:
                f = source
            try:
                fd = f.fileno()
                if os.fstat(fd).st_size == 0:
                    raise BboltError("empty file")
                self._mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
                self._buf = memoryview(self._mm)
            except (OSError, ValueError, AttributeError, io.UnsupportedOperation) as exc:
                if isinstance(exc, BboltError):
                    raise
                f.seek(0)                   # BytesIO and other in-memory files
                self._buf = memoryview(f.read())
        self.size = len(self._buf)
        self._load_meta()

    # -- lifecycle
    def close(self) -> None:
        buf, self._buf = self._buf, None
        if buf is not None:
            buf.release()
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- meta
    def _meta_at(self, off: int) -> _Meta | None:
        if off + PAGE_HEADER_SIZE + 64 > self.size:
            return None
        _, flags, _, _ = PAGE_HEADER.unpack_from(self._buf, off)
        m = _Meta(bytes(self._buf[off + PAGE_HEADER_SIZE:off + PAGE_HEADER_SIZE + 64]))
        if m.valid and flags != META_PAGE:
            m.valid, m.error = False, f"meta page has flags {flags:#x}"
        return m

    def _load_meta(self) -> None:
        m0 = self._meta_at(0)
        if m0 is None:
            raise BboltError("file too small for a bbolt database")
        if m0.valid:
            page_size = m0.page_size
        else:
            # As bbolt does: look for the second meta page at 1 KiB .. 16 MiB.
            page_size = None
            for i in range(15):
                pos = 1024 << i
                if pos >= self.size - 1024:
                    break
                m = self._meta_at(pos)
                if m is not None and m.valid and m.page_size == pos:
                    page_size = pos
                    break
            if page_size is None:
                raise BboltError(f"invalid database: meta 0: {m0.error}; no valid meta 1")
        m1 = self._meta_at(page_size)
        metas = [m for m in (m0, m1) if m is not None and m.valid]
        if not metas:
            raise BboltError("both meta pages are invalid")
        metas.sort(key=lambda m: m.txid, reverse=True)
        self.meta = metas[0]
        self.metas = (m0, m1)
        self.page_size = page_size
        if self.meta.page_size != page_size:
            raise BboltError("meta pages disagree on the page size")
        if self.meta.pgid * page_size > self.size:
            raise BboltError(f"file is truncated: high-water mark {self.meta.pgid} pages "
                             f"of {page_size} bytes, file {self.size} bytes")

    @property
    def txid(self) -> int:
        return self.meta.txid

    @property
    def db_size(self) -> int:
        """bbolt's Tx.Size(): high-water mark times the page size."""
        return self.meta.pgid * self.page_size

    # -- pages
    def _page(self, pgid: int) -> tuple[int, int, int, int]:
        """(offset, flags, count, overflow) of page ``pgid``, with bounds checks."""
        if pgid >= self.meta.pgid or pgid < 2:
            raise BboltError(f"page {pgid}: out of bounds (high-water mark {self.meta.pgid})")
        off = pgid * self.page_size
        pid, flags, count, overflow = PAGE_HEADER.unpack_from(self._buf, off)
        if pid != pgid:
            raise BboltError(f"page {pgid}: self-identifies as {pid}")
        if (pgid + overflow + 1) * self.page_size > self.size:
            raise BboltError(f"page {pgid}: overflow {overflow} runs past the end of the file")
        return off, flags, count, overflow

    def _iter_leaf(self, buf, off: int, count: int, limit: int) -> Iterator[tuple[int, bytes, bytes]]:
        unpack = LEAF_ELEM.unpack_from
        eoff = off + PAGE_HEADER_SIZE
        for _ in range(count):
            flags, pos, ks, vs = unpack(buf, eoff)
            k0 = eoff + pos
            v1 = k0 + ks + vs
            if v1 > limit:
                raise BboltError(f"leaf element at offset {eoff} runs past its page")
            yield flags, bytes(buf[k0:k0 + ks]), bytes(buf[k0 + ks:v1])
            eoff += ELEM_SIZE

    def _iter_tree(self, pgid: int, depth: int = 0) -> Iterator[tuple[int, bytes, bytes]]:
        if depth > 64:
            raise BboltError("B+tree too deep (cycle?)")
        off, flags, count, overflow = self._page(pgid)
        limit = off + (overflow + 1) * self.page_size
        buf = self._buf
        if flags == LEAF_PAGE:
            yield from self._iter_leaf(buf, off, count, limit)
        elif flags == BRANCH_PAGE:
            unpack = BRANCH_ELEM.unpack_from
            eoff = off + PAGE_HEADER_SIZE
            children = []
            for _ in range(count):
                _, _, child = unpack(buf, eoff)
                if child == pgid:
                    raise BboltError(f"page {pgid}: circular reference")
                children.append(child)
                eoff += ELEM_SIZE
            for child in children:
                yield from self._iter_tree(child, depth + 1)
        else:
            raise BboltError(f"page {pgid}: unexpected page type {flags:#x} in a B+tree")

    def _iter_bucket_value(self, value: bytes) -> Iterator[tuple[int, bytes, bytes]]:
        if len(value) < BUCKET_HEADER_SIZE:
            raise BboltError("bucket header too short")
        root, _seq = BUCKET_HEADER.unpack_from(value, 0)
        if root == 0:                               # inline bucket
            page = memoryview(value)[BUCKET_HEADER_SIZE:]
            if len(page) < PAGE_HEADER_SIZE:
                raise BboltError("inline bucket page too short")
            _, flags, count, _ = PAGE_HEADER.unpack_from(page, 0)
            if flags != LEAF_PAGE:
                raise BboltError(f"inline bucket page has flags {flags:#x}")
            yield from self._iter_leaf(page, 0, count, len(page))
        else:
            yield from self._iter_tree(root)

    def _root_entries(self) -> Iterator[tuple[int, bytes, bytes]]:
        return self._iter_tree(self.meta.root)

    # -- public API
    def bucket_names(self) -> list[bytes]:
        return [k for flags, k, _ in self._root_entries() if flags & BUCKET_LEAF_FLAG]

    def _bucket_value(self, name: bytes) -> bytes:
        for flags, k, v in self._root_entries():
            if k == name:
                if not flags & BUCKET_LEAF_FLAG:
                    raise BboltError(f"{name!r} is a key, not a bucket")
                return v
        raise KeyError(name)

    def items(self, name: bytes | list[bytes]) -> Iterator[tuple[bytes, bytes | None]]:
        """(key, value) pairs of bucket ``name`` (or a path of nested bucket names),
        in key order; a nested bucket's entry has value None."""
        path = [name] if isinstance(name, (bytes, bytearray)) else list(name)
        value = self._bucket_value(bytes(path[0]))
        for sub in path[1:]:
            for flags, k, v in self._iter_bucket_value(value):
                if k == sub and flags & BUCKET_LEAF_FLAG:
                    value = v
                    break
            else:
                raise KeyError(sub)
        for flags, k, v in self._iter_bucket_value(value):
            yield k, (None if flags & BUCKET_LEAF_FLAG else v)

    def read_all(self) -> dict[bytes, list[tuple[bytes, bytes | None]]]:
        out: dict[bytes, list] = {}
        for flags, name, value in self._root_entries():
            if not flags & BUCKET_LEAF_FLAG:
                raise BboltError(f"non-bucket key {name!r} in the root bucket")
            out[name] = [(k, None if f & BUCKET_LEAF_FLAG else v)
                         for f, k, v in self._iter_bucket_value(value)]
        return out

    def freelist(self) -> list[int] | None:
        """Free page ids from the freelist page, or None when it was not synced."""
        fl = self.meta.freelist
        if fl == PGID_NO_FREELIST:
            return None
        off, flags, count, overflow = self._page(fl)
        if flags != FREELIST_PAGE:
            raise BboltError(f"page {fl}: expected a freelist page, got flags {flags:#x}")
        idx = 0
        if count == 0xFFFF:
            count = U64.unpack_from(self._buf, off + PAGE_HEADER_SIZE)[0]
            idx = 1
        start = off + PAGE_HEADER_SIZE + 8 * idx
        end = start + 8 * count
        if end > off + (overflow + 1) * self.page_size:
            raise BboltError("freelist runs past its page")
        return sorted(struct.unpack_from(f"<{count}Q", self._buf, start))

    def check(self) -> list[str]:
        """bbolt's Tx.Check: every page below the high-water mark is reachable
        exactly once or free, B+tree keys are ordered.  Returns error strings."""
        return _Checker(self).run()


class _Checker:
    """One consistency check of an open :class:`BboltReader`."""

    def __init__(self, r: BboltReader):
        self.r = r
        self.errors: list[str] = []
        self.hwm = r.meta.pgid
        self.reachable: set[int] = {0, 1}
        self.freed: set[int] = set()
        self.sub_buckets: list[bytes] = []

    def run(self) -> list[str]:
        r, errors = self.r, self.errors
        try:
            free = r.freelist()
        except BboltError as exc:
            return [str(exc)]
        for pid in free or ():
            if pid in self.freed:
                errors.append(f"page {pid}: already freed")
            self.freed.add(pid)
        if free is not None:
            _, _, _, ov = r._page(r.meta.freelist)
            self.reachable.update(range(r.meta.freelist, r.meta.freelist + ov + 1))
        else:
            self.freed = set()
        self.walk(r.meta.root, 0, None)
        while self.sub_buckets:
            value = self.sub_buckets.pop()
            root = BUCKET_HEADER.unpack_from(value, 0)[0]
            if root == 0:
                for f, _, v in r._iter_bucket_value(value):
                    if f & BUCKET_LEAF_FLAG:
                        self.sub_buckets.append(v)
            else:
                self.walk(root, 0, None)
        for i in range(self.hwm if free is not None else 0):
            if i not in self.reachable and i not in self.freed:
                errors.append(f"page {i}: unreachable unfreed")
        return errors

    def walk(self, pgid: int, depth: int, lo: bytes | None) -> bytes | None:
        """Visit the subtree at pgid; returns its last key."""
        errors = self.errors
        if pgid >= self.hwm:
            errors.append(f"page {pgid}: out of bounds: {self.hwm}")
            return lo
        try:
            off, flags, count, overflow = self.r._page(pgid)
        except BboltError as exc:
            errors.append(str(exc))
            return lo
        for i in range(pgid, pgid + overflow + 1):
            if i in self.reachable:
                errors.append(f"page {i}: multiple references")
            self.reachable.add(i)
        if pgid in self.freed:
            errors.append(f"page {pgid}: reachable freed")
        if flags == LEAF_PAGE:
            return self._leaf(pgid, off, count, overflow, lo)
        if flags == BRANCH_PAGE:
            return self._branch(pgid, off, count, depth, lo)
        errors.append(f"page {pgid}: invalid type: {flags:#x}")
        return lo

    def _leaf(self, pgid: int, off: int, count: int, overflow: int, last: bytes | None):
        r = self.r
        limit = off + (overflow + 1) * r.page_size
        try:
            for f, k, v in r._iter_leaf(r._buf, off, count, limit):
                if last is not None and k <= last:
                    self.errors.append(f"page {pgid}: key {k!r} out of order")
                last = k
                if f & BUCKET_LEAF_FLAG:
                    self.sub_buckets.append(v)
        except BboltError as exc:
            self.errors.append(f"page {pgid}: {exc}")
        return last

    def _branch(self, pgid: int, off: int, count: int, depth: int, last: bytes | None):
        buf = self.r._buf
        eoff = off + PAGE_HEADER_SIZE
        for _ in range(count):
            pos, ks, child = BRANCH_ELEM.unpack_from(buf, eoff)
            key = bytes(buf[eoff + pos:eoff + pos + ks])
            if last is not None and key < last:
                self.errors.append(f"page {pgid}: branch key {key!r} out of order")
            if depth > 64:
                self.errors.append(f"page {pgid}: too deep")
                break
            last = self.walk(child, depth + 1, last)
            eoff += ELEM_SIZE
        return last


def read_bbolt(source) -> dict[bytes, list[tuple[bytes, bytes | None]]]:
    """Read every top-level bucket of a bbolt file: {name: [(key, value), ...]}.

    Keys come in bbolt order (bytewise).  An entry that is itself a nested
    bucket is returned with value None (etcd never nests buckets).
    """
    with BboltReader(source) as r:
        return r.read_all()


def check_bbolt(source) -> list[str]:
    """Consistency errors of a bbolt file (empty list when it is sound)."""
    with BboltReader(source) as r:
        return r.check()
