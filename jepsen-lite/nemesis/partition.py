"""Partitions of the peer links (and of a member's client link), through
the network namespaces the tool made (:mod:`..net`):

- ``isolate-leader``: the leader alone on one side;
- ``halves``: a random minority against the majority;
- ``bridge``: two sides that cannot see each other, and one member that
  sees both (Jepsen's bridge);
- ``clients``: one member cut off from its clients (peers still reach it).
"""
from __future__ import annotations

import random

from .base import Nemesis


class Partition(Nemesis):
    name = "partition"
    modes = ("isolate-leader", "halves", "bridge", "clients")

    def start(self, run, rng: random.Random) -> dict:
        c = run.cluster
        net = c.net
        ids = [m.index for m in c.members]
        mode = rng.choice(self.modes)
        if mode == "isolate-leader":
            lead = c.leader()
            i = lead.index if lead is not None else rng.choice(ids)
            groups = [[i], [j for j in ids if j != i]]
            net.partition(groups)
        elif mode == "halves":
            shuffled = rng.sample(ids, len(ids))
            cut = (len(ids) - 1) // 2
            groups = [shuffled[:cut], shuffled[cut:]]
            net.partition(groups)
        elif mode == "bridge":
            shuffled = rng.sample(ids, len(ids))
            mid = shuffled[0]
            rest = shuffled[1:]
            a, b = rest[:len(rest) // 2], rest[len(rest) // 2:]
            for i in a:
                for j in b:
                    net.cut(i, j)
            groups = [a + [mid], [mid] + b]
        else:
            i = rng.choice(ids)
            net.cut_clients(i)
            groups = [[f"clients x m{i}"]]
        return {"mode": mode, "groups": [[f"m{i}" if isinstance(i, int) else i for i in g]
                                          for g in groups]}

    def end(self, run) -> dict:
        run.cluster.net.heal()
        return {"healed": True}
