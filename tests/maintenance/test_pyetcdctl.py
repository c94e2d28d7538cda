"""pyetcdctl prints what the real etcdctl 3.5 prints, on the same server."""
from __future__ import annotations

import pytest

from pyetcd.testing import etcdctl

from .common import ok, pyetcdctl

pytestmark = pytest.mark.conformance


def test_outputs_match_etcdctl(servers, etcdctl35):
    s = servers("pyetcd").start()
    ep = s.endpoint

    def both(*args):
        real = etcdctl(etcdctl35, ep, *args)
        ours = pyetcdctl("--endpoints", ep, *args)
        return real, ours

    r, o = both("put", "name", "张三")
    assert ok(r) == ok(o) == "OK\n"
    for args in (["get", "name"], ["get", "na", "--prefix"], ["get", "name", "--print-value-only"],
                 ["member", "list"], ["member", "list", "-w", "table"],
                 ["endpoint", "status", "-w", "table"], ["endpoint", "status"],
                 ["endpoint", "hashkv", "-w", "table"], ["endpoint", "hashkv"],
                 ["alarm", "list"], ["defrag"]):
        r, o = both(*args)
        assert ok(o) == ok(r), (args, o.stdout, r.stdout)
    r = ok(etcdctl(etcdctl35, ep, "put", "x", "1"))
    ok(etcdctl(etcdctl35, ep, "put", "x", "2"))
    assert ok(pyetcdctl("--endpoints", ep, "compaction", "3")) == "compacted revision 3\n"
    assert ok(pyetcdctl("--endpoints", ep, "del", "x")) == "1\n"
    h = ok(pyetcdctl("--endpoints", ep, "endpoint", "health"))
    assert h.startswith(f"{ep} is healthy: successfully committed proposal: took = ")
    p = pyetcdctl("--endpoints", ep, "get", "x", "--rev", "2")
    assert p.returncode == 1
    assert p.stderr.strip() == "Error: etcdserver: mvcc: required revision has been compacted"
