"""`etcdctl check perf --auto-compact --auto-defrag`: its cleanup calls
Compact and Defragment on pyetcd (60 s run: slow)."""
from __future__ import annotations

import pytest

from pyetcd.testing import etcdctl

pytestmark = [pytest.mark.conformance, pytest.mark.slow]


def test_check_perf_cleanup_compacts_and_defrags(servers, etcdctl35):
    s = servers("pyetcd").start()
    p = etcdctl(etcdctl35, s.endpoint, "check", "perf", "--load", "s", "--auto-compact",
                "--auto-defrag", timeout=180)
    assert "PASS" in p.stdout, (p.stdout, p.stderr)
    assert "Defragmenting" in s.log() or "finished defragmenting directory" in s.log()
    print(p.stdout)
    left = etcdctl(etcdctl35, s.endpoint, "get", "/etcdctl-check-perf/", "--prefix", "--keys-only")
    assert left.returncode == 0 and left.stdout == ""
