"""What the leader knows about each follower, and the quorum arithmetic.

Rules:
- A Progress is in one of three states: PROBE (one MsgApp in flight until a
  response or heartbeat response), REPLICATE (optimistic pipelining bounded
  by the Inflights window) or SNAPSHOT (nothing sent until the snapshot is
  reported applied or failed).
- ``match < next`` always; ``match`` never decreases while a node is leader.
- Quorums are simple majorities of the voters; learners never count.
"""
from __future__ import annotations

from collections import deque
from enum import IntEnum

from .types import ConfState


class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class VoteResult(IntEnum):
    PENDING = 0
    LOST = 1
    WON = 2


class Inflights:
    """Last indexes of the MsgApps sent but not yet acknowledged, oldest first."""

    __slots__ = ("size", "buffer")

    def __init__(self, size: int) -> None:
        self.size = size
        self.buffer: deque[int] = deque()

    def add(self, index: int) -> None:
        assert len(self.buffer) < self.size, "cannot add into a full inflights"
        self.buffer.append(index)

    def free_le(self, index: int) -> None:
        buf = self.buffer
        while buf and buf[0] <= index:
            buf.popleft()

    def free_first_one(self) -> None:
        if self.buffer:
            self.buffer.popleft()

    def full(self) -> bool:
        return len(self.buffer) >= self.size

    def count(self) -> int:
        return len(self.buffer)

    def reset(self) -> None:
        self.buffer.clear()


class Progress:
    __slots__ = ("match", "next", "state", "pending_snapshot", "recent_active",
                 "probe_sent", "inflights", "is_learner")

    def __init__(self, next_index: int, max_inflight: int, is_learner: bool = False,
                 match: int = 0) -> None:
        self.match = match
        self.next = next_index
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0
        self.recent_active = False
        self.probe_sent = False
        self.inflights = Inflights(max_inflight)
        self.is_learner = is_learner

    def __repr__(self) -> str:
        return (f"{self.state.name} match={self.match} next={self.next}"
                + (" learner" if self.is_learner else "")
                + (" paused" if self.is_paused() else "")
                + (f" pending_snap={self.pending_snapshot}" if self.pending_snapshot else "")
                + (f" inflight={self.inflights.count()}" if self.inflights.count() else ""))

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, n: int) -> bool:
        """An acknowledgement of index n; False if it was stale."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        if self.next < n + 1:
            self.next = n + 1
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """A rejection of the MsgApp at ``rejected``; False if it was stale."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), 1, self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        st = self.state
        if st == ProgressState.PROBE:
            return self.probe_sent
        if st == ProgressState.REPLICATE:
            return len(self.inflights.buffer) >= self.inflights.size
        return True


class ProgressTracker:
    """Voters, learners and the Progress of every member, plus the vote tally."""

    __slots__ = ("voters", "learners", "progress", "votes", "max_inflight")

    def __init__(self, max_inflight: int) -> None:
        self.voters: set[int] = set()
        self.learners: set[int] = set()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.max_inflight = max_inflight

    def conf_state(self) -> ConfState:
        return ConfState(tuple(sorted(self.voters)), tuple(sorted(self.learners)))

    def is_singleton(self) -> bool:
        return len(self.voters) == 1

    def committed(self) -> int:
        """Largest index acknowledged by a majority of the voters."""
        voters = self.voters
        n = len(voters)
        if n == 0:
            return 0
        prs = self.progress
        if n == 1:
            return prs[next(iter(voters))].match
        matches = sorted((prs[v].match for v in voters), reverse=True)
        return matches[n // 2]

    def vote_result(self, votes: dict[int, bool]) -> VoteResult:
        n = len(self.voters)
        if n == 0:
            return VoteResult.WON
        q = n // 2 + 1
        granted = missing = 0
        for v in self.voters:
            r = votes.get(v)
            if r is None:
                missing += 1
            elif r:
                granted += 1
        if granted >= q:
            return VoteResult.WON
        if granted + missing >= q:
            return VoteResult.PENDING
        return VoteResult.LOST

    def record_vote(self, id: int, granted: bool) -> None:
        self.votes.setdefault(id, granted)

    def tally_votes(self) -> tuple[int, int, VoteResult]:
        granted = sum(1 for v in self.voters if self.votes.get(v) is True)
        rejected = sum(1 for v in self.voters if self.votes.get(v) is False)
        return granted, rejected, self.vote_result(self.votes)

    def reset_votes(self) -> None:
        self.votes = {}

    def quorum_active(self) -> bool:
        active = {v: self.progress[v].recent_active for v in self.voters}
        return self.vote_result(active) == VoteResult.WON
