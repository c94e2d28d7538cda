"""The operator's maintenance commands across a 3-member cluster with the
real etcdctl: endpoint status -w table --cluster, endpoint hashkv --cluster,
defrag --cluster, alarm list / disarm."""
from __future__ import annotations

import json
import re
import time

import pytest

from pyetcd.testing import LocalCluster, etcdctl

from .common import ok

pytestmark = pytest.mark.conformance


def test_cluster_wide_maintenance(workdir, etcdctl35, etcdctl34):
    c = LocalCluster("pyetcd", workdir / "c", n=3).start()
    try:
        ep = c.members[0].endpoint
        for i in range(30):
            ok(etcdctl(etcdctl35, ep, "put", f"k{i % 5}", f"v{i}"))
        for ctl in (etcdctl35, etcdctl34):
            table = ok(etcdctl(ctl, ep, "endpoint", "status", "-w", "table", "--cluster"))
            rows = [ln for ln in table.splitlines() if ln.startswith("| http")]
            assert sorted(r.split("|")[1].strip() for r in rows) == sorted(
                f"http://{m.endpoint}" for m in c.members)
            assert sum(" true " in r.split("|")[5] for r in rows) == 1  # IS LEADER: exactly one
            assert "RAFT TERM" in table and "DB SIZE" in table
        # every member reports the same HashKV once all have applied the writes
        for _ in range(50):
            out = json.loads(ok(etcdctl(etcdctl35, ep, "endpoint", "hashkv", "--cluster", "-w", "json")))
            if len(out) == 3 and len({e["HashKV"]["hash"] for e in out}) == 1:
                break
            time.sleep(0.1)
        assert len(out) == 3 and len({e["HashKV"]["hash"] for e in out}) == 1, out
        text = ok(etcdctl(etcdctl35, ep, "endpoint", "hashkv", "--cluster"))
        assert len(re.findall(r"^http://127\.0\.0\.1:\d+, \d+$", text, re.M)) == 3
        out = ok(etcdctl(etcdctl35, ep, "defrag", "--cluster"))
        done = re.findall(r"^Finished defragmenting etcd member\[(http://[^\]]+)\]$", out, re.M)
        assert sorted(done) == sorted(f"http://{m.endpoint}" for m in c.members)
        assert ok(etcdctl(etcdctl35, ep, "alarm", "list")) == ""
        assert ok(etcdctl(etcdctl35, ep, "alarm", "disarm")) == ""
        assert ok(etcdctl(etcdctl35, c.members[2].endpoint, "get", "k4", "--print-value-only")) == "v29\n"
    finally:
        c.stop()
