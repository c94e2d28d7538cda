"""One campaign: start the members, run the workloads' clients and the
nemesis for ``--time`` seconds, heal everything, take the final reads,
check, and write the run directory:

    run.json        the options (``jepsen-lite check DIR`` reads them)
    history.jsonl   every operation (invoke/ok/fail/info) and every fault
    nemesis.jsonl   the faults alone
    m0.log ...      the members' logs
    verdicts.json   each checker's verdict
    report.html     a timeline of operations and faults, latency plots
"""
from __future__ import annotations

import json
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pyetcd.testing import server_command

from .cluster import Cluster
from .history import Recorder, load
from .nemesis import NEEDS_CLOCK, NEEDS_LAZYFS, NEEDS_NETNS, NEMESES, Scheduler
from .net import NetworkUnavailable
from .workloads import WORKLOADS
from .workloads.base import Context


class ToolError(Exception):
    """The tool itself could not run (exit status 2)."""


@dataclass
class Options:
    server: str = "pyetcd"
    members: int = 3
    workloads: list = field(default_factory=lambda: ["register"])
    nemeses: list = field(default_factory=lambda: ["none"])
    time: float = 20.0
    rate: float = 100.0
    clients: int = 10
    seed: int = 0
    out: str = ""
    flags: list = field(default_factory=list)    # more server flags for every member
    env: dict = field(default_factory=dict)      # more environment for every member
    quiet: float = 3.0
    hold: float = 4.0
    timeout: float = 1.0
    heal_wait: float = 60.0  # seconds for the healed cluster to answer before the final reads


class Run:
    """A campaign in progress: the cluster, the recorder, the options."""

    def __init__(self, opts: Options):
        self.opts = opts
        self.out = Path(opts.out)
        self.out.mkdir(parents=True, exist_ok=True)
        unknown = [w for w in opts.workloads if w not in WORKLOADS]
        unknown += [n for n in opts.nemeses if n != "none" and _nemesis_name(n) not in NEMESES]
        if unknown:
            raise ToolError(f"unknown workload or nemesis: {', '.join(unknown)} (workloads: "
                            f"{', '.join(WORKLOADS)}; nemeses: none, {', '.join(NEMESES)})")
        (self.out / "run.json").write_text(json.dumps(asdict(opts), indent=1))
        self.recorder = Recorder(self.out / "history.jsonl")
        self.tmp = tempfile.TemporaryDirectory(prefix="jepsen-lite-")
        self.workloads = [WORKLOADS[w]() for w in opts.workloads]
        self.nemeses = [_nemesis(n) for n in opts.nemeses if n != "none"]
        netns = any(_nemesis_name(n) in NEEDS_NETNS for n in opts.nemeses)
        lazy = any(_nemesis_name(n) in NEEDS_LAZYFS for n in opts.nemeses)
        clock = any(_nemesis_name(n) in NEEDS_CLOCK for n in opts.nemeses)
        tmpfs = any(_nemesis_name(n) == "disk" for n in opts.nemeses)
        try:
            server_command(opts.server)   # an unknown server is the tool's error, said at once
            self.cluster = Cluster(opts.server, opts.members, Path(self.tmp.name), netns=netns,
                                   flags=opts.flags, env=opts.env, lazy=lazy, clock=clock,
                                   tmpfs=tmpfs)
        except (NetworkUnavailable, FileNotFoundError, ValueError, RuntimeError, ImportError) as exc:
            raise ToolError(f"cannot set up the members: {exc}") from None
        self.ctx: Context | None = None

    def execute(self) -> dict:
        try:
            try:
                self.cluster.start()
            except (RuntimeError, OSError, ValueError) as exc:
                raise ToolError(f"the cluster did not start: {exc}") from None
            verdicts = self._traffic()
        finally:
            self.cluster.collect_logs(self.out)
            self.cluster.close()
            self.recorder.close()
            self.tmp.cleanup()
        return verdicts

    def _traffic(self) -> dict:
        opts = self.opts
        ctx = self.ctx = Context(self.cluster, self.recorder, opts.seed, opts.rate, opts.clients,
                                 time.monotonic() + opts.time, opts.timeout)
        for w in self.workloads:
            w.setup(ctx)
        threads = []
        for i, w in enumerate(self.workloads):
            procs = [p for p in range(opts.clients) if p % len(self.workloads) == i] or [i]
            threads += w.threads(ctx, [p + 100 * i for p in procs])
        sched = Scheduler(self, self.nemeses, random.Random(opts.seed), opts.quiet, opts.hold)
        for t in threads:
            t.start()
        sched.start()
        while time.monotonic() < ctx.deadline:
            time.sleep(0.2)
        sched.finish()
        ctx.stop.set()
        for t in threads:
            t.join(timeout=30)
        if not self.cluster.wait_healthy(opts.heal_wait):
            self.recorder.note(f"cluster not healthy {opts.heal_wait:g} s after healing")
        for w in self.workloads:
            w.final(ctx)
        verdicts = check(self.recorder.ops, self.workloads, {"counts": sched.counts})
        judged = [n for n in self.nemeses if hasattr(n, "verdict")]
        if judged:
            problems = [p for n in judged for p in n.verdict(self)]
            verdicts["nemesis"] = {"valid": not problems, "anomalies": problems,
                                   "faults": sched.counts}
        return verdicts


def _nemesis_name(spec: str) -> str:
    return spec.split(":", 1)[0]


def _nemesis(spec: str):
    """``kill`` or ``kill:all``: a nemesis, restricted to one of its modes."""
    name, _, mode = spec.partition(":")
    n = NEMESES[name]()
    if mode:
        if mode not in getattr(n, "modes", ()):
            raise ToolError(f"nemesis {name} has no mode {mode!r} "
                            f"(modes: {', '.join(getattr(n, 'modes', ())) or 'none'})")
        n.modes = (mode,)
    return n


def check(ops, workloads, info: dict) -> dict:
    verdicts = {}
    for w in workloads:
        try:
            verdicts[w.name] = w.check(ops, info)
        except Exception as exc:  # noqa: BLE001 - a checker bug is reported, not hidden
            verdicts[w.name] = {"valid": None, "error": f"checker failed: {exc!r}"}
    return verdicts


def recheck(out: Path) -> dict:
    """``jepsen-lite check DIR``: the stored history through the checkers
    again (what a nemesis observed of the members is taken from its log)."""
    opts = json.loads((out / "run.json").read_text())
    ops = load(out / "history.jsonl")
    verdicts = check(ops, [WORKLOADS[w]() for w in opts["workloads"]], {})
    stored = out / "verdicts.json"
    if stored.exists() and "nemesis" in json.loads(stored.read_text()):
        verdicts["nemesis"] = json.loads(stored.read_text())["nemesis"]
    return verdicts
