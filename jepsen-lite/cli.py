"""``jepsen-lite run|check``.  Exit status: 0 every checker valid, 1
anomalies found (printed, with the shortest failing sub-history each
checker found), 2 the tool itself could not run."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .history import load, pairs
from .run import Options, Run, ToolError, recheck

EXIT_VALID, EXIT_ANOMALIES, EXIT_TOOL = 0, 1, 2


def _list(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="jepsen-lite", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a campaign")
    r.add_argument("--server", default="pyetcd",
                   help="pyetcd, etcd (3.5), etcd3.4, or the path of any executable taking "
                        "etcd's flags")
    r.add_argument("--members", type=int, default=3)
    r.add_argument("--workload", type=_list, default=["register"])
    r.add_argument("--nemesis", type=_list, default=["none"])
    r.add_argument("--time", type=float, default=20.0, help="seconds of traffic")
    r.add_argument("--rate", type=float, default=100.0, help="operations per second, in all")
    r.add_argument("--clients", type=int, default=10)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", help="the run directory (default: ./jepsen-lite-runs/<time>)")
    r.add_argument("--server-flag", action="append", default=[], dest="flags",
                   help="a flag for every member (repeatable), e.g. --server-flag=--snapshot-count=100")
    c = sub.add_parser("check", help="check a stored run again")
    c.add_argument("dir")
    return ap


def summary(verdicts: dict, ops) -> list[str]:
    lines = []
    for name, v in verdicts.items():
        ps = pairs(ops, name) if name != "nemesis" else []
        counts = {t: sum(1 for p in ps if p.type == t) for t in ("ok", "fail", "info")}
        mark = {True: "valid", False: "INVALID", None: "ERROR"}[v.get("valid")]
        lines.append(f"{name}: {mark}  ops={len(ps)} ok={counts['ok']} fail={counts['fail']} "
                     f"info={counts['info']} anomalies={len(v.get('anomalies', []))}")
        for a in v.get("anomalies", [])[:5]:
            lines.append("  " + json.dumps(a, default=str, indent=1).replace("\n", "\n  "))
        if v.get("error"):
            lines.append(f"  {v['error']}")
    return lines


def _finish(out: Path, verdicts: dict) -> int:
    (out / "verdicts.json").write_text(json.dumps(verdicts, indent=1, default=str))
    ops = load(out / "history.jsonl")
    try:
        from .report import write_report
        write_report(out, ops, verdicts)
    except ImportError as exc:  # matplotlib missing: the verdicts still stand
        print(f"(no report.html: {exc})", file=sys.stderr)
    for line in summary(verdicts, ops):
        print(line)
    print(f"run directory: {out}")
    if any(v.get("valid") is None for v in verdicts.values()):
        return EXIT_TOOL
    return EXIT_VALID if all(v.get("valid") for v in verdicts.values()) else EXIT_ANOMALIES


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    try:
        if a.cmd == "check":
            out = Path(a.dir)
            return _finish(out, recheck(out))
        out = Path(a.out or f"jepsen-lite-runs/{time.strftime('%Y%m%d-%H%M%S')}")
        opts = Options(server=a.server, members=a.members, workloads=a.workload,
                       nemeses=a.nemesis, time=a.time, rate=a.rate, clients=a.clients,
                       seed=a.seed, out=str(out), flags=a.flags)
        return _finish(out, Run(opts).execute())
    except ToolError as exc:
        print(f"jepsen-lite: {exc}", file=sys.stderr)
        return EXIT_TOOL
    except KeyboardInterrupt:
        print("jepsen-lite: interrupted", file=sys.stderr)
        return EXIT_TOOL
