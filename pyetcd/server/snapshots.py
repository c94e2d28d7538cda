"""Raft snapshots: creating them, the file sent with one, installing one.

- Create: every ``--snapshot-count`` applied entries the member records a
  Raft snapshot at its applied index and drops the log before it (keeping
  ``--experimental-snapshot-catchup-entries`` so slightly slow followers
  catch up without a full snapshot).  What the backend holds up to that
  index is synced to disk first: the log that could rebuild it is about to
  go.  The snapshot's data is empty: the backend *is* the state.
- Send: a follower too far behind gets the leader's backend (a compacted
  LMDB copy, :meth:`Backend.snapshot_copy`) streamed beside the snapshot
  message by the peer transport.
- Install: the received backend file replaces this member's (the server
  then reopens its state on it).
"""
from __future__ import annotations

import asyncio
import logging
import os
import struct

from pyetcd.peer.transport import SNAPSHOT_IN_FILE, received_snapshot
from pyetcd.cluster.member import Member
from pyetcd.raft.types import ConfState, Snapshot, SnapshotMetadata
from pyetcd.storage import schema
from pyetcd.storage.backend import Backend
from pyetcd.storage.snap import Snapshotter
from pyetcd.util.tasks import spawn

log = logging.getLogger("pyetcd.snapshots")
_U64 = struct.Struct(">Q")


class RaftSnapshots:
    """``server``: the member (its ``applied_index``, ``raft`` node, current
    ``backend`` and config)."""

    def __init__(self, server, snapshotter: Snapshotter, storage, snap_index: int):
        self.s = server
        self.snapshotter = snapshotter
        self.storage = storage
        self.snap_index = snap_index
        self.busy = False

    @property
    def dir(self) -> str:
        return self.snapshotter.dir

    def maybe_create(self) -> None:
        """Start a snapshot when ``--snapshot-count`` entries were applied
        since the last one (and none is being made)."""
        applied = self.s.applied_index
        if applied - self.snap_index < self.s.cfg.snapshot_count or self.busy:
            return
        self.busy = True
        spawn(self._create(applied), log, f"raft snapshot at {applied}")

    async def _create(self, index: int) -> None:
        s = self.s
        try:
            backend = s.backend
            ops, _ = await asyncio.wrap_future(backend.commit())
            backend.release(ops)
            await asyncio.get_running_loop().run_in_executor(None, backend.sync)
            try:
                snap = self.storage.create_snapshot(index, s.raft.conf_state(), b"")
            except Exception as exc:  # noqa: BLE001 - out of date or unavailable: skip
                log.debug("skipping snapshot at %d: %s", index, exc)
                return
            if s.raft.wal is not None:
                await s.raft.save_snapshot(snap)
            compact_to = index - s.cfg.experimental_snapshot_catchup_entries
            if compact_to > self.storage.first_index():
                self.storage.compact(compact_to)
            self.snap_index = index
            log.info("saved snapshot at index %d; compacted the raft log to %d", index,
                     max(compact_to, 0))
        finally:
            self.busy = False

    def file_to_send(self) -> tuple[str, SnapshotMetadata | None]:
        """A copy of the backend for a follower (removed once sent) and the
        snapshot metadata that describes it: its applied index and term and
        the configuration at that index (etcd's merged snapshot message).
        The follower's Raft log then starts where its new backend is, so no
        entry it already holds in the backend (a conf change among them) is
        delivered to it again."""
        return self.s.backend.snapshot_copy(self.dir, describe=_describe)

    def received_file(self, snap: Snapshot) -> str | None:
        """The backend file that came with ``snap`` (None: the snapshot
        carries no state of its own)."""
        if snap.data != SNAPSHOT_IN_FILE:
            return None
        return received_snapshot(self.dir, snap.metadata.index)

    def install(self, db_path: str, source: str, index: int) -> None:
        """Put the received backend file in place (the backend is closed)."""
        log.info("installing a snapshot at index %d (%d bytes) from the leader", index,
                 os.path.getsize(source))
        Backend.install(db_path, source)
        self.snap_index = index


def _describe(view) -> SnapshotMetadata | None:
    """Index, term and configuration of a backend copy (read in its own
    read transaction; None for a backend that applied nothing)."""
    ci = view.get(schema.META, schema.CONSISTENT_INDEX)
    term = view.get(schema.META, schema.TERM)
    if not ci or not term:
        return None
    voters, learners = [], []
    for _, v in view.cursor(schema.MEMBERS):
        m = Member.from_json(v)
        (learners if m.is_learner else voters).append(m.id)
    return SnapshotMetadata(ConfState(tuple(sorted(voters)), tuple(sorted(learners))),
                            _U64.unpack(ci)[0], _U64.unpack(term)[0])
