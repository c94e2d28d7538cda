"""The WAL on disk: segments, recovery, repair, corruption, release, I/O errors."""
from __future__ import annotations

import errno
import os

import pytest

from pyetcd.raft.types import EMPTY_HARD_STATE, Entry, HardState
from pyetcd.storage import wal as walmod
from pyetcd.storage.wal import (WAL, WALCorruptError, WALError, WALExistsError, WALLockedError,
                                WALSnapshotError, WALWriteError)

SEG = 4096


def ents(lo, hi, term=1, size=40):
    return [Entry(term, i, data=b"%d-" % i + b"x" * size) for i in range(lo, hi)]


def reopen(d, index=0, term=0):
    w = WAL.open(d, index, term, segment_size=SEG)
    return w, w.read_all()


@pytest.fixture
def d(tmp_path):
    return str(tmp_path / "member" / "wal")


def test_create_save_reopen(d):
    w = WAL.create(d, b"meta", segment_size=SEG)
    w.save(HardState(1, 1, 0), ents(1, 4))
    w.save(HardState(1, 1, 3), [])
    w.save(None, ents(4, 6), sync=False)
    w.close()
    w, (meta, hs, es) = reopen(d)
    assert meta == b"meta" and hs == HardState(1, 1, 3) and es == ents(1, 6)
    w.close()
    assert not os.path.exists(d + ".tmp")


def test_create_refuses_existing_and_lock_is_exclusive(d):
    w = WAL.create(d, b"m", segment_size=SEG)
    with pytest.raises(WALExistsError):
        WAL.create(d, b"m")
    with pytest.raises(WALLockedError):
        WAL.open(d)
    w.close()
    WAL.open(d).close()


def test_empty_wal_reads_empty(d):
    WAL.create(d, b"m").close()
    w, (meta, hs, es) = reopen(d)
    assert (meta, hs, es) == (b"m", EMPTY_HARD_STATE, [])
    with pytest.raises(WALError):
        w.read_all()
    w.close()


def test_overwritten_tail_is_replaced(d):
    w = WAL.create(d, b"m", segment_size=SEG)
    w.save(HardState(1, 1, 2), ents(1, 6, term=1))
    w.save(HardState(2, 2, 2), ents(4, 5, term=2))   # new leader: 4 replaces 4 and 5
    w.save(None, ents(5, 7, term=2))
    w.close()
    w, (_, hs, es) = reopen(d)
    assert es == ents(1, 4, term=1) + ents(4, 7, term=2) and hs == HardState(2, 2, 2)
    w.close()


def test_segments_cut_and_read_across(d):
    w = WAL.create(d, b"m", segment_size=SEG)
    for i in range(1, 301, 10):
        w.save(HardState(1, 1, i), ents(i, i + 10))
    names = w.segments
    w.close()
    assert len(names) > 5
    segs = walmod.list_segments(d)
    assert [s[0] for s in segs] == list(range(len(segs)))
    for (_, _, name), size in zip(segs[:-1], [os.path.getsize(os.path.join(d, s[2]))
                                              for s in segs[:-1]]):
        assert SEG <= size < 2 * SEG   # cut after the write that crossed the limit, truncated
    assert os.path.getsize(os.path.join(d, segs[-1][2])) >= SEG  # preallocated
    w, (_, hs, es) = reopen(d)
    assert es == ents(1, 301) and hs == HardState(1, 1, 291)
    # a segment's name holds the first index it may contain
    for seq, index, name in segs[1:]:
        assert es[index - 2].index == index - 1
    w.close()


def test_snapshot_marker_and_release(d):
    w = WAL.create(d, b"m", segment_size=SEG)
    for i in range(1, 301, 10):
        w.save(HardState(1, 1, i), ents(i, i + 10))
    w.save_snapshot(150, 1)
    before = w.segments
    assert w.release_to(250) != []           # capped at the snapshot marker, 150
    after = w.segments
    segs = {s[2]: s[1] for s in walmod.list_segments(d)}
    assert min(segs.values()) <= 150 and len(after) < len(before)
    assert sorted(os.listdir(d)) == after
    w.save(None, ents(301, 305))
    w.close()
    w, (_, hs, es) = reopen(d, 150, 1)
    assert es == ents(151, 305)
    w.close()
    with pytest.raises(WALSnapshotError):
        reopen(d, 150, 2)
    with pytest.raises(WALSnapshotError):
        reopen(d, 140, 1)


def test_release_keeps_segment_containing_index(d):
    w = WAL.create(d, b"m", segment_size=SEG)
    for i in range(1, 201, 10):
        w.save(HardState(1, 1, i), ents(i, i + 10))
    w.save_snapshot(200, 1)
    segs = walmod.list_segments(d)
    target = segs[3][1] + 1                  # an index inside segment 3
    w.release_to(target)
    assert walmod.list_segments(d)[0] == segs[3]
    w.release_to(10**9)                       # capped at the marker (200): last kept
    assert w.segments[-1] == segs[-1][2]
    w.close()


def _last_segment(d):
    return os.path.join(d, walmod.list_segments(d)[-1][2])


@pytest.mark.parametrize("cut_back,kept", [(1, 5), (7, 5), (30, 5), (48, 5), (49, 4), (100, 4)])
def test_torn_tail_is_repaired(d, cut_back, kept):
    w = WAL.create(d, b"m", segment_size=SEG)
    w.save(HardState(1, 1, 0), ents(1, 5))
    w.close()
    path = _last_segment(d)
    # the file as a crash left it: the last record's bytes only partly written
    w, (_, _, es) = reopen(d)
    end = w._offset
    w.close()
    with open(path, "r+b") as f:
        f.seek(end - cut_back)
        f.write(bytes(cut_back))
    w, (_, hs, es) = reopen(d)
    # the hard state's frame (48 bytes) was last: gone; then the last entry's
    assert hs == EMPTY_HARD_STATE and es == ents(1, kept)
    w.save(HardState(1, 1, 4), ents(kept, kept + 1))
    w.close()
    w, (_, hs, es) = reopen(d)
    assert hs == HardState(1, 1, 4) and es == ents(1, kept + 1)
    w.close()


def test_truncated_file_is_repaired(d):
    w = WAL.create(d, b"m", segment_size=SEG)
    w.save(None, ents(1, 5))
    end = w._offset
    w.close()
    os.truncate(_last_segment(d), end - 20)
    w, (_, _, es) = reopen(d)
    assert es == ents(1, 4)
    w.save(None, ents(4, 6))
    w.close()
    w, (_, _, es) = reopen(d)
    assert es == ents(1, 6)
    w.close()


def test_flip_in_middle_of_last_segment_is_corruption(d):
    w = WAL.create(d, b"m", segment_size=SEG)
    w.save(None, ents(1, 10))
    w.close()
    path = _last_segment(d)
    with open(path, "r+b") as f:
        f.seek(300)
        b = f.read(1)
        f.seek(300)
        f.write(bytes([b[0] ^ 0x10]))
    with pytest.raises(WALCorruptError) as ei:
        reopen(d)
    assert ei.value.path == path and 0 < ei.value.offset <= 300
    assert path in str(ei.value) and str(ei.value.offset) in str(ei.value)


def test_flip_in_older_segment_is_corruption_even_at_its_end(d):
    w = WAL.create(d, b"m", segment_size=SEG)
    for i in range(1, 201, 10):
        w.save(None, ents(i, i + 10))
    w.close()
    segs = walmod.list_segments(d)
    path = os.path.join(d, segs[1][2])
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 3)                 # a "torn" end is not torn in the middle of the log
    with pytest.raises(WALCorruptError) as ei:
        reopen(d)
    assert ei.value.path == path


def test_gap_in_segments_is_corruption(d):
    w = WAL.create(d, b"m", segment_size=SEG)
    for i in range(1, 201, 10):
        w.save(None, ents(i, i + 10))
    w.close()
    os.remove(os.path.join(d, walmod.list_segments(d)[2][2]))
    with pytest.raises(WALCorruptError):
        reopen(d)


def test_garbage_after_torn_header_is_cleared(d):
    """Out-of-order persistence: the header's sector was lost, later bytes were not."""
    w = WAL.create(d, b"m", segment_size=SEG)
    w.save(None, ents(1, 3))
    end = w._offset
    w.save(None, ents(3, 6))
    w.close()
    path = _last_segment(d)
    with open(path, "r+b") as f:
        f.seek(end)
        f.write(bytes(16))
    w, (_, _, es) = reopen(d)
    assert es == ents(1, 3)
    w.save(None, ents(3, 4, term=2))
    w.close()
    w, (_, _, es) = reopen(d)
    assert es == ents(1, 3) + ents(3, 4, term=2)
    w.close()


def test_io_error_fails_the_wal(d, monkeypatch):
    w = WAL.create(d, b"m", segment_size=SEG)
    w.save(HardState(1, 1, 1), ents(1, 3))

    def boom(fd):
        raise OSError(errno.EIO, "injected")
    monkeypatch.setattr(walmod.os, "fdatasync", boom)
    with pytest.raises(WALWriteError):
        w.save(None, ents(3, 4))
    monkeypatch.undo()
    assert w.failed
    for call in (lambda: w.save(None, ents(3, 4)), lambda: w.save_snapshot(2, 1), w.sync):
        with pytest.raises(WALWriteError):
            call()
    w.close()
    w, (_, hs, es) = reopen(d)
    assert es[:2] == ents(1, 3) and hs == HardState(1, 1, 1)
    w.close()


def test_enospc_on_write(d, monkeypatch):
    w = WAL.create(d, b"m", segment_size=SEG)
    real = os.pwrite

    def short_then_full(fd, buf, off):
        real(fd, bytes(buf)[:10], off)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(walmod.os, "pwrite", short_then_full)
    with pytest.raises(WALWriteError):
        w.save(HardState(1, 1, 0), ents(1, 3))
    monkeypatch.undo()
    with pytest.raises(WALWriteError):
        w.save(None, ents(1, 2))
    w.close()
    w, (_, hs, es) = reopen(d)                 # the partial record was torn: repaired
    assert es == [] and hs == EMPTY_HARD_STATE
    w.close()


def test_valid_snapshot_entries(d):
    w = WAL.create(d, b"m", segment_size=SEG)
    w.save(HardState(1, 1, 5), ents(1, 10))
    w.save_snapshot(5, 1)
    w.save_snapshot(8, 1)                     # not committed yet: not valid
    w.close()
    assert WAL.valid_snapshot_entries(d) == [(0, 0), (5, 1)]


def test_fsync_is_timed_and_a_slow_one_is_logged(d, monkeypatch, caplog):
    """Every group commit's fdatasync goes to the on_fsync observer (the
    etcd_disk_wal_fsync_duration_seconds histogram); one over a second is
    logged as etcd logs it."""
    w = WAL.create(d, b"meta")
    seen = []
    w.on_fsync = seen.append
    w.save(HardState(1, 1, 0), ents(1, 3))
    assert len(seen) == 1 and 0 <= seen[0] < 1.0
    w.save(HardState(1, 1, 2), ents(3, 4), sync=False)
    assert len(seen) == 1  # an unsynced save has no fsync to time
    clock = iter([100.0, 101.5])
    monkeypatch.setattr(walmod.time, "monotonic", lambda: next(clock))
    with caplog.at_level("WARNING", logger="pyetcd.wal"):
        w.save(HardState(1, 1, 3), ents(4, 5))
    assert seen[-1] == 1.5
    assert any("slow fdatasync" in r.getMessage() and "took=1.500s" in r.getMessage()
               for r in caplog.records)
    w.close()
