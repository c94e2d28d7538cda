"""The rules of the Raft paper (Ongaro & Ousterhout, section 5), one by one."""
from __future__ import annotations

import pytest

from pyetcd.raft import NONE, Entry, Message, MessageType, StateType
from pyetcd.raft.storage import Compacted

from .helpers import Network, entries_of, log_with_terms, new_raft, new_storage, read_messages

MT = MessageType
S = StateType


def _become(r, state, term=1, lead=2):
    if state == S.FOLLOWER:
        r.become_follower(term, lead)
    elif state == S.CANDIDATE:
        r.become_follower(term - 1, NONE)
        r.become_candidate()
    else:
        r.become_follower(term - 1, NONE)
        r.become_candidate()
        r.become_leader()


# 5.1: "If one server's current term is smaller than the other's, then it
# updates its current term to the larger value. If a candidate or leader
# discovers that its term is out of date, it immediately reverts to follower."
@pytest.mark.parametrize("state", [S.FOLLOWER, S.CANDIDATE, S.LEADER])
def test_update_term_from_message(state):
    r = new_raft(1, [1, 2, 3])
    _become(r, state, term=2 if state != S.FOLLOWER else 1)
    r.step(Message(MT.APP, frm=2, to=1, term=5))
    assert r.term == 5
    assert r.state == S.FOLLOWER
    assert r.lead == 2


# 5.1: "If a server receives a request with a stale term number, it rejects it."
def test_reject_stale_term_message():
    r = new_raft(1, [1, 2, 3])
    r.become_follower(2, NONE)
    r.step(Message(MT.APP, frm=2, to=1, term=1, index=0, entries=[Entry(1, 1)]))
    assert r.raft_log.last_index() == 0
    assert read_messages(r) == []


# 5.2: "When servers start up, they begin as followers."
def test_start_as_follower():
    r = new_raft(1, [1, 2, 3])
    assert r.state == S.FOLLOWER


# 5.2: leaders send periodic heartbeats to maintain their authority.
def test_leader_bcast_beat():
    r = new_raft(1, [1, 2, 3], election=10, heartbeat=1)
    _become(r, S.LEADER)
    read_messages(r)
    r.tick()
    msgs = sorted(read_messages(r), key=lambda m: m.to)
    assert [(m.type, m.to, m.commit) for m in msgs] == [(MT.HEARTBEAT, 2, 0), (MT.HEARTBEAT, 3, 0)]


# 5.2: a follower/candidate starts an election when its election timeout elapses.
@pytest.mark.parametrize("state", [S.FOLLOWER, S.CANDIDATE])
def test_nonleader_start_election(state):
    r = new_raft(1, [1, 2, 3], election=10)
    _become(r, state, term=1)
    for _ in range(2 * 10):
        r.tick()
    assert r.term == 2
    assert r.state == S.CANDIDATE
    assert r.trk.votes[1] is True
    msgs = sorted(read_messages(r), key=lambda m: m.to)
    assert [(m.type, m.to, m.term) for m in msgs] == [(MT.VOTE, 2, 2), (MT.VOTE, 3, 2)]


# 5.2: a candidate wins with a majority of votes, loses on a majority of
# rejections, and otherwise stays a candidate.
@pytest.mark.parametrize("size,votes,state", [
    (1, {}, S.LEADER), (3, {2: True, 3: True}, S.LEADER), (3, {2: True}, S.LEADER),
    (5, {2: True, 3: True, 4: True, 5: True}, S.LEADER), (5, {2: True, 3: True}, S.LEADER),
    (3, {}, S.CANDIDATE), (5, {2: True}, S.CANDIDATE), (5, {2: False, 3: False}, S.CANDIDATE),
    (3, {2: False, 3: False}, S.FOLLOWER), (5, {2: False, 3: False, 4: False}, S.FOLLOWER),
])
def test_leader_election_in_one_round(size, votes, state):
    ids = list(range(1, size + 1))
    r = new_raft(1, ids)
    r.step(Message(MT.HUP, frm=1))
    for id, granted in votes.items():
        r.step(Message(MT.VOTE_RESP, frm=id, to=1, term=r.term, reject=not granted))
    assert r.state == state
    assert r.term == 1


# 5.2: each server votes for at most one candidate per term, first come first served.
@pytest.mark.parametrize("vote,nvote,reject", [
    (NONE, 2, False), (NONE, 3, False), (2, 2, False), (3, 3, False), (2, 3, True), (3, 2, True)])
def test_follower_vote(vote, nvote, reject):
    r = new_raft(1, [1, 2, 3])
    r.term, r.vote = 1, vote
    r.step(Message(MT.VOTE, frm=nvote, to=1, term=1))
    msgs = read_messages(r)
    assert [(m.type, m.to, m.reject) for m in msgs] == [(MT.VOTE_RESP, nvote, reject)]


# 5.2: a candidate that hears from a leader of its term (or later) becomes its follower.
@pytest.mark.parametrize("term", [1, 2])
def test_candidate_fallback(term):
    r = new_raft(1, [1, 2, 3])
    r.step(Message(MT.HUP, frm=1))
    assert r.state == S.CANDIDATE
    r.step(Message(MT.APP, frm=2, to=1, term=term))
    assert r.state == S.FOLLOWER
    assert r.term == term


# 5.2: election timeouts are chosen randomly from [election, 2*election).
@pytest.mark.parametrize("state", [S.FOLLOWER, S.CANDIDATE])
def test_election_timeout_randomized(state):
    et = 10
    r = new_raft(1, [1, 2, 3], election=et)
    seen = set()
    for round in range(50 * et):
        _become(r, state, term=r.term + 1)
        t = 0
        while not read_messages(r):
            r.tick()
            t += 1
        seen.add(t)
    assert all(et <= t < 2 * et for t in seen)
    assert seen == set(range(et, 2 * et))


# 5.2: randomized timeouts make split votes rare: usually one node times out first.
def test_election_timeouts_rarely_collide():
    et, size, collisions = 10, 5, 0
    rafts = [new_raft(i, list(range(1, size + 1)), election=et) for i in range(1, size + 1)]
    for round in range(200):
        for r in rafts:
            r.become_follower(r.term + 1, NONE)
        timeouts = set()
        for _ in range(et * 2):
            for r in rafts:
                r.tick()
                if read_messages(r):
                    timeouts.add(r.id)
            if timeouts:
                break
        collisions += len(timeouts) > 1
    assert collisions / 200 <= 0.3


# 5.3: the leader appends the proposal and sends MsgApp to every follower.
def test_leader_start_replication():
    r = new_raft(1, [1, 2, 3])
    _become(r, S.LEADER)
    _commit_noop(r)
    li = r.raft_log.last_index()
    r.step(Message(MT.PROP, frm=1, entries=[Entry(0, 0, data=b"some data")]))
    assert r.raft_log.last_index() == li + 1
    assert r.raft_log.committed == li
    msgs = sorted(read_messages(r), key=lambda m: m.to)
    assert [(m.to, m.index, m.log_term, m.commit, [(e.term, e.index, e.data) for e in m.entries])
            for m in msgs] == [(t, li, 1, li, [(1, li + 1, b"some data")]) for t in (2, 3)]


def _commit_noop(r):
    """Acknowledge the leader's empty entry from every follower."""
    li = r.raft_log.last_index()
    for id in r.trk.voters:
        if id != r.id:
            r.step(Message(MT.APP_RESP, frm=id, to=r.id, term=r.term, index=li))
    read_messages(r)


# 5.3: an entry is committed once a majority has it; followers learn the commit index.
def test_leader_commit_entry():
    r = new_raft(1, [1, 2, 3])
    _become(r, S.LEADER)
    _commit_noop(r)
    li = r.raft_log.last_index()
    r.step(Message(MT.PROP, frm=1, entries=[Entry(0, 0, data=b"some data")]))
    for m in read_messages(r):
        r.step(Message(MT.APP_RESP, frm=m.to, to=1, term=m.term, index=m.index + len(m.entries)))
    assert r.raft_log.committed == li + 1
    msgs = read_messages(r)
    assert sorted(m.to for m in msgs) == [2, 3]
    assert all(m.type == MT.APP and m.commit == li + 1 for m in msgs)


# 5.3: the leader commits when a majority (not all) acknowledged.
@pytest.mark.parametrize("size,acks,committed", [
    (1, set(), True), (3, set(), False), (3, {2}, True), (3, {2, 3}, True),
    (5, set(), False), (5, {2}, False), (5, {2, 3}, True), (5, {2, 3, 4, 5}, True)])
def test_leader_acknowledge_commit(size, acks, committed):
    ids = list(range(1, size + 1))
    r = new_raft(1, ids)
    _become(r, S.LEADER)
    _commit_noop(r)
    li = r.raft_log.last_index()
    r.step(Message(MT.PROP, frm=1, entries=[Entry(0, 0, data=b"some data")]))
    for m in read_messages(r):
        if m.to in acks:
            r.step(Message(MT.APP_RESP, frm=m.to, to=1, term=m.term,
                           index=m.index + len(m.entries)))
    assert (r.raft_log.committed > li) == committed


# 5.3: committing an entry also commits all preceding entries (of earlier terms).
@pytest.mark.parametrize("terms", [[], [2], [1, 1], [1, 2]])
def test_leader_commit_preceding_entries(terms):
    s = new_storage([1, 2, 3])
    s.append([Entry(t, i) for i, t in enumerate(terms, 1)])
    r = new_raft(1, [1, 2, 3], storage=s)
    r.term = 2
    r.become_candidate()
    r.become_leader()
    r.step(Message(MT.PROP, frm=1, entries=[Entry(0, 0, data=b"some data")]))
    for m in read_messages(r):
        r.step(Message(MT.APP_RESP, frm=m.to, to=1, term=m.term, index=m.index + len(m.entries)))
    li = len(terms)
    assert [(e.term, e.index, e.data) for e in r.raft_log.next_committed_ents()] == (
        [(t, i, b"") for i, t in enumerate(terms, 1)] + [(3, li + 1, b""), (3, li + 2, b"some data")])


# 5.3: a follower applies an entry once it learns it is committed.
@pytest.mark.parametrize("n,commit", [(1, 1), (2, 2), (2, 1), (1, 0)])
def test_follower_commit_entry(n, commit):
    r = new_raft(1, [1, 2, 3])
    r.become_follower(1, 2)
    ents = [Entry(1, i, data=b"d%d" % i) for i in range(1, n + 1)]
    r.step(Message(MT.APP, frm=2, to=1, term=1, entries=ents, commit=commit))
    assert r.raft_log.committed == commit
    assert [e.index for e in r.raft_log.next_committed_ents()] == list(range(1, commit + 1))


# 5.3: a follower refuses MsgApp whose (index, log_term) it does not hold, with a hint.
@pytest.mark.parametrize("term,index,windex,reject,hint", [
    (0, 0, 1, False, 0), (1, 1, 1, False, 0), (2, 2, 2, False, 0),
    (1, 2, 2, True, 1), (3, 3, 3, True, 2)])
def test_follower_check_msg_app(term, index, windex, reject, hint):
    s = new_storage([1, 2, 3])
    s.append([Entry(1, 1), Entry(2, 2)])
    r = new_raft(1, [1, 2, 3], storage=s)
    r.raft_log.commit_to(1)
    r.become_follower(2, 2)
    r.step(Message(MT.APP, frm=2, to=1, term=2, log_term=term, index=index))
    (m,) = read_messages(r)
    assert (m.type, m.index, m.reject, m.reject_hint) == (MT.APP_RESP, windex, reject, hint)


# 5.3: conflicting entries are deleted, new ones appended.
@pytest.mark.parametrize("index,term,ents,want", [
    (2, 2, [(3, 3)], [(1, 1), (2, 2), (3, 3)]),
    (1, 1, [(3, 2), (4, 3)], [(1, 1), (3, 2), (4, 3)]),
    (0, 0, [(1, 1)], [(1, 1), (2, 2)]),
    (0, 0, [(3, 1)], [(3, 1)])])
def test_follower_append_entries(index, term, ents, want):
    s = new_storage([1, 2, 3])
    s.append([Entry(1, 1), Entry(2, 2)])
    r = new_raft(1, [1, 2, 3], storage=s)
    r.become_follower(2, 2)
    r.step(Message(MT.APP, frm=2, to=1, term=2, log_term=term, index=index,
                   entries=[Entry(t, i) for t, i in ents]))
    assert [(e.term, e.index) for e in r.raft_log.all_entries()] == want


# 5.3: the leader brings every follower's log in line with its own.
@pytest.mark.parametrize("follower_terms", [
    [1, 1, 1, 4, 4, 5, 5, 6, 6],
    [1, 1, 1, 4],
    [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    [1, 1, 1, 4, 4, 4, 4],
    [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]])
def test_leader_sync_follower_log(follower_terms):
    leader_terms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
    lead_s, foll_s = new_storage([1, 2, 3]), new_storage([1, 2, 3])
    lead_s.append([Entry(t, i) for i, t in enumerate(leader_terms, 1)])
    foll_s.append([Entry(t, i) for i, t in enumerate(follower_terms, 1)])
    lead = new_raft(1, [1, 2, 3], storage=lead_s)
    lead.term = 8
    foll = new_raft(2, [1, 2, 3], storage=foll_s)
    foll.term = 7
    n = Network(lead, foll, None)  # node 3 is a fresh, empty voter
    n.peers[3].term = 7
    # node 3 votes for 1 so that 1 wins with a log more up to date than 2's may be
    n.campaign(1)
    n.send(Message(MT.PROP, to=1, frm=1, entries=[Entry(0, 0)]))
    assert entries_of(lead) == entries_of(foll)


# 5.4.1: a voter grants its vote only to candidates whose log is at least as up to date.
@pytest.mark.parametrize("log_term,index,reject", [
    (1, 1, True), (1, 2, False), (1, 3, False), (2, 1, False), (2, 2, False), (2, 3, False),
    (0, 3, True)])  # voter log: [(1,1), (1,2)]
def test_voter(log_term, index, reject):
    s = new_storage([1, 2])
    s.append([Entry(1, 1), Entry(1, 2)])
    r = new_raft(1, [1, 2], storage=s)
    if log_term == 0:
        log_term, index = 0, 3
        reject = True
    r.step(Message(MT.VOTE, frm=2, to=1, term=3, log_term=log_term, index=index))
    (m,) = read_messages(r)
    assert m.type == MT.VOTE_RESP and m.reject == reject


# 5.4.2: a leader commits only entries of its current term by counting replicas.
@pytest.mark.parametrize("index,wcommit", [(1, 0), (2, 0), (3, 3)])
def test_leader_only_commits_log_from_current_term(index, wcommit):
    s = new_storage([1, 2])
    s.append([Entry(1, 1), Entry(2, 2)])
    r = new_raft(1, [1, 2], storage=s)
    r.term = 2
    r.become_candidate()
    r.become_leader()  # term 3, appends the empty entry at index 3
    read_messages(r)
    r.step(Message(MT.APP_RESP, frm=2, to=1, term=r.term, index=index))
    assert r.raft_log.committed == wcommit


# 5.4.1 / 5.2 end to end: elections in a network.
def test_network_elects_and_replicates():
    n = Network(None, None, None)
    n.campaign(1)
    assert n.leader_ids() == [1]
    n.propose(1, b"x")
    for p in n.peers.values():
        assert p.raft_log.committed == 2
    n.isolate(1)
    n.campaign(2)
    assert n.peers[2].state == S.LEADER
    n.recover()
    n.propose(2, b"y")
    n.send(Message(MT.BEAT, to=2, frm=2))  # the probe to 1 was lost: heartbeat resumes it
    assert entries_of(n.peers[1]) == entries_of(n.peers[2]) == entries_of(n.peers[3])
    assert n.peers[1].state == S.FOLLOWER


def test_compacted_term_raises():
    s = log_with_terms([1, 1, 2])
    s.compact(2)
    r = new_raft(1, [1], storage=s)
    with pytest.raises(Compacted):
        r.raft_log.term(1)
    assert r.raft_log.term(2) == 1
