"""The Raft log: stable entries (Storage) followed by unstable ones (memory).

Rules:
- ``Unstable`` holds what the core has accepted but the application has not
  yet persisted: an optional incoming snapshot and entries from ``offset``.
- ``committed`` never decreases and never exceeds the last index;
  ``applied <= committed`` always.
- A committed entry is never truncated (asserted in ``append``).
"""
from __future__ import annotations

from typing import Sequence

from .storage import Compacted, Storage, Unavailable, limit_size
from .types import Entry, Snapshot


class Unstable:
    __slots__ = ("snapshot", "entries", "offset")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        if self.snapshot is not None:
            return self.snapshot.metadata.index + 1
        return None

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            snap = self.snapshot
            if snap is not None and snap.metadata.index == i:
                return snap.metadata.term
            return None
        k = i - self.offset
        if k < len(self.entries):
            return self.entries[k].term
        if not self.entries and self.snapshot is not None and self.snapshot.metadata.index == i:
            return self.snapshot.metadata.term
        return None

    def stable_to(self, i: int, t: int) -> None:
        if i < self.offset:
            return
        k = i - self.offset
        if k >= len(self.entries) or self.entries[k].term != t:
            return  # the entries were replaced meanwhile; they stay unstable
        del self.entries[:k + 1]
        self.offset = i + 1

    def stable_snap_to(self, i: int) -> None:
        if self.snapshot is not None and self.snapshot.metadata.index == i:
            self.snapshot = None

    def restore(self, s: Snapshot) -> None:
        self.offset = s.metadata.index + 1
        self.entries = []
        self.snapshot = s

    def truncate_and_append(self, ents: Sequence[Entry]) -> None:
        after = ents[0].index
        n = len(self.entries)
        if after == self.offset + n:
            self.entries.extend(ents)
        elif after <= self.offset:
            self.offset = after
            self.entries = list(ents)
        else:
            self.entries = self.entries[:after - self.offset]
            self.entries.extend(ents)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        return self.entries[lo - self.offset:hi - self.offset]


class RaftLog:
    __slots__ = ("storage", "unstable", "committed", "applied", "max_next_ents_size")

    def __init__(self, storage: Storage, max_next_ents_size: int | None = None) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        self.committed = first - 1
        self.applied = first - 1
        self.max_next_ents_size = max_next_ents_size

    def __repr__(self) -> str:
        return (f"RaftLog(committed={self.committed}, applied={self.applied}, "
                f"unstable.offset={self.unstable.offset}, "
                f"len(unstable)={len(self.unstable.entries)})")

    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        u = self.unstable
        if u.entries:
            return u.offset + len(u.entries) - 1
        if u.snapshot is not None:
            return u.snapshot.metadata.index
        return self.storage.last_index()

    def last_term(self) -> int:
        return self.term(self.last_index())

    def term(self, i: int) -> int:
        """Term of entry i; raises Compacted/Unavailable outside the log."""
        u = self.unstable
        k = i - u.offset
        if 0 <= k < len(u.entries):
            return u.entries[k].term
        t = u.maybe_term(i)
        if t is not None:
            return t
        if i > self.last_index():
            raise Unavailable(i)
        if i < self.first_index() - 1:
            raise Compacted(i)
        return self.storage.term(i)

    def zero_term_on_compacted(self, i: int) -> int:
        try:
            return self.term(i)
        except (Compacted, Unavailable):
            return 0

    def match_term(self, i: int, t: int) -> bool:
        try:
            return self.term(i) == t
        except (Compacted, Unavailable):
            return False

    def is_up_to_date(self, lasti: int, term: int) -> bool:
        last_term = self.last_term()
        return term > last_term or (term == last_term and lasti >= self.last_index())

    def find_conflict(self, ents: Sequence[Entry]) -> int:
        """Index of the first entry that is new or conflicts, 0 if none."""
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest index <= index whose term is <= term, with that term."""
        while index > 0:
            try:
                t = self.term(index)
            except (Compacted, Unavailable):
                return index, 0
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    def maybe_append(self, index: int, log_term: int, committed: int,
                     ents: Sequence[Entry]) -> int | None:
        """Follower side of MsgApp; returns the new last index or None on mismatch."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        ci = self.find_conflict(ents)
        if ci:
            assert ci > self.committed, f"entry {ci} conflicts with committed {self.committed}"
            self.append(ents[ci - index - 1:])
        self.commit_to(min(committed, last_new))
        return last_new

    def append(self, ents: Sequence[Entry]) -> int:
        if ents:
            assert ents[0].index - 1 >= self.committed, \
                f"after({ents[0].index - 1}) is out of range [committed({self.committed})]"
            self.unstable.truncate_and_append(ents)
        return self.last_index()

    def commit_to(self, tocommit: int) -> None:
        if self.committed < tocommit:
            assert tocommit <= self.last_index(), \
                f"tocommit({tocommit}) is out of range [last_index({self.last_index()})]"
            self.committed = tocommit

    def maybe_commit(self, max_index: int, term: int) -> bool:
        if max_index > self.committed and self.zero_term_on_compacted(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def applied_to(self, i: int) -> None:
        if i == 0:
            return
        assert self.applied <= i <= self.committed, \
            f"applied({i}) out of range [prev_applied({self.applied}), committed({self.committed})]"
        self.applied = i

    def stable_to(self, i: int, t: int) -> None:
        self.unstable.stable_to(i, t)

    def stable_snap_to(self, i: int) -> None:
        self.unstable.stable_snap_to(i)

    def unstable_entries(self) -> list[Entry]:
        return self.unstable.entries[:]

    def has_next_committed_ents(self) -> bool:
        return self.committed > max(self.applied, self.first_index() - 1)

    def next_committed_ents(self) -> list[Entry]:
        off = max(self.applied + 1, self.first_index())
        if self.committed + 1 > off:
            return self.slice(off, self.committed + 1, self.max_next_ents_size)
        return []

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def entries(self, lo: int, max_size: int | None = None) -> list[Entry]:
        last = self.last_index()
        if lo > last:
            return []
        return self.slice(lo, last + 1, max_size)

    def all_entries(self) -> list[Entry]:
        return self.entries(self.first_index())

    def slice(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries [lo, hi), limited by max_size (at least one entry)."""
        if lo < self.first_index():
            raise Compacted(lo)
        if hi > self.last_index() + 1:
            raise Unavailable(hi)
        if lo >= hi:
            return []
        off = self.unstable.offset
        if lo >= off:
            return limit_size(self.unstable.slice(lo, hi), max_size)
        stored = self.storage.entries(lo, min(hi, off), max_size)
        if len(stored) < min(hi, off) - lo or hi <= off:
            return stored
        return limit_size(stored + self.unstable.slice(off, hi), max_size)

    def restore(self, s: Snapshot) -> None:
        self.committed = s.metadata.index
        self.unstable.restore(s)
