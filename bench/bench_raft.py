"""Committed entries per second through an in-memory 3-node cluster (no I/O).

    python -m pytest bench/bench_raft.py --benchmark-enable

Every node runs the full Ready loop (persist to MemoryStorage, deliver
messages, apply, advance); the figure is entries committed *and applied on
all three nodes* per second.  Target: >= 50,000 entries/s in batches of 64.
"""
from __future__ import annotations

import random

import pytest

from pyetcd.raft import Config, MemoryStorage, RawNode, bootstrap

ROUNDS = 40


class Cluster:
    def __init__(self) -> None:
        self.storage = {}
        self.nodes = {}
        self.applied = {1: 0, 2: 0, 3: 0}
        for id in (1, 2, 3):
            s = MemoryStorage()
            bootstrap(s, [1, 2, 3])
            self.storage[id] = s
            self.nodes[id] = RawNode(Config(id=id, rng=random.Random(id), pre_vote=True,
                                            check_quorum=True, max_inflight_msgs=256), s)
        self.nodes[1].campaign()
        self.pump()
        assert self.nodes[1].is_leader

    def pump(self) -> None:
        nodes, storage, applied = self.nodes, self.storage, self.applied
        busy = True
        while busy:
            busy = False
            for id, node in nodes.items():
                if not node.has_ready():
                    continue
                busy = True
                rd = node.ready()
                s = storage[id]
                if rd.entries:
                    s.append(rd.entries)
                if rd.hard_state is not None:
                    s.set_hard_state(rd.hard_state)
                for m in rd.messages:
                    nodes[m.to].step(m)
                if rd.committed_entries:
                    applied[id] += sum(1 for e in rd.committed_entries if e.data)
                node.advance(rd)
                # keep the in-memory log bounded like a real server would
                if s.last_index() - s.first_index() > 20_000:
                    s.compact(s.last_index() - 1_000)


def _run(cluster: Cluster, n: int, batch: int) -> int:
    leader = cluster.nodes[1]
    payload = b"x" * 64
    before = min(cluster.applied.values())
    if batch == 1:
        for _ in range(n):
            leader.propose(payload)
            cluster.pump()
    else:
        datas = [payload] * batch
        for _ in range(n // batch):
            leader.propose_batch(datas)
            cluster.pump()
    done = min(cluster.applied.values()) - before
    assert done == n
    return done


@pytest.mark.parametrize("batch", [1, 64])
def test_bench_committed_entries(benchmark, batch):
    cluster = Cluster()
    n = 640 if batch == 1 else 64 * 64
    benchmark.extra_info["entries_per_round"] = n
    benchmark.pedantic(_run, args=(cluster, n, batch), rounds=ROUNDS // 4, iterations=1,
                       warmup_rounds=1)
    if benchmark.stats is not None:  # None with --benchmark-disable
        mean = benchmark.stats.stats.mean
        benchmark.extra_info["entries_per_second"] = round(n / mean)
        print(f"\nbatch={batch}: {n / mean:,.0f} committed entries/s")


def test_bench_propose_many_small_batches(benchmark):
    """Many proposals per Ready, as the server's loop produces under load."""
    cluster = Cluster()
    leader = cluster.nodes[1]
    n = 64 * 64

    def run():
        before = min(cluster.applied.values())
        for _ in range(64):
            for _ in range(64):
                leader.propose(b"y" * 64)
            cluster.pump()
        assert min(cluster.applied.values()) - before == n

    benchmark.pedantic(run, rounds=ROUNDS // 4, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:
        print(f"\n64 single proposals per Ready: {n / benchmark.stats.stats.mean:,.0f} entries/s")
