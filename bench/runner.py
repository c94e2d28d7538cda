"""``python -m bench run``: every server, every workload, one report.

For each repeat, member count and server (servers take turns, so drift on a
shared machine hits them alike), a fresh deployment is started and every row
of the profile is run on it with the multi-process generator (and, when
given ``--etcd-benchmark``, with etcd's own tool right after, on the same
deployment), recording throughput, latency percentiles, the server's CPU
seconds per 1,000 requests, the generator's CPU, RSS and db size.  Then the
disk table (fio beside pyetcd's WAL and LMDB) and the anchors: the real
``etcdctl check perf`` and ``check datascale`` shapes.  Every record is a
JSON line in ``<out>/results.jsonl`` the moment it is measured; the report
(``report.md`` and PNGs) is written from that file at the end, and
``python -m bench report <out>`` rewrites it.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import anchors, disk, etcdbench
from .loadgen import run_load
from .progress import Progress
from .servers import Deployment, available, supports, version_of

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Row:
    name: str
    workload: str
    params: dict
    conns: int
    clients: int
    group: str = ""


def _put(c: int, conns: int, **kw) -> Row:
    params = {"key_size": 8, "val_size": 256, "key_space": 100000, **kw}
    seq = " seq" if kw.get("sequential") else ""
    return Row(f"put{seq} c={c}", "put", params, conns, c, "put-sweep" if not seq else "put")


SWEEP_CONNS = {1: 1, 16: 4, 64: 16, 256: 50, 1000: 100}


def rows(sweep: list[int]) -> list[Row]:
    out = [_put(c, SWEEP_CONNS.get(c, max(1, c // 8))) for c in sweep]
    out.append(_put(256, 50, sequential=True))
    rng = {"val_size": 256}
    out += [
        Row("range l 1 key", "range", {**rng, "consistency": "l"}, 50, 256, "range"),
        Row("range s 1 key", "range", {**rng, "consistency": "s"}, 50, 256, "range"),
        Row("range l 100 keys", "range", {**rng, "prefix_keys": 100}, 50, 256, "range"),
        Row("range keys-only 100", "range", {**rng, "prefix_keys": 100, "keys_only": True},
            50, 256, "range"),
        Row("range count-only 1000", "range", {**rng, "prefix_keys": 1000, "count_only": True},
            50, 256, "range"),
        Row("txn-put 4 ops", "txn-put", {"txn_ops": 4, "key_size": 8, "val_size": 256,
                                         "key_space": 100000}, 50, 256, "txn"),
        Row("txn-mixed r/w 1", "txn-mixed", {"rw_ratio": 1.0, "key_size": 8, "val_size": 256,
                                             "key_space": 100000}, 50, 256, "txn"),
        Row("watch 100w/10s 100 put/s", "watch", {"watchers": 100, "streams": 10,
                                                  "put_rate": 100, "val_size": 32}, 10, 10,
            "watch"),
        Row("watch-get 1000w", "watch-get", {"watchers": 1000, "streams": 10, "events": 8},
            4, 16, "watch"),
        Row("lease-keepalive", "lease-keepalive", {}, 10, 100, "lease"),
        Row("stm 4 keys/txn", "stm", {"keys": 1000, "keys_per_txn": 4, "txn_wr_percent": 50,
                                      "val_size": 8}, 10, 100, "stm"),
        Row("k8s pods", "k8s", {"pods": 1000, "val_size": 1024, "readers": 4,
                                "list_limit": 500}, 8, 32, "k8s"),
    ]
    return out


@dataclass
class Profile:
    seconds: float          # per load row
    repeats: int
    sweep: list[int]
    disk_seconds: float
    check_perf: list[str]   # etcdctl check perf loads (60 s each)
    datascale: list[int]    # key counts
    datascale_once: int = 0  # sizes at or above it: fewest members only
    anchor_repeats: int = 1  # check perf and datascale runs (each is long; medians of these)
    check_perf_members: tuple = (3,)  # check perf on these member counts (of those asked)
    benchmark_repeats: int = 1  # repeats that also run etcd-benchmark (a second opinion)
    extra: dict = field(default_factory=dict)


PROFILES = {
    "smoke": Profile(0.5, 1, [1, 64], 0.25, [], [1000]),
    "quick": Profile(5.0, 1, [1, 16, 64, 256], 3.0, ["s"], [10000]),
    # about 2 h 40 min on 2 cores for 2 servers x 1 and 3 members (the anchors, 3 runs
    # each, are 100 min of it; `--skip check-perf,datascale` leaves them out)
    "full": Profile(5.0, 3, [1, 16, 64, 256, 1000], 5.0, ["s", "m", "l", "xl"],
                    [10000, 100000, 1000000], datascale_once=1000000, anchor_repeats=3),
}


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                                "pyetcd", "bench", "cli", ":(exclude)bench/results"],
                               capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return out + ("-dirty" if dirty else "") if out else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def machine() -> dict:
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    except OSError:   # not Linux: the report says 0
        pass
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:   # not Linux: no model name
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "mem_mb": mem, "kernel": platform.release(),
            "python": platform.python_version()}


class Writer:
    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / "results.jsonl"
        self.path.write_text("")

    def write(self, rec: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _downsample(cdf: list, n: int = 120) -> list:
    if len(cdf) <= n:
        return cdf
    step = len(cdf) / n
    return [cdf[int(i * step)] for i in range(n)] + [cdf[-1]]


def run_row(dep: Deployment, row: Row, prof: Profile, procs, tool: str | None,
            prog: Progress) -> dict:
    cpu = {}
    res = run_load(dep.endpoints, row.workload, row.params, conns=row.conns,
                   clients=row.clients, seconds=prof.seconds, procs=procs,
                   on_go=lambda: cpu.setdefault("start", dep.cpu_seconds()),
                   progress=prog.show)
    server_cpu = dep.cpu_seconds() - cpu["start"]
    rec = {
        "kind": "load", "row": row.name, "group": row.group, "workload": row.workload,
        "params": row.params, "conns": row.conns, "clients": row.clients,
        "rps": res["rps"], "requests": res["requests"], "errors": res["errors"],
        "error_kinds": res["error_kinds"], "seconds": res["seconds"], "latency": res["latency"],
        "hists": res["hists"], "counters": res["counters"],
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_s_per_1k": round(server_cpu / res["requests"] * 1000, 3)
        if res["requests"] else None,
        "generator_cpu_s": res["generator_cpu_s"], "generator_procs": res["procs"],
        "rss_mb": [round(b / 2**20, 1) for b in dep.rss_bytes()],
        "db_mb": [round(b / 2**20, 2) for b in dep.db_sizes()],
        "cdf": _downsample(res["cdf"]), "etcd_benchmark": None,
    }
    if tool:
        rec["etcd_benchmark"] = _second_opinion(dep, row, res, prof, tool)
    return rec


def run_row_tool(dep: Deployment, row: Row, prof: Profile, tool: str, prog: Progress) -> dict | None:
    """The row driven by etcd's benchmark tool alone (``--load-tool
    etcd-benchmark``): a short probe sizes the measured run to last about
    ``prof.seconds``; None when the tool has no such workload."""
    probe_total = 2000 if row.workload != "watch" else 200
    prog.show(0.05)
    probe = etcdbench.run(tool, dep.endpoints, row.workload, row.params, row.conns, row.clients,
                          probe_total)
    if probe is None:
        return None
    total = max(2000, min(500000, int(probe["rps"] * prof.seconds)))
    if row.workload == "watch":
        total = int(row.params.get("put_rate", 100) * prof.seconds)
    prog.show(0.2)
    own0, help0 = dep.cpu_split()
    res = etcdbench.run(tool, dep.endpoints, row.workload, row.params, row.conns, row.clients,
                        total)
    own1, help1 = dep.cpu_split()
    cpu = (own1 - own0) + (help1 - help0)
    return {
        "kind": "load", "tool": "etcd-benchmark", "row": row.name, "group": row.group,
        "workload": row.workload, "params": row.params, "conns": row.conns,
        "clients": row.clients, "rps": res["rps"], "requests": total,
        "errors": res.get("errors", 0), "error_kinds": res.get("error_kinds", {}),
        "seconds": res["seconds"], "latency": res["latency"],
        "server_cpu_s": round(cpu, 2),
        "server_cpu_s_per_1k": round(cpu / total * 1000, 3),
        "server_cpu_split_s": {"members": round(own1 - own0, 2),
                               "helpers": round(help1 - help0, 2)},
        "rss_mb": [round(b / 2**20, 1) for b in dep.rss_bytes()],
        "db_mb": [round(b / 2**20, 2) for b in dep.db_sizes()],
        "argv": res.get("argv"), "etcd_benchmark": None,
    }


def _second_opinion(dep: Deployment, row: Row, res: dict, prof: Profile, tool: str):
    if row.workload == "watch":
        total = int(row.params.get("put_rate", 100) * prof.seconds)
    else:
        total = max(200, min(500000, int(res["rps"] * prof.seconds)))
    cpu0, gen0 = dep.cpu_seconds(), _children_cpu()
    try:
        r = etcdbench.run(tool, dep.endpoints, row.workload, row.params, row.conns,
                          row.clients, total)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)[-500:]}
    if r is None:
        return None
    server = dep.cpu_seconds() - cpu0
    r["server_cpu_s"] = round(server, 2)
    r["generator_cpu_s"] = round(_children_cpu() - gen0, 2)
    r["total"] = total
    return r


def _tag(rec: dict, server: str, members: int, repeat: int) -> dict:
    return {**rec, "server": server, "members": members, "repeat": repeat}


def run(servers: list[str], members: list[int], profile: str, out: Path, *,
        etcd_benchmark: str | None = None, check_perf_servers: list[str] | None = None,
        disk_dir: str | None = None, procs: int | None = None, only: list[str] | None = None,
        command: str = "", skip: tuple = (), datascale: list[int] | None = None,
        anchor_repeats: int | None = None, load_tool: str = "bench") -> Path:
    prof = PROFILES[profile]
    if datascale is not None or anchor_repeats is not None:
        from dataclasses import replace   # noqa: PLC0415
        prof = replace(prof, datascale=prof.datascale if datascale is None else datascale,
                       anchor_repeats=prof.anchor_repeats if anchor_repeats is None
                       else anchor_repeats)
    for s in set(servers) | set(check_perf_servers or []):
        if not available(s):
            raise SystemExit(f"bench: server {s!r} is not installed")
    row_list = [r for r in rows(prof.sweep) if not only or any(o in r.name for o in only)]
    cp_servers = check_perf_servers or servers
    disk_entries = [] if "disk" in skip else disk.profiles(prof.disk_seconds)
    cp_members = [m for m in members if m in prof.check_perf_members] or members[-1:]
    cp_steps = [] if "check-perf" in skip else [
        (load, m, s, r) for r in range(prof.anchor_repeats) for load in prof.check_perf
        for m in cp_members for s in cp_servers if supports(s, "check-perf")]
    ds_steps = [] if "datascale" in skip else [
        (keys, m, s, r) for r in range(prof.anchor_repeats) for keys in prof.datascale
        for m in members for s in servers if supports(s, "datascale")
        if not (prof.datascale_once and keys >= prof.datascale_once and m != min(members))]
    load_steps = [] if "load" in skip else [
        (r, m, s) for r in range(prof.repeats) for m in members for s in servers]
    w = Writer(out)
    w.write({"kind": "meta", "command": command, "commit": git_commit(), "profile": profile,
             "servers": {s: version_of(s) for s in set(servers) | set(cp_servers)},
             "members": members, "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
             "machine": machine(), "etcd_benchmark": bool(etcd_benchmark),
             "disk_dir": disk_dir or disk.default_dir(), "seconds_per_row": prof.seconds,
             "repeats": prof.repeats, "load_tool": load_tool})
    if load_tool == "etcd-benchmark" and not etcd_benchmark:
        raise SystemExit("bench: --load-tool etcd-benchmark needs --etcd-benchmark PATH")
    prog = Progress(len(disk_entries) * prof.repeats
                    + sum(supports(s, row.workload) for _, _, s in load_steps for row in row_list)
                    + len(cp_steps) + len(ds_steps))
    try:
        _disk(w, disk_entries, prof, disk_dir or disk.default_dir(), prog)
        for r, m, s in load_steps:
            _loads(w, s, m, r, row_list, prof, procs, etcd_benchmark, prog,
                   tool_only=load_tool == "etcd-benchmark")
        for load, m, s, r in cp_steps:
            prog.step(f"check perf {load} {s} x{m} r{r + 1}")
            w.write(_tag(anchors.check_perf(s, load, m), s, m, r))
            prog.finish_step()
        for keys, m, s, r in ds_steps:
            prog.step(f"datascale {keys} {s} x{m} r{r + 1}")
            w.write(_tag(anchors.datascale(s, m, keys, procs, prog.show), s, m, r))
            prog.finish_step()
    finally:
        prog.close()
    from .report import write_report   # noqa: PLC0415 - matplotlib only when reporting
    write_report(out)
    return out


def _disk(w: Writer, entries, prof: Profile, directory: str, prog: Progress) -> None:
    for r in range(prof.repeats):
        for e in entries:
            prog.step(f"disk {e[0]} {e[1]} r{r + 1}")
            try:
                rec = disk.run_profile(e, directory)
            except (RuntimeError, OSError) as exc:
                rec = {"kind": "disk", "tool": e[0], "profile": e[1], "error": str(exc)}
            w.write({**rec, "repeat": r})
            prog.finish_step()


def _loads(w: Writer, server: str, members: int, repeat: int, row_list, prof: Profile,
           procs, tool, prog: Progress, tool_only: bool = False) -> None:
    with Deployment(server, members) as dep:
        for row in row_list:
            if not supports(server, row.workload):
                continue
            prog.step(f"{server} x{members} r{repeat + 1} {row.name}")
            if tool_only:
                rec = run_row_tool(dep, row, prof, tool, prog)
                if rec is None:   # not a workload the tool has
                    prog.finish_step()
                    continue
            else:
                rec = run_row(dep, row, prof, procs,
                              tool if repeat < prof.benchmark_repeats else None, prog)
            try:   # the next row starts from a compacted store
                dep.compact()
            except Exception as exc:   # noqa: BLE001 - recorded; the rows still stand
                rec["compact_error"] = str(exc)[-300:]
            w.write(_tag(rec, server, members, repeat))
            prog.finish_step()
