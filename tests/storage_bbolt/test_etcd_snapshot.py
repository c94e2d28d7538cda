"""etcd snapshot helpers (sha256 trailer, status figures, schema) without binaries."""
from __future__ import annotations

import hashlib
import io
import json
import os

import pytest

from pyetcd.pb.mvccpb import kv_pb2
from pyetcd.storage.bbolt import read_bbolt, write_bbolt
from pyetcd.storage.etcd_snapshot import (ETCD_BUCKETS, append_sha256, crc32c, db_size_of,
                                          etcd_buckets, has_checksum, parse_revision_key,
                                          revision_key, snapshot_stats,
                                          snapshot_storage_version, verify_sha256,
                                          write_snapshot)


def test_crc32c_vectors():
    assert crc32c(b"123456789") == 0xE3069283          # the standard check value
    assert crc32c(b"") == 0
    data = os.urandom(5000)
    assert crc32c(data[3000:], crc32c(data[:3000])) == crc32c(data)
    assert crc32c(b"\0" * 32) == 0x8A9136AA           # RFC 3720 B.4


def test_revision_keys():
    k = revision_key(5, 3)
    assert k == b"\0" * 7 + b"\x05_" + b"\0" * 7 + b"\x03" and len(k) == 17
    assert parse_revision_key(k) == (5, 3, False)
    assert parse_revision_key(revision_key(7, 0, tombstone=True)) == (7, 0, True)
    with pytest.raises(ValueError):
        parse_revision_key(b"short")


def test_sha256_trailer(tmp_path):
    path = tmp_path / "s.db"
    with open(path, "w+b") as f:
        write_bbolt(f, {b"key": [(b"a", b"b")]})
        digest = append_sha256(f)
    data = path.read_bytes()
    assert data[-32:] == digest == hashlib.sha256(data[:-32]).digest()
    assert has_checksum(len(data)) and len(data) % 512 == 32
    assert verify_sha256(path) and db_size_of(path) == len(data) - 32
    # a flipped byte in the db part is detected
    bad = bytearray(data)
    bad[5000] ^= 1
    (tmp_path / "bad").write_bytes(bytes(bad))
    assert not verify_sha256(tmp_path / "bad")
    # without a trailer
    (tmp_path / "plain").write_bytes(data[:-32])
    assert not verify_sha256(tmp_path / "plain") and db_size_of(tmp_path / "plain") == len(data) - 32
    with pytest.raises(ValueError):
        append_sha256(io.BytesIO(b"x" * 100))


def test_write_snapshot_streams_the_same_bytes(tmp_path):
    buckets = etcd_buckets([(2, 0, b"kv", False)], consistent_index=9, term=2)
    with open(tmp_path / "a", "w+b") as f:
        write_bbolt(f, buckets)
        append_sha256(f)

    class Sink:
        def __init__(self):
            self.parts = []

        def write(self, b):
            self.parts.append(bytes(b))

    s = Sink()
    n = write_snapshot(s, buckets)
    assert b"".join(s.parts) == (tmp_path / "a").read_bytes() and n % 512 == 32
    write_snapshot(tmp_path / "b", buckets)
    assert verify_sha256(tmp_path / "b")


def test_etcd_buckets_layout():
    kv = kv_pb2.KeyValue(key=b"k", value=b"v", create_revision=2, mod_revision=2, version=1)
    b = etcd_buckets([(2, 0, kv.SerializeToString(), False),
                      (3, 0, kv_pb2.KeyValue(key=b"k").SerializeToString(), True)],
                     consistent_index=12, term=3, compact_revision=2,
                     extra={b"lease": [(b"\0" * 8, b"x")], b"meta": [(b"confState", b"{}")]})
    assert set(b) == set(ETCD_BUCKETS)
    assert [k for k, _ in b[b"key"]] == [revision_key(2, 0), revision_key(3, 0, True)]
    meta = dict(b[b"meta"])
    assert meta[b"consistent_index"] == (12).to_bytes(8, "big")
    assert meta[b"term"] == (3).to_bytes(8, "big")
    assert meta[b"finishedCompactRev"] == revision_key(2) == meta[b"scheduledCompactRev"]
    assert meta[b"confState"] == b"{}"
    assert b[b"lease"] == [(b"\0" * 8, b"x")]


def test_snapshot_stats_semantics(tmp_path):
    kv = lambda k, v, r: kv_pb2.KeyValue(key=k, value=v, mod_revision=r).SerializeToString()
    revs = [(2, 0, kv(b"a", b"1", 2), False), (2, 1, kv(b"b", b"1", 2), False),
            (3, 0, kv(b"a", b"2", 3), False), (4, 0, kv_pb2.KeyValue(key=b"b").SerializeToString(), True)]
    buckets = etcd_buckets(revs, consistent_index=4, term=2,
                           extra={b"meta": [(b"storageVersion", b"3.6.0")]})
    path = tmp_path / "s"
    write_snapshot(path, buckets)
    st = snapshot_stats(path)
    # 3.5: every entry of every bucket (4 revisions + 3 meta keys), last main revision
    assert (st.revision, st.total_key) == (4, 7)
    assert st.total_size == os.path.getsize(path) - 32
    # the hash is crc32c over bucket names, keys and values in bbolt order
    acc = b""
    for name, items in sorted(read_bbolt(path).items()):
        acc += name + b"".join(k + v for k, v in items)
    assert st.hash == crc32c(acc)
    assert json.loads(st.to_json()) == {"hash": st.hash, "revision": 4, "totalKey": 7,
                                        "totalSize": st.total_size}
    assert snapshot_stats(path, mode="3.6").total_key == 1          # only "a" is live
    assert snapshot_storage_version(path) == "3.6.0"
    assert '"version":"3.6.0"' in st.to_json(version="3.6.0")
