"""The multi-process load generator.

A Python gRPC client spends about as much CPU per request as the server
does, so one client process on a 2-core machine measures itself.
:func:`run_load` splits the connections and clients over ``procs`` worker
processes (``python -m bench.loadgen --worker``), each an asyncio program
with its share; they connect and set up (watchers, leases), report READY,
and start together on GO, so setup is outside the measured window.  Each
returns HDR histograms, error counts and its own CPU seconds, which are
merged here.  Requests are spread over connections, and connections over
endpoints, round robin (as etcd's benchmark does).

    python -m bench load put --endpoints 127.0.0.1:2379 --clients 100 --conns 10 --time 10s \\
        --param key_size=8 --param val_size=256 --param key_space=100000
"""
from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc

from pyetcd.client import Client, channel_credentials, parse_endpoint

from .hdr import Histogram
from .workloads import WORKLOADS, Budget, Ctx, Recorder

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 120.0
SINGLE_WRITER = {"watch"}   # worker 0 sends every request; the others only watch


class LoadError(Exception):
    """A run could not start or a worker failed (the message says why)."""


def default_procs() -> int:
    return max(2, os.cpu_count() or 2)


def _split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def _worker_specs(base: dict, procs: int, conns: int, clients: int, total, rate) -> list[dict]:
    conn_share, client_share = _split(conns, procs), _split(clients, procs)
    single = base["workload"] in SINGLE_WRITER
    totals = [total if i == 0 else None for i in range(procs)] if single and total else \
        (_split(total, procs) if total else [None] * procs)
    rates = [rate if i == 0 else None for i in range(procs)] if single else \
        ([rate / procs] * procs if rate else [None] * procs)
    specs, offset, coffset = [], 0, 0
    for i in range(procs):
        specs.append({**base, "worker": i, "workers": procs, "conn_offset": offset,
                      "conns": max(1, conn_share[i]), "clients": max(1, client_share[i]),
                      "client_offset": coffset, "clients_total": clients,
                      "total": totals[i], "rate": rates[i]})
        offset += max(1, conn_share[i])
        coffset += max(1, client_share[i])
    return specs


def run_load(endpoints: list[str], workload: str, params: dict | None = None, *,
             conns: int = 1, clients: int = 1, total: int | None = None,
             seconds: float | None = None, rate: float | None = None, procs: int | None = None,
             tls: dict | None = None, on_go=None, progress=None) -> dict:
    """Run ``workload`` against ``endpoints``; return the merged result.

    ``on_go()`` is called just before the workers start (to sample the
    server's CPU); ``progress(fraction)`` now and then while they run."""
    if workload not in WORKLOADS:
        raise LoadError(f"unknown workload {workload!r} (one of {', '.join(WORKLOADS)})")
    if total is None and seconds is None:
        raise LoadError("give a request count (total) or a duration (seconds)")
    params = dict(params or {})
    prepare = WORKLOADS[workload][0]
    if prepare is not None:
        with Client(endpoints, timeout=60, **_client_tls(tls)) as c:
            params.update(prepare(c, params) or {})
    procs = max(1, min(procs or default_procs(), clients))
    base = {"workload": workload, "params": params, "endpoints": endpoints,
            "seconds": seconds, "tls": tls or {}}
    specs = _worker_specs(base, procs, conns, clients, total, rate)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    workers = [subprocess.Popen([sys.executable, "-m", "bench.loadgen", "--worker"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                env=env, cwd=str(ROOT)) for _ in specs]
    try:
        return _drive(workers, specs, total, seconds, on_go, progress)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
            w.wait()


def _client_tls(tls: dict | None) -> dict:
    tls = tls or {}
    return {"cacert": tls.get("cacert"), "cert": tls.get("cert"), "key": tls.get("key")}


def _drive(workers, specs, total, seconds, on_go, progress) -> dict:
    for w, spec in zip(workers, specs):
        w.stdin.write(json.dumps(spec) + "\n")
        w.stdin.flush()
    lines: list[list[str]] = [[] for _ in workers]
    counts = [0] * len(workers)
    ready = [threading.Event() for _ in workers]

    def pump(i: int, w) -> None:
        for line in w.stdout:
            if line.startswith("P "):
                counts[i] = int(line[2:])
            elif line.startswith("READY"):
                ready[i].set()
            else:
                lines[i].append(line)
        ready[i].set()

    threads = [threading.Thread(target=pump, args=(i, w), daemon=True)
               for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + READY_TIMEOUT
    for i, ev in enumerate(ready):
        if not ev.wait(max(0.0, deadline - time.monotonic())) or workers[i].poll() is not None:
            raise LoadError(f"load worker {i} did not get ready: {''.join(lines[i])[-2000:]}")
    if on_go is not None:
        on_go()
    t0 = time.monotonic()
    for w in workers:
        w.stdin.write("GO\n")
        w.stdin.flush()
    limit = (seconds or 0) + 120 + (total or 0) / 50.0   # a stuck run ends, with an error
    while any(t.is_alive() for t in threads):
        if progress is not None:
            done = sum(counts) / total if total else (time.monotonic() - t0) / (seconds or 1)
            progress(min(1.0, done))
        if time.monotonic() - t0 > limit:
            raise LoadError(f"the load did not finish in {limit:.0f} s")
        for t in threads:
            t.join(0.2)
    results = []
    for i, w in enumerate(workers):
        w.wait()
        res = [ln for ln in lines[i] if ln.startswith("RESULT ")]
        if w.returncode != 0 or not res:
            raise LoadError(f"load worker {i} failed (exit {w.returncode}): "
                            f"{''.join(lines[i])[-2000:]}")
        results.append(json.loads(res[-1][len("RESULT "):]))
    return merge(results, specs[0])


def merge(results: list[dict], spec: dict) -> dict:
    hists: dict[str, Histogram] = {}
    errors: dict[str, int] = {}
    counters: dict[str, int] = {}
    for r in results:
        for name, d in r["hists"].items():
            hists.setdefault(name, Histogram()).merge(Histogram.from_dict(d))
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
        for k, v in r["counters"].items():
            counters[k] = counters.get(k, 0) + v
    start = min(r["start"] for r in results)
    end = max(r["end"] for r in results)
    took = max(1e-9, end - start)
    main = WORKLOADS[spec["workload"]][2]
    h = hists.get(main, Histogram())
    return {
        "workload": spec["workload"], "main": main, "requests": h.total,
        "errors": sum(errors.values()), "error_kinds": errors, "seconds": round(took, 3),
        "rps": round(h.total / took, 1), "latency": h.summary(),
        "hists": {k: v.summary() for k, v in hists.items()},
        "cdf": h.cdf(), "counters": counters, "procs": len(results),
        "generator_cpu_s": round(sum(r["cpu_s"] for r in results), 2),
    }


# -- the worker process ------------------------------------------------------

def _channel(endpoint: str, tls: dict):
    target, secure = parse_endpoint(endpoint)
    opts = [("grpc.max_receive_message_length", 64 << 20)]
    if secure or tls.get("cacert"):
        creds = channel_credentials(tls.get("cacert"), tls.get("cert"), tls.get("key"))
        return grpc.aio.secure_channel(target, creds, options=opts)
    return grpc.aio.insecure_channel(target, options=opts)


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def _worker(spec: dict) -> None:
    eps = spec["endpoints"]
    chans = [_channel(eps[(spec["conn_offset"] + j) % len(eps)], spec["tls"])
             for j in range(spec["conns"])]
    for c in chans:
        await asyncio.wait_for(c.channel_ready(), 30)
    rec = Recorder()
    budget = Budget(spec["total"], spec["seconds"], spec["rate"])
    ctx = Ctx(chans, spec["params"], budget, rec, spec["clients"], spec["worker"],
              spec["workers"], client_offset=spec["client_offset"],
              clients_total=spec["clients_total"])
    loop = asyncio.get_running_loop()
    print("READY", flush=True)
    if (await loop.run_in_executor(None, sys.stdin.readline)).strip() != "GO":
        return

    async def report():
        while True:
            await asyncio.sleep(0.5)
            print(f"P {budget.n}", flush=True)

    cpu0, start = _cpu(), time.monotonic()
    budget.start()
    reporter = asyncio.ensure_future(report())
    await WORKLOADS[spec["workload"]][1](ctx)
    end = time.monotonic()
    reporter.cancel()
    cpu = _cpu() - cpu0
    for c in chans:
        await c.close()
    print("RESULT " + json.dumps({
        "hists": {k: h.to_dict() for k, h in rec.hists.items()}, "errors": dict(rec.errors),
        "counters": dict(rec.counters), "start": start, "end": end, "cpu_s": cpu}), flush=True)


def worker_main() -> None:
    spec = json.loads(sys.stdin.readline())
    try:
        import uvloop
        run = uvloop.run
    except ImportError:
        run = asyncio.run
    run(_worker(spec))


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker_main()
    else:
        print("usage: python -m bench load ... (this module's --worker is for run_load)",
              file=sys.stderr)
        raise SystemExit(2)
