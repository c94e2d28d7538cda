"""Anchors next to the load rows: the real ``etcdctl check perf`` (the figure
operators already know) and ``etcdctl check datascale``'s shape.

- check perf: etcdctl 3.5.1's own command, 60 s of 1 KiB puts at the load's
  rate (s 150/s, m 1,000/s, l 8,000/s, xl 15,000/s), on a fresh deployment;
  throughput, slowest request, stddev, its PASS/FAIL, the server's CPU.
- datascale: ``keys`` puts of 512-byte keys (random varints under
  ``/etcdctl-check-datascale/``) and 512-byte values with the load's client
  count (s 50, m 200, l 500), on a fresh deployment; then the RSS added by
  the data, the db size, and the time to restart every member to serving
  (and the RSS after the restart).  (etcdctl's own check datascale reads
  RSS from the /metrics of one endpoint and deletes the keys afterwards;
  this measures every member from /proc and keeps the data for the restart.)
"""
from __future__ import annotations

import time

from pyetcd.testing import etcdctl_path

from . import check_perf as _check_perf_script
from .loadgen import run_load
from .servers import LABELS, Deployment

DATASCALE_CLIENTS = {10000: 50, 100000: 200, 1000000: 500, 3000000: 1000}


def check_perf(server: str, load: str, members: int) -> dict:
    ctl = etcdctl_path("3.5") or etcdctl_path("3.4")
    if ctl is None:
        return {"kind": "check-perf", "load": load, "error": "no etcdctl installed"}
    row = _check_perf_script.run(LABELS[server], load, ctl, members)
    row.pop("server", None)
    return {"kind": "check-perf", **row}


def datascale(server: str, members: int, keys: int, procs=None, progress=None) -> dict:
    clients = next((c for k, c in sorted(DATASCALE_CLIENTS.items()) if keys <= k), 1000)
    with Deployment(server, members) as dep:
        rss0 = dep.rss_bytes()
        t0 = time.monotonic()
        res = run_load(dep.endpoints, "put", {"prefix": "/etcdctl-check-datascale/",
                                              "key_size": 512, "val_size": 512,
                                              "key_space": 1 << 62},
                       conns=min(clients, 100), clients=clients, total=keys, procs=procs,
                       progress=progress)
        load_s = time.monotonic() - t0
        rss1, anon1 = dep.rss_bytes(), dep.rss_bytes("RssAnon")
        db = dep.db_sizes()
        restart = dep.restart_seconds()
        rss2, anon2 = dep.rss_bytes(), dep.rss_bytes("RssAnon")
    mb = 2 ** 20
    return {"kind": "datascale", "keys": keys, "clients": clients, "load_s": round(load_s, 1),
            "load_rps": res["rps"], "errors": res["errors"], "error_kinds": res["error_kinds"],
            "rss_before_mb": [round(b / mb, 1) for b in rss0],
            "rss_after_mb": [round(b / mb, 1) for b in rss1],
            "rss_added_mb": round(max(a - b for a, b in zip(rss1, rss0)) / mb, 1),
            "db_mb": [round(b / mb, 1) for b in db], "restart_s": round(restart, 2),
            "rss_after_restart_mb": [round(b / mb, 1) for b in rss2],
            "anon_after_mb": [round(b / mb, 1) for b in anon1],
            "anon_after_restart_mb": [round(b / mb, 1) for b in anon2]}
