"""The write-ahead log: Raft entries, hard states and snapshot markers on disk.

Files.  A WAL is a directory of segments named ``%016x-%016x.wal`` (sequence
number, index of the first entry the segment may hold), like etcd.  The first
segment is ``0000000000000000-0000000000000000.wal``.  A segment is
preallocated to ``segment_size`` (64 MiB) with ``posix_fallocate`` (falling
back to ``ftruncate``), so appends inside it cannot hit ENOSPC and the unused
tail reads as zeros.  When a save leaves the segment at or past the size
limit, the segment is *cut*: the old file is truncated to its last record,
and a new one is built as ``<name>.tmp``, preallocated, given its opening
records, synced, renamed into place, and the directory is synced.

Records.  Frames, payloads and the chained CRC-32 are defined in
:mod:`pyetcd.storage.walcodec`.  Each segment starts with a CRC record
carrying the chain value, then a METADATA record (the caller's opaque bytes:
member and cluster id); the first segment then holds a SNAPSHOT marker
(0, 0), a later segment the last HARD_STATE (when not empty).  After that come
the ENTRY and HARD_STATE records of each :meth:`WAL.save` (entries first)
and SNAPSHOT markers from :meth:`WAL.save_snapshot`.

Reading.  ``WAL.open(dir, index, term)`` starts at the last segment whose
first index is <= ``index``; :meth:`WAL.read_all` returns the metadata, the
last hard state and the effective log after the snapshot: an entry whose
index is already in the log replaces it and everything after it (a new
leader overwrote an uncommitted tail).  The marker (index, term) must be
found.  A damaged frame at the end of the *last* segment that looks like a
torn write (see the codec) is cut off and the segment zeroed from there (as
etcd's ``wal.Repair``); any other damage raises :class:`WALCorruptError`
naming the file and offset: nothing in the middle is ever dropped.

What is synced when:

- ``create``: the first segment is fdatasync'ed in ``<dir>.tmp``, that
  directory fsync'ed, renamed to ``<dir>``, the parent directory fsync'ed.
- ``save(hard_state, entries, sync=True)``: one ``pwrite`` of all records and
  one ``fdatasync`` of the segment (group commit).  With ``sync=False`` (or
  nothing to save) no sync: the records survive a process crash but not a
  power loss until the next synced save, ``save_snapshot``, ``sync`` or
  ``close``.  A cut adds: old segment truncated + fdatasync; new segment
  fdatasync; directory fsync after the rename.
- ``save_snapshot``: one write + fdatasync, always.
- ``read_all``: when it repairs a torn tail, truncate + fdatasync.
- ``release_to``: unlinks, then a directory fsync.
- ``close``: fdatasync (unless the WAL has failed).

Errors.  An ``OSError`` from a write, sync, preallocation or cut becomes
:class:`WALWriteError`; the WAL is then *failed*: every later ``save``,
``save_snapshot`` and ``sync`` raises ``WALWriteError`` and nothing is ever
reported persisted that might not be.  Records written before a failed sync
may or may not be on disk; a reopen treats them like any unsynced write.

Concurrency.  One process per directory (an ``flock`` on the directory);
methods of one WAL are serialized by a lock, so ``save`` may run on a disk
thread while ``release_to`` runs elsewhere.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
import re
import shutil
import threading

from pyetcd.raft.types import EMPTY_HARD_STATE, Entry, HardState

from . import walcodec as codec
from .failpoints import (WAL_AFTER_CUT, WAL_AFTER_SYNC, WAL_BEFORE_CUT_RENAME,
                         WAL_BEFORE_SYNC, WAL_BEFORE_WRITE, failpoint)

log = logging.getLogger("pyetcd.wal")

SEGMENT_SIZE = 64 << 20
WARN_SYNC_DURATION = 1.0  # etcd's warnSyncDuration: a slower fdatasync is logged
_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")


class WALError(Exception):
    """Base class of WAL errors."""


class WALExistsError(WALError):
    pass


class WALLockedError(WALError):
    pass


class WALSnapshotError(WALError):
    """The requested snapshot marker is missing or has another term."""


class WALCorruptError(WALError):
    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"{path}: offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class WALWriteError(WALError):
    """Writing or syncing failed; the WAL refuses all further writes."""


def segment_name(seq: int, index: int) -> str:
    return f"{seq:016x}-{index:016x}.wal"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    m = _NAME.match(name)
    return (int(m.group(1), 16), int(m.group(2), 16)) if m else None


def list_segments(dirpath: str) -> list[tuple[int, int, str]]:
    """Sorted ``(seq, index, name)``; raises WALCorruptError on a broken sequence."""
    segs = sorted(p + (n,) for n in os.listdir(dirpath)
                  if (p := parse_segment_name(n)) is not None)
    for a, b in zip(segs, segs[1:]):
        if b[0] != a[0] + 1 or b[1] < a[1]:
            raise WALCorruptError(os.path.join(dirpath, b[2]), 0,
                                  f"segment sequence broken after {a[2]}")
    return segs


def exists(dirpath: str) -> bool:
    return os.path.isdir(dirpath) and bool(list_segments(dirpath))


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _preallocate(fd: int, size: int) -> None:
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        if os.fstat(fd).st_size < size:
            os.ftruncate(fd, size)


def _pwrite_all(fd: int, buf, offset: int) -> None:
    with memoryview(buf) as mv:
        done = os.pwrite(fd, mv, offset)
        while done < len(mv):  # short write: only near a full disk or on a signal
            n = os.pwrite(fd, mv[done:], offset + done)
            if n <= 0:
                raise OSError(errno.ENOSPC, "short write")
            done += n


def _lock_dir(dirpath: str) -> int:
    fd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WALLockedError(f"{dirpath}: WAL is in use by another process") from None
    return fd


def _opening_records(crc: int, metadata: bytes, tail: tuple[int, bytes]) -> tuple[bytearray, int]:
    buf, crc = codec.encode_record(codec.CRC, b"", crc)
    rec, crc = codec.encode_record(codec.METADATA, metadata, crc)
    buf += rec
    if tail[1]:
        rec, crc = codec.encode_record(tail[0], tail[1], crc)
        buf += rec
    return buf, crc


class WAL:
    """A write-ahead log directory; build with :meth:`create` or :meth:`open`."""

    def __init__(self, dirpath: str, segment_size: int) -> None:
        self.dir = dirpath
        self.segment_size = segment_size
        self.metadata = b""
        self._mu = threading.Lock()
        self._lock_fd = -1
        self._fd = -1
        self._segments: list[tuple[int, int, str]] = []
        self._start = 0              # position in _segments where reading begins
        self._snap = (0, 0)          # snapshot we were opened at
        self._offset = 0
        self._crc = 0
        self._state = EMPTY_HARD_STATE
        self._last_index = 0
        self._snap_mark = 0          # highest snapshot marker index in this WAL
        self._ready = False
        self._failed: BaseException | None = None
        self.on_fsync = None         # called with each group commit's fdatasync seconds

    # -- construction -------------------------------------------------------
    @classmethod
    def create(cls, dirpath: str, metadata: bytes, segment_size: int = SEGMENT_SIZE) -> "WAL":
        dirpath = os.path.abspath(dirpath)
        if exists(dirpath):
            raise WALExistsError(f"{dirpath}: a WAL already exists")
        parent = os.path.dirname(dirpath)
        os.makedirs(parent, exist_ok=True)
        tmp = dirpath + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        name = segment_name(0, 0)
        fd = os.open(os.path.join(tmp, name), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                     0o600)
        try:
            _preallocate(fd, segment_size)
            buf, crc = _opening_records(0, metadata, (codec.SNAPSHOT,
                                                      codec.encode_snapshot_marker(0, 0)))
            _pwrite_all(fd, buf, 0)
            os.fdatasync(fd)
            fsync_dir(tmp)
            os.rename(tmp, dirpath)  # replaces an empty directory
            fsync_dir(parent)
        except BaseException:
            os.close(fd)
            raise
        w = cls(dirpath, segment_size)
        w._lock_fd = _lock_dir(dirpath)
        w._fd, w._offset, w._crc, w.metadata = fd, len(buf), crc, bytes(metadata)
        w._segments = [(0, 0, name)]
        w._ready = True
        return w

    @classmethod
    def open(cls, dirpath: str, snapshot_index: int = 0, snapshot_term: int = 0,
             segment_size: int = SEGMENT_SIZE) -> "WAL":
        dirpath = os.path.abspath(dirpath)
        if not exists(dirpath):
            raise WALError(f"{dirpath}: no WAL segments")
        w = cls(dirpath, segment_size)
        w._lock_fd = _lock_dir(dirpath)
        try:
            w._segments = list_segments(dirpath)
        except BaseException:
            w.close()
            raise
        w._start = max((i for i, s in enumerate(w._segments) if s[1] <= snapshot_index),
                       default=0)
        w._snap = (snapshot_index, snapshot_term)
        return w

    # -- reading ------------------------------------------------------------
    def _path(self, seg: tuple[int, int, str]) -> str:
        return os.path.join(self.dir, seg[2])

    def read_all(self) -> tuple[bytes, HardState, list[Entry]]:
        """(metadata, last hard state, entries after the snapshot); then ready to append.

        On any error the WAL is closed (its lock released)."""
        with self._mu:
            if self._ready or self._lock_fd < 0:
                raise WALError("read_all() may be called once, right after open()")
            try:
                return self._read_all()
            except BaseException:
                self._close_locked()
                raise

    def _read_all(self) -> tuple[bytes, HardState, list[Entry]]:
        snap_index, snap_term = self._snap
        metadata: bytes | None = None
        state = EMPTY_HARD_STATE
        ents: list[Entry] = []
        matched = False
        crc = 0
        segs = self._segments[self._start:]
        for i, seg in enumerate(segs):
            path = self._path(seg)
            with open(path, "rb") as f:
                data = f.read()
            scan = codec.decode_segment(data, crc)
            for kind, value in scan.records:
                if kind == codec.ENTRY:
                    if value.index > snap_index:
                        pos = value.index - snap_index - 1
                        if pos > len(ents):
                            raise WALCorruptError(path, scan.end, (
                                f"entry index {value.index} leaves a gap after "
                                f"{snap_index + len(ents)}"))
                        del ents[pos:]
                        ents.append(value)
                    self._last_index = value.index
                elif kind == codec.HARD_STATE:
                    state = value
                elif kind == codec.METADATA:
                    if metadata is not None and value != metadata:
                        raise WALCorruptError(path, 0, "metadata conflicts with earlier segment")
                    metadata = value
                elif kind == codec.SNAPSHOT:
                    index, term = value
                    self._snap_mark = max(self._snap_mark, index)
                    if index == snap_index:
                        if term != snap_term:
                            raise WALSnapshotError(
                                f"{path}: snapshot marker {index} has term {term}, "
                                f"not {snap_term}")
                        matched = True
            crc = scan.crc
            err = scan.error
            if err is not None and not (err.torn and i == len(segs) - 1):
                raise WALCorruptError(path, err.offset, err.reason)
        if metadata is None:
            raise WALCorruptError(self._path(segs[0]), 0, "no metadata record")
        if not matched:
            raise WALSnapshotError(f"{self.dir}: no snapshot marker for index {snap_index} "
                                   f"term {snap_term}")
        self._open_tail(data, scan)
        self.metadata, self._state, self._crc = metadata, state, crc
        self._ready = True
        return metadata, state, ents

    def _open_tail(self, data: bytes, scan: codec.Scan) -> None:
        path = self._path(self._segments[-1])
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            if scan.error is not None or len(data.rstrip(b"\0")) > scan.end:
                log.warning("wal: repairing %s: cutting at offset %d (%s)", path, scan.end,
                            scan.error.reason if scan.error else "garbage after last record")
                os.ftruncate(fd, scan.end)
                os.fdatasync(fd)
            if os.fstat(fd).st_size < self.segment_size:
                _preallocate(fd, self.segment_size)
                os.fdatasync(fd)
            for name in os.listdir(self.dir):
                if name.endswith(".wal.tmp"):
                    os.remove(os.path.join(self.dir, name))
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._offset = fd, scan.end

    @staticmethod
    def valid_snapshot_entries(dirpath: str) -> list[tuple[int, int]]:
        """Snapshot markers (index, term) readable in the WAL with index <= the last commit.

        Read-only and lock-free: used at startup to pick the newest snapshot
        file that the WAL can be opened at (etcd's ValidSnapshotEntries).
        """
        marks: list[tuple[int, int]] = []
        state = EMPTY_HARD_STATE
        crc = 0
        for seg in list_segments(dirpath):
            with open(os.path.join(dirpath, seg[2]), "rb") as f:
                scan = codec.decode_segment(f.read(), crc)
            for kind, value in scan.records:
                if kind == codec.SNAPSHOT:
                    marks.append(value)
                elif kind == codec.HARD_STATE:
                    state = value
            crc = scan.crc
            if scan.error is not None:
                break
        return [m for m in marks if m[0] <= state.commit]

    # -- writing ------------------------------------------------------------
    def _check_writable(self) -> None:
        if self._failed is not None:
            raise WALWriteError(f"{self.dir}: WAL failed earlier: {self._failed}")
        if not self._ready:
            raise WALError("call read_all() before writing")

    def _fail(self, exc: OSError) -> None:
        self._failed = exc
        log.critical("wal: %s: write failed, refusing further writes: %s", self.dir, exc)
        raise WALWriteError(f"{self.dir}: {exc}") from exc

    def save(self, hard_state: HardState | None, entries, sync: bool = True) -> None:
        """Append ``entries`` then ``hard_state``: one write, and one fdatasync if ``sync``."""
        with self._mu:
            self._check_writable()
            if hard_state is None and not entries:
                return
            buf, crc = codec.encode_batch(hard_state, entries, self._crc)
            try:
                failpoint(WAL_BEFORE_WRITE)
                _pwrite_all(self._fd, buf, self._offset)
                failpoint(WAL_BEFORE_SYNC)
                if sync:
                    t0 = time.monotonic()
                    os.fdatasync(self._fd)
                    took = time.monotonic() - t0
                    if self.on_fsync is not None:
                        self.on_fsync(took)
                    if took > WARN_SYNC_DURATION:
                        log.warning("slow fdatasync; took=%.3fs expected-duration=%.0fs",
                                    took, WARN_SYNC_DURATION)
                failpoint(WAL_AFTER_SYNC)
            except OSError as exc:
                self._fail(exc)
            self._crc = crc
            self._offset += len(buf)
            if entries:
                self._last_index = entries[-1].index
            if hard_state is not None:
                self._state = hard_state
            if self._offset >= self.segment_size:
                self._cut()

    def save_snapshot(self, index: int, term: int) -> None:
        """Append a snapshot marker (index, term) and fdatasync."""
        with self._mu:
            self._check_writable()
            buf, crc = codec.encode_record(codec.SNAPSHOT,
                                           codec.encode_snapshot_marker(index, term), self._crc)
            try:
                _pwrite_all(self._fd, buf, self._offset)
                os.fdatasync(self._fd)
            except OSError as exc:
                self._fail(exc)
            self._crc = crc
            self._offset += len(buf)
            self._last_index = max(self._last_index, index)
            self._snap_mark = max(self._snap_mark, index)
            if self._offset >= self.segment_size:
                self._cut()

    def sync(self) -> None:
        with self._mu:
            self._check_writable()
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                self._fail(exc)

    def _cut(self) -> None:
        seq = self._segments[-1][0] + 1
        name = segment_name(seq, self._last_index + 1)
        final = os.path.join(self.dir, name)
        tmp = final + ".tmp"
        tail = (codec.HARD_STATE, b"" if self._state == EMPTY_HARD_STATE
                else codec.encode_hard_state(self._state))
        nfd = -1
        try:
            os.ftruncate(self._fd, self._offset)
            os.fdatasync(self._fd)
            if os.path.exists(tmp):
                os.remove(tmp)
            nfd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            _preallocate(nfd, self.segment_size)
            buf, crc = _opening_records(self._crc, self.metadata, tail)
            _pwrite_all(nfd, buf, 0)
            os.fdatasync(nfd)
            failpoint(WAL_BEFORE_CUT_RENAME)
            os.rename(tmp, final)
            fsync_dir(self.dir)
        except OSError as exc:
            if nfd >= 0:
                os.close(nfd)
            self._fail(exc)
        os.close(self._fd)
        self._fd, self._offset, self._crc = nfd, len(buf), crc
        self._segments.append((seq, self._last_index + 1, name))
        failpoint(WAL_AFTER_CUT)

    # -- compaction and shutdown -------------------------------------------
    def release_to(self, index: int) -> list[str]:
        """Delete segments holding only entries below ``index``; return their names.

        Call only once the backend durably holds the state up to ``index``.
        ``index`` is also capped at the newest snapshot marker in this WAL, so
        the WAL stays openable at that snapshot.  The segment containing
        ``index`` and the current segment are always kept.
        """
        with self._mu:
            index = min(index, self._snap_mark)
            keep = max((i for i, s in enumerate(self._segments) if s[1] <= index), default=0)
            gone = self._segments[:keep]
            if not gone:
                return []
            for seg in gone:
                os.remove(self._path(seg))
            self._segments = self._segments[keep:]
            self._start = max(0, self._start - keep)
            fsync_dir(self.dir)
            return [s[2] for s in gone]

    @property
    def segments(self) -> list[str]:
        return [s[2] for s in self._segments]

    @property
    def last_index(self) -> int:
        return self._last_index

    @property
    def failed(self) -> bool:
        return self._failed is not None

    def close(self) -> None:
        with self._mu:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._fd >= 0:
            try:
                if self._failed is None and self._ready:
                    os.fdatasync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        self._ready = False

    def __enter__(self) -> "WAL":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
