"""``report.html``: the run at a glance -- verdicts, a timeline of every
operation (one lane per client, colored by outcome) under the faults, and
latency plots (over time, and the distribution per workload), as PNGs
drawn with matplotlib."""
from __future__ import annotations

import html
import json
from pathlib import Path

from .history import pairs

COLORS = {"ok": "#2e7d32", "fail": "#c62828", "info": "#ef6c00"}


def _faults(ops) -> list[tuple[float, float, str]]:
    """(start, end, label) of every fault."""
    out, open_ = [], {}
    for o in ops:
        if o.process != "nemesis" or o.type == "invoke":
            continue
        if o.f.startswith("start-"):
            open_[o.f[6:]] = (o.time, json.dumps(o.value, default=str)[:80])
        elif o.f.startswith("end-") and o.f[4:] in open_:
            t0, label = open_.pop(o.f[4:])
            out.append((t0, o.time, f"{o.f[4:]} {label}"))
    end = max((o.time for o in ops), default=0)
    out += [(t0, end, f"{name} {label}") for name, (t0, label) in open_.items()]
    return out


def _shade(ax, faults) -> None:
    for t0, t1, _ in faults:
        ax.axvspan(t0, t1, color="#90a4ae", alpha=0.25, lw=0)


def _timeline(out: Path, ps, faults) -> None:
    import matplotlib.pyplot as plt
    procs = sorted({str(p.inv.process) for p in ps})
    lane = {p: i for i, p in enumerate(procs)}
    fig, ax = plt.subplots(figsize=(12, max(3, 0.25 * len(procs) + 1.5)))
    _shade(ax, faults)
    for kind, color in COLORS.items():
        sel = [p for p in ps if p.type == kind]
        xs = [p.start for p in sel]
        widths = [(p.done.time if p.done is not None else p.start + 0.05) - p.start for p in sel]
        ax.barh([lane[str(p.inv.process)] for p in sel], widths, left=xs, height=0.6, color=color,
                label=f"{kind} ({len(sel)})")
    ax.set_yticks(range(len(procs)))
    ax.set_yticklabels(procs, fontsize=6)
    ax.set_xlabel("seconds since start (shaded: faults)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "timeline.png", dpi=90)
    plt.close(fig)


def _latency(out: Path, by_workload: dict, faults) -> None:
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
    _shade(a1, faults)
    for name, ps in by_workload.items():
        done = [p for p in ps if p.done is not None and p.type != "info"]
        a1.scatter([p.start for p in done], [1000 * (p.done.time - p.start) for p in done], s=3,
                   label=name)
        lat = sorted(1000 * (p.done.time - p.start) for p in done)
        if lat:
            a2.plot(lat, [i / len(lat) for i in range(len(lat))], label=name)
    a1.set_yscale("log")
    a1.set_xlabel("seconds since start (shaded: faults)")
    a1.set_ylabel("latency (ms)")
    a2.set_xscale("log")
    a2.set_xlabel("latency (ms)")
    a2.set_ylabel("fraction of completed operations")
    for a in (a1, a2):
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=90)
    plt.close(fig)


def write_report(out: Path, ops, verdicts: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    ps = [p for p in pairs(ops) if p.inv.process not in ("final", "tool")]
    faults = _faults(ops)
    by_workload: dict = {}
    for p in ps:
        by_workload.setdefault(p.inv.workload, []).append(p)
    _timeline(out, ps, faults)
    _latency(out, by_workload, faults)
    opts = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    rows = []
    for name, v in verdicts.items():
        wps = by_workload.get(name, [])
        counts = {t: sum(1 for p in wps if p.type == t) for t in ("ok", "fail", "info")}
        state = {True: "valid", False: "INVALID", None: "unknown"}[v.get("valid")]
        rows.append(f"<tr><td>{html.escape(name)}</td><td class='{state}'>{state}</td>"
                    f"<td>{len(wps)}</td><td>{counts['ok']}</td><td>{counts['fail']}</td>"
                    f"<td>{counts['info']}</td><td>{len(v.get('anomalies', []))}</td></tr>")
    anomalies = "".join(
        f"<h3>{html.escape(name)}</h3><pre>{html.escape(json.dumps(v.get('anomalies'), indent=1, default=str))}</pre>"
        for name, v in verdicts.items() if v.get("anomalies"))
    fault_rows = "".join(f"<tr><td>{t0:.2f}</td><td>{t1:.2f}</td><td>{html.escape(label)}</td></tr>"
                         for t0, t1, label in faults)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>jepsen-lite run</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 10px;border-bottom:1px solid #ddd}}
.valid{{color:#2e7d32;font-weight:bold}} .INVALID{{color:#c62828;font-weight:bold}}
pre{{background:#f5f5f5;padding:1em;overflow:auto;max-height:30em}}</style></head><body>
<h1>jepsen-lite: {html.escape(opts.get('server', '?'))}, {opts.get('members', '?')} members</h1>
<p>workloads {html.escape(', '.join(opts.get('workloads', [])))}; nemeses
{html.escape(', '.join(opts.get('nemeses', [])))}; {opts.get('time', '?')} s at {opts.get('rate', '?')}
ops/s over {opts.get('clients', '?')} clients; seed {opts.get('seed', '?')}</p>
<table><tr><th>checker</th><th>verdict</th><th>ops</th><th>ok</th><th>fail</th><th>info</th>
<th>anomalies</th></tr>{''.join(rows)}</table>
<h2>Timeline</h2><img src="timeline.png" alt="operations over time, faults shaded">
<h2>Latency</h2><img src="latency.png" alt="latency over time and its distribution">
<h2>Faults</h2><table><tr><th>start</th><th>end</th><th>fault</th></tr>{fault_rows}</table>
<h2>Anomalies</h2>{anomalies or '<p>none</p>'}
<p>Files: history.jsonl, nemesis.jsonl, verdicts.json, member logs (m*.log).</p>
</body></html>"""
    (out / "report.html").write_text(page)
