"""Raft snapshot files: ``%016x-%016x.snap`` (term, index) in the snap directory.

File layout (little-endian)::

    8   magic  b"PYSNAP01"
    4   crc    CRC-32 (zlib) of everything after this field
    8   index
    8   term
    4   number of voters V, 4 number of learners L
    8*V voters, 8*L learners
    ... snapshot data (to the end of the file)

:meth:`Snapshotter.save` writes ``<name>.tmp``, fsyncs it, renames it into
place and fsyncs the directory, so a crash leaves either no file or a whole
one.  :meth:`Snapshotter.load_newest` tries files newest first and renames a
file that fails its checks to ``<name>.broken`` (as etcd does), falling back
to the next.  Other files in the directory (the backend's ``db``) are never
touched.
"""
from __future__ import annotations

import logging
import os
import re
import struct
from zlib import crc32

from pyetcd.raft.types import ConfState, Snapshot, SnapshotMetadata

from .failpoints import SNAP_BEFORE_RENAME, failpoint
from .wal import fsync_dir

log = logging.getLogger("pyetcd.snap")

MAGIC = b"PYSNAP01"
_HEAD = struct.Struct("<8sI")
_META = struct.Struct("<QQII")
_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.snap$")


class SnapshotError(Exception):
    pass


def snap_name(term: int, index: int) -> str:
    return f"{term:016x}-{index:016x}.snap"


def encode_snapshot(s: Snapshot) -> bytes:
    md = s.metadata
    cs = md.conf_state
    body = b"".join((_META.pack(md.index, md.term, len(cs.voters), len(cs.learners)),
                     struct.pack(f"<{len(cs.voters)}Q", *cs.voters),
                     struct.pack(f"<{len(cs.learners)}Q", *cs.learners), s.data))
    return _HEAD.pack(MAGIC, crc32(body)) + body


def decode_snapshot(buf: bytes) -> Snapshot:
    if len(buf) < _HEAD.size + _META.size:
        raise SnapshotError("file too short")
    magic, crc = _HEAD.unpack_from(buf)
    if magic != MAGIC:
        raise SnapshotError("bad magic")
    with memoryview(buf) as mv:
        if crc32(mv[_HEAD.size:]) != crc:
            raise SnapshotError("crc mismatch")
    index, term, nv, nl = _META.unpack_from(buf, _HEAD.size)
    p = _HEAD.size + _META.size
    if p + 8 * (nv + nl) > len(buf):
        raise SnapshotError("conf state past end of file")
    voters = struct.unpack_from(f"<{nv}Q", buf, p)
    learners = struct.unpack_from(f"<{nl}Q", buf, p + 8 * nv)
    data = buf[p + 8 * (nv + nl):]
    return Snapshot(data, SnapshotMetadata(ConfState(voters, learners), index, term))


class Snapshotter:
    def __init__(self, dirpath: str) -> None:
        self.dir = os.path.abspath(dirpath)
        os.makedirs(self.dir, exist_ok=True)
        for n in os.listdir(self.dir):  # left by a crash during save()
            if n.endswith(".snap.tmp"):
                os.remove(os.path.join(self.dir, n))

    def names(self) -> list[str]:
        """Snapshot file names, oldest first (ordered by term, then index)."""
        return sorted(n for n in os.listdir(self.dir) if _NAME.match(n))

    def save(self, snapshot: Snapshot) -> str:
        """Write ``snapshot`` durably; returns its path.  Empty snapshots are refused."""
        if snapshot.metadata.index == 0:
            raise SnapshotError("refusing to save an empty snapshot (index 0)")
        name = snap_name(snapshot.metadata.term, snapshot.metadata.index)
        path = os.path.join(self.dir, name)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            with memoryview(encode_snapshot(snapshot)) as mv:
                done = 0
                while done < len(mv):
                    done += os.write(fd, mv[done:])
            os.fsync(fd)
        finally:
            os.close(fd)
        failpoint(SNAP_BEFORE_RENAME)
        os.rename(tmp, path)
        fsync_dir(self.dir)
        return path

    def load(self, name: str) -> Snapshot:
        path = os.path.join(self.dir, name)
        with open(path, "rb") as f:
            snap = decode_snapshot(f.read())
        m = _NAME.match(name)
        if m is None or (int(m.group(1), 16), int(m.group(2), 16)) != (snap.term, snap.index):
            raise SnapshotError(f"{name}: name does not match term {snap.term} index {snap.index}")
        return snap

    def load_newest(self, allowed=None) -> Snapshot | None:
        """The newest valid snapshot, or None.  Broken files are renamed ``*.broken``.

        ``allowed``: optional collection of (index, term) pairs (e.g.
        :meth:`WAL.valid_snapshot_entries`); other snapshots are skipped
        (left in place) so the WAL can always be opened at the result.
        """
        allow = None if allowed is None else {(int(i), int(t)) for i, t in allowed}
        for name in reversed(self.names()):
            try:
                snap = self.load(name)
            except (SnapshotError, struct.error, OSError) as exc:
                log.warning("snap: %s is broken (%s); renaming to .broken", name, exc)
                try:
                    os.rename(os.path.join(self.dir, name),
                              os.path.join(self.dir, name + ".broken"))
                except OSError:
                    pass
                continue
            if allow is None or (snap.index, snap.term) in allow:
                return snap
        return None

    def purge(self, keep: int = 5) -> list[str]:
        """Delete all but the ``keep`` newest snapshot files; return their names."""
        names = self.names()
        gone = names[:max(0, len(names) - keep)]
        for n in gone:
            os.remove(os.path.join(self.dir, n))
        if gone:
            fsync_dir(self.dir)
        return gone
