"""Clock faults on one member: its wall clock jumps forward or back, or
runs skewed, as NTP steps or an operator's ``date -s`` do -- Jepsen's clock
nemesis.  Every member starts with jepsen-lite's wall-clock shim preloaded
(``wallclock.c``, compiled with the system's C compiler on first use) and a
per-member spec file ("+8s x1", "-22s x1", "+0 x0.8"), which the nemesis
rewrites.  Only the realtime clock moves: the monotonic clock cannot jump on
real hardware (a stalled process is the pause nemesis's fault), and both
etcd and pyetcd time their elections and leases with it, so a wall-clock
fault must change nothing.  Sleeps and timed waits are left alone (Debian's
libfaketime, used before, also intercepts them, and with the monotonic
clock left real CPython's time.sleep then fails with EINVAL: the members
crawled, which measured libfaketime, not the server).

The shim reaches a server that reads time through libc, as pyetcd
(CPython, gRPC's C core) does.  A Go server (etcd) reads the vDSO clock
directly and never sees the fault: the nemesis says so in its log instead
of pretending."""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

from .base import Nemesis

SOURCE = Path(__file__).with_name("wallclock.c")


def shim_path() -> str | None:
    """The compiled shim (cached by the source's hash), or None when there
    is no C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not SOURCE.exists():
        return None
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"jepsen-lite-wallclock-{digest}.so"
    if not out.exists():
        part = out.with_suffix(f".{os.getpid()}.part")
        p = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(part), str(SOURCE),
                            "-ldl", "-lpthread"], capture_output=True, text=True)
        if p.returncode != 0:
            return None
        os.replace(part, out)
    return str(out)


def clock_env(spec_file: Path, shim: str) -> dict:
    """The environment that starts a member with a changeable wall clock."""
    spec_file.write_text("+0 x1\n")
    return {"LD_PRELOAD": shim, "JEPSEN_LITE_CLOCK_FILE": str(spec_file)}


class Clock(Nemesis):
    name = "clock"
    modes = ("jump-forward", "jump-back", "skew")

    def __init__(self):
        self.touched = []

    def start(self, run, rng: random.Random) -> dict:
        c = run.cluster
        if not c.clock_files:
            return {"skipped": "no C compiler for the wall-clock shim"}
        m = rng.choice(c.members)
        mode = rng.choice(self.modes)
        spec = {"jump-forward": f"+{rng.randint(2, 30)}s x1", "jump-back": f"-{rng.randint(2, 30)}s x1",
                "skew": f"+0 x{rng.choice([0.5, 0.8, 1.25, 2.0])}"}[mode]
        c.clock_files[m.index].write_text(spec + "\n")
        self.touched.append(m.index)
        out = {"mode": mode, "member": m.name, "clock": spec}
        if c.kind != "pyetcd":
            out["note"] = ("a Go server reads the vDSO clock, not libc's: this fault does "
                           "not reach it")
        return out

    def end(self, run) -> dict:
        for i in self.touched:
            run.cluster.clock_files[i].write_text("+0 x1\n")
        touched, self.touched = self.touched, []
        return {"reset": [f"m{i}" for i in touched]}
