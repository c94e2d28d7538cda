"""Seeded simulation campaigns (tests/sim.py) and a hypothesis-driven cluster.

A failure message names the seed and the replay command
(``python -m tests.sim --seed N --steps M --nodes K``).
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

from pyetcd.raft import ConfChange, ConfChangeType

from ..sim import Cluster, SimOptions, main, run

VARIANTS = {
    "prevote+checkquorum": dict(pre_vote=True, check_quorum=True),
    "prevote": dict(pre_vote=True, check_quorum=False),
    "checkquorum": dict(pre_vote=False, check_quorum=True),
    "plain": dict(pre_vote=False, check_quorum=False),
}


@pytest.mark.parametrize("nodes,seeds", [(1, range(0, 5)), (3, range(0, 25)), (5, range(0, 10))])
def test_campaign_short(nodes, seeds):
    for seed in seeds:
        run(seed, 2000, SimOptions(nodes=nodes))


@pytest.mark.parametrize("variant", VARIANTS)
def test_campaign_variants(variant):
    for seed in range(1000, 1008):
        run(seed, 2000, SimOptions(nodes=3, **VARIANTS[variant]))


def test_campaign_harsh_network():
    for seed in range(2000, 2008):
        run(seed, 3000, SimOptions(nodes=5, drop_rate=0.2, dup_rate=0.1, max_delay=8,
                                   snapshot_every=15, keep_entries=1))


def test_same_seed_same_run():
    a = run(42, 1500)
    b = run(42, 1500)
    assert (a.now, a.committed, a.leaders, a.acked) == (b.now, b.committed, b.leaders, b.acked)


def test_cli_replays_a_seed(capsys):
    assert main(["--seed", "3", "--steps", "300"]) == 0
    assert "ok seed=3" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("nodes", [1, 3, 5])
@pytest.mark.parametrize("variant", VARIANTS)
def test_campaign_long(nodes, variant):
    for seed in range(10_000, 10_040):
        run(seed, 10_000, SimOptions(nodes=nodes, **VARIANTS[variant]))


class ClusterMachine(RuleBasedStateMachine):
    """Hypothesis chooses the faults; the cluster checks invariants after each."""

    @initialize(seed=st.integers(0, 2**32), nodes=st.sampled_from([1, 3, 5]),
                pre_vote=st.booleans(), check_quorum=st.booleans())
    def setup(self, seed, nodes, pre_vote, check_quorum):
        self.c = Cluster(seed, SimOptions(nodes=nodes, pre_vote=pre_vote,
                                          check_quorum=check_quorum))

    def _pick(self, i):
        ids = [id for id in self.c.nodes if id not in self.c.removed]
        return ids[i % len(ids)]

    @rule(n=st.integers(1, 15))
    def tick(self, n):
        for _ in range(n):
            self.c.tick()
            self.c.process_all()

    @rule(n=st.integers(1, 30))
    def deliver(self, n):
        for _ in range(n):
            self.c.deliver_one()
        self.c.process_all()

    @rule(i=st.integers(0, 10), k=st.integers(1, 5))
    def propose(self, i, k):
        for _ in range(k):
            self.c.propose(self._pick(i))

    @rule(i=st.integers(0, 10))
    def read(self, i):
        self.c.read(self._pick(i))

    @rule(i=st.integers(0, 10), torn=st.booleans())
    def crash(self, i, torn):
        self.c.crash(self._pick(i), torn)

    @rule(i=st.integers(0, 10))
    def restart(self, i):
        id = self._pick(i)
        if not self.c.nodes[id].up:
            self.c.start(id)

    @rule(groups=st.lists(st.integers(0, 1), min_size=8, max_size=8))
    def partition(self, groups):
        self.c.partition = {id: groups[id % 8] for id in self.c.nodes}

    @rule()
    def heal(self):
        self.c.heal()

    @precondition(lambda self: self.c.leader() is not None)
    @rule(kind=st.sampled_from(["add", "learner", "add-down", "remove", "promote"]),
          i=st.integers(0, 10))
    def conf_change(self, kind, i):
        c = self.c
        leader = c.leader()
        cs = c.nodes[leader].node.raft.trk.conf_state()
        members = cs.voters + cs.learners
        if kind in ("add", "learner", "add-down") and len(members) < c.opts.max_members:
            c.add_member(leader, learner=kind == "learner", start=kind != "add-down")
        elif kind == "remove" and len(cs.voters) > 1:
            c.conf_change(leader, ConfChange(ConfChangeType.REMOVE_NODE,
                                             members[i % len(members)]))
        elif kind == "promote" and cs.learners:
            c.conf_change(leader, ConfChange(ConfChangeType.ADD_NODE,
                                             cs.learners[i % len(cs.learners)]))

    @invariant()
    def safe(self):
        if hasattr(self, "c"):
            self.c.check()

    def teardown(self):
        # liveness: after healing, a leader and full replication within bounded ticks
        if hasattr(self, "c"):
            self.c.heal_and_converge()


ClusterMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_cluster_machine = ClusterMachine.TestCase
