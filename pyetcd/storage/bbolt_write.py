"""The bbolt writer: buckets of (key, value) pairs -> a bbolt file, in one
pass of page-id order (meta pages, an empty freelist page, then every
bucket's leaves followed by its branch levels, then the root bucket's
pages), so it can stream to a non-seekable file object and its cost is
linear in the data.  Given a way to read the data twice (two cursors over
one read transaction) it keeps only the keys and value sizes in memory: the
plan needs them, the values are copied straight to the output on the second
pass.  The format is described in :mod:`pyetcd.storage.bbolt`."""
from __future__ import annotations

import os
from array import array
from typing import BinaryIO, Callable, Iterable

from .bbolt_format import (BRANCH_ELEM, BRANCH_PAGE, BUCKET_HEADER, BUCKET_LEAF_FLAG, ELEM_SIZE,
                           FREELIST_PAGE, LEAF_ELEM, LEAF_PAGE, MAGIC, MAX_ELEMS_PER_PAGE, META,
                           META_PAGE, PAGE_HEADER, PAGE_HEADER_SIZE, U64, VERSION, BboltError,
                           fnv1a64)

__all__ = ["write_bbolt"]


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


def _bucket_names(buckets) -> list[bytes]:
    names = []
    for name in buckets:
        if not isinstance(name, (bytes, bytearray)) or not name:
            raise BboltError(f"bucket names must be non-empty bytes: {name!r}")
        names.append(bytes(name))
    names.sort()
    if len(set(names)) != len(names):
        raise BboltError("duplicate bucket names")
    return names


def _inline_page(name: bytes, keys, vlens, values, page_size: int, reopen) -> bytes | None:
    """A bucket small enough to live inline in its header's value (as bbolt
    stores it), or None."""
    size = PAGE_HEADER_SIZE
    for k, vl in zip(keys, vlens):
        size += ELEM_SIZE + len(k) + vl
        if size > page_size // 4:
            return None
    if values is None:  # small by definition: take them now
        values = [v for _, v in reopen(name)]
        if len(values) != len(keys):
            raise BboltError("the data changed between the two passes of the export")
    page = bytearray(size)
    _fill_leaf(page, 0, 0, keys, values, None, 0, len(keys))
    return BUCKET_HEADER.pack(0, 0) + bytes(page)


def _plan(buckets, names, page_size: int, inline: bool, reopen):
    """Page plans for every bucket, then for the root bucket (bucket name ->
    bucket header, or the inline page); returns (trees, root tree, hwm)."""
    next_pgid = 3                                   # 0, 1: meta; 2: freelist
    trees: list[tuple[bytes, _Tree]] = []
    root_values: list[bytes | None] = []
    for name in names:
        keys, vlens, values = _sorted_items(name, buckets[name], keep_values=reopen is None)
        page = _inline_page(name, keys, vlens, values, page_size, reopen) if inline else None
        if page is None:
            tree = _Tree(keys, vlens, values, None)
            next_pgid = tree.plan(next_pgid, page_size)
            trees.append((name, tree))
        root_values.append(page)
    ti = iter(trees)
    rvals = [v if v is not None else BUCKET_HEADER.pack(next(ti)[1].root, 0) for v in root_values]
    root_tree = _Tree(names, [len(v) for v in rvals], rvals, [BUCKET_LEAF_FLAG] * len(names))
    return trees, root_tree, root_tree.plan(next_pgid, page_size)


def _emit(write, trees, root_tree: "_Tree", hwm: int, page_size: int, reopen) -> None:
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
    trees, root_tree, hwm = _plan(buckets, _bucket_names(buckets), page_size, inline, reopen)
    if on_size is not None:
        on_size(hwm * page_size)
    written = 0

    def write(b) -> None:
        nonlocal written
        dest.write(b)
        written += len(b)

    _emit(write, trees, root_tree, hwm, page_size, reopen)
    return written
