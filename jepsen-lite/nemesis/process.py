"""Process faults: kill and restart (SIGKILL; one member, a minority, the
leader or every member at once) and pause and resume (SIGSTOP/SIGCONT)."""
from __future__ import annotations

import random

from .base import Nemesis, targets


class Kill(Nemesis):
    name = "kill"
    modes = ("one", "minority", "leader", "all")

    def __init__(self):
        self.down = []

    def start(self, run, rng: random.Random) -> dict:
        mode = rng.choice(self.modes)
        self.down = targets(run, rng, mode)
        for m in self.down:
            run.cluster.kill(m)
        return {"mode": mode, "members": [m.name for m in self.down]}

    def end(self, run) -> dict:
        down, self.down = self.down, []
        started = [m.name for m in down if run.cluster.restart(m, wait=False)]
        return {"restarted": started}

    def heal(self, run) -> None:
        self.end(run)
        for m in run.cluster.members:
            if not m.running:
                run.cluster.restart(m)


class Pause(Nemesis):
    name = "pause"
    modes = ("one", "minority", "leader")

    def __init__(self):
        self.paused = []

    def start(self, run, rng: random.Random) -> dict:
        mode = rng.choice(self.modes)
        self.paused = targets(run, rng, mode)
        for m in self.paused:
            run.cluster.pause(m)
        return {"mode": mode, "members": [m.name for m in self.paused]}

    def end(self, run) -> dict:
        paused, self.paused = self.paused, []
        for m in paused:
            run.cluster.resume(m)
        return {"resumed": [m.name for m in paused]}

    def heal(self, run) -> None:
        self.end(run)
        for m in run.cluster.members:
            run.cluster.resume(m)
