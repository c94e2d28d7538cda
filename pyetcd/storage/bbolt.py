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

The writer lays the file out in one pass of page-id order (meta pages, an empty
freelist page, then every bucket's leaves followed by its branch levels, then
the root bucket's pages), so it can stream to a non-seekable file object and
its cost is linear in the data.  Given a way to read the data twice (two
cursors over one read transaction) it keeps only the keys and value sizes in
memory: the plan needs them, the values are copied straight to the output on
the second pass.
"""
from __future__ import annotations

import io
import mmap
import os
import struct
from array import array
from typing import BinaryIO, Callable, Iterable, Iterator

__all__ = [
    "BboltError", "BboltReader", "write_bbolt", "read_bbolt", "check_bbolt",
    "MAGIC", "VERSION", "PGID_NO_FREELIST",
]

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


# --------------------------------------------------------------------------- writer


def _meta_page(page_size: int, page_id: int, root: int, freelist: int, hwm: int,
               txid: int) -> bytes:
    body = META.pack(MAGIC, VERSION, page_size, 0, root, 0, freelist, hwm, txid)
    buf = bytearray(page_size)
    PAGE_HEADER.pack_into(buf, 0, page_id, META_PAGE, 0, 0)
    buf[PAGE_HEADER_SIZE:PAGE_HEADER_SIZE + 56] = body
    U64.pack_into(buf, PAGE_HEADER_SIZE + 56, fnv1a64(body))
    return bytes(buf)


def _pages_for(nbytes: int, page_size: int) -> int:
    return max(1, -(-nbytes // page_size))


class _Tree:
    """Page plan for one B+tree (a bucket's or the root bucket's).

    ``keys``/``vlens``/``flags`` are parallel sequences already sorted by key
    (``vlens``: the value sizes).  ``values`` is the list of values, or None
    when they are streamed again at emit time (``source``: an iterator of
    (key, value) in the same order, as a second pass over a read
    transaction gives them).  ``pages`` is a list of plan entries in page-id
    order: ``("leaf", start, end, npages)`` or ``("branch", [(key, pgid), ...], npages)``.
    """

    __slots__ = ("keys", "vlens", "values", "flags", "pages", "root")

    def __init__(self, keys, vlens, values, flags):
        self.keys = keys
        self.vlens = vlens
        self.values = values
        self.flags = flags
        self.pages: list = []
        self.root = 0

    def plan(self, next_pgid: int, page_size: int) -> int:
        keys, vlens = self.keys, self.vlens
        n = len(keys)
        level: list[tuple[bytes, int]] = []   # (first key, pgid) of the pages just planned
        pages = self.pages
        if n == 0:
            pages.append(("leaf", 0, 0, 1))
            self.root = next_pgid
            return next_pgid + 1
        # Leaves: fill each page up to page_size; a lone element that does not fit
        # gets a page of its own with overflow pages.
        start = 0
        size = PAGE_HEADER_SIZE
        for i in range(n):
            esz = ELEM_SIZE + len(keys[i]) + vlens[i]
            if i > start and (size + esz > page_size or i - start >= MAX_ELEMS_PER_PAGE):
                npg = _pages_for(size, page_size)
                pages.append(("leaf", start, i, npg))
                level.append((keys[start], next_pgid))
                next_pgid += npg
                start = i
                size = PAGE_HEADER_SIZE
            size += esz
        npg = _pages_for(size, page_size)
        pages.append(("leaf", start, n, npg))
        level.append((keys[start], next_pgid))
        next_pgid += npg
        # Branch levels until a single root remains.
        while len(level) > 1:
            upper: list[tuple[bytes, int]] = []
            group: list[tuple[bytes, int]] = []
            size = PAGE_HEADER_SIZE
            for ent in level:
                esz = ELEM_SIZE + len(ent[0])
                if group and (size + esz > page_size or len(group) >= MAX_ELEMS_PER_PAGE):
                    npg = _pages_for(size, page_size)
                    pages.append(("branch", group, npg))
                    upper.append((group[0][0], next_pgid))
                    next_pgid += npg
                    group = []
                    size = PAGE_HEADER_SIZE
                group.append(ent)
                size += esz
            npg = _pages_for(size, page_size)
            pages.append(("branch", group, npg))
            upper.append((group[0][0], next_pgid))
            next_pgid += npg
            level = upper
        self.root = level[0][1]
        return next_pgid

    def emit(self, first_pgid: int, page_size: int, write, source=None) -> int:
        pgid = first_pgid
        keys, values, flags, vlens = self.keys, self.values, self.flags, self.vlens
        for ent in self.pages:
            if ent[0] == "leaf":
                _, start, end, npg = ent
                buf = bytearray(npg * page_size)
                if values is None:
                    vals = []
                    for i in range(start, end):
                        k, v = next(source, (None, None))
                        if k != keys[i] or len(v) != vlens[i]:
                            raise BboltError("the data changed between the two passes of the export")
                        vals.append(v)
                    _fill_leaf(buf, pgid, npg - 1, keys[start:end], vals,
                               flags[start:end] if flags is not None else None, 0, end - start)
                else:
                    _fill_leaf(buf, pgid, npg - 1, keys, values, flags, start, end)
            else:
                _, group, npg = ent
                buf = bytearray(npg * page_size)
                PAGE_HEADER.pack_into(buf, 0, pgid, BRANCH_PAGE, len(group), npg - 1)
                off = PAGE_HEADER_SIZE + ELEM_SIZE * len(group)
                eoff = PAGE_HEADER_SIZE
                for key, child in group:
                    BRANCH_ELEM.pack_into(buf, eoff, off - eoff, len(key), child)
                    buf[off:off + len(key)] = key
                    off += len(key)
                    eoff += ELEM_SIZE
            write(buf)
            pgid += npg
        return pgid


def _fill_leaf(buf: bytearray, pgid: int, overflow: int, keys, values, flags,
               start: int, end: int) -> None:
    """Write a leaf page image (header, elements, key/value data) into ``buf``."""
    count = end - start
    PAGE_HEADER.pack_into(buf, 0, pgid, LEAF_PAGE, count, overflow)
    off = PAGE_HEADER_SIZE + ELEM_SIZE * count
    eoff = PAGE_HEADER_SIZE
    pack = LEAF_ELEM.pack_into
    for i in range(start, end):
        k = keys[i]
        v = values[i]
        kl = len(k)
        vl = len(v)
        pack(buf, eoff, flags[i] if flags is not None else 0, off - eoff, kl, vl)
        buf[off:off + kl] = k
        off += kl
        if vl:
            buf[off:off + vl] = v
            off += vl
        eoff += ELEM_SIZE


def _sorted_items(name: bytes, items, keep_values: bool = True):
    """(keys, value sizes, values or None) of a bucket.  Without
    ``keep_values`` the items must come sorted (a cursor's order) and only
    their sizes are kept."""
    if keep_values:
        pairs = items if isinstance(items, list) else list(items)
        if not _is_sorted(pairs):
            pairs = sorted(pairs, key=lambda kv: kv[0])
    else:
        pairs = items
    keys = []
    vlens = array("Q")
    values = [] if keep_values else None
    prev = None
    for k, v in pairs:
        if not isinstance(k, (bytes, bytearray, memoryview)) or not isinstance(
                v, (bytes, bytearray, memoryview)):
            raise BboltError(f"bucket {name!r}: keys and values must be bytes")
        k = bytes(k)
        if not k:
            raise BboltError(f"bucket {name!r}: zero-length key")
        if prev is not None and k == prev:
            raise BboltError(f"bucket {name!r}: duplicate key {k!r}")
        if prev is not None and not keep_values and k < prev:
            raise BboltError(f"bucket {name!r}: streamed keys out of order")
        prev = k
        keys.append(k)
        vlens.append(len(v))
        if keep_values:
            values.append(v)
    return keys, vlens, values


def _is_sorted(items) -> bool:
    try:
        it = iter(items)
        prev = next(it)[0]
    except StopIteration:
        return True
    for k, _ in it:
        if not prev < k:
            return False
        prev = k
    return True


def write_bbolt(dest: str | os.PathLike | BinaryIO,
                buckets: dict[bytes, Iterable[tuple[bytes, bytes]]],
                page_size: int = 4096, *, inline: bool = True,
                reopen: Callable[[bytes], Iterable[tuple[bytes, bytes]]] | None = None,
                on_size: Callable[[int], None] | None = None) -> int:
    """Write ``buckets`` (top-level bucket name -> (key, value) pairs) as a bbolt file.

    ``dest`` is a path or a writable binary file object (it is written
    sequentially, so it need not be seekable).  Keys within a bucket are sorted
    here; empty or duplicate keys raise :class:`BboltError`.  Small buckets are
    stored inline as bbolt itself would (``inline=False`` turns that off).

    With ``reopen`` the data is streamed in two passes and never held in
    memory: ``buckets[name]`` (sorted) is read once for the keys and value
    sizes, then ``reopen(name)`` must give the same items again, in order,
    for the values (a second cursor over the same read transaction).

    ``on_size(n)`` is told the file's size once it is planned, before the
    first byte is written.  Returns the number of bytes written (a multiple
    of ``page_size``).
    """
    if page_size < 1024 or page_size & (page_size - 1):
        raise BboltError(f"page size {page_size} must be a power of two >= 1024")
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "wb") as f:
            n = write_bbolt(f, buckets, page_size, inline=inline, reopen=reopen, on_size=on_size)
            f.flush()
            os.fsync(f.fileno())
            return n

    names = []
    for name in buckets:
        if not isinstance(name, (bytes, bytearray)) or not name:
            raise BboltError(f"bucket names must be non-empty bytes: {name!r}")
        names.append(bytes(name))
    names.sort()
    if len(set(names)) != len(names):
        raise BboltError("duplicate bucket names")

    max_inline = page_size // 4
    next_pgid = 3                                   # 0, 1: meta; 2: freelist
    trees: list[tuple[bytes, _Tree]] = []
    root_values: list[bytes | None] = []
    for name in names:
        keys, vlens, values = _sorted_items(name, buckets[name], keep_values=reopen is None)
        size = PAGE_HEADER_SIZE
        inlineable = inline
        if inlineable:
            for k, vl in zip(keys, vlens):
                size += ELEM_SIZE + len(k) + vl
                if size > max_inline:
                    inlineable = False
                    break
        if inlineable:
            if values is None:  # small by definition: take them now
                values = [v for _, v in reopen(name)]
                if len(values) != len(keys):
                    raise BboltError("the data changed between the two passes of the export")
            page = bytearray(size)
            _fill_leaf(page, 0, 0, keys, values, None, 0, len(keys))
            root_values.append(BUCKET_HEADER.pack(0, 0) + bytes(page))
        else:
            tree = _Tree(keys, vlens, values, None)
            next_pgid = tree.plan(next_pgid, page_size)
            trees.append((name, tree))
            root_values.append(None)
    # The root bucket's own tree: bucket name -> bucket header (+ inline page).
    ti = iter(trees)
    rvals = []
    for v in root_values:
        rvals.append(v if v is not None else BUCKET_HEADER.pack(next(ti)[1].root, 0))
    root_tree = _Tree(names, [len(v) for v in rvals], rvals, [BUCKET_LEAF_FLAG] * len(names))
    hwm = root_tree.plan(next_pgid, page_size)
    if on_size is not None:
        on_size(hwm * page_size)

    written = 0

    def write(b) -> None:
        nonlocal written
        dest.write(b)
        written += len(b)

    # Mirror bbolt's Tx.WriteTo: both metas describe the same tree, meta 1 with txid-1.
    txid = 2
    write(_meta_page(page_size, 0, root_tree.root, 2, hwm, txid))
    write(_meta_page(page_size, 1, root_tree.root, 2, hwm, txid - 1))
    fl = bytearray(page_size)
    PAGE_HEADER.pack_into(fl, 0, 2, FREELIST_PAGE, 0, 0)
    write(fl)
    pgid = 3
    for name, tree in trees:
        source = iter(reopen(name)) if tree.values is None else None
        pgid = tree.emit(pgid, page_size, write, source)
        if source is not None and next(source, None) is not None:
            raise BboltError("the data changed between the two passes of the export")
    pgid = root_tree.emit(pgid, page_size, write)
    assert pgid == hwm, (pgid, hwm)
    return written


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
        errors: list[str] = []
        hwm = self.meta.pgid
        try:
            free = self.freelist()
        except BboltError as exc:
            return [str(exc)]
        freed: set[int] = set()
        for pid in free or ():
            if pid in freed:
                errors.append(f"page {pid}: already freed")
            freed.add(pid)
        reachable: set[int] = {0, 1}
        if free is not None:
            _, _, _, ov = self._page(self.meta.freelist)
            reachable.update(range(self.meta.freelist, self.meta.freelist + ov + 1))
        else:
            freed = set()

        def walk(pgid: int, depth: int, lo: bytes | None) -> bytes | None:
            """Visit the subtree at pgid; returns its last key."""
            if pgid >= hwm:
                errors.append(f"page {pgid}: out of bounds: {hwm}")
                return lo
            try:
                off, flags, count, overflow = self._page(pgid)
            except BboltError as exc:
                errors.append(str(exc))
                return lo
            for i in range(pgid, pgid + overflow + 1):
                if i in reachable:
                    errors.append(f"page {i}: multiple references")
                reachable.add(i)
            if pgid in freed:
                errors.append(f"page {pgid}: reachable freed")
            last = lo
            if flags == LEAF_PAGE:
                limit = off + (overflow + 1) * self.page_size
                try:
                    for f, k, v in self._iter_leaf(self._buf, off, count, limit):
                        if last is not None and k <= last:
                            errors.append(f"page {pgid}: key {k!r} out of order")
                        last = k
                        if f & BUCKET_LEAF_FLAG:
                            sub_buckets.append(v)
                except BboltError as exc:
                    errors.append(f"page {pgid}: {exc}")
            elif flags == BRANCH_PAGE:
                eoff = off + PAGE_HEADER_SIZE
                for _ in range(count):
                    pos, ks, child = BRANCH_ELEM.unpack_from(self._buf, eoff)
                    key = bytes(self._buf[eoff + pos:eoff + pos + ks])
                    if last is not None and key < last:
                        errors.append(f"page {pgid}: branch key {key!r} out of order")
                    if depth > 64:
                        errors.append(f"page {pgid}: too deep")
                        break
                    last = walk(child, depth + 1, last)
                    eoff += ELEM_SIZE
            else:
                errors.append(f"page {pgid}: invalid type: {flags:#x}")
            return last

        sub_buckets: list[bytes] = []
        walk(self.meta.root, 0, None)
        while sub_buckets:
            value = sub_buckets.pop()
            root = BUCKET_HEADER.unpack_from(value, 0)[0]
            if root == 0:
                for f, _, v in self._iter_bucket_value(value):
                    if f & BUCKET_LEAF_FLAG:
                        sub_buckets.append(v)
            else:
                walk(root, 0, None)
        for i in range(hwm if free is not None else 0):
            if i not in reachable and i not in freed:
                errors.append(f"page {i}: unreachable unfreed")
        return errors


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
