"""What a member does with more cores: measured on one, projected to 8 and 16.

    python -m bench cores --etcd-benchmark PATH --out DIR [--repeats 3]
        [--servers etcd3.5,pyetcd,pyetcd-fe1,pyetcd-fe2] [--row "put c=256"]

Each server (one member) runs with every thread of every one of its
processes pinned to CPU 0 (``sched_setaffinity``, the kernel's taskset) and
etcd's benchmark tool pinned to CPU 1, so the figure is what one server
core does, with the load generator off it.  Per run: requests/s, and CPU
seconds per request of the member process (``c_m``: consensus, apply, the
relay, and the gRPC of the connections it serves itself) and of its
front-ends (``c_f``).

The projection to K cores (clients elsewhere) is arithmetic on those
figures, written out in the report: etcd is one Go process whose work
spreads over every core, so K x its one-core rate bounds it from above.  A
pyetcd member is limited by its one member process (Python: one core of
its own work, ``1 / c_m``) and by the cores its front-ends get,
``K / (c_m + c_f)``; the lower of the two.  ``c_m`` as measured includes
the member's share of gRPC (it listens too), so the first bound is
conservative.  Medians of the runs; every run in results.jsonl.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from . import etcdbench
from .runner import git_commit, machine, rows
from .servers import Deployment, version_of


def _tasks(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def pin(dep: Deployment, cpus: set[int]) -> None:
    """Every thread of every process of the deployment onto ``cpus``."""
    for pid in dep.pids():
        for tid in _tasks(pid):
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:   # a thread that ended
                pass


def run_one(server: str, row, tool: str, seconds: float) -> dict:
    with Deployment(server, 1) as dep:
        time.sleep(1.5)   # front-ends up
        pin(dep, {0})
        argv = lambda total: ["taskset", "-c", "1"] + etcdbench.command(   # noqa: E731
            tool, dep.endpoints, row.workload, row.params, row.conns, row.clients, total)
        probe = subprocess.run(argv(2000), capture_output=True, text=True, timeout=300)
        p = etcdbench.parse(probe.stdout)
        if p is None:
            raise RuntimeError(f"etcd-benchmark failed: {probe.stderr[-500:]}")
        pin(dep, {0})   # threads started since
        total = max(2000, int(p["rps"] * seconds))
        own0, help0 = dep.cpu_split()
        out = subprocess.run(argv(total), capture_output=True, text=True, timeout=600)
        own1, help1 = dep.cpu_split()
        res = etcdbench.parse(out.stdout)
        if res is None:
            raise RuntimeError(f"etcd-benchmark failed: {out.stderr[-500:]}")
    return {"server": server, "row": row.name, "rps": res["rps"], "requests": total,
            "seconds": res["seconds"], "p99_ms": res["latency"]["p99_ms"],
            "member_cpu_s": round(own1 - own0, 3), "frontend_cpu_s": round(help1 - help0, 3),
            "c_m_ms": round((own1 - own0) / total * 1000, 4),
            "c_f_ms": round((help1 - help0) / total * 1000, 4)}


def projection(server: str, rps1: float, c_m: float, c_f: float, cores: int) -> float:
    """Requests/s on ``cores`` cores from the one-core figures (see module)."""
    if not server.startswith("pyetcd"):
        return rps1 * cores
    member_bound = 1000.0 / c_m if c_m else float("inf")
    core_bound = cores * 1000.0 / (c_m + c_f) if (c_m + c_f) else float("inf")
    return min(member_bound, core_bound)


def run(servers: list[str], row_name: str, tool: str, out: Path, repeats: int = 3,
        seconds: float = 5.0, command: str = "") -> Path:
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("bench cores: needs 2 CPUs (one for the server, one for the load)")
    row = next(r for r in rows([256]) if r.name == row_name)
    out.mkdir(parents=True, exist_ok=True)
    recs = []
    with open(out / "results.jsonl", "w") as f:
        f.write(json.dumps({"kind": "meta", "command": command, "commit": git_commit(),
                            "servers": {s: version_of(s) for s in servers},
                            "machine": machine(),
                            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())})
                + "\n")
        for r in range(repeats):
            for s in servers:
                rec = {**run_one(s, row, tool, seconds), "repeat": r}
                recs.append(rec)
                f.write(json.dumps(rec) + "\n")
                f.flush()
                print(f"{s} r{r + 1}: {rec['rps']:.0f} req/s on 1 core", flush=True)
    (out / "report.md").write_text(render(recs, servers, row_name, command))
    return out


def render(recs: list[dict], servers: list[str], row: str, command: str) -> str:
    med = {}
    for s in servers:
        mine = [r for r in recs if r["server"] == s]
        med[s] = {k: statistics.median(r[k] for r in mine) for k in ("rps", "c_m_ms", "c_f_ms")}
        med[s]["runs"] = [r["rps"] for r in mine]
    base = next((s for s in servers if not s.startswith("pyetcd")), None)
    lines = [f"# One server core, projected to 8 and 16 ({row})", "", f"`{command}`", "",
             "Server pinned to CPU 0, etcd-benchmark to CPU 1; medians of "
             f"{len(med[servers[0]]['runs'])} runs. c_m / c_f: CPU ms per request in the "
             "member process / in its front-ends. Projection: see bench/cores.py (etcd: "
             "K x its one-core rate, an upper bound; pyetcd: min(1/c_m, K/(c_m+c_f))).", "",
             "| server | req/s on 1 core (runs) | c_m ms | c_f ms | projected 8 cores | "
             "projected 16 cores |" + (f" 8 cores vs {base} | 16 cores vs {base} |" if base else ""),
             "|---|---|---|---|---|---|" + ("---|---|" if base else "")]
    for s in servers:
        m = med[s]
        p8 = projection(s, m["rps"], m["c_m_ms"], m["c_f_ms"], 8)
        p16 = projection(s, m["rps"], m["c_m_ms"], m["c_f_ms"], 16)
        cells = [s, f"{m['rps']:,.0f} ({', '.join(f'{x:,.0f}' for x in m['runs'])})",
                 f"{m['c_m_ms']:.3f}", f"{m['c_f_ms']:.3f}", f"{p8:,.0f}", f"{p16:,.0f}"]
        if base:
            b = med[base]
            cells += [f"{p8 / projection(base, b['rps'], 0, 0, 8):.2f}",
                      f"{p16 / projection(base, b['rps'], 0, 0, 16):.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
