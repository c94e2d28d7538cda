"""Raft snapshot files: save, load the newest valid one, purge."""
from __future__ import annotations

import os

import pytest

from pyetcd.raft.types import ConfState, Snapshot, SnapshotMetadata
from pyetcd.storage.snap import SnapshotError, Snapshotter, decode_snapshot, encode_snapshot


def snap(index, term=1, data=b"state"):
    return Snapshot(data + b"%d" % index, SnapshotMetadata(ConfState((1, 2, 3), (4,)), index, term))


def test_round_trip_and_newest(tmp_path):
    ss = Snapshotter(str(tmp_path))
    assert ss.load_newest() is None
    for i in (10, 30, 20):
        ss.save(snap(i))
    assert ss.load_newest() == snap(30)
    assert decode_snapshot(encode_snapshot(snap(7))) == snap(7)
    with pytest.raises(SnapshotError):
        ss.save(Snapshot())


def test_broken_newest_is_renamed_and_skipped(tmp_path):
    ss = Snapshotter(str(tmp_path))
    ss.save(snap(10))
    p = ss.save(snap(20))
    with open(p, "r+b") as f:
        f.seek(30)
        b = f.read(1)
        f.seek(30)
        f.write(bytes([b[0] ^ 1]))
    assert ss.load_newest() == snap(10)
    assert os.path.exists(p + ".broken") and not os.path.exists(p)
    open(os.path.join(tmp_path, "0000000000000009-0000000000000099.snap"), "wb").close()
    assert ss.load_newest() == snap(10)


def test_allowed_filter(tmp_path):
    ss = Snapshotter(str(tmp_path))
    ss.save(snap(10))
    ss.save(snap(20))
    assert ss.load_newest(allowed=[(10, 1), (0, 0)]) == snap(10)
    assert ss.load_newest(allowed=[]) is None


def test_purge_keeps_newest_and_leaves_other_files(tmp_path):
    ss = Snapshotter(str(tmp_path))
    (tmp_path / "db").write_bytes(b"lmdb")
    for i in range(1, 9):
        ss.save(snap(i * 10))
    gone = ss.purge(keep=3)
    assert len(gone) == 5
    assert ss.names() == [f"{1:016x}-{i * 10:016x}.snap" for i in (6, 7, 8)]
    assert (tmp_path / "db").read_bytes() == b"lmdb"
    assert ss.load_newest() == snap(80)


def test_stale_tmp_removed_on_start(tmp_path):
    (tmp_path / "0000000000000001-0000000000000005.snap.tmp").write_bytes(b"half")
    ss = Snapshotter(str(tmp_path))
    assert os.listdir(tmp_path) == [] and ss.load_newest() is None
