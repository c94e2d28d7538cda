"""The Raft state machine: roles, elections, and the follower side of replication.

Rules:
- Pure and deterministic: input is ``tick()`` and ``step(msg)``; output is
  ``msgs`` (to send), ``read_states`` and the log's unstable part.  The only
  randomness is the injected ``Config.rng`` (election timeouts).
- Messages with a higher term make us a follower first (except pre-votes,
  and votes inside a check-quorum leader lease); lower-term messages are
  dropped (stale leaders are told our term so they step down).
- Membership changes are single-step (one voter added or removed at a
  time, effective when the entry is *applied*); only one may be pending:
  the leader refuses a new one until the previous is applied
  (``pending_conf_index``), and a new leader's first proposal of its term
  (the empty entry) must apply before a change is accepted.
- The leader side (``step_leader`` and replication) lives in ``leader.py``.
"""
from __future__ import annotations

from .config import Config
from .leader import LeaderMixin
from .log import RaftLog
from .progress import Progress, ProgressTracker, VoteResult
from .read_only import ReadOnly
from .storage import Storage
from .types import (NONE, ConfChange, ConfChangeType, ConfState, EntryType,
                    HardState, Message, MessageType, ProposalDropped, ReadState,
                    Snapshot, SoftState, StateType, vote_resp_type)

MT = MessageType
CAMPAIGN_PRE_ELECTION = b"CampaignPreElection"
CAMPAIGN_ELECTION = b"CampaignElection"
CAMPAIGN_TRANSFER = b"CampaignTransfer"


class Raft(LeaderMixin):
    def __init__(self, config: Config, storage: Storage) -> None:
        config.validate()
        self.id = config.id
        self.raft_log = RaftLog(storage, config.max_committed_size_per_ready
                                or config.max_size_per_msg)
        self.max_msg_size = config.max_size_per_msg
        self.max_uncommitted_size = config.max_uncommitted_entries_size
        self.uncommitted_size = 0
        self.trk = ProgressTracker(config.max_inflight_msgs)
        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.state = StateType.FOLLOWER
        self.is_learner = False
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.removing_self = False
        self.pending_read_index_messages: list[Message] = []
        self._read_round_msgs: list[Message] | None = None  # see leader._bcast_read_heartbeat
        self._read_round_slots = range(0)
        self.read_only = ReadOnly(config.read_only_option)
        self.check_quorum = config.check_quorum
        self.pre_vote = config.pre_vote
        self.disable_proposal_forwarding = config.disable_proposal_forwarding
        self.heartbeat_timeout = config.heartbeat_tick
        self.election_timeout = config.election_tick
        self.randomized_election_timeout = config.election_tick
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.rng = config.rng
        # RawNode sets defer_bcast: proposals then mark bcast_pending and the
        # appends go out once per Ready (batching); bare Raft sends at once.
        self.defer_bcast = False
        self.bcast_pending = False
        self._step = self.step_follower
        self._tick = self.tick_election

        hs, cs = storage.initial_state()
        self._apply_conf_state(cs)
        if hs != HardState():
            self._load_state(hs)
        if config.applied:
            self.raft_log.applied_to(config.applied)
        self.become_follower(self.term, NONE)

    # -- state ----------------------------------------------------------------------
    def soft_state(self) -> SoftState:
        return SoftState(self.lead, self.state)

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.raft_log.committed)

    def _load_state(self, hs: HardState) -> None:
        log = self.raft_log
        if hs.commit > log.last_index():
            raise ValueError(f"hard state commit {hs.commit} is out of range "
                             f"[{log.committed}, {log.last_index()}]")
        # A persisted snapshot is committed even if the hard state written
        # after it was lost: never go below it.
        log.committed = max(hs.commit, log.committed)
        self.term = hs.term
        self.vote = hs.vote

    def promotable(self) -> bool:
        return self.id in self.trk.voters and self.raft_log.unstable.snapshot is None

    def past_election_timeout(self) -> bool:
        return self.election_elapsed >= self.randomized_election_timeout

    def reset_randomized_election_timeout(self) -> None:
        self.randomized_election_timeout = (
            self.election_timeout + self.rng.randrange(self.election_timeout))

    def send(self, m: Message) -> None:
        self.msgs.append(m)

    # -- role transitions -----------------------------------------------------------
    def reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.reset_randomized_election_timeout()
        self.abort_leader_transfer()
        self.trk.reset_votes()
        last = self.raft_log.last_index()
        for id, pr in list(self.trk.progress.items()):
            self.trk.progress[id] = Progress(last + 1, self.trk.max_inflight, pr.is_learner,
                                             match=last if id == self.id else 0)
        self.pending_conf_index = 0
        self.removing_self = False
        self.uncommitted_size = 0
        self.read_only = ReadOnly(self.read_only.option)
        self.pending_read_index_messages = []

    def become_follower(self, term: int, lead: int) -> None:
        self._step = self.step_follower
        self.reset(term)
        self._tick = self.tick_election
        self.lead = lead
        self.state = StateType.FOLLOWER

    def become_candidate(self) -> None:
        assert self.state != StateType.LEADER, "invalid transition [leader -> candidate]"
        self._step = self.step_candidate
        self.reset(self.term + 1)
        self._tick = self.tick_election
        self.vote = self.id
        self.state = StateType.CANDIDATE

    def become_pre_candidate(self) -> None:
        assert self.state != StateType.LEADER, "invalid transition [leader -> pre-candidate]"
        # Pre-candidates keep their term and vote: nothing durable changes.
        self._step = self.step_candidate
        self.trk.reset_votes()
        self._tick = self.tick_election
        self.lead = NONE
        self.state = StateType.PRE_CANDIDATE

    # -- ticks --------------------------------------------------------------------------
    def tick(self) -> None:
        self._tick()

    def tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.past_election_timeout():
            self.election_elapsed = 0
            self.step(Message(MT.HUP, frm=self.id))

    # -- elections ------------------------------------------------------------------------
    def has_unapplied_conf_changes(self) -> bool:
        log = self.raft_log
        if log.applied >= log.committed:
            return False
        lo = max(log.applied + 1, log.first_index())
        for e in log.slice(lo, log.committed + 1):
            if e.type == EntryType.CONF_CHANGE:
                return True
        return False

    def hup(self, campaign: bytes) -> None:
        if self.state == StateType.LEADER or not self.promotable():
            return
        if self.has_unapplied_conf_changes():
            return  # the config we would campaign in is about to change
        self.campaign(campaign)

    def campaign(self, campaign: bytes) -> None:
        if campaign == CAMPAIGN_PRE_ELECTION:
            self.become_pre_candidate()
            vote_msg, term = MT.PRE_VOTE, self.term + 1
        else:
            self.become_candidate()
            vote_msg, term = MT.VOTE, self.term
        if self.poll(self.id, vote_resp_type(vote_msg), True) == VoteResult.WON:
            # single-voter cluster: won without asking anyone
            if campaign == CAMPAIGN_PRE_ELECTION:
                self.campaign(CAMPAIGN_ELECTION)
            else:
                self.become_leader()
            return
        ctx = CAMPAIGN_TRANSFER if campaign == CAMPAIGN_TRANSFER else b""
        last, last_term = self.raft_log.last_index(), self.raft_log.last_term()
        for id in sorted(self.trk.voters):
            if id != self.id:
                self.send(Message(vote_msg, to=id, frm=self.id, term=term, log_term=last_term,
                                  index=last, context=ctx))

    def poll(self, id: int, t: MessageType, granted: bool) -> VoteResult:
        self.trk.record_vote(id, granted)
        return self.trk.tally_votes()[2]

    # -- step -------------------------------------------------------------------------------
    def step(self, m: Message) -> None:
        if m.term > self.term:
            if not self._step_higher_term(m):
                return
        elif m.term and m.term < self.term:
            self._step_lower_term(m)
            return
        t = m.type
        if t == MT.HUP:
            self.hup(CAMPAIGN_PRE_ELECTION if self.pre_vote else CAMPAIGN_ELECTION)
        elif t == MT.VOTE or t == MT.PRE_VOTE:
            self._handle_vote_request(m)
        else:
            self._step(m)

    def _step_higher_term(self, m: Message) -> bool:
        """Returns False when the message must be ignored."""
        t = m.type
        if t == MT.VOTE or t == MT.PRE_VOTE:
            force = m.context == CAMPAIGN_TRANSFER
            in_lease = (self.check_quorum and self.lead != NONE
                        and self.election_elapsed < self.election_timeout)
            if not force and in_lease:
                return False  # we heard from a leader recently: do not disrupt it
        if t == MT.PRE_VOTE or (t == MT.PRE_VOTE_RESP and not m.reject):
            return True  # a pre-vote never changes our term
        if t == MT.APP or t == MT.HEARTBEAT or t == MT.SNAP:
            self.become_follower(m.term, m.frm)
        else:
            self.become_follower(m.term, NONE)
        return True

    def _step_lower_term(self, m: Message) -> None:
        t = m.type
        if ((self.check_quorum or self.pre_vote or not self.promotable())
                and (t == MT.HEARTBEAT or t == MT.APP)):
            # A stale leader (e.g. after a partition healed) learns our term
            # from this response and steps down.  Without pre-vote/check-quorum
            # a voter would instead campaign at its higher term, but a learner
            # or not-yet-configured member cannot, so it must answer.
            self.send(Message(MT.APP_RESP, to=m.frm, frm=self.id, term=self.term))
        elif t == MT.PRE_VOTE:
            self.send(Message(MT.PRE_VOTE_RESP, to=m.frm, frm=self.id, term=self.term,
                              reject=True))

    def _handle_vote_request(self, m: Message) -> None:
        can_vote = (self.vote == m.frm
                    or (self.vote == NONE and self.lead == NONE)
                    or (m.type == MT.PRE_VOTE and m.term > self.term))
        if can_vote and self.raft_log.is_up_to_date(m.index, m.log_term):
            self.send(Message(vote_resp_type(m.type), to=m.frm, frm=self.id, term=m.term))
            if m.type == MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self.send(Message(vote_resp_type(m.type), to=m.frm, frm=self.id, term=self.term,
                              reject=True))

    def step_candidate(self, m: Message) -> None:
        t = m.type
        my_resp = MT.PRE_VOTE_RESP if self.state == StateType.PRE_CANDIDATE else MT.VOTE_RESP
        if t == MT.PROP:
            raise ProposalDropped("no leader (election in progress)")
        if t == MT.APP:
            self.become_follower(m.term, m.frm)
            self.handle_append_entries(m)
        elif t == MT.HEARTBEAT:
            self.become_follower(m.term, m.frm)
            self.handle_heartbeat(m)
        elif t == MT.SNAP:
            self.become_follower(m.term, m.frm)
            self.handle_snapshot(m)
        elif t == my_resp:
            res = self.poll(m.frm, t, not m.reject)
            if res == VoteResult.WON:
                if self.state == StateType.PRE_CANDIDATE:
                    self.campaign(CAMPAIGN_ELECTION)
                else:
                    self.become_leader()
                    self.bcast_append()
            elif res == VoteResult.LOST:
                self.become_follower(self.term, NONE)
        elif t == MT.READ_INDEX:
            self._drop_read(m)

    def step_follower(self, m: Message) -> None:
        t = m.type
        if t == MT.APP:
            self.election_elapsed = 0
            self.lead = m.frm
            self.handle_append_entries(m)
        elif t == MT.HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.frm
            self.handle_heartbeat(m)
        elif t == MT.SNAP:
            self.election_elapsed = 0
            self.lead = m.frm
            self.handle_snapshot(m)
        elif t == MT.PROP:
            if self.lead == NONE:
                raise ProposalDropped("no leader")
            if self.disable_proposal_forwarding:
                raise ProposalDropped("not leader and proposal forwarding is disabled")
            self.send(Message(MT.PROP, to=self.lead, frm=m.frm, entries=m.entries))
        elif t == MT.TRANSFER_LEADER:
            if self.lead != NONE:
                self.send(Message(MT.TRANSFER_LEADER, to=self.lead, frm=m.frm))
        elif t == MT.TIMEOUT_NOW:
            # Leadership transfers skip pre-vote: the old leader asked for it.
            self.hup(CAMPAIGN_TRANSFER)
        elif t == MT.READ_INDEX:
            if self.lead == NONE:
                self._drop_read(m)
                return
            self.send(Message(MT.READ_INDEX, to=self.lead, frm=m.frm, context=m.context))
        elif t == MT.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))

    def _drop_read(self, m: Message) -> None:
        if m.frm in (NONE, self.id):
            raise ProposalDropped("no leader to serve the read index request")

    # -- follower side of replication ------------------------------------------------------
    def handle_append_entries(self, m: Message) -> None:
        log = self.raft_log
        if m.index < log.committed:
            self.send(Message(MT.APP_RESP, to=m.frm, frm=self.id, term=self.term,
                              index=log.committed))
            return
        last_new = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self.send(Message(MT.APP_RESP, to=m.frm, frm=self.id, term=self.term,
                              index=last_new))
            return
        # Tell the leader where our log might match: the largest index at or
        # below its probe whose term is <= the probe's term.
        hint_index = min(m.index, log.last_index())
        hint_index, hint_term = log.find_conflict_by_term(hint_index, m.log_term)
        self.send(Message(MT.APP_RESP, to=m.frm, frm=self.id, term=self.term, index=m.index,
                          reject=True, reject_hint=hint_index, log_term=hint_term))

    def handle_heartbeat(self, m: Message) -> None:
        self.raft_log.commit_to(m.commit)
        self.send(Message(MT.HEARTBEAT_RESP, to=m.frm, frm=self.id, term=self.term,
                          context=m.context))

    def handle_snapshot(self, m: Message) -> None:
        s = m.snapshot
        if s is not None and self.restore(s):
            index = self.raft_log.last_index()
        else:
            index = self.raft_log.committed
        self.send(Message(MT.APP_RESP, to=m.frm, frm=self.id, term=self.term, index=index))

    def restore(self, s: Snapshot) -> bool:
        """Install a leader's snapshot; False if it is stale or not for us."""
        meta = s.metadata
        log = self.raft_log
        if meta.index <= log.committed:
            return False
        if self.state != StateType.FOLLOWER:
            self.become_follower(self.term + 1, NONE)  # defensive: never restore as leader
            return False
        cs = meta.conf_state
        # A snapshot taken before we joined does not list us; that is fine:
        # our own ADD entry follows and we are not promotable until then.
        if log.match_term(meta.index, meta.term):
            log.commit_to(meta.index)  # we have the entries: just fast-forward
            return False
        log.restore(s)
        self.trk.voters.clear()
        self.trk.learners.clear()
        self.trk.progress.clear()
        self._apply_conf_state(cs)
        return True

    # -- membership ------------------------------------------------------------------------
    def _apply_conf_state(self, cs: ConfState) -> None:
        for id in cs.voters:
            self._add_node(id, False)
        for id in cs.learners:
            self._add_node(id, True)

    def _add_node(self, id: int, learner: bool) -> None:
        trk = self.trk
        pr = trk.progress.get(id)
        if pr is None:
            pr = Progress(self.raft_log.last_index() + 1, trk.max_inflight, learner)
            pr.recent_active = True  # a new member gets one election timeout of grace
            trk.progress[id] = pr
        elif learner and not pr.is_learner:
            return  # demoting a voter is not a single-step change: ignored
        elif not learner and pr.is_learner:
            pr.is_learner = False  # promotion
            trk.learners.discard(id)
        (trk.learners if learner else trk.voters).add(id)
        if id == self.id:
            self.is_learner = learner

    def _remove_node(self, id: int) -> None:
        trk = self.trk
        trk.voters.discard(id)
        trk.learners.discard(id)
        trk.progress.pop(id, None)

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        t = cc.type
        if t == ConfChangeType.ADD_NODE:
            self._add_node(cc.node_id, False)
        elif t == ConfChangeType.ADD_LEARNER_NODE:
            self._add_node(cc.node_id, True)
        elif t == ConfChangeType.REMOVE_NODE:
            self._remove_node(cc.node_id)
        self.is_learner = self.id in self.trk.learners
        if self.state == StateType.LEADER:
            self.after_conf_change_as_leader()
        return self.trk.conf_state()
