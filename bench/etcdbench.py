"""etcd's own load generator (tools/benchmark, Go) as a second opinion.

Given its path (``--etcd-benchmark PATH``), the runner runs it on the same
workload as the Python generator, sized to last about as long, and parses
its summary.  Rows it cannot express (keys-only and count-only ranges,
txn-mixed in the 3.4 tool, Kubernetes' shape) return None.
"""
from __future__ import annotations

import re
import subprocess

from pyetcd.util.keys import prefix_end

from .workloads import range_prefix


def _put(p: dict, total: int, rate) -> list[str]:
    a = ["put", f"--key-size={p.get('key_size', 8)}", f"--val-size={p.get('val_size', 8)}",
         f"--key-space-size={p.get('key_space', 1)}", f"--total={total}"]
    if p.get("sequential"):
        a.append("--sequential-keys")
    return a + ([f"--rate={int(rate)}"] if rate else [])


def _range(p: dict, total: int, rate) -> list[str] | None:
    if p.get("keys_only") or p.get("count_only"):
        return None
    if p.get("prefix_keys"):
        prefix = range_prefix(p["prefix_keys"])
        keys = [prefix.decode(), prefix_end(prefix).decode()]
    else:
        keys = [p.get("key", "foo")]
    return ["range", *keys, f"--consistency={p.get('consistency', 'l')}", f"--total={total}"] + \
        ([f"--rate={int(rate)}"] if rate else [])


def _txn_put(p: dict, total: int, rate) -> list[str]:
    return ["txn-put", f"--txn-ops={p.get('txn_ops', 1)}", f"--key-size={p.get('key_size', 8)}",
            f"--val-size={p.get('val_size', 8)}", f"--key-space-size={p.get('key_space', 1)}",
            f"--total={total}"] + ([f"--rate={int(rate)}"] if rate else [])


def _watch(p: dict, total: int, rate) -> list[str]:
    # watch-latency: one watcher per client; the clients/conns are set by the caller
    return ["watch-latency", f"--put-rate={int(p.get('put_rate') or rate or 100)}",
            f"--total={total}", f"--val-size={p.get('val_size', 32)}"]


def _watch_get(p: dict, total: int, rate) -> list[str]:
    return ["watch-get", f"--watchers={p.get('watchers', 1000)}",
            f"--streams={p.get('streams', 1)}", f"--events={p.get('events', 8)}"]


def _lease(p: dict, total: int, rate) -> list[str]:
    return ["lease-keepalive", f"--total={total}"]


def _stm(p: dict, total: int, rate) -> list[str]:
    return ["stm", "--isolation=r", f"--keys={p.get('keys', 1000)}",
            f"--keys-per-txn={p.get('keys_per_txn', 1)}",
            f"--txn-wr-percent={p.get('txn_wr_percent', 50)}",
            f"--val-size={p.get('val_size', 8)}", f"--total={total}"] + \
        ([f"--rate={int(rate)}"] if rate else [])


COMMANDS = {"put": _put, "range": _range, "txn-put": _txn_put, "watch": _watch,
            "watch-get": _watch_get, "lease-keepalive": _lease, "stm": _stm}

_FIELD = re.compile(r"^\s*(Total|Slowest|Fastest|Average|Stddev|Requests/sec):\s*([\d.eE+-]+)",
                    re.M)
_PCT = re.compile(r"^\s*([\d.]+)% in ([\d.eE+-]+) secs", re.M)
_ERR = re.compile(r"^\s*\[(\d+)\]\s*(.*)$", re.M)


def parse(out: str) -> dict | None:
    """The last summary in the tool's output: rps and latency percentiles (ms)."""
    idx = out.rfind("Summary:")
    if idx < 0:
        return None
    text = out[idx:]
    fields = {k: float(v) for k, v in _FIELD.findall(text)}
    pct = {float(k): float(v) for k, v in _PCT.findall(text)}
    if "Requests/sec" not in fields:
        return None

    def ms(v):
        return None if v is None else round(v * 1000, 3)
    errors: dict[str, int] = {}
    e = text.find("Error distribution:")
    if e >= 0:
        for n, msg in _ERR.findall(text[e:]):
            errors[msg.strip()[:200]] = errors.get(msg.strip()[:200], 0) + int(n)
    return {"rps": round(fields["Requests/sec"], 1), "seconds": fields.get("Total"),
            "errors": sum(errors.values()), "error_kinds": errors,
            "latency": {"mean_ms": ms(fields.get("Average")), "p50_ms": ms(pct.get(50.0)),
                        "p90_ms": ms(pct.get(90.0)), "p99_ms": ms(pct.get(99.0)),
                        "p999_ms": ms(pct.get(99.9)), "max_ms": ms(fields.get("Slowest"))}}


def command(path: str, endpoints: list[str], workload: str, params: dict, conns: int,
            clients: int, total: int, rate=None) -> list[str] | None:
    build = COMMANDS.get(workload)
    args = build(params, total, rate) if build else None
    if args is None:
        return None
    if workload == "watch":   # one watcher per client, spread over the streams (conns)
        clients, conns = params.get("watchers", clients), params.get("streams", conns)
    return [path, f"--endpoints={','.join(endpoints)}", f"--conns={conns}",
            f"--clients={clients}", "--precise", *args]


def run(path: str, endpoints: list[str], workload: str, params: dict, conns: int, clients: int,
        total: int, rate=None, timeout: float = 600) -> dict | None:
    """Run the tool; its parsed summary (plus the command line), or None
    when the workload is not one it has.  A failed run raises RuntimeError."""
    argv = command(path, endpoints, workload, params, conns, clients, total, rate)
    if argv is None:
        return None
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    res = parse(p.stdout)
    if p.returncode != 0 or res is None:
        raise RuntimeError(f"etcd-benchmark {workload} failed (exit {p.returncode}): "
                           f"{(p.stderr or p.stdout)[-1500:]}")
    res["argv"] = argv[1:]
    return res
