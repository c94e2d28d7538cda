"""The PyPI ``etcd3`` client, unmodified, against pyetcd.

It runs in a subprocess: its generated code needs the pure-Python protobuf
runtime and defines the same message names as ours."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import sys
import etcd3
host, port = sys.argv[1].split(":")
c = etcd3.client(host=host, port=int(port))
c.put("/name", "wang")
value, meta = c.get("/name")
assert value == b"wang", value
assert meta.key == b"/name" and meta.version == 1 and meta.create_revision == meta.mod_revision
c.put("/dir/a", "1"); c.put("/dir/b", "2"); c.put("/dir/c", "3")
got = [(v, m.key) for v, m in c.get_prefix("/dir/")]
assert got == [(b"1", b"/dir/a"), (b"2", b"/dir/b"), (b"3", b"/dir/c")], got
assert c.delete("/dir/b") is True
assert c.delete("/dir/b") is False
ok, responses = c.transaction(
    compare=[c.transactions.value("/name") == "wang"],
    success=[c.transactions.put("/name", "li"), c.transactions.get("/dir/a")],
    failure=[c.transactions.put("/name", "never")])
assert ok is True, ok
assert responses[1][0][0] == b"1", responses
ok, _ = c.transaction(compare=[c.transactions.version("/name") == 1],
                      success=[c.transactions.put("/x", "1")], failure=[])
assert ok is False
assert c.get("/x")[0] is None
rev = c.get("/name")[1].mod_revision
c.compact(rev, physical=True)
assert c.get("/name")[0] == b"li"
import grpc
try:
    c.compact(rev - 1)
    raise AssertionError("compacting below the compacted revision succeeded")
except grpc.RpcError as exc:
    assert exc.code() == grpc.StatusCode.OUT_OF_RANGE
    assert exc.details() == "etcdserver: mvcc: required revision has been compacted"
lease = c.lease(60)
c.put("/leased", "x", lease=lease)
assert c.get("/leased")[1].lease_id == lease.id
assert lease.remaining_ttl > 0 and lease.granted_ttl == 60
assert [k for k in lease.keys] == [b"/leased"]
lease.revoke()
assert c.get("/leased")[0] is None
status = c.status()
assert status.version == "3.5.13", status.version
members = list(c.members)
assert len(members) == 1 and members[0].name == "default"
c.delete_prefix("/dir/")
assert list(c.get_prefix("/dir/")) == []
print("ETCD3-CLIENT-OK")
"""


@pytest.mark.conformance
def test_etcd3_client_unmodified(pyetcd):
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    r = subprocess.run([sys.executable, "-c", SCRIPT, pyetcd.endpoint], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0 and "ETCD3-CLIENT-OK" in r.stdout, r.stdout + r.stderr
