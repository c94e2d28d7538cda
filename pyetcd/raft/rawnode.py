"""RawNode: the application's handle on one Raft node (no threads, no I/O).

The application loop, repeated forever::

    node.tick()                      # every tick interval
    node.step(msg)                   # for every message received from a peer
    node.propose(data)               # for every client write
    if node.has_ready():
        rd = node.ready()
        if rd.snapshot: storage.apply_snapshot(rd.snapshot)
        storage.append(rd.entries)
        if rd.hard_state: storage.set_hard_state(rd.hard_state)
        (fsync if rd.must_sync)
        send(rd.messages)
        apply(rd.committed_entries)  # CONF_CHANGE: node.apply_conf_change(cc)
        serve(rd.read_states)        # once applied index >= read_state.index
        node.advance(rd)

Persisting before sending is required, not an optimisation to skip: votes
and acknowledgements must be durable before they are sent, and a leader
counts its own appended entries as replicated.  A non-None ``rd.snapshot``
also replaces the application state with ``rd.snapshot.data``.
Exactly one Ready may be outstanding: call ``advance`` before the next
``ready``.  Proposals made between two Readies leave as one MsgApp per
follower (the broadcast is deferred to ``has_ready``/``ready``).

The transport reports what it learns: ``report_unreachable(id)`` when a
send fails, ``report_snapshot(id, ok)`` after sending a MsgSnap.
A member that applied its own removal should keep running its Ready loop
until it is no longer leader (if it was leader, the core hands leadership
over with TimeoutNow first), then stop.
"""
from __future__ import annotations

from typing import Sequence

from .config import Config
from .core import Raft
from .storage import Storage
from .types import (RESPONSE_MESSAGES, LOCAL_MESSAGES, ConfChange, ConfState, Entry,
                    EntryType, HardState, Message, MessageType, ProgressStatus, ProposalDropped, Ready,
                    Status, StateType, encode_conf_change)

MT = MessageType
_NORMAL = EntryType.NORMAL


class RawNode:
    __slots__ = ("raft", "_prev_soft", "_prev_hard")

    def __init__(self, config: Config, storage: Storage) -> None:
        self.raft = Raft(config, storage)
        self.raft.defer_bcast = True
        self._prev_soft = self.raft.soft_state()
        self._prev_hard = self.raft.hard_state()

    # -- inputs -----------------------------------------------------------------------
    def tick(self) -> None:
        self.raft.tick()

    def campaign(self) -> None:
        self.raft.step(Message(MT.HUP, frm=self.raft.id))

    def propose(self, data: bytes) -> None:
        """Propose one entry; raises ProposalDropped without a (known) leader."""
        self.raft.step(Message(MT.PROP, frm=self.raft.id, entries=(Entry(0, 0, _NORMAL, data),)))

    def propose_batch(self, datas: Sequence[bytes]) -> None:
        """Propose several entries in one message (one MsgApp round for all)."""
        if datas:
            ents = [Entry(0, 0, _NORMAL, d) for d in datas]
            self.raft.step(Message(MT.PROP, frm=self.raft.id, entries=ents))

    def propose_conf_change(self, cc: ConfChange) -> None:
        e = Entry(0, 0, EntryType.CONF_CHANGE, encode_conf_change(cc))
        self.raft.step(Message(MT.PROP, frm=self.raft.id, entries=(e,)))

    def step(self, m: Message) -> None:
        """Feed a message received from a peer (never raises ProposalDropped)."""
        if m.type in LOCAL_MESSAGES:
            raise ValueError(f"cannot step local message {m.type.name}")
        if m.type in RESPONSE_MESSAGES and m.frm not in self.raft.trk.progress:
            return  # a response from a node we no longer track
        try:
            self.raft.step(m)
        except ProposalDropped:
            pass  # a forwarded proposal or read: its origin will time out and retry

    def read_index(self, ctx: bytes) -> None:
        """Request a linearizable read; the answer comes as a ReadState with ctx."""
        self.raft.step(Message(MT.READ_INDEX, frm=self.raft.id, context=ctx))

    def transfer_leader(self, to: int) -> None:
        self.raft.step(Message(MT.TRANSFER_LEADER, frm=to))

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        return self.raft.apply_conf_change(cc)

    def report_unreachable(self, id: int) -> None:
        self.raft.step(Message(MT.UNREACHABLE, frm=id))

    def report_snapshot(self, id: int, ok: bool) -> None:
        self.raft.step(Message(MT.SNAP_STATUS, frm=id, reject=not ok))

    # -- outputs ----------------------------------------------------------------------
    def has_ready(self) -> bool:
        r = self.raft
        if r.bcast_pending:
            r.flush_bcast()
        log = r.raft_log
        if r.msgs or log.unstable.entries or log.unstable.snapshot is not None:
            return True
        if r.read_states or log.has_next_committed_ents():
            return True
        if r.lead != self._prev_soft.lead or r.state != self._prev_soft.raft_state:
            return True
        hs = self._prev_hard
        return r.term != hs.term or r.vote != hs.vote or log.committed != hs.commit

    def ready(self) -> Ready:
        r = self.raft
        if r.bcast_pending:
            r.flush_bcast()
        log = r.raft_log
        soft = None
        if r.lead != self._prev_soft.lead or r.state != self._prev_soft.raft_state:
            soft = r.soft_state()
        hard = None
        ph = self._prev_hard
        if r.term != ph.term or r.vote != ph.vote or log.committed != ph.commit:
            hard = HardState(r.term, r.vote, log.committed)
        entries = log.unstable_entries()
        must_sync = bool(entries) or (hard is not None and (hard.term != ph.term
                                                              or hard.vote != ph.vote))
        rd = Ready(soft, hard, entries, log.unstable.snapshot, log.next_committed_ents(),
                   r.msgs, r.read_states, must_sync)
        r.msgs = []
        r.read_states = []
        return rd

    def advance(self, rd: Ready) -> None:
        """The application persisted, sent and applied everything in ``rd``."""
        r = self.raft
        if rd.soft_state is not None:
            self._prev_soft = rd.soft_state
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
        if rd.committed_entries:
            r.raft_log.applied_to(rd.committed_entries[-1].index)
            r.reduce_uncommitted_size(rd.committed_entries)
        if rd.entries:
            e = rd.entries[-1]
            r.raft_log.stable_to(e.index, e.term)
        if rd.snapshot is not None:
            r.raft_log.stable_snap_to(rd.snapshot.metadata.index)
            if r.raft_log.applied < rd.snapshot.metadata.index:
                r.raft_log.applied = rd.snapshot.metadata.index

    # -- introspection ----------------------------------------------------------------
    def status(self) -> Status:
        r = self.raft
        prs = {}
        if r.state == StateType.LEADER:
            prs = {id: ProgressStatus(pr.match, pr.next, pr.state.name, pr.is_learner,
                                      pr.recent_active)
                   for id, pr in r.trk.progress.items()}
        return Status(r.id, r.hard_state(), r.soft_state(), r.raft_log.applied,
                      r.lead_transferee, r.trk.conf_state(), prs)

    @property
    def id(self) -> int:
        return self.raft.id

    @property
    def lead(self) -> int:
        return self.raft.lead

    @property
    def is_leader(self) -> bool:
        return self.raft.state == StateType.LEADER and self.raft.lead == self.raft.id
