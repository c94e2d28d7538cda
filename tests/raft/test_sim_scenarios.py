"""Named fault scenarios, scripted on the simulated cluster (tests/sim.py).

Each runs with invariant checks after every step (``Cluster.pump``) and ends
with ``heal_and_converge``: a leader emerges and every acknowledged proposal
is applied on every member.
"""
from __future__ import annotations

import pytest

from pyetcd.raft import ConfChange, ConfChangeType, MessageType, StateType

from ..sim import Cluster, SimOptions

MT = MessageType


def quiet(nodes: int = 3, **kw) -> SimOptions:
    """A reliable network: the scenario script is the only source of faults."""
    return SimOptions(nodes=nodes, drop_rate=0.0, dup_rate=0.0, max_delay=0, **kw)


def elect(c: Cluster, id: int) -> None:
    c.nodes[id].node.campaign()
    c.pump()
    c.wait_for(lambda: c.leader() == id)


def data_at(c: Cluster, id: int, index: int) -> bytes:
    log = c.nodes[id].node.raft.raft_log
    return log.slice(index, index + 1)[0].data


@pytest.mark.parametrize("seed", range(3))
def test_leader_isolated_mid_replication(seed):
    c = Cluster(seed, quiet())
    elect(c, 1)
    for i in range(5):
        c.propose(1, b"before%d" % i)
    c.pump()
    # the leader appends and sends, but is cut off before anyone acknowledges
    for i in range(5):
        c.propose(1, b"cut%d" % i)
    c.process_ready(1)
    c.isolate(1)
    c.pump()
    c.wait_for(lambda: c.leader() in (2, 3))
    new = c.leader()
    c.propose(new, b"after")
    c.settle(3)
    assert c.nodes[1].node.raft.state == StateType.FOLLOWER or c.nodes[1].node.raft.term < \
        c.nodes[new].node.raft.term
    c.heal_and_converge()
    assert b"after" in c.acked
    assert all(b"before%d" % i in c.acked for i in range(5))


@pytest.mark.parametrize("seed", range(3))
def test_new_leader_overwrites_uncommitted_entries(seed):
    c = Cluster(seed, quiet())
    elect(c, 1)
    c.settle(2)
    base = c.nodes[1].node.raft.raft_log.last_index()
    c.isolate(1)
    for i in range(3):
        c.propose(1, b"lost%d" % i)  # appended on 1 only, never committed
    c.pump()
    assert c.nodes[1].node.raft.raft_log.last_index() == base + 3
    c.wait_for(lambda: c.leader() in (2, 3))
    new = c.leader()
    for i in range(3):
        c.propose(new, b"won%d" % i)
    c.settle(2)
    c.heal_and_converge()
    # node 1's conflicting suffix was replaced by the new leader's entries
    wanted = [data_at(c, new, i) for i in range(base + 1, base + 4)]
    assert [data_at(c, 1, i) for i in range(base + 1, base + 4)] == wanted
    assert not any(b"lost%d" % i in c.acked for i in range(3))
    assert all(b"won%d" % i in c.acked for i in range(3))


@pytest.mark.parametrize("seed", range(3))
def test_follower_rejoins_after_compaction(seed):
    c = Cluster(seed, quiet(snapshot_every=20, keep_entries=2))
    elect(c, 1)
    c.crash(3)
    for i in range(60):
        c.propose(1, b"v%d" % i)
        c.pump()
    leader_storage = c.nodes[1].storage
    assert leader_storage.first_index() > 2, "the leader must have compacted its log"
    sent = c.snapshots_sent
    c.start(3)
    c.heal_and_converge()
    assert c.snapshots_sent > sent, "the rejoining follower must be sent a snapshot"
    assert c.nodes[3].storage.snapshot().metadata.index > 1
    assert c.nodes[3].app.applied >= c.max_acked


@pytest.mark.parametrize("nodes", [2, 3, 5])
def test_remove_the_leader(nodes):
    c = Cluster(1, quiet(nodes=nodes))
    elect(c, 1)
    c.propose(1, b"x")
    c.pump()
    assert c.conf_change(1, ConfChange(ConfChangeType.REMOVE_NODE, 1))
    c.pump()
    c.wait_for(lambda: c.leader() not in (None, 1), max_ticks=200)
    new = c.leader()
    c.propose(new, b"y")
    c.heal_and_converge()
    assert 1 not in c.members()
    assert b"y" in c.acked


def test_leader_refuses_proposals_after_proposing_its_own_removal():
    c = Cluster(2, quiet())
    elect(c, 1)
    c.settle(1)
    assert c.conf_change(1, ConfChange(ConfChangeType.REMOVE_NODE, 1))
    assert not c.propose(1, b"too late")


def test_add_member_that_is_down():
    c = Cluster(3, quiet())
    elect(c, 1)
    c.settle(1)
    new = c.add_member(1, start=False)
    assert new == 4
    c.settle(2)
    assert set(c.members()) == {1, 2, 3, 4}
    # 3 of 4 voters are up: the cluster still commits
    for i in range(5):
        assert c.propose(1, b"w%d" % i)
    c.settle(2)
    assert all(b"w%d" % i in c.acked for i in range(5))
    # but losing one more blocks it until the new member starts
    c.crash(3)
    c.propose(1, b"blocked")
    c.settle(5)
    assert b"blocked" not in c.acked
    c.start(4)
    c.settle(20)
    assert b"blocked" in c.acked
    c.heal_and_converge()
    assert c.nodes[4].app.applied >= c.max_acked


def test_add_learner_then_promote():
    c = Cluster(4, quiet())
    elect(c, 1)
    c.settle(1)
    new = c.add_member(1, learner=True)
    c.settle(3)
    r = c.nodes[1].node.raft
    assert new in r.trk.learners and new not in r.trk.voters
    assert c.nodes[new].node.raft.is_learner
    for _ in range(3 * c.opts.election_tick):  # a learner never campaigns
        c.nodes[new].node.tick()
    assert c.nodes[new].node.raft.state == StateType.FOLLOWER
    assert c.conf_change(1, ConfChange(ConfChangeType.ADD_NODE, new))
    c.settle(3)
    assert new in r.trk.voters and not c.nodes[new].node.raft.is_learner
    c.heal_and_converge()


@pytest.mark.parametrize("seed", range(3))
def test_read_index_during_partition_is_never_stale(seed):
    c = Cluster(seed, quiet())
    elect(c, 1)
    c.propose(1, b"a")
    c.settle(2)
    c.isolate(1)
    c.wait_for(lambda: c.leader() in (2, 3))
    new = c.leader()
    c.propose(new, b"b")
    c.settle(2)
    assert b"b" in c.acked
    # the deposed leader (it may still believe it leads) must not answer
    served = c.reads_served
    c.read(1)
    c.settle(3)
    assert c.reads_served == served
    # the real leader answers, with an index covering "b"
    assert c.read(new)
    c.settle(2)
    assert c.reads_served == served + 1
    c.heal_and_converge()


def test_read_index_batches_and_is_forwarded():
    c = Cluster(5, quiet())
    elect(c, 1)
    c.settle(2)
    for _ in range(4):
        assert c.read(1)
        assert c.read(2)  # forwarded to the leader
    c.settle(2)
    assert c.reads_served == 8
    assert not c.pending_reads


def test_leader_transfer():
    c = Cluster(6, quiet())
    elect(c, 1)
    c.propose(1, b"x")
    c.settle(2)
    c.nodes[1].node.transfer_leader(3)
    c.pump()
    c.wait_for(lambda: c.leader() == 3, max_ticks=50)
    c.heal_and_converge()


def test_crash_with_torn_write_loses_only_unpersisted_state():
    c = Cluster(7, quiet())
    elect(c, 1)
    c.settle(1)
    for i in range(10):
        c.propose(2, b"t%d" % i)  # forwarded
    c.pump()
    for i in range(10):
        c.propose(1, b"u%d" % i)
    c.crash(1, torn=True)
    c.wait_for(lambda: c.leader() in (2, 3))
    c.heal_and_converge()
    assert all(b"t%d" % i in c.acked for i in range(10))
