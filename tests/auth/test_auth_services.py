"""Auth on the other services (Watch, Lease, Maintenance, Cluster, Compact),
the same etcdctl 3.5 session against pyetcd and real etcd 3.5.1."""
from __future__ import annotations

import pytest

from tests.auth.test_auth_etcdctl import compare, run_session

ROOT = ("--user", "root:rootpw")
ALICE = ("--user", "alice:alicepw")

SETUP = [
    ("user", "add", "root", "--new-user-password", "rootpw"),
    ("role", "add", "root"),
    ("user", "grant-role", "root", "root"),
    ("user", "add", "alice", "--new-user-password", "alicepw"),
    ("role", "add", "r"),
    ("role", "grant-permission", "r", "readwrite", "pub/", "--prefix"),
    ("user", "grant-role", "alice", "r"),
    ("put", "secret", "s"),
    ("auth", "enable"),
]
SESSION = SETUP + [
    ("watch", "secret", "--rev=1", *ALICE),
    ("watch", "--prefix", "", "--rev=1", *ALICE),
    ("watch", "secret", "--rev=1"),
    ("lease", "grant", "10"),
    ("lease", "list", *ALICE),
    ("lease", "list"),
    ("lease", "timetolive", "1234", *ALICE),
    ("lease", "revoke", "1234", *ALICE),
    ("alarm", "list", *ALICE),
    ("alarm", "list"),
    ("alarm", "disarm", *ALICE),
    ("defrag", *ALICE),
    ("endpoint", "hashkv", *ALICE),
    ("member", "add", "x", "--peer-urls=http://127.0.0.1:1", *ALICE),
    ("member", "remove", "1234", *ALICE),
    ("member", "update", "1234", "--peer-urls=http://127.0.0.1:1", *ALICE),
    ("move-leader", "1234", *ALICE),
    ("compaction", "1", *ALICE),
    ("compaction", "1", *ROOT),
    ("auth", "disable", *ROOT),
    ("defrag", "-w", "json"),
]


@pytest.mark.conformance
def test_services_session_matches_real_etcd(servers, etcdctl35, etcd35):
    ours = servers("pyetcd").start()
    theirs = servers("etcd").start()
    got = run_session(etcdctl35, ours.endpoint, SESSION)
    want = run_session(etcdctl35, theirs.endpoint, SESSION)
    compare(got, want)
