"""The Storage protocol the core reads its persisted log from, and MemoryStorage.

Rules:
- Storage is read by the core and written by the application: the core
  never calls append/compact/apply_snapshot; the application does, when
  it persists a Ready (see ``types.Ready``).
- Index ``first_index() - 1`` is the "dummy" position of the last snapshot:
  its term is still known, its entry is not.
- ``entries(lo, hi, max_size)`` returns at least one entry when lo < hi.
"""
from __future__ import annotations

from typing import Protocol, Sequence

from .types import (EMPTY_HARD_STATE, ConfState, Entry, HardState, Snapshot,
                    SnapshotMetadata)


class StorageError(Exception):
    pass


class Compacted(StorageError):
    """The requested index precedes the first available entry."""


class Unavailable(StorageError):
    """The requested index is beyond the last available entry."""


class SnapshotOutOfDate(StorageError):
    """The snapshot is older than the one already held."""


class SnapshotTemporarilyUnavailable(StorageError):
    """The snapshot cannot be produced right now; the core retries later."""


class Storage(Protocol):
    def initial_state(self) -> tuple[HardState, ConfState]: ...
    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]: ...
    def term(self, i: int) -> int: ...
    def first_index(self) -> int: ...
    def last_index(self) -> int: ...
    def snapshot(self) -> Snapshot: ...


def limit_size(ents: list[Entry], max_size: int | None) -> list[Entry]:
    """Longest prefix within max_size bytes, but never fewer than one entry."""
    if max_size is None or len(ents) <= 1:
        return ents
    size = 0
    for n, e in enumerate(ents):
        size += len(e.data) + 16
        if size > max_size and n > 0:
            return ents[:n]
    return ents


class MemoryStorage:
    """Storage kept in a Python list; ``_ents[0]`` is the snapshot dummy entry."""

    __slots__ = ("_hard_state", "_snapshot", "_ents")

    def __init__(self) -> None:
        self._hard_state = EMPTY_HARD_STATE
        self._snapshot = Snapshot()
        self._ents: list[Entry] = [Entry(0, 0)]

    # -- read side (used by the core) -------------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.metadata.conf_state

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        offset = self._ents[0].index
        if lo <= offset:
            raise Compacted(lo)
        if hi > self.last_index() + 1:
            raise Unavailable(hi)
        return limit_size(self._ents[lo - offset:hi - offset], max_size)

    def term(self, i: int) -> int:
        offset = self._ents[0].index
        if i < offset:
            raise Compacted(i)
        if i - offset >= len(self._ents):
            raise Unavailable(i)
        return self._ents[i - offset].term

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    # -- write side (used by the application) ----------------------------------------
    def set_hard_state(self, hs: HardState) -> None:
        self._hard_state = hs

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log by ``snap`` (a follower catching up)."""
        if snap.metadata.index < self._snapshot.metadata.index:
            raise SnapshotOutOfDate(snap.metadata.index)
        self._snapshot = snap
        self._ents = [Entry(snap.metadata.term, snap.metadata.index)]

    def create_snapshot(self, i: int, cs: ConfState | None, data: bytes) -> Snapshot:
        """Record a snapshot of the applied state at index ``i`` (does not compact)."""
        if i <= self._snapshot.metadata.index:
            raise SnapshotOutOfDate(i)
        if i > self.last_index():
            raise Unavailable(i)
        if cs is None:
            cs = self._snapshot.metadata.conf_state
        offset = self._ents[0].index
        meta = SnapshotMetadata(cs, i, self._ents[i - offset].term)
        self._snapshot = Snapshot(data, meta)
        return self._snapshot

    def compact(self, compact_index: int) -> None:
        """Discard entries before ``compact_index``; it becomes the dummy entry."""
        offset = self._ents[0].index
        if compact_index <= offset:
            raise Compacted(compact_index)
        if compact_index > self.last_index():
            raise Unavailable(compact_index)
        i = compact_index - offset
        self._ents = [Entry(self._ents[i].term, compact_index)] + self._ents[i + 1:]

    def append(self, entries: Sequence[Entry]) -> None:
        """Append, truncating any conflicting suffix first."""
        if not entries:
            return
        first = self.first_index()
        last = entries[-1].index
        if last < first:
            return  # entirely compacted already
        if first > entries[0].index:
            entries = entries[first - entries[0].index:]
        offset = entries[0].index - self._ents[0].index
        n = len(self._ents)
        if n > offset:
            del self._ents[offset:]
            self._ents.extend(entries)
        elif n == offset:
            self._ents.extend(entries)
        else:
            raise Unavailable(f"missing log entry [last: {self.last_index()}, "
                              f"append at: {entries[0].index}]")


def bootstrap(storage: MemoryStorage, voters: Sequence[int],
              learners: Sequence[int] = ()) -> None:
    """Initialise a brand-new cluster member's storage with the first config.

    The config is recorded as a snapshot at index 1, term 1; members added
    later start with empty storage and receive a snapshot from the leader.
    """
    cs = ConfState(tuple(sorted(voters)), tuple(sorted(learners)))
    storage.apply_snapshot(Snapshot(b"", SnapshotMetadata(cs, 1, 1)))
    storage.set_hard_state(HardState(term=1, vote=0, commit=1))
