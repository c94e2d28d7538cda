"""Power loss: the member is SIGKILLed and its filesystem drops every write
that was not fsynced (:mod:`..lazyfs`), for one member or every member at
once; then the members start again on what survived.  A kill alone keeps
the page cache, so only this catches a missing fdatasync."""
from __future__ import annotations

import random

from .base import Nemesis, targets


class Power(Nemesis):
    name = "power"
    modes = ("one", "all")

    def __init__(self):
        self.down = []

    def start(self, run, rng: random.Random) -> dict:
        mode = rng.choice(self.modes)
        self.down = targets(run, rng, mode)
        dropped = {}
        for m in self.down:
            run.cluster.kill(m)
        for m in self.down:
            mount = run.cluster.mounts[m.index]
            mount.power_loss()
            dropped[m.name] = "power lost"
        return {"mode": mode, "members": [m.name for m in self.down]}

    def end(self, run) -> dict:
        down, self.down = self.down, []
        return {"restarted": [m.name for m in down if run.cluster.restart(m, wait=False)]}

    def heal(self, run) -> None:
        self.end(run)
        for m in run.cluster.members:
            if not m.running:
                run.cluster.restart(m)
