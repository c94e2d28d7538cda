"""The real etcdctl (3.4 and 3.5) against pyetcd and against real etcd.

The same session of commands runs on a fresh pyetcd and on a fresh real etcd
3.5.1; every command's exit code, stdout and stderr must be identical after
normalisation (raft term, which a single pyetcd member without Raft reports
differently, and the timestamped retry warnings etcdctl logs).  So revisions,
counts, flags, output formats and error texts are judged by etcd itself.
"""
from __future__ import annotations

import json
import re

import pytest

from pyetcd.testing import etcdctl

TXN_SUCCESS = """value("foo") = "bar2"

put foo bar3
get foo

get foo

"""
TXN_FAILURE = """mod("foo") > "1000"
version("b") = "1"

put nope x

put foo fail-branch
get foo
del b

"""

SESSION: list[tuple] = [
    ("put", "foo", "bar"),
    ("put", "foo", "bar2", "--prev-kv"),
    ("get", "foo"),
    ("get", "foo", "-w", "json"),
    ("get", "foo", "-w", "fields"),
    ("get", "foo", "-w", "protobuf"),
    ("get", "foo", "--hex"),
    ("get", "foo", "--print-value-only"),
    ("put", "a", "1"), ("put", "b", "2"), ("put", "c", "3"), ("put", "c", "33"),
    ("put", "ab", "x"), ("put", "abc", "y"),
    ("put", "zh", "张三"),
    ("get", "a", "--prefix"),
    ("get", "a", "--prefix", "-w", "json"),
    ("get", "a", "c"),
    ("get", "a", "--from-key", "--keys-only"),
    ("get", "", "--prefix", "--keys-only"),
    ("get", "", "--from-key", "-w", "json"),
    ("get", "a", "--prefix", "--limit", "2", "-w", "json"),
    ("get", "a", "--from-key", "--limit", "3"),
    ("get", "a", "--from-key", "--sort-by=MODIFY", "--order=DESCEND"),
    ("get", "a", "--from-key", "--sort-by=VERSION", "--order=DESCEND", "--limit", "1"),
    ("get", "a", "--from-key", "--sort-by=CREATE", "--order=ASCEND"),
    ("get", "a", "--from-key", "--sort-by=VALUE", "--order=DESCEND"),
    ("get", "a", "--from-key", "--order=DESCEND"),
    ("get", "a", "--from-key", "--count-only", "-w", "fields"),
    ("get", "a", "--from-key", "--count-only", "-w", "json"),
    ("get", "a", "--prefix", "--count-only", "-w", "fields"),
    ("get", "foo", "--rev=2"),
    ("get", "foo", "--rev=3", "-w", "json"),
    ("get", "foo", "--rev=1"),
    ("get", "missing"),
    ("get", "missing", "-w", "json"),
    ("get", "zh"),
    ("get", "foo", "--consistency=s"),
    ("del", "c", "--prev-kv"),
    ("del", "missing"),
    ("del", "ab", "--prefix", "-w", "json"),
    ("get", "", "--prefix"),
    ("txn", "-i", TXN_SUCCESS),
    ("txn", "-i", TXN_FAILURE),
    ("txn", "-i", TXN_SUCCESS, "-w", "json"),
    ("put", "k1", "v1"), ("put", "k2", "v2"), ("put", "k3", "v3"),
    ("del", "k", "--from-key", "--prev-kv"),
    ("get", "", "--from-key", "-w", "json"),
    ("compaction", "5"),
    ("compaction", "5"),
    ("compaction", "3"),
    ("get", "foo", "--rev=4"),
    ("get", "foo", "--rev=5"),
    ("get", "foo", "--rev=1000"),
    ("compaction", "1000"),
    ("compaction", "--physical", "7"),
    ("get", "foo", "-w", "json"),
    ("put", "", "v"),
    ("put", "newkey", "--ignore-value"),
    ("put", "foo", "--ignore-value", "-w", "json"),
    ("put", "foo", "x", "--lease=1234"),
    ("put", "foo", "newval", "--ignore-lease"),
    ("put", "foo", "--ignore-lease"),
    ("get", "foo", "-w", "json"),
    ("del", ""),
    ("get", ""),
]


def _normalise(text: str) -> str:
    lines = [ln for ln in text.splitlines() if not ln.startswith('{"level":')]
    text = "\n".join(lines)
    text = re.sub(r'"raft_term":\d+', '"raft_term":T', text)
    text = re.sub(r"raft_term:\d+", "raft_term:T", text)
    text = re.sub(r'"RaftTerm" : \d+', '"RaftTerm" : T', text)
    return text


def _proto_filter(out: bytes) -> str:
    """-w protobuf prints the raw RangeResponse; compare it without the term."""
    from pyetcd.pb.etcdserverpb.rpc_pb2 import RangeResponse
    resp = RangeResponse.FromString(out)
    resp.header.raft_term = 0
    return str(resp)


def run_session(ctl: str, endpoint: str) -> list[tuple]:
    out = []
    for cmd in SESSION:
        args = list(cmd)
        stdin = None
        if args[0] == "txn":
            stdin = args.pop(2)
        if "protobuf" in args:
            r = etcdctl(ctl, endpoint, *args, binary=True)
            out.append((cmd, r.returncode, _proto_filter(r.stdout), r.stderr))
            continue
        r = etcdctl(ctl, endpoint, *args, input=stdin)
        out.append((cmd, r.returncode, _normalise(r.stdout), _normalise(r.stderr)))
    return out


@pytest.mark.conformance
@pytest.mark.parametrize("ctl_version", ["3.4", "3.5"])
def test_kv_session_matches_real_etcd(ctl_version, servers, etcdctl34, etcdctl35, etcd35):
    ctl = etcdctl34 if ctl_version == "3.4" else etcdctl35
    ours = servers("pyetcd").start()
    theirs = servers("etcd").start()
    got = run_session(ctl, ours.endpoint)
    want = run_session(ctl, theirs.endpoint)
    mismatches = [(g[0], g[1:], w[1:]) for g, w in zip(got, want) if g != w]
    assert not mismatches, "\n\n".join(
        f"{cmd}\n  pyetcd: {g}\n  etcd:   {w}" for cmd, g, w in mismatches)
    # the session exercised both success and error paths
    assert any(g[1] != 0 for g in got) and any(g[1] == 0 for g in got)


@pytest.mark.conformance
@pytest.mark.parametrize("ctl_version", ["3.4", "3.5"])
def test_endpoint_health_and_status(ctl_version, pyetcd, etcdctl34, etcdctl35):
    ctl = etcdctl34 if ctl_version == "3.4" else etcdctl35
    r = etcdctl(ctl, pyetcd.endpoint, "endpoint", "health")
    assert r.returncode == 0, r.stderr
    assert f"{pyetcd.endpoint} is healthy: successfully committed proposal" in r.stdout + r.stderr
    r = etcdctl(ctl, pyetcd.endpoint, "endpoint", "health", "-w", "table")
    assert "| true |" in r.stdout.replace("  ", " ").replace("  ", " ")
    r = etcdctl(ctl, pyetcd.endpoint, "endpoint", "status", "-w", "json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)[0]
    assert st["Endpoint"] == pyetcd.endpoint
    status = st["Status"]
    assert status["version"] == "3.5.13"
    assert status["header"]["member_id"] == status["leader"] == 0x8E9E05C52164694D
    assert status["header"]["cluster_id"] == 0xCDF818194E3A8C32
    assert status["dbSize"] > 0
    r = etcdctl(ctl, pyetcd.endpoint, "endpoint", "status", "-w", "table")
    assert "8e9e05c52164694d" in r.stdout and "3.5.13" in r.stdout and "true" in r.stdout
    r = etcdctl(ctl, pyetcd.endpoint, "member", "list", "-w", "table")
    assert r.returncode == 0 and "default" in r.stdout and "http://localhost:2380" in r.stdout
