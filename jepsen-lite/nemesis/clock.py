"""Clock faults on one member: its wall clock jumps forward or back, or
runs skewed (Debian's libfaketime: every member starts with it preloaded
and a per-member offset file, which the nemesis rewrites), as NTP steps or
an operator's ``date -s`` do -- Jepsen's clock nemesis.  The monotonic
clock is left alone: it cannot jump on real hardware (a stalled process is
the pause nemesis's fault), and both etcd and pyetcd time their elections
and leases with it, so a wall-clock fault must change nothing.

libfaketime reaches a server that reads time through libc, as pyetcd
(CPython) does.  A Go server (etcd) reads the vDSO clock directly and never
sees the fault: the nemesis says so in its log instead of pretending."""
from __future__ import annotations

import os
import random
from pathlib import Path

from .base import Nemesis

LIBFAKETIME = next((p for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                                "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
                                "/usr/lib/faketime/libfaketimeMT.so.1") if os.path.exists(p)), None)


def faketime_env(offset_file: Path) -> dict:
    """The environment that starts a member with a changeable clock."""
    offset_file.write_text("+0 x1\n")
    return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(offset_file),
            "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_RESET": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


class Clock(Nemesis):
    name = "clock"
    modes = ("jump-forward", "jump-back", "skew")

    def __init__(self):
        self.touched = []

    def start(self, run, rng: random.Random) -> dict:
        c = run.cluster
        if not c.clock_files:
            return {"skipped": "libfaketime is not installed (Debian's faketime)"}
        m = rng.choice(c.members)
        mode = rng.choice(self.modes)
        spec = {"jump-forward": f"+{rng.randint(2, 30)}s x1", "jump-back": f"-{rng.randint(2, 30)}s x1",
                "skew": f"+0 x{rng.choice([0.5, 0.8, 1.25, 2.0])}"}[mode]
        c.clock_files[m.index].write_text(spec + "\n")
        self.touched.append(m.index)
        out = {"mode": mode, "member": m.name, "faketime": spec}
        if c.kind != "pyetcd":
            out["note"] = ("a Go server reads the vDSO clock, not libc's: this fault does "
                           "not reach it")
        return out

    def end(self, run) -> dict:
        for i in self.touched:
            run.cluster.clock_files[i].write_text("+0 x1\n")
        touched, self.touched = self.touched, []
        return {"reset": [f"m{i}" for i in touched]}
