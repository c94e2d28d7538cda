"""The leader side of Raft: proposals, replication, commit, reads, transfer.

Rules:
- A leader commits only entries of its own term by counting replicas
  (earlier entries are committed indirectly), and appends an empty entry on
  election so that it can commit at all.
- Each follower is fed according to its Progress state (see progress.py):
  probes one MsgApp at a time, pipelines up to the inflight window, or
  waits for a snapshot; MsgApps carry as many entries as fit
  ``max_size_per_msg``.
- Reads (ReadIndex) are answered only after the leader has committed an
  entry in its term and a quorum acknowledged a heartbeat sent after the
  read arrived.
- During a leadership transfer proposals are dropped.
"""
from __future__ import annotations

from .progress import ProgressState, VoteResult
from .storage import Compacted, SnapshotTemporarilyUnavailable, Unavailable
from .types import (NONE, ConfChangeType, Entry, EntryType, Message, MessageType,
                    ProposalDropped, ReadOnlyOption, ReadState, StateType, decode_conf_change)

MT = MessageType
_REPLICATE = ProgressState.REPLICATE
_PROBE = ProgressState.PROBE
_NORMAL = EntryType.NORMAL
_CONF_CHANGE = EntryType.CONF_CHANGE


class LeaderMixin:
    """Methods of ``core.Raft`` that run while it is the leader."""

    def become_leader(self) -> None:
        assert self.state != StateType.FOLLOWER, "invalid transition [follower -> leader]"
        self._step = self.step_leader
        self.reset(self.term)
        self._tick = self.tick_heartbeat
        self.lead = self.id
        self.state = StateType.LEADER
        pr = self.trk.progress[self.id]
        pr.become_replicate()
        pr.recent_active = True
        # Conf changes in the uncommitted tail may be pending: refuse new ones
        # until everything up to here has been applied.
        self.pending_conf_index = self.raft_log.last_index()
        self.append_entry([Entry(0, 0)])

    def tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self.step(Message(MT.CHECK_QUORUM, frm=self.id))
            if self.state == StateType.LEADER and self.lead_transferee != NONE:
                self.abort_leader_transfer()
        if self.state != StateType.LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.step(Message(MT.BEAT, frm=self.id))
            if self.id not in self.trk.progress and self.trk.voters:
                self.hand_over_leadership()

    def abort_leader_transfer(self) -> None:
        self.lead_transferee = NONE

    # -- appending --------------------------------------------------------------------
    def append_entry(self, es: list[Entry]) -> None:
        log = self.raft_log
        li = log.last_index()
        term = self.term
        ents = [Entry(term, li + i, e.type, e.data) for i, e in enumerate(es, 1)]
        if self.max_uncommitted_size:
            size = sum(len(e.data) for e in ents)
            if (self.uncommitted_size > 0 and size > 0
                    and self.uncommitted_size + size > self.max_uncommitted_size):
                raise ProposalDropped("too many uncommitted entries")
            self.uncommitted_size += size
        li = log.append(ents)
        self.trk.progress[self.id].maybe_update(li)
        self.maybe_commit()

    def reduce_uncommitted_size(self, ents) -> None:
        if self.max_uncommitted_size and self.uncommitted_size:
            size = sum(len(e.data) for e in ents)
            self.uncommitted_size = max(0, self.uncommitted_size - size)

    def maybe_commit(self) -> bool:
        return self.raft_log.maybe_commit(self.trk.committed(), self.term)

    def committed_entry_in_current_term(self) -> bool:
        log = self.raft_log
        return log.zero_term_on_compacted(log.committed) == self.term

    # -- sending ----------------------------------------------------------------------
    def send_append(self, to: int) -> None:
        self.maybe_send_append(to, True)

    def maybe_send_append(self, to: int, send_if_empty: bool) -> bool:
        pr = self.trk.progress[to]
        if pr.is_paused():
            return False
        log = self.raft_log
        prev_index = pr.next - 1
        try:
            prev_term = log.term(prev_index)
            ents = log.entries(pr.next, self.max_msg_size)
        except (Compacted, Unavailable):
            return self.maybe_send_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        self.msgs.append(Message(MT.APP, to, self.id, self.term, prev_term, prev_index, ents,
                                 log.committed))
        if ents:
            if pr.state == _REPLICATE:
                last = ents[-1].index
                pr.next = last + 1
                pr.inflights.add(last)
            elif pr.state == _PROBE:
                pr.probe_sent = True
        return True

    def maybe_send_snapshot(self, to: int, pr) -> bool:
        if not pr.recent_active:
            return False  # it may be down: don't ship a snapshot into the void
        try:
            snap = self.raft_log.snapshot()
        except SnapshotTemporarilyUnavailable:
            return False
        assert snap.metadata.index, "need non-empty snapshot"
        pr.become_snapshot(snap.metadata.index)
        self.send(Message(MT.SNAP, to=to, frm=self.id, term=self.term, snapshot=snap))
        return True

    def send_heartbeat(self, to: int, ctx: bytes) -> None:
        # Never advance a follower's commit beyond what it is known to hold.
        commit = min(self.trk.progress[to].match, self.raft_log.committed)
        self.send(Message(MT.HEARTBEAT, to=to, frm=self.id, term=self.term, commit=commit,
                          context=ctx))

    def bcast_append(self) -> None:
        for id in self.trk.progress:
            if id != self.id:
                self.maybe_send_append(id, True)

    def bcast_heartbeat(self, ctx: bytes | None = None) -> None:
        if ctx is None:
            ctx = self.read_only.last_pending_request_ctx()
        for id in self.trk.progress:
            if id != self.id:
                self.send_heartbeat(id, ctx)

    # -- step -------------------------------------------------------------------------
    def step_leader(self, m: Message) -> None:
        handler = _LEADER_LOCAL.get(m.type)
        if handler is not None:
            handler(self, m)
            return
        pr = self.trk.progress.get(m.frm)
        if pr is None:
            return
        handler = _LEADER_PEER.get(m.type)
        if handler is not None:
            handler(self, m, pr)

    def _leader_beat(self, m: Message) -> None:
        self.bcast_heartbeat()

    def _leader_check_quorum(self, m: Message) -> None:
        if not self.trk.quorum_active():
            self.become_follower(self.term, NONE)
        for id, pr in self.trk.progress.items():
            if id != self.id:
                pr.recent_active = False

    def _leader_prop(self, m: Message) -> None:
        if not m.entries:
            raise ValueError("stepped empty MsgProp")
        if self.id not in self.trk.progress:
            raise ProposalDropped("this node was removed from the cluster")
        if self.lead_transferee != NONE:
            raise ProposalDropped("leadership transfer in progress")
        if self.removing_self:
            raise ProposalDropped("this leader is being removed from the cluster")
        ents = m.entries
        for i, e in enumerate(ents):
            if e.type != _CONF_CHANGE:
                continue
            if self.pending_conf_index > self.raft_log.applied:
                if m.frm == self.id:
                    raise ProposalDropped("a configuration change is already pending")
                ents = list(ents)  # forwarded: keep the batch, neutralise the change
                ents[i] = Entry(0, 0, _NORMAL, b"")
                continue
            cc = decode_conf_change(e.data)
            if cc.type == ConfChangeType.REMOVE_NODE and cc.node_id == self.id:
                if i != len(ents) - 1:
                    raise ProposalDropped("a leader's own removal must end its batch")
                self._start_removing_self()
            self.pending_conf_index = self.raft_log.last_index() + i + 1
        self.append_entry(ents)
        if self.defer_bcast:
            self.bcast_pending = True  # RawNode flushes once per Ready
        else:
            self.bcast_append()

    def flush_bcast(self) -> None:
        """Send the appends deferred by proposals (one MsgApp per follower)."""
        self.bcast_pending = False
        if self.state == StateType.LEADER:
            self.bcast_append()

    def _start_removing_self(self) -> None:
        # The removal entry must stay this leader's last entry: once removed
        # it steps down, and the survivors may still need its vote (until
        # they apply the removal), which it only grants to logs as long as
        # its own.
        self.removing_self = True

    def _leader_read_index(self, m: Message) -> None:
        if self.trk.is_singleton():
            self._respond_read_index(m, self.raft_log.committed)
            return
        if not self.committed_entry_in_current_term():
            # The commit index may lag the previous leader's: wait until our
            # empty entry commits.
            self.pending_read_index_messages.append(m)
            return
        self._send_read_index(m)

    def _send_read_index(self, m: Message) -> None:
        if self.read_only.option == ReadOnlyOption.LEASE_BASED:
            self._respond_read_index(m, self.raft_log.committed)
            return
        self.read_only.add_request(self.raft_log.committed, m)
        self.read_only.recv_ack(self.id, m.context)
        self._bcast_read_heartbeat(m.context)

    def _bcast_read_heartbeat(self, ctx: bytes) -> None:
        """One heartbeat round per Ready, however many reads arrived.

        If this Ready already holds an unsent read round, re-label it with
        the newest context: acks are cumulative (read_only.advance), so the
        round confirms every read queued before it.
        """
        msgs = self.msgs
        if self._read_round_msgs is msgs and self._read_round_slots:
            for k in self._read_round_slots:
                old = msgs[k]
                msgs[k] = Message(MT.HEARTBEAT, old.to, old.frm, old.term, commit=old.commit,
                                  context=ctx)
            return
        start = len(msgs)
        self.bcast_heartbeat(ctx)
        self._read_round_msgs = msgs
        self._read_round_slots = range(start, len(msgs))

    def _respond_read_index(self, req: Message, index: int) -> None:
        if req.frm == NONE or req.frm == self.id:
            self.read_states.append(ReadState(index, req.context))
        else:
            self.send(Message(MT.READ_INDEX_RESP, to=req.frm, frm=self.id, term=self.term,
                              index=index, context=req.context))

    def release_pending_read_index_messages(self) -> None:
        if not self.pending_read_index_messages or not self.committed_entry_in_current_term():
            return
        msgs, self.pending_read_index_messages = self.pending_read_index_messages, []
        for m in msgs:
            self._send_read_index(m)

    def _leader_transfer(self, m: Message, pr) -> None:
        to = m.frm
        if pr.is_learner:
            return
        if self.lead_transferee != NONE:
            if self.lead_transferee == to:
                return
            self.abort_leader_transfer()
        if to == self.id:
            return
        self.election_elapsed = 0  # the transfer must finish within an election timeout
        self.lead_transferee = to
        if pr.match == self.raft_log.last_index():
            self.send(Message(MT.TIMEOUT_NOW, to=to, frm=self.id, term=self.term))
        else:
            self.send_append(to)

    def _leader_app_resp(self, m: Message, pr) -> None:
        pr.recent_active = True
        if m.reject:
            next_probe = m.reject_hint
            if m.log_term > 0:
                next_probe, _ = self.raft_log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, next_probe):
                if pr.state == _REPLICATE:
                    pr.become_probe()
                self.send_append(m.frm)
            return
        old_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state == _PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT:
            if pr.match + 1 >= self.raft_log.first_index():
                pr.become_probe()
                pr.become_replicate()
        else:
            pr.inflights.free_le(m.index)
        if self.maybe_commit():
            self.release_pending_read_index_messages()
            self.bcast_append()
        elif old_paused:
            self.send_append(m.frm)
        while self.maybe_send_append(m.frm, False):
            pass
        if m.frm == self.lead_transferee and pr.match == self.raft_log.last_index():
            self.send(Message(MT.TIMEOUT_NOW, to=m.frm, frm=self.id, term=self.term))

    def _leader_heartbeat_resp(self, m: Message, pr) -> None:
        pr.recent_active = True
        pr.probe_sent = False
        if pr.state == _REPLICATE and pr.inflights.full():
            pr.inflights.free_first_one()
        if pr.match < self.raft_log.last_index():
            self.send_append(m.frm)
        if self.read_only.option != ReadOnlyOption.SAFE or not m.context:
            return
        acks = self.read_only.recv_ack(m.frm, m.context)
        if acks is None or self.trk.vote_result(acks) != VoteResult.WON:
            return
        for rs in self.read_only.advance(m.context):
            self._respond_read_index(rs.req, rs.index)

    def _leader_snap_status(self, m: Message, pr) -> None:
        if pr.state != ProgressState.SNAPSHOT:
            return
        if m.reject:
            pr.pending_snapshot = 0
        pr.become_probe()
        # Wait for a heartbeat response (or an ack) before probing again.
        pr.probe_sent = True

    def _leader_unreachable(self, m: Message, pr) -> None:
        if pr.state == _REPLICATE:
            pr.become_probe()

    # -- membership ------------------------------------------------------------------
    def hand_over_leadership(self) -> None:
        """A removed leader transfers leadership to the best remaining voter.

        Survivors that have not yet applied the removal still count this
        node's vote, which it grants only to logs at least as long as its
        own; simply stepping down can therefore deadlock.  So it keeps
        leading (accepting no proposals) until a voter's log matches its
        own (retried every heartbeat), then sends TimeoutNow and steps
        down: that voter can now always get this node's vote.
        """
        prs = self.trk.progress
        target = max(sorted(self.trk.voters),
                     key=lambda v: (prs[v].recent_active, prs[v].match))
        self.lead_transferee = target
        if prs[target].match == self.raft_log.last_index():
            self.send(Message(MT.TIMEOUT_NOW, to=target, frm=self.id, term=self.term))
            self.become_follower(self.term, NONE)
        else:
            self.send_append(target)

    def after_conf_change_as_leader(self) -> None:
        if self.id not in self.trk.progress or self.is_learner:
            # Removed: tell everyone the commit index, then hand leadership
            # over rather than just stepping down (see hand_over_leadership).
            self.maybe_commit()
            self.bcast_append()
            if not self.trk.voters:
                self.become_follower(self.term, NONE)
                return
            self.hand_over_leadership()
            return
        if self.lead_transferee != NONE and self.lead_transferee not in self.trk.voters:
            self.abort_leader_transfer()
        if self.maybe_commit():
            self.bcast_append()
        else:
            for id in self.trk.progress:
                if id != self.id:
                    self.maybe_send_append(id, False)


_LEADER_LOCAL = {
    MT.BEAT: LeaderMixin._leader_beat,
    MT.CHECK_QUORUM: LeaderMixin._leader_check_quorum,
    MT.PROP: LeaderMixin._leader_prop,
    MT.READ_INDEX: LeaderMixin._leader_read_index,
}
_LEADER_PEER = {
    MT.APP_RESP: LeaderMixin._leader_app_resp,
    MT.HEARTBEAT_RESP: LeaderMixin._leader_heartbeat_resp,
    MT.SNAP_STATUS: LeaderMixin._leader_snap_status,
    MT.UNREACHABLE: LeaderMixin._leader_unreachable,
    MT.TRANSFER_LEADER: LeaderMixin._leader_transfer,
}
