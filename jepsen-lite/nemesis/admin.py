"""Operator chores during the run (Jepsen's admin nemesis): compaction of
the history up to a recent revision, and defragmentation of a member."""
from __future__ import annotations

import random

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

from ..client import Indeterminate, Refused
from .base import Nemesis


class Admin(Nemesis):
    name = "admin"
    modes = ("compact", "defrag")

    def start(self, run, rng: random.Random) -> dict:
        mode = rng.choice(self.modes)
        live = [m for m in run.cluster.members if m.running and not m.paused]
        m = rng.choice(live)
        c = run.cluster.client(m, 10.0)
        try:
            if mode == "compact":
                head = c.get(b"/", b"\x00", count_only=True).header.revision
                rev = max(1, head - rng.randint(0, 50))
                c.call(c.kv.Compact, pb.CompactionRequest(revision=rev, physical=True), True)
                return {"mode": mode, "member": m.name, "revision": rev}
            c.call(c.maintenance.Defragment, pb.DefragmentRequest(), True)
            return {"mode": mode, "member": m.name}
        except (Refused, Indeterminate) as exc:
            return {"mode": mode, "member": m.name, "error": str(exc)}
        finally:
            c.close()

    def end(self, run) -> dict:
        return {}

    def heal(self, run) -> None:
        pass  # a compaction or a defragmentation has nothing to undo
