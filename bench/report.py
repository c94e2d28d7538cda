"""``report.md`` and PNG plots from a run's ``results.jsonl``.

Every figure in the report is a median over the run's repeats (each run is
listed at the end and kept in results.jsonl); the ratio column divides
pyetcd's median by real etcd's, measured in the same run on the same
machine.  ``python -m bench report DIR`` rewrites the report of DIR.
"""
from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

PLOT_CDF_ROWS = ["put c=256", "range l 1 key", "txn-put 4 ops", "k8s pods"]


def load(out: Path) -> list[dict]:
    return [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines() if ln]


def _med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def _fmt(v, nd=0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and nd:
        return f"{v:.{nd}f}"
    return f"{v:,.0f}" if isinstance(v, (int, float)) and abs(v) >= 100 else f"{v:.3g}"


def _servers(recs: list[dict]) -> tuple[list[str], str | None]:
    seen = []
    for r in recs:
        s = r.get("server")
        if s and s not in seen:
            seen.append(s)
    base = next((s for s in seen if s in ("etcd3.5", "etcd")), None)
    if base is None:
        base = next((s for s in seen if not _is_pyetcd(s) and s != "floor"), None)
    return seen, base


def _is_pyetcd(server: str) -> bool:
    """pyetcd, or a variant of it (``pyetcd-fe2``: with 2 front-ends)."""
    return server == "pyetcd" or server.startswith("pyetcd-")


def _pyetcds(servers: list[str]) -> list[str]:
    return [s for s in servers if _is_pyetcd(s)]


def _floor(servers: list[str]) -> bool:
    """pyetcd/floor columns: pyetcd beside the do-nothing server."""
    return "floor" in servers and bool(_pyetcds(servers))


def _ratio(a, b) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def load_table(recs: list[dict]) -> tuple[list[str], dict]:
    loads = [r for r in recs if r["kind"] == "load"]
    servers, base = _servers(loads)
    groups: dict = defaultdict(list)
    order: list = []
    for r in loads:
        key = (r["members"], r["row"])
        if key not in groups:
            order.append(key)
        groups[key].append(r)
    medians = {}
    lines = []
    head = ["members", "workload"]
    for s in servers:
        head += [f"{s} req/s", f"{s} p99 ms", f"{s} CPU s/1k req"]
    vs_base = bool(base and _pyetcds(servers) and not _is_pyetcd(base))
    if vs_base:
        head += [f"{p}/etcd" for p in _pyetcds(servers)]
    if _floor(servers):
        head += [f"{p}/floor" for p in _pyetcds(servers)]
    eb = any(r.get("etcd_benchmark") and "rps" in r["etcd_benchmark"] for r in loads)
    if eb:
        head += [f"{s} req/s (etcd-benchmark)" for s in servers]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for key in sorted(order, key=lambda k: (k[0], order.index(k))):
        rs = groups[key]
        cells = [str(key[0]), key[1]]
        med = {}
        for s in servers:
            mine = [r for r in rs if r["server"] == s]
            med[s] = {"rps": _med([r["rps"] for r in mine]),
                      "p99": _med([r["latency"].get("p99_ms") for r in mine]),
                      "cpu": _med([r["server_cpu_s_per_1k"] for r in mine]),
                      "errors": sum(r["errors"] for r in mine),
                      "eb": _med([(r.get("etcd_benchmark") or {}).get("rps") for r in mine]),
                      "runs": [r["rps"] for r in mine]}
            cells += [_fmt(med[s]["rps"]) + (" (errors)" if med[s]["errors"] else ""),
                      _fmt(med[s]["p99"]), _fmt(med[s]["cpu"])]
        if vs_base:
            cells += [_ratio(med[p]["rps"], med[base]["rps"]) for p in _pyetcds(servers)]
        if _floor(servers):
            cells += [_ratio(med[p]["rps"], med["floor"]["rps"]) for p in _pyetcds(servers)]
        if eb:
            cells += [_fmt(med[s]["eb"]) for s in servers]
        medians[key] = med
        lines.append("| " + " | ".join(cells) + " |")
    return lines, medians


def summary_table(recs: list[dict]) -> list[str]:
    """The load medians in brief: req/s and p99 of each server, pyetcd/etcd."""
    loads = [r for r in recs if r["kind"] == "load"]
    servers, base = _servers(loads)
    _, medians = load_table(recs)
    head = ["members", "workload", *[f"{s} req/s" for s in servers],
            *[f"{s} p99 ms" for s in servers]]
    vs_base = bool(base and _pyetcds(servers) and not _is_pyetcd(base))
    if vs_base:
        head += [f"{p}/{base}" for p in _pyetcds(servers)]
    if _floor(servers):
        head += [f"{p}/floor" for p in _pyetcds(servers)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (members, row), med in medians.items():
        cells = [str(members), row, *[_fmt(med[s]["rps"]) for s in servers],
                 *[_fmt(med[s]["p99"]) for s in servers]]
        if vs_base:
            cells += [_ratio(med[p]["rps"], med[base]["rps"]) for p in _pyetcds(servers)]
        if _floor(servers):
            cells += [_ratio(med[p]["rps"], med["floor"]["rps"]) for p in _pyetcds(servers)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def disk_table(recs: list[dict]) -> list[str]:
    rows = [r for r in recs if r["kind"] == "disk" and "error" not in r]
    by: dict = defaultdict(list)
    for r in rows:
        by[(r["tool"], r["profile"])].append(r)
    profiles = []
    for r in rows:
        if r["tool"] in ("fio", "pyetcd-wal") and r["profile"] not in profiles:
            profiles.append(r["profile"])

    def cell(tool, prof):
        rs = by.get((tool, prof))
        if not rs:
            return ["-"] * 5, None
        m = {k: _med([r[k] for r in rs]) for k in ("p50_ms", "p99_ms", "p999_ms",
                                                    "records_per_s", "mb_per_s")}
        return [_fmt(m["p50_ms"]), _fmt(m["p99_ms"]), _fmt(m["p999_ms"]),
                _fmt(m["records_per_s"]), _fmt(m["mb_per_s"])], m["records_per_s"]

    out = ["| profile | fio p50 ms | p99 | p99.9 | records/s | MB/s | pyetcd WAL p50 ms | p99 "
           "| p99.9 | records/s | MB/s | WAL/fio records/s |", "|" + "---|" * 12]
    for prof in profiles:
        f, frec = cell("fio", prof)
        w, wrec = cell("pyetcd-wal", prof)
        out.append(f"| {prof} | " + " | ".join(f + w) + f" | {_ratio(wrec, frec)} |")
    lm = [p for p in dict.fromkeys(r["profile"] for r in rows if r["tool"] == "pyetcd-lmdb")]
    if lm:
        out += ["", "| LMDB commit (the backend's settings) | p50 ms | p99 | p99.9 | commits/s "
                "| records/s | MB/s |", "|---|---|---|---|---|---|---|"]
        for prof in lm:
            rs = by[("pyetcd-lmdb", prof)]
            m = {k: _med([r[k] for r in rs]) for k in ("p50_ms", "p99_ms", "p999_ms",
                                                        "syncs_per_s", "records_per_s",
                                                        "mb_per_s")}
            out.append(f"| {prof} | " + " | ".join(_fmt(m[k]) for k in m) + " |")
    return out


def check_perf_table(recs: list[dict]) -> list[str]:
    rows = [r for r in recs if r["kind"] == "check-perf" and "error" not in r]
    if not rows:
        return []
    servers, base = _servers(rows)
    by: dict = defaultdict(list)
    for r in rows:
        by[(r["members"], r["load"], r["server"])].append(r)
    out = ["| members | load | server | writes/s (median) | runs | PASS | slowest s | "
           "server CPU s | vs etcd |", "|---|---|---|---|---|---|---|---|---|"]
    for (m, load, s) in sorted(by, key=lambda k: (k[0], "s m l xl".split().index(k[1]),
                                                   servers.index(k[2]))):
        rs = by[(m, load, s)]
        med = _med([r["writes_per_s"] for r in rs])
        bmed = _med([r["writes_per_s"] for r in by.get((m, load, base), [])])
        out.append(f"| {m} | {load} | {s} | {_fmt(med)} | {[r['writes_per_s'] for r in rs]} | "
                   f"{sum(r['pass'] for r in rs)}/{len(rs)} | "
                   f"{_fmt(_med([r['slowest_s'] for r in rs]))} | "
                   f"{_fmt(_med([r['server_cpu_s'] for r in rs]))} | {_ratio(med, bmed)} |")
    return out


def _anon(rs: list[dict]) -> str:
    """Anonymous (private) RSS: without the mapped database file's pages."""
    a = _med([max(r["anon_after_mb"]) for r in rs if r.get("anon_after_mb")])
    b = _med([max(r["anon_after_restart_mb"]) for r in rs if r.get("anon_after_restart_mb")])
    return f"{_fmt(a)} / {_fmt(b)}" if a is not None else "-"


def datascale_table(recs: list[dict]) -> list[str]:
    rows = [r for r in recs if r["kind"] == "datascale"]
    if not rows:
        return []
    by: dict = defaultdict(list)
    for r in rows:
        by[(r["members"], r["keys"], r["server"])].append(r)
    out = ["| members | keys | server | load puts/s | RSS added MB (max member) | db MB "
           "| restart to serving s | RSS after restart MB | anon RSS after load / restart MB "
           "| runs: load puts/s; restart s |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(by):
        rs = by[key]
        out.append(
            f"| {key[0]} | {key[1]:,} | {key[2]} | {_fmt(_med([r['load_rps'] for r in rs]))} | "
            f"{_fmt(_med([r['rss_added_mb'] for r in rs]))} | "
            f"{_fmt(_med([max(r['db_mb']) for r in rs]))} | "
            f"{_fmt(_med([r['restart_s'] for r in rs]))} | "
            f"{_fmt(_med([max(r['rss_after_restart_mb']) for r in rs]))} | "
            f"{_anon(rs)} | {', '.join(_fmt(r['load_rps']) for r in rs)}; "
            f"{', '.join(_fmt(r['restart_s'], 2) for r in rs)} |")
    return out


def every_run(recs: list[dict]) -> list[str]:
    out = ["| members | workload | server | req/s of each run | server CPU s of each run | "
           "generator CPU s of each run (processes) | errors |", "|---|---|---|---|---|---|---|"]

    def split(r) -> str:   # a member's own CPU + its front-ends'
        sp = r.get("server_cpu_split_s")
        return f" ({_fmt(sp['members'], 1)} + {_fmt(sp['helpers'], 1)})" \
            if sp and sp.get("helpers") else ""

    def gen(r) -> str:
        return _fmt(r["generator_cpu_s"], 1) if "generator_cpu_s" in r else "etcd-benchmark"
    by: dict = defaultdict(list)
    for r in recs:
        if r["kind"] == "load":
            by[(r["members"], r["row"], r["server"])].append(r)
    for (m, row, s), rs in by.items():
        out.append(f"| {m} | {row} | {s} | {', '.join(_fmt(r['rps']) for r in rs)} | "
                   f"{', '.join(_fmt(r['server_cpu_s'], 1) + split(r) for r in rs)} | "
                   f"{', '.join(gen(r) for r in rs)} "
                   f"({rs[0].get('generator_procs', '-')}) | {sum(r['errors'] for r in rs)} |")
    return out


def plots(out: Path, recs: list[dict], medians: dict) -> list[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    loads = [r for r in recs if r["kind"] == "load"]
    if not loads:   # a run of the anchors only (--skip load): no load plots
        return made
    servers, base = _servers(loads)
    members = sorted({r["members"] for r in loads})
    # throughput by client count (the put sweep)
    sweep = [r for r in loads if r["group"] == "put-sweep"]
    if sweep:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for s in servers:
            for m in members:
                pts = defaultdict(list)
                for r in sweep:
                    if r["server"] == s and r["members"] == m:
                        pts[r["clients"]].append(r["rps"])
                if pts:
                    xs = sorted(pts)
                    ax.plot(xs, [statistics.median(pts[x]) for x in xs], marker="o",
                            label=f"{s}, {m} member{'s' if m > 1 else ''}")
        ax.set_xscale("log")
        ax.set_xlabel("clients")
        ax.set_ylabel("puts/s (median)")
        ax.set_title("Put throughput by client count")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "throughput_by_clients.png", dpi=110)
        plt.close(fig)
        made.append("throughput_by_clients.png")
    # latency CDFs of a few rows (the first run of each)
    rows = [r for r in PLOT_CDF_ROWS if any(x["row"] == r for x in loads)]
    if rows:
        fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 4), squeeze=False)
        for ax, row in zip(axes[0], rows):
            for s in servers:
                for m in members:
                    first = next((r for r in loads if r["row"] == row and r["server"] == s
                                  and r["members"] == m and r.get("cdf")), None)
                    if first:
                        ax.plot([p[0] * 1000 for p in first["cdf"]], [p[1] for p in first["cdf"]],
                                label=f"{s} x{m}")
            ax.set_xscale("log")
            ax.set_xlabel("latency ms")
            ax.set_title(row)
            ax.grid(True, alpha=0.3)
        axes[0][0].set_ylabel("fraction of requests")
        axes[0][-1].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "latency_cdf.png", dpi=110)
        plt.close(fig)
        made.append("latency_cdf.png")
    row_names = list(dict.fromkeys(r["row"] for r in loads))
    # server CPU per 1,000 requests and pyetcd/etcd ratio, per row
    for name, field, title, xlabel in (
            ("cpu_per_op.png", "cpu", "Server CPU seconds per 1,000 requests", "CPU s / 1k"),
            ("ratio.png", "ratio", "pyetcd / etcd throughput (median)", "ratio")):
        if field == "ratio" and not (base and "pyetcd" in servers):
            continue
        fig, axes = plt.subplots(1, len(members), figsize=(6 * len(members), 0.32 * len(row_names)
                                                          + 1.5), squeeze=False)
        for ax, m in zip(axes[0], members):
            ys = list(range(len(row_names)))
            if field == "cpu":
                h = 0.8 / max(1, len(servers))
                for i, s in enumerate(servers):
                    vals = [(medians.get((m, rn)) or {}).get(s, {}).get("cpu") or 0
                            for rn in row_names]
                    ax.barh([y + i * h for y in ys], vals, height=h, label=s)
                ax.legend(fontsize=8)
            else:
                vals = []
                for rn in row_names:
                    med = medians.get((m, rn)) or {}
                    a = med.get("pyetcd", {}).get("rps")
                    b = med.get(base, {}).get("rps")
                    vals.append(a / b if a and b else 0)
                ax.barh(ys, vals, color=["tab:green" if v >= 1 else "tab:red" for v in vals])
                ax.axvline(1.0, color="black", lw=0.8)
            ax.set_yticks(ys)
            ax.set_yticklabels(row_names, fontsize=8)
            ax.invert_yaxis()
            ax.set_xlabel(xlabel)
            ax.set_title(f"{title}, {m} member{'s' if m > 1 else ''}", fontsize=10)
            ax.grid(True, axis="x", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        made.append(name)
    return made


def merge_rerun(target: Path, rerun: Path) -> Path:
    """Replace ``target``'s records of the rows ``rerun`` measured (same kind,
    row, server and member count) by ``rerun``'s, note the rerun (its command
    and commit) in ``target`` and re-render its report."""
    old, new = load(target), load(rerun)
    meta = next(r for r in new if r["kind"] == "meta")
    fresh = [r for r in new if r["kind"] != "meta"]
    def key(r):
        return (r["kind"], r.get("row"), r.get("server"), r.get("members"))
    keys = {key(r) for r in fresh}
    kept = [r for r in old if r["kind"] in ("meta", "rerun") or key(r) not in keys]
    note = {"kind": "rerun", "command": meta.get("command"), "commit": meta.get("commit"),
            "date": meta.get("date"), "rows": sorted({r.get("row") for r in fresh if r.get("row")}),
            "anchors": sorted({r["kind"] for r in fresh if r["kind"] in ("check-perf", "datascale")})}
    (target / "results.jsonl").write_text("".join(json.dumps(r) + "\n"
                                                  for r in kept + [note] + fresh))
    write_report(target)
    return target


def _rerun_what(note: dict) -> str:
    parts = []
    if note.get("rows"):
        parts.append("rows " + ", ".join(note["rows"]))
    if note.get("anchors"):
        parts.append("every " + " and ".join(a.replace("-", " ") for a in note["anchors"]) + " run")
    return "; ".join(parts) or "nothing"


def write_report(out: Path) -> Path:
    out = Path(out)
    recs = load(out)
    meta = next((r for r in recs if r["kind"] == "meta"), {})
    lt, medians = load_table(recs)
    made = plots(out, recs, medians)
    mach = meta.get("machine", {})
    text = [
        "# pyetcd benchmark report", "",
        f"- command: `{meta.get('command', '')}`",
        f"- commit measured: `{meta.get('commit', '?')}`; date {meta.get('date', '?')}",
        f"- machine: {mach.get('cores')} cores ({mach.get('cpu')}), {mach.get('mem_mb')} MiB, "
        f"Linux {mach.get('kernel')}, Python {mach.get('python')}",
        "- servers: " + ", ".join(f"{k} = {v}" for k, v in (meta.get("servers") or {}).items()),
        f"- profile `{meta.get('profile')}`: {meta.get('seconds_per_row')} s per load row, "
        f"{meta.get('repeats')} run(s) each (servers take turns); figures are medians, every "
        "run is listed below and in `results.jsonl`. The machine is shared and noisy: compare "
        "the ratios within this report, not absolute figures across reports.",
        "- load: etcd's own benchmark tool (Go) alone, each row sized by a short probe to "
        "last about the row's seconds; server CPU of a member with front-ends is shown as "
        "member + front-ends in Every run." if meta.get("load_tool") == "etcd-benchmark" else
        "- load: bench's multi-process generator (HDR histograms), its CPU reported beside "
        "the server's; `etcd-benchmark` columns: etcd's own Go tool on the same workload, "
        "right after, on the same deployment, in the first run of each row (median of "
        "those runs)." if meta.get("etcd_benchmark") else
        "- load: bench's multi-process generator (HDR histograms).",
        *[f"- rerun: {_rerun_what(r)} by `{r['command']}` at `{r['commit']}` "
          f"({r['date']}), merged in place of the first run's" for r in recs
          if r["kind"] == "rerun"],
        *(["", "## Load (req/s, p99 latency, server CPU seconds per 1,000 requests)", "", *lt]
          if len(lt) > 2 else []), "",
    ]
    for img in made:
        text += [f"![{img}]({img})", ""]
    dt = disk_table(recs)
    if len(dt) > 2:
        text += [f"## Disk: fio beside pyetcd's WAL and LMDB (in {meta.get('disk_dir')})", "",
                 "Sync latency: the fdatasync/fsync alone (O_DSYNC: the synced write); etcd "
                 "wants the WAL's p99 under 10 ms. In the batched rows fio issues one write "
                 "per record and pyetcd's WAL one write per batch, so the WAL can pass fio "
                 "there.", "", *dt, ""]
    cp = check_perf_table(recs)
    if cp:
        text += ["## etcdctl check perf (etcdctl 3.5.1, 60 s per run)", "", *cp, ""]
    ds = datascale_table(recs)
    if ds:
        text += ["## check datascale shapes (512 B keys and values)", "", *ds, ""]
    text += ["## Every run", "", *every_run(recs), ""]
    (out / "report.md").write_text("\n".join(text))
    return out / "report.md"
