"""write_bbolt / read_bbolt round trips and format details (no external binaries)."""
from __future__ import annotations

import io
import os
import random
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyetcd.storage import bbolt
from pyetcd.storage.bbolt import (BboltError, BboltReader, check_bbolt, read_bbolt,
                                  write_bbolt)


def _write(buckets, **kw) -> bytes:
    bio = io.BytesIO()
    n = write_bbolt(bio, buckets, **kw)
    data = bio.getvalue()
    assert n == len(data)
    return data


def _expected(buckets):
    return {bytes(name): sorted((bytes(k), bytes(v)) for k, v in items)
            for name, items in buckets.items()}


keys = st.binary(min_size=1, max_size=40)
# big values are derived from a small seed so hypothesis does not draw kilobytes of entropy
big_values = st.builds(lambda seed, n: random.Random(seed).randbytes(n),
                       st.integers(0, 2**16), st.integers(1000, 9000))
values = st.one_of(st.binary(max_size=64), big_values)
bucket_contents = st.dictionaries(keys, values, max_size=80).map(lambda d: list(d.items()))
bucket_maps = st.dictionaries(st.binary(min_size=1, max_size=12), bucket_contents, max_size=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(buckets=bucket_maps, page_size=st.sampled_from([1024, 4096]),
       inline=st.booleans())
def test_roundtrip_random(buckets, page_size, inline):
    data = _write(buckets, page_size=page_size, inline=inline)
    assert len(data) % page_size == 0
    assert read_bbolt(data) == _expected(buckets)
    assert check_bbolt(data) == []


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(min_value=300, max_value=4000), vlen=st.integers(0, 600),
       seed=st.integers(0, 2**32))
def test_roundtrip_branch_pages(n, vlen, seed):
    rnd = random.Random(seed)
    items = [(rnd.randbytes(rnd.randint(1, 30)), rnd.randbytes(vlen)) for _ in range(n)]
    items = list(dict(items).items())
    data = _write({b"key": items, b"meta": [(b"term", b"\0" * 8)]}, page_size=1024)
    got = read_bbolt(data)
    assert got[b"key"] == sorted(items)
    assert check_bbolt(data) == []


def _page(data: bytes, page_size: int, pgid: int):
    return struct.unpack_from("<QHHI", data, pgid * page_size)


def test_layout_meta_freelist_and_branches():
    items = [(i.to_bytes(8, "big") + b"_" + bytes(8), b"v" * 100) for i in range(5000)]
    items.append((b"\xff" * 17, b"L" * 20000))        # overflow pages
    data = _write({b"key": items, b"alarm": []}, page_size=4096)
    with BboltReader(data) as r:
        m = r.meta
        assert (m.magic, m.version, m.page_size, m.txid) == (0xED0CDAED, 2, 4096, 2)
        assert r.metas[1].valid and r.metas[1].txid == 1
        assert m.pgid * 4096 == len(data) == r.db_size
        assert r.freelist() == []
        assert r.bucket_names() == [b"alarm", b"key"]
        assert list(r.items(b"alarm")) == []
    # page 0/1 are meta pages with the right ids; page 2 is the freelist
    assert _page(data, 4096, 0)[:2] == (0, bbolt.META_PAGE)
    assert _page(data, 4096, 1)[:2] == (1, bbolt.META_PAGE)
    assert _page(data, 4096, 2)[:3] == (2, bbolt.FREELIST_PAGE, 0)
    flags = [_page(data, 4096, i)[1] for i in range(3, m.pgid)]
    assert bbolt.BRANCH_PAGE in flags                         # the key bucket has branches
    overflowed = [_page(data, 4096, i) for i in range(3, m.pgid)
                  if _page(data, 4096, i)[1] == bbolt.LEAF_PAGE and _page(data, 4096, i)[3]]
    assert overflowed and overflowed[0][3] == 4               # 20 KB value: 5 pages
    got = read_bbolt(data)
    assert got[b"key"] == items and got[b"alarm"] == []


def test_small_buckets_are_inline_like_bbolt():
    data = _write({b"alarm": [], b"meta": [(b"term", b"\0" * 8)], b"big": [(b"k", b"v" * 2000)]})
    with BboltReader(data) as r:
        root = {k: v for _, k, v in r._root_entries()}
    # inline: root pgid 0 and a leaf page image after the 16-byte bucket header
    assert struct.unpack_from("<QQ", root[b"alarm"]) == (0, 0)
    assert root[b"alarm"][16:] == struct.pack("<QHHI", 0, bbolt.LEAF_PAGE, 0, 0)
    assert struct.unpack_from("<Q", root[b"meta"])[0] == 0
    assert len(root[b"meta"]) == 16 + 16 + 16 + 4 + 8
    assert struct.unpack_from("<Q", root[b"big"])[0] >= 3       # over page_size/4: own page
    data2 = _write({b"alarm": [], b"meta": [(b"term", b"\0" * 8)]}, inline=False)
    assert read_bbolt(data2) == {b"alarm": [], b"meta": [(b"term", b"\0" * 8)]}
    assert check_bbolt(data2) == []


def test_meta_choice_and_corruption():
    data = bytearray(_write({b"b": [(b"k", b"v")]}))
    # Corrupt meta 0 (the higher txid): the reader falls back to meta 1.
    data[16 + 8] ^= 0xFF
    with BboltReader(bytes(data)) as r:
        assert not r.metas[0].valid and r.metas[0].error == "checksum error"
        assert r.meta.txid == 1 and r.page_size == 4096
        assert list(r.items(b"b")) == [(b"k", b"v")]
    # Both corrupt: refuse.
    data[4096 + 16 + 8] ^= 0xFF
    with pytest.raises(BboltError):
        BboltReader(bytes(data))
    with pytest.raises(BboltError):
        BboltReader(b"\0" * 8192)


def test_higher_txid_wins():
    a = _write({b"b": [(b"k", b"old")]})
    b = _write({b"b": [(b"k", b"new")]})
    # Build a file whose meta 1 (txid 3) points at a newer tree than meta 0 (txid 2):
    # take file b, and re-stamp its meta 1 with txid 3.
    data = bytearray(b)
    body = bytearray(data[4096 + 16:4096 + 16 + 56])
    struct.pack_into("<Q", body, 48, 3)
    data[4096 + 16:4096 + 16 + 56] = body
    struct.pack_into("<Q", data, 4096 + 16 + 56, bbolt.fnv1a64(bytes(body)))
    with BboltReader(bytes(data)) as r:
        assert r.meta.txid == 3 and r.metas[0].txid == 2
    assert read_bbolt(a)[b"b"] == [(b"k", b"old")]


def test_freelist_variants():
    data = bytearray(_write({b"b": [(b"k", b"v")]}))
    with BboltReader(bytes(data)) as r:
        assert r.freelist() == []
    # NoFreelistSync: freelist pgid 2**64-1 in both metas
    for off in (0, 4096):
        body = bytearray(data[off + 16:off + 72])
        struct.pack_into("<Q", body, 32, bbolt.PGID_NO_FREELIST)
        data[off + 16:off + 72] = body
        struct.pack_into("<Q", data, off + 72, bbolt.fnv1a64(bytes(body)))
    with BboltReader(bytes(data)) as r:
        assert r.freelist() is None
        assert r.check() == []                # page 2 counts as free, as bbolt rebuilds it
        assert list(r.items(b"b")) == [(b"k", b"v")]
    # A freelist of >= 0xFFFF ids keeps its count in the first u64.
    ps = 1024
    base = bytearray(_write({b"b": [(b"k", b"v")]}, page_size=ps))
    n = 0x10000
    npages = -(-(16 + 8 * (n + 1)) // ps)
    hwm = len(base) // ps
    fl_id = hwm
    free_ids = list(range(hwm + npages, hwm + npages + n))
    fl = bytearray(npages * ps)
    struct.pack_into("<QHHI", fl, 0, fl_id, bbolt.FREELIST_PAGE, 0xFFFF, npages - 1)
    struct.pack_into(f"<{n + 1}Q", fl, 16, n, *free_ids)
    data = base + fl + bytes(n * ps)
    for off in (0, ps):
        body = bytearray(data[off + 16:off + 72])
        struct.pack_into("<QQ", body, 32, fl_id, hwm + npages + n)
        data[off + 16:off + 72] = body
        struct.pack_into("<Q", data, off + 72, bbolt.fnv1a64(bytes(body)))
    with BboltReader(bytes(data)) as r:
        assert r.freelist() == free_ids
        errors = r.check()
    assert errors == ["page 2: unreachable unfreed"]           # the old freelist page
    assert read_bbolt(bytes(data)) == {b"b": [(b"k", b"v")]}


def test_check_detects_damage():
    items = [(b"%06d" % i, b"x" * 50) for i in range(2000)]
    data = bytearray(_write({b"key": items}))
    assert check_bbolt(bytes(data)) == []
    # an extra page beyond the tree, not in the freelist
    extra = bytearray(data) + bytes(4096)
    for off in (0, 4096):
        body = bytearray(extra[off + 16:off + 72])
        struct.pack_into("<Q", body, 40, len(extra) // 4096)
        extra[off + 16:off + 72] = body
        struct.pack_into("<Q", extra, off + 72, bbolt.fnv1a64(bytes(body)))
    assert any("unreachable unfreed" in e for e in check_bbolt(bytes(extra)))
    # a page that lies about its id
    struct.pack_into("<Q", data, 4 * 4096, 999)
    with pytest.raises(BboltError):
        read_bbolt(bytes(data))


def test_trailing_bytes_ignored_and_file_api(tmp_path):
    path = tmp_path / "db"
    write_bbolt(path, {b"key": [(b"a", b"1"), (b"b", b"2")]})
    assert os.path.getsize(path) % 4096 == 0
    with open(path, "ab") as f:
        f.write(os.urandom(32))
    assert read_bbolt(path) == {b"key": [(b"a", b"1"), (b"b", b"2")]}
    with open(path, "rb") as f:
        assert read_bbolt(f) == {b"key": [(b"a", b"1"), (b"b", b"2")]}
    assert read_bbolt(io.BytesIO(path.read_bytes())) == {b"key": [(b"a", b"1"), (b"b", b"2")]}
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(BboltError):
        read_bbolt(tmp_path / "empty")


def test_nonseekable_stream_and_iterables():
    class Sink:
        def __init__(self):
            self.chunks = []

        def write(self, b):
            self.chunks.append(bytes(b))

    s = Sink()
    gen = ((b"k%d" % i, b"v") for i in range(500))
    write_bbolt(s, {b"x": gen})
    assert read_bbolt(b"".join(s.chunks))[b"x"] == sorted((b"k%d" % i, b"v") for i in range(500))


@pytest.mark.parametrize("bad", [
    {b"": []},
    {b"b": [(b"", b"v")]},
    {b"b": [(b"k", b"1"), (b"k", b"2")]},
    {b"b": [("k", b"v")]},
])
def test_invalid_input(bad):
    with pytest.raises(BboltError):
        write_bbolt(io.BytesIO(), bad)


def test_large_bucket_is_linear():
    n = 200_000
    items = [(i.to_bytes(8, "big") + b"_" + bytes(8), b"v" * 64) for i in range(n)]
    t0 = time.perf_counter()
    data = _write({b"key": items})
    t1 = time.perf_counter()
    got = read_bbolt(data)
    t2 = time.perf_counter()
    assert got[b"key"] == items
    # generous bounds; both are linear (about 1-2 s per million keys here)
    assert t1 - t0 < 15 and t2 - t1 < 15


@pytest.mark.slow
def test_one_million_keys(tmp_path):
    n = 1_000_000
    items = [(i.to_bytes(8, "big") + b"_" + bytes(8), b"v" * 100) for i in range(n)]
    path = tmp_path / "db"
    write_bbolt(path, {b"key": items, b"meta": []})
    assert check_bbolt(path) == []
    with BboltReader(path) as r:
        count = sum(1 for _ in r.items(b"key"))
    assert count == n
