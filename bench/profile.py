"""Where a server's CPU goes under load: py-spy on every process it runs.

    python -m bench profile --server pyetcd --members 1 --row "txn-put 4 ops" \\
        --seconds 15 --out DIR [--etcd-benchmark PATH]

Starts the deployment (bench/servers.py), drives one load row at it (etcd's
benchmark tool when its path is given, else bench's own generator), and
while the load runs samples each server process with ``py-spy record``
(``--gil``: only the thread holding the GIL, i.e. the Python CPU; native
frames off).  Writes each process's collapsed stacks (``<pid>.folded``)
and ``summary.md``: requests/s during the profile, and per process the
share of samples by layer (grpc, asyncio, each pyetcd package, protobuf,
lmdb) and the top functions by own and by inclusive time.  py-spy comes
from PyPI (``pip install py-spy``); it needs ptrace (root or
``kernel.yama.ptrace_scope=0``).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from . import etcdbench
from .loadgen import run_load
from .runner import rows
from .servers import Deployment, proc_cpu_seconds

# (layer, test on the frame's file name), the first match wins
LAYERS = [
    ("grpc", lambda f: "/grpc/" in f or f.startswith("grpc/") or "cygrpc" in f),
    ("protobuf", lambda f: "/google/protobuf/" in f),
    ("lmdb", lambda f: "/lmdb/" in f),
    ("asyncio/uvloop", lambda f: "/asyncio/" in f or "uvloop" in f),
    ("threading", lambda f: f.endswith("threading.py") or "concurrent/futures" in f),
]
_PYETCD = re.compile(r"(?:^|/)pyetcd/([a-z_]+)/")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def layer_of(file: str) -> str:
    m = _PYETCD.search(file)
    if m:
        return f"pyetcd.{m.group(1)}"
    if file.endswith("/pyetcd/main.py"):
        return "pyetcd.main"
    for name, test in LAYERS:
        if test(file):
            return name
    return "other"


def parse_folded(text: str) -> list[tuple[list[tuple[str, str]], int]]:
    """py-spy's raw output: [(frames root first as (function, file), count)]."""
    out = []
    for line in text.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = []
        for fr in stack.split(";"):
            m = _FRAME.match(fr)
            frames.append((m.group("func"), m.group("file")) if m else (fr, ""))
        out.append((frames, int(n)))
    return out


def summarize(stacks, top: int = 15) -> dict:
    """Shares of samples by the leaf frame's layer; top functions by own
    samples and by inclusive samples (a function counted once per stack)."""
    total = sum(n for _, n in stacks) or 1
    by_layer: Counter = Counter()
    own: Counter = Counter()
    incl: Counter = Counter()
    incl_layer: Counter = Counter()
    for frames, n in stacks:
        frames = [f for f in frames if not f[0].startswith("thread (") and
                  not f[0].startswith("process ")]
        if not frames:
            continue
        func, file = frames[-1]
        by_layer[layer_of(file)] += n
        own[f"{func} ({_short(file)})"] += n
        for name in {f"{fn} ({_short(fl)})" for fn, fl in frames}:
            incl[name] += n
        for lay in {layer_of(fl) for _, fl in frames}:
            incl_layer[lay] += n

    def pct(c: Counter, k: int | None = None):
        return [(k2, round(100 * v / total, 1)) for k2, v in c.most_common(k)]
    return {"samples": total, "own_by_layer": pct(by_layer),
            "inclusive_by_layer": pct(incl_layer), "top_own": pct(own, top),
            "top_inclusive": pct(incl, top)}


def _short(file: str) -> str:
    for mark in ("/pyetcd/", "/site-packages/", "/lib/python3"):
        i = file.rfind(mark)
        if i >= 0:
            return file[i + 1:]
    return file


def _load(dep: Deployment, row, seconds: float, tool: str | None, result: dict) -> None:
    try:
        if tool:
            # about long enough: the tool takes a count, not a duration
            total = int(result.get("rate_guess", 4000) * seconds)
            result["load"] = etcdbench.run(tool, dep.endpoints, row.workload, row.params,
                                           row.conns, row.clients, total, timeout=seconds * 20)
        else:
            res = run_load(dep.endpoints, row.workload, row.params, conns=row.conns,
                           clients=row.clients, seconds=seconds)
            res.pop("cdf", None)
            res.pop("hists", None)
            result["load"] = {"rps": res["rps"], "latency": res["latency"],
                              "errors": res["errors"]}
    except Exception as exc:   # noqa: BLE001 - reported in the summary
        result["error"] = str(exc)[-800:]


def _cpu(pid: int) -> float:
    try:
        return proc_cpu_seconds(pid)
    except OSError:
        return 0.0


def profile(server: str, members: int, row_name: str, seconds: float, out: Path, *,
            tool: str | None = None, warmup: float = 3.0, rate: int = 100,
            rate_guess: int = 4000, native: bool = False, command: str = "") -> dict:
    spy = shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    matches = [r for r in rows([256]) if r.name == row_name]
    if not matches:
        raise RuntimeError(f"no row {row_name!r} (one of: {', '.join(r.name for r in rows([256]))})")
    row = matches[0]
    out.mkdir(parents=True, exist_ok=True)
    from .runner import git_commit   # noqa: PLC0415
    result: dict = {"commit": git_commit(), "command": command,
                    "server": server, "members": members, "row": row.name,
                    "seconds": seconds, "tool": "etcd-benchmark" if tool else "bench.loadgen",
                    "rate_guess": rate_guess, "native": native}
    with Deployment(server, members) as dep:
        t = threading.Thread(target=_load, args=(dep, row, seconds + 2 * warmup, tool, result))
        t.start()
        time.sleep(warmup)
        spies = []
        for pid in dep.pids():
            path = out / f"{pid}.folded"
            spies.append((pid, path, subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                 "--rate", str(rate), "--gil", "--format", "raw",
                 "--output", str(path)] + (["--native"] if native else ["--nonblocking"]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
        cpu0 = {pid: _cpu(pid) for pid, _, _ in spies}
        t0 = time.monotonic()
        procs = []
        for pid, path, p in spies:
            _, err = p.communicate(timeout=seconds * 4 + 60)
            if p.returncode != 0 or not path.exists():
                raise RuntimeError(f"py-spy on {pid} failed: {err.decode()[-500:]}")
            wall = time.monotonic() - t0
            procs.append({"pid": pid, "cpu_cores": round((_cpu(pid) - cpu0[pid]) / wall, 2),
                          **summarize(parse_folded(path.read_text()))})
        t.join()
        result.pop("rate_guess")
        result["processes"] = procs
    (out / "summary.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "summary.md").write_text(render(result))
    return result


def render(res: dict) -> str:
    load = res.get("load") or {}
    lines = [f"# py-spy: {res['server']}, {res['members']} member(s), {res['row']}", "",
             f"`{res.get('command', '')}` at `{res.get('commit', '?')}`", "",
             f"Load: {res['tool']}, {load.get('rps', '?')} req/s over the run "
             f"(profiled {res['seconds']:.0f} s of it, py-spy --gil{' --native' if res.get('native') else ' --nonblocking'})."]
    if res.get("error"):
        lines.append(f"Load error: {res['error']}")
    for p in res["processes"]:
        lines += ["", f"## process {p['pid']}: {p.get('cpu_cores', '?')} cores busy; "
                  f"{p['samples']} samples with the GIL held", "",
                  "| layer | own % | inclusive % |", "|---|---|---|"]
        incl = dict(p["inclusive_by_layer"])
        for name, share in p["own_by_layer"]:
            lines.append(f"| {name} | {share} | {incl.get(name, '')} |")
        lines += ["", "| top functions, own time | % |", "|---|---|"]
        lines += [f"| `{f}` | {s} |" for f, s in p["top_own"]]
        lines += ["", "| top functions, inclusive | % |", "|---|---|"]
        lines += [f"| `{f}` | {s} |" for f, s in p["top_inclusive"]]
    return "\n".join(lines) + "\n"
