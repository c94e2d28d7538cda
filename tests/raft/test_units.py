"""Unit tests: MemoryStorage, RaftLog/Unstable, Progress/Inflights/quorum, RawNode."""
from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyetcd.raft import (Compacted, Config, ConfChange, ConfChangeType, ConfState, Entry,
                         EntryType, HardState, MemoryStorage, MessageType, ProposalDropped,
                         RawNode, Snapshot, SnapshotMetadata, SnapshotOutOfDate, StateType,
                         Unavailable, bootstrap, decode_conf_change)
from pyetcd.raft.log import RaftLog
from pyetcd.raft.progress import Inflights, Progress, ProgressState, ProgressTracker, VoteResult

MT = MessageType


def ents(*pairs):
    return [Entry(t, i) for i, t in pairs]


# -- MemoryStorage ---------------------------------------------------------------------
def test_storage_append_truncates_conflicts():
    s = MemoryStorage()
    s.append(ents((1, 1), (2, 1), (3, 1)))
    s.append(ents((2, 2), (3, 2), (4, 2)))
    assert [(e.index, e.term) for e in s.entries(1, 5)] == [(1, 1), (2, 2), (3, 2), (4, 2)]
    with pytest.raises(Unavailable):
        s.append(ents((7, 3)))


def test_storage_compact_and_term():
    s = MemoryStorage()
    s.append(ents((1, 1), (2, 1), (3, 2), (4, 2)))
    s.compact(2)
    assert s.first_index() == 3 and s.last_index() == 4
    assert s.term(2) == 1
    with pytest.raises(Compacted):
        s.term(1)
    with pytest.raises(Compacted):
        s.entries(2, 4)
    with pytest.raises(Compacted):
        s.compact(2)
    with pytest.raises(Unavailable):
        s.term(5)


def test_storage_entries_max_size_returns_at_least_one():
    s = MemoryStorage()
    s.append([Entry(1, i, data=b"x" * 100) for i in range(1, 6)])
    assert len(s.entries(1, 6, max_size=1)) == 1
    assert len(s.entries(1, 6, max_size=250)) == 2
    assert len(s.entries(1, 6)) == 5


def test_storage_snapshots():
    s = MemoryStorage()
    s.append(ents((1, 1), (2, 1), (3, 2)))
    cs = ConfState((1, 2, 3))
    snap = s.create_snapshot(2, cs, b"data")
    assert (snap.metadata.index, snap.metadata.term, snap.data) == (2, 1, b"data")
    with pytest.raises(SnapshotOutOfDate):
        s.create_snapshot(1, cs, b"")
    s.apply_snapshot(Snapshot(b"new", SnapshotMetadata(cs, 10, 4)))
    assert s.first_index() == 11 and s.last_index() == 10 and s.term(10) == 4
    assert s.initial_state() == (HardState(), cs)


def test_bootstrap():
    s = MemoryStorage()
    bootstrap(s, [3, 1, 2], learners=[4])
    hs, cs = s.initial_state()
    assert cs == ConfState((1, 2, 3), (4,))
    assert hs == HardState(1, 0, 1)
    assert s.first_index() == 2 and s.last_index() == 1


# -- RaftLog -------------------------------------------------------------------------------
def test_log_unstable_then_stable():
    s = MemoryStorage()
    s.append(ents((1, 1), (2, 1)))
    log = RaftLog(s)
    assert log.last_index() == 2
    log.append(ents((3, 2), (4, 2)))
    assert log.unstable_entries() == ents((3, 2), (4, 2))
    assert [e.index for e in log.slice(1, 5)] == [1, 2, 3, 4]
    s.append(log.unstable_entries())
    log.stable_to(4, 2)
    assert log.unstable_entries() == []
    assert log.term(4) == 2


def test_log_stable_to_ignores_replaced_entries():
    log = RaftLog(MemoryStorage())
    log.append(ents((1, 1), (2, 1)))
    log.append(ents((2, 2)))  # replaces index 2 before it was persisted
    log.stable_to(2, 1)
    assert log.unstable_entries() == ents((1, 1), (2, 2))


def test_log_maybe_append_and_commit():
    log = RaftLog(MemoryStorage())
    log.append(ents((1, 1), (2, 2), (3, 3)))
    assert log.maybe_append(3, 2, 5, []) is None  # term mismatch
    assert log.maybe_append(1, 1, 2, ents((2, 4))) == 2
    assert [(e.index, e.term) for e in log.all_entries()] == [(1, 1), (2, 4)]
    assert log.committed == 2
    with pytest.raises(AssertionError):
        log.append(ents((2, 5)))  # would truncate a committed entry


def test_log_find_conflict_by_term():
    log = RaftLog(MemoryStorage())
    log.append(ents((1, 1), (2, 1), (3, 2), (4, 2), (5, 4)))
    assert log.find_conflict_by_term(5, 3) == (4, 2)
    assert log.find_conflict_by_term(5, 4) == (5, 4)
    assert log.find_conflict_by_term(5, 0) == (0, 0)


def test_log_next_committed_ents_respects_applied_and_size():
    log = RaftLog(MemoryStorage(), max_next_ents_size=40)
    log.append([Entry(1, i, data=b"x" * 10) for i in range(1, 6)])
    log.commit_to(4)
    assert [e.index for e in log.next_committed_ents()] == [1]
    log.max_next_ents_size = None
    assert [e.index for e in log.next_committed_ents()] == [1, 2, 3, 4]
    log.applied_to(2)
    assert [e.index for e in log.next_committed_ents()] == [3, 4]


@given(st.lists(st.tuples(st.integers(1, 30), st.integers(1, 5)), max_size=30))
def test_log_matches_a_reference_list(ops):
    """Appends at arbitrary positions keep the log equal to a plain list model."""
    log = RaftLog(MemoryStorage())
    model: list[int] = []  # model[i-1] = term of index i
    for at, term in ops:
        at = min(at, len(model) + 1)
        term = max(term, model[at - 2] if at > 1 else 0)
        log.append([Entry(term, at)])
        model = model[:at - 1] + [term]
        assert log.last_index() == len(model)
        assert [e.term for e in log.all_entries()] == model


# -- progress ------------------------------------------------------------------------------
def test_inflights_window():
    inf = Inflights(3)
    for i in (5, 7, 9):
        inf.add(i)
    assert inf.full()
    inf.free_le(7)
    assert inf.count() == 1 and not inf.full()
    inf.free_first_one()
    assert inf.count() == 0


def test_progress_states():
    pr = Progress(next_index=5, max_inflight=2)
    assert pr.state == ProgressState.PROBE and not pr.is_paused()
    pr.probe_sent = True
    assert pr.is_paused()
    assert pr.maybe_update(4)
    pr.become_replicate()
    assert pr.next == 5 and not pr.is_paused()
    pr.inflights.add(6)
    pr.inflights.add(7)
    assert pr.is_paused()
    assert not pr.maybe_decr_to(3, 3)  # stale rejection
    assert pr.maybe_decr_to(6, 5) and pr.next == 5
    pr.become_snapshot(20)
    assert pr.is_paused()
    pr.become_probe()
    assert pr.next == 21


def test_quorum_math():
    trk = ProgressTracker(10)
    for id, match in ((1, 5), (2, 3), (3, 9)):
        trk.voters.add(id)
        trk.progress[id] = Progress(match + 1, 10, match=match)
    assert trk.committed() == 5
    trk.learners.add(4)
    trk.progress[4] = Progress(100, 10, is_learner=True, match=99)
    assert trk.committed() == 5  # learners never count
    assert trk.vote_result({1: True}) == VoteResult.PENDING
    assert trk.vote_result({1: True, 2: True}) == VoteResult.WON
    assert trk.vote_result({1: False, 2: False}) == VoteResult.LOST
    assert trk.vote_result({4: True, 1: True}) == VoteResult.PENDING


# -- RawNode -------------------------------------------------------------------------------
def _single():
    s = MemoryStorage()
    bootstrap(s, [1])
    return RawNode(Config(id=1, rng=random.Random(1)), s), s


def _handle(node, s):
    rd = node.ready()
    if rd.snapshot is not None:
        s.apply_snapshot(rd.snapshot)
    s.append(rd.entries)
    if rd.hard_state is not None:
        s.set_hard_state(rd.hard_state)
    node.advance(rd)
    return rd


def test_rawnode_single_node_lifecycle():
    node, s = _single()
    assert not node.has_ready()
    node.campaign()
    rd = _handle(node, s)
    assert rd.soft_state.raft_state == StateType.LEADER and rd.must_sync
    node.propose(b"a")
    node.propose_batch([b"b", b"c"])
    rd = _handle(node, s)
    assert [e.data for e in rd.committed_entries if e.data] == [b"a", b"b", b"c"]
    assert node.status().applied == rd.committed_entries[-1].index
    node.read_index(b"ctx")
    rd = _handle(node, s)
    assert [(r.index, r.request_ctx) for r in rd.read_states] == [(node.status().applied, b"ctx")]
    assert not node.has_ready()


def test_rawnode_restart_from_storage():
    node, s = _single()
    node.campaign()
    _handle(node, s)
    node.propose(b"a")
    _handle(node, s)
    node2 = RawNode(Config(id=1, applied=2, rng=random.Random(1)), s)
    rd = node2.ready()
    assert [e.data for e in rd.committed_entries] == [b"a"]
    assert node2.status().hard_state == s.hard_state


def test_rawnode_conf_change_one_at_a_time():
    node, s = _single()
    node.campaign()
    _handle(node, s)
    node.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER_NODE, 2))
    with pytest.raises(ProposalDropped):
        node.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 3))
    rd = _handle(node, s)
    (cce,) = [e for e in rd.committed_entries if e.type == EntryType.CONF_CHANGE]
    cs = node.apply_conf_change(decode_conf_change(cce.data))
    assert cs == ConfState((1,), (2,))
    node.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 3))  # now accepted


def test_rawnode_drops_proposals_without_leader():
    s = MemoryStorage()
    bootstrap(s, [1, 2, 3])
    node = RawNode(Config(id=1, rng=random.Random(1)), s)
    with pytest.raises(ProposalDropped):
        node.propose(b"x")
    with pytest.raises(ProposalDropped):
        node.read_index(b"r")
    with pytest.raises(ValueError):
        node.step(__import__("pyetcd.raft", fromlist=["Message"]).Message(MT.HUP))


def test_rawnode_election_timeout_is_randomized_by_injected_rng():
    def first_campaign_tick(seed):
        s = MemoryStorage()
        bootstrap(s, [1, 2, 3])
        node = RawNode(Config(id=1, election_tick=10, rng=random.Random(seed)), s)
        for t in range(1, 100):
            node.tick()
            if node.has_ready():
                return t
    ticks = {first_campaign_tick(seed) for seed in range(40)}
    assert ticks <= set(range(10, 20)) and len(ticks) > 3
    assert first_campaign_tick(7) == first_campaign_tick(7)


def test_config_validation():
    for bad in (dict(id=0), dict(id=1, heartbeat_tick=0), dict(id=1, election_tick=1),
                dict(id=1, max_inflight_msgs=0)):
        with pytest.raises(ValueError):
            RawNode(Config(**bad), MemoryStorage())
