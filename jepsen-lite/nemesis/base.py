"""Nemeses: faults started and ended on a schedule, every start and end
recorded (in ``nemesis.jsonl`` and in the history as process ``nemesis``).

A nemesis has ``start(run, rng) -> dict`` (what it did), ``end(run) ->
dict`` (undone) and ``heal(run)`` (undo anything still in place at the end
of the run).  The scheduler alternates quiet and faulty periods, choosing
among the run's nemeses with the run's rng."""
from __future__ import annotations

import abc
import json
import random
import threading
import time

from ..history import INFO


class Nemesis(abc.ABC):
    name = "?"

    @abc.abstractmethod
    def start(self, run, rng: random.Random) -> dict:
        """Start one fault; what was done."""

    @abc.abstractmethod
    def end(self, run) -> dict:
        """End the fault started last; what was undone."""

    def heal(self, run) -> None:
        """Make sure nothing of this nemesis is left in place."""
        self.end(run)


def targets(run, rng: random.Random, mode: str):
    """Members to hit: one, a minority, a majority, all, or the leader."""
    ms = list(run.cluster.members)
    if mode == "leader":
        lead = run.cluster.leader()
        return [lead] if lead is not None else [rng.choice(ms)]
    n = {"one": 1, "minority": max(1, (len(ms) - 1) // 2), "majority": len(ms) // 2 + 1,
         "all": len(ms)}[mode]
    return rng.sample(ms, n)


class Scheduler:
    """Runs the nemeses: ``quiet`` seconds of calm, then a fault for
    ``hold`` seconds, and so on until stopped."""

    def __init__(self, run, nemeses: list[Nemesis], rng: random.Random, quiet: float = 3.0,
                 hold: float = 4.0):
        self.run = run
        self.nemeses = nemeses
        self.rng = rng
        self.quiet = quiet
        self.hold = hold
        self.stop = threading.Event()
        self.log = open(run.out / "nemesis.jsonl", "w")
        self.thread = threading.Thread(target=self._loop, daemon=True, name="nemesis")
        self.counts: dict[str, int] = {}

    def record(self, f: str, value: dict) -> None:
        op = self.run.recorder.invoke("nemesis", f, value, workload="nemesis")
        self.run.recorder.complete(op, INFO, value)
        self.log.write(json.dumps({"time": round(op.time, 3), "f": f, **value}, default=str) + "\n")
        self.log.flush()

    def _loop(self) -> None:
        while not self.stop.wait(self.quiet * (0.5 + self.rng.random())):
            if not self.nemeses:
                continue
            n = self.rng.choice(self.nemeses)
            try:
                what = n.start(self.run, self.rng)
            except Exception as exc:  # noqa: BLE001 - a fault that could not start is logged
                self.record(f"{n.name}-failed", {"error": repr(exc)})
                continue
            self.counts[n.name] = self.counts.get(n.name, 0) + 1
            self.record(f"start-{n.name}", what)
            self.stop.wait(self.hold * (0.5 + self.rng.random()))
            try:
                self.record(f"end-{n.name}", n.end(self.run))
            except Exception as exc:  # noqa: BLE001
                self.record(f"{n.name}-end-failed", {"error": repr(exc)})

    def start(self) -> None:
        self.thread.start()

    def finish(self) -> None:
        """Stop scheduling and undo every fault."""
        self.stop.set()
        self.thread.join(timeout=120)
        for n in self.nemeses:
            try:
                n.heal(self.run)
            except Exception as exc:  # noqa: BLE001
                self.record(f"{n.name}-heal-failed", {"error": repr(exc)})
        self.record("healed", {"at": time.monotonic()})
        self.log.close()
