"""``jepsen-lite run|check|campaign|summarize``.  Exit status: 0 every
checker valid, 1 anomalies found (printed, with the shortest failing
sub-history each checker found), 2 the tool itself could not run."""
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


def _run_args(r) -> None:
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
    r.add_argument("--server-env", action="append", default=[], dest="env", metavar="KEY=VALUE",
                   help="an environment variable for every member (repeatable)")
    r.add_argument("--heal-wait", type=float, default=60.0, metavar="SECONDS",
                   help="after healing, how long to wait for every member to answer a "
                        "linearizable read before the final reads (a cluster still unhealthy "
                        "then is noted, and its final reads judge it)")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="jepsen-lite", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    _run_args(sub.add_parser("run", help="run a campaign"))
    c = sub.add_parser("check", help="check a stored run again")
    c.add_argument("dir")
    m = sub.add_parser("campaign", help="many runs, one per seed; a summary at the end")
    _run_args(m)
    m.add_argument("--seeds", type=int, default=10, help="how many seeds, from --seed on")
    s = sub.add_parser("summarize", help="a markdown table of stored runs")
    s.add_argument("dirs", nargs="+")
    s.add_argument("--side-by-side", action="store_true",
                   help="one row per nemesis and workload, one column per server")
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


def _options(a, out: Path, seed: int) -> Options:
    return Options(server=a.server, members=a.members, workloads=a.workload, nemeses=a.nemesis,
                   time=a.time, rate=a.rate, clients=a.clients, seed=seed, out=str(out),
                   flags=a.flags, env=dict(kv.split("=", 1) for kv in a.env),
                   heal_wait=a.heal_wait)


def campaign(a) -> int:
    base = Path(a.out or f"jepsen-lite-runs/campaign-{time.strftime('%Y%m%d-%H%M%S')}")
    worst, dirs = EXIT_VALID, []
    for seed in range(a.seed, a.seed + a.seeds):
        out = base / f"seed-{seed}"
        try:
            rc = _finish(out, Run(_options(a, out, seed)).execute())
        except ToolError as exc:
            print(f"seed {seed}: jepsen-lite: {exc}", file=sys.stderr)
            rc = EXIT_TOOL
        print(f"seed {seed}: exit {rc}", flush=True)
        worst = max(worst, rc)
        dirs.append(out)
    table = summarize_dirs(dirs)
    (base / "summary.md").write_text(table)
    print(table)
    return worst


def _cells(dirs):
    """(server, nemesis, seed, checker, ops, ok, fail, info, anomalies, verdict) per
    checker of each stored run; a run without verdicts is one "tool error" cell."""
    for d in map(Path, dirs):
        if not (d / "verdicts.json").exists():
            yield (str(d), "", "", "", "", "", "", "", "", "tool error")
            continue
        opts = json.loads((d / "run.json").read_text())
        verdicts = json.loads((d / "verdicts.json").read_text())
        ops = load(d / "history.jsonl")
        for name, v in verdicts.items():
            ps = pairs(ops, name) if name != "nemesis" else []
            c = {t: sum(1 for p in ps if p.type == t) for t in ("ok", "fail", "info")}
            mark = {True: "valid", False: "INVALID", None: "unknown"}[v.get("valid")]
            yield (opts["server"], ",".join(opts["nemeses"]), opts["seed"], name, len(ps),
                   c["ok"], c["fail"], c["info"], len(v.get("anomalies", [])), mark)


def summarize_dirs(dirs) -> str:
    """One row per (run, checker): ops, outcomes, anomalies."""
    rows = ["| server | workload | nemesis | seed | ops | ok | fail | info | anomalies | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for srv, nem, seed, name, *rest in _cells(dirs):
        rows.append("| " + " | ".join(map(str, (srv, name, nem, seed, *rest))) + " |")
    return "\n".join(rows) + "\n"


def side_by_side(dirs) -> str:
    """One row per (nemesis, checker), a column per server: "ops ok/fail/info,
    anomalies, verdict" (several seeds of a cell are summed)."""
    cells, servers = {}, []
    for srv, nem, _seed, name, n, ok, fail, info, anomalies, mark in _cells(dirs):
        if srv not in servers:
            servers.append(srv)
        if name == "nemesis" or mark == "tool error":
            continue
        c = cells.setdefault((nem, name), {}).setdefault(srv, [0, 0, 0, 0, 0, set()])
        for i, v in enumerate((n, ok, fail, info, anomalies)):
            c[i] += v
        c[5].add(mark)
    rows = ["| nemesis | workload | " + " | ".join(servers) + " |",
            "|---|---|" + "---|" * len(servers)]
    for (nem, name), by in sorted(cells.items()):
        out = []
        for srv in servers:
            c = by.get(srv)
            if c is None:
                out.append("-")
                continue
            verdict = "INVALID" if "INVALID" in c[5] else ("valid" if c[5] == {"valid"} else
                                                            "/".join(sorted(c[5])))
            out.append(f"{c[0]} ops {c[1]}/{c[2]}/{c[3]}, {c[4]} anomalies, {verdict}")
        rows.append(f"| {nem} | {name} | " + " | ".join(out) + " |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    try:
        if a.cmd == "check":
            out = Path(a.dir)
            return _finish(out, recheck(out))
        if a.cmd == "summarize":
            print((side_by_side if a.side_by_side else summarize_dirs)(a.dirs), end="")
            return EXIT_VALID
        if a.cmd == "campaign":
            return campaign(a)
        out = Path(a.out or f"jepsen-lite-runs/{time.strftime('%Y%m%d-%H%M%S')}")
        return _finish(out, Run(_options(a, out, a.seed)).execute())
    except ToolError as exc:
        print(f"jepsen-lite: {exc}", file=sys.stderr)
        return EXIT_TOOL
    except KeyboardInterrupt:
        print("jepsen-lite: interrupted", file=sys.stderr)
        return EXIT_TOOL
