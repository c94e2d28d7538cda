"""Run the real ``etcdctl check perf`` against pyetcd and, side by side,
against real etcd, and print the figures.

    python bench/check_perf.py --load s m                 # single member, pyetcd and etcd 3.5.1
    python bench/check_perf.py --load xl --members 3 --against etcd3.4 --repeat 3
    python bench/check_perf.py --load xl --members 3 --only pyetcd \\
        --baseline-tree /tmp/before --repeat 3 --out bench/results/x.jsonl

Each load runs 60 s (etcdctl's fixed duration) on a fresh cluster in a temp
dir on loopback.  ``--baseline-tree DIR`` adds a server "pyetcd@DIR": pyetcd
run from another source tree (a checkout of an older commit), for a
before/after comparison in one run.  With ``--repeat N`` the servers take
turns, N rounds; every run is printed (and written to ``--out`` as JSON
lines), then the median throughput per server and its ratio to the first.
The CPU seconds the server processes used are reported too.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

from pyetcd.testing import LocalCluster, Server, etcdctl, etcdctl_path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def _start(label: str, workdir: Path, members: int):
    """(kind, env) of a server label, started: (handle, member processes, endpoints)."""
    kind, env = label, None
    if label.startswith("pyetcd@"):
        kind, env = "pyetcd", {"PYTHONPATH": label.split("@", 1)[1]}
    if members == 1:
        s = Server(kind, workdir, env=env).start()
        return s, [s], s.endpoint
    c = LocalCluster(kind, workdir, n=members, env=env).start()
    return c, c.members, c.endpoints


def run(label: str, load: str, ctl: str, members: int = 1) -> dict:
    with tempfile.TemporaryDirectory() as d:
        handle, procs, endpoints = _start(label, Path(d), members)
        try:
            t0 = time.monotonic()
            r = etcdctl(ctl, endpoints, "check", "perf", f"--load={load}", timeout=200)
            wall = time.monotonic() - t0
            cpu = sum(cpu_seconds(p.proc.pid) for p in procs)
        finally:
            handle.stop()
    out = r.stdout + r.stderr
    tput = re.search(r"Throughput is (\d+) writes/s", out) or re.search(r"too low: (\d+) writes/s", out)
    slow = re.search(r"Slowest request took[a-z ]*:? ([\d.]+)s", out)
    std = re.search(r"Stddev (?:is|too high:) ([\d.]+)s", out)
    return {
        "server": label, "members": members, "load": load, "pass": out.rstrip().endswith("PASS"),
        "writes_per_s": int(tput.group(1)) if tput else None,
        "slowest_s": float(slow.group(1)) if slow else None,
        "stddev_s": float(std.group(1)) if std else None,
        "server_cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
        "verdict": [ln for ln in out.splitlines() if ln.startswith(("PASS", "FAIL"))],
    }


def summary(rows: list[dict], labels: list[str]) -> list[str]:
    """Median throughput per (load, server) and its ratio to the first server."""
    out = []
    for load in sorted({r["load"] for r in rows}):
        med = {}
        for label in labels:
            vals = [r["writes_per_s"] or 0 for r in rows if r["server"] == label and r["load"] == load]
            if vals:
                med[label] = statistics.median(vals)
        base = med.get(labels[0]) or 0
        for label, m in med.items():
            runs = [r["writes_per_s"] for r in rows if r["server"] == label and r["load"] == load]
            ratio = f"{m / base:.2f}" if base else "-"
            out.append(f"load={load} server={label} median={m:.0f} writes/s runs={runs} "
                       f"ratio_to_{labels[0]}={ratio}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--load", nargs="+", default=["s"], choices=["s", "m", "l", "xl"])
    ap.add_argument("--only", choices=["pyetcd", "etcd", "etcd3.4"])
    ap.add_argument("--against", default="etcd", choices=["etcd", "etcd3.4"],
                    help="the real etcd to run side by side: etcd (3.5.1) or etcd3.4 (Debian's)")
    ap.add_argument("--baseline-tree", action="append", default=[],
                    help="also run pyetcd from this source tree (before/after comparisons)")
    ap.add_argument("--ctl", default="3.5", choices=["3.4", "3.5"])
    ap.add_argument("--members", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="rounds; servers take turns")
    ap.add_argument("--out", help="append every run as a JSON line to this file")
    a = ap.parse_args()
    ctl = etcdctl_path(a.ctl)
    labels = [a.only] if a.only else ["pyetcd", a.against]
    labels += [f"pyetcd@{Path(t).resolve()}" for t in a.baseline_tree]
    rows = []
    for load in a.load:
        for _ in range(a.repeat):
            for label in labels:
                row = run(label, load, ctl, a.members)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if a.out:
                    with open(a.out, "a") as f:
                        f.write(json.dumps(row) + "\n")
    for line in summary(rows, labels):
        print(line, flush=True)
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps({"summary": line}) + "\n")


if __name__ == "__main__":
    main()
