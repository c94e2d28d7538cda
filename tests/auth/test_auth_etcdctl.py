"""The real etcdctl (3.5, and 3.4) running one auth session against pyetcd
and against real etcd 3.5.1; every command's exit code, stdout and stderr
must be identical after normalisation (raft term, etcdctl's log lines).

The session covers user/role management, permission grants (single key,
range, --prefix, --from-key), auth enable without root (refused), enable,
allowed and denied reads, writes, deletes and txns with --user, a changed
password (the old one refused), a --no-password user, auth status and
disable.
"""
from __future__ import annotations

import re

import pytest

from pyetcd.testing import etcdctl

ROOT = ("--user", "root:rootpw")
ALICE = ("--user", "alice:alicepw")

TXN_OK = """value("pub/a") = "1"

put pub/b 2

get pub/a

"""
TXN_DENIED = """value("secret") = "x"

put pub/c 3

get pub/a

"""
TXN_DENIED_OP = """value("pub/a") = "1"

put pub/c 3
put secret s

get pub/a

"""

SESSION: list[tuple] = [
    ("user", "list"),
    ("role", "list"),
    ("auth", "enable"),                                        # no root user
    ("user", "add", "root", "--new-user-password", "rootpw"),
    ("user", "get", "root"),
    ("role", "add", "root"),
    ("role", "add", "root"),                                   # already exists
    ("role", "add", "reader"),
    ("role", "add", "writer"),
    ("role", "add", "tmp"),
    ("role", "list"),
    ("user", "grant-role", "root", "root"),
    ("user", "grant-role", "root", "root"),                    # idempotent
    ("user", "grant-role", "root", "nope"),
    ("user", "grant-role", "nobody", "reader"),
    ("user", "add", "alice", "--new-user-password", "alicepw"),
    ("user", "add", "alice", "--new-user-password", "x"),      # exists
    ("user", "add", "bob", "--new-user-password", "bobpw"),
    ("user", "add", "carol", "--no-password"),
    ("user", "list"),
    ("role", "grant-permission", "reader", "read", "pub/", "--prefix"),
    ("role", "grant-permission", "reader", "read", "single"),
    ("role", "grant-permission", "writer", "readwrite", "pub/", "--prefix"),
    ("role", "grant-permission", "writer", "write", "w1", "w5"),
    ("role", "grant-permission", "writer", "read", "zz", "--from-key"),
    ("role", "grant-permission", "writer", "readwrite", "pub/", "--prefix"),   # update
    ("role", "grant-permission", "tmp", "write", "t"),
    ("role", "grant-permission", "nope", "read", "x"),
    ("role", "get", "reader"),
    ("role", "get", "writer"),
    ("role", "get", "writer", "-w", "json"),
    ("role", "get", "nope"),
    ("role", "revoke-permission", "tmp", "t"),
    ("role", "revoke-permission", "tmp", "t"),                 # not granted
    ("role", "revoke-permission", "writer", "w1", "w5"),
    ("role", "get", "writer"),
    ("role", "delete", "tmp"),
    ("role", "delete", "tmp"),
    ("user", "grant-role", "alice", "writer"),
    ("user", "grant-role", "alice", "reader"),
    ("user", "grant-role", "bob", "reader"),
    ("user", "get", "alice"),
    ("user", "get", "alice", "--detail"),
    ("user", "get", "alice", "-w", "json"),
    ("user", "revoke-role", "bob", "writer"),                  # not granted
    ("user", "revoke-role", "bob", "reader"),
    ("user", "get", "bob"),
    ("user", "get", "nobody"),
    ("put", "pub/a", "1"),
    ("put", "secret", "s0"),
    ("auth", "enable"),
    ("auth", "enable", *ROOT),                                 # already enabled
    ("get", "pub/a"),                                          # no user
    ("put", "pub/a", "1"),
    ("get", "pub/a", *ROOT),
    ("get", "pub/a", "--user", "root:wrong"),
    ("get", "pub/a", "--user", "ghost:pw"),
    ("get", "pub/", "--prefix", *ALICE),
    ("put", "pub/x", "ax", *ALICE),
    ("put", "pub/x", "ax2", "--prev-kv", *ALICE),
    ("put", "secret", "no", *ALICE),
    ("get", "secret", *ALICE),
    ("get", "", "--prefix", *ALICE),
    ("get", "zz", "--from-key", *ALICE),
    ("get", "single", *ALICE),
    ("del", "pub/x", *ALICE),
    ("del", "secret", *ALICE),
    ("del", "pub/", "--prefix", "--prev-kv", *ALICE),
    ("put", "pub/a", "1", *ALICE),
    ("txn", "-i", TXN_OK, *ALICE),
    ("txn", "-i", TXN_DENIED, *ALICE),
    ("txn", "-i", TXN_DENIED_OP, *ALICE),
    ("user", "list", *ALICE),
    ("user", "get", "alice", *ALICE),
    ("user", "get", "bob", *ALICE),
    ("role", "get", "writer", *ALICE),
    ("role", "get", "root", *ALICE),
    ("user", "add", "eve", "--new-user-password", "e", *ALICE),
    ("user", "passwd", "alice", "--interactive=false", *ROOT, "STDIN:alicepw2\n"),
    ("get", "pub/a", *ALICE),                                  # old password
    ("get", "pub/a", "--user", "alice:alicepw2"),
    ("get", "pub/a", "--user", "carol:"),                      # no-password user
    ("user", "delete", "root", *ROOT),
    ("user", "revoke-role", "root", "root", *ROOT),
    ("role", "delete", "root", *ROOT),
    ("user", "delete", "bob", *ROOT),
    ("user", "list", *ROOT),
    ("auth", "status", *ROOT),
    ("auth", "disable", *ALICE),
    ("auth", "disable", *ROOT),
    ("auth", "status"),
    ("get", "secret"),
    ("user", "delete", "alice"),
    ("role", "delete", "root"),
    ("user", "revoke-role", "root", "root"),
    ("user", "get", "root"),
]
SESSION_35_ONLY = {("auth", "status", *ROOT), ("auth", "status")}


def _normalise(text: str) -> str:
    lines = [ln for ln in text.splitlines() if not ln.startswith('{"level":')
             and not re.match(r"^\d{4}/\d\d/\d\d ", ln)]
    text = "\n".join(lines)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)
    text = re.sub(r"lease [0-9a-f]{16} granted", "lease ID granted", text)
    text = re.sub(r"found 1 leases\n[0-9a-f]+", "found 1 leases\nID", text)
    text = re.sub(r'"raft_term":\d+', '"raft_term":T', text)
    text = re.sub(r"raft_term:\d+", "raft_term:T", text)
    text = re.sub(r'"RaftTerm" : \d+', '"RaftTerm" : T', text)
    return text


def run_session(ctl: str, endpoint: str, session) -> list[tuple]:
    out = []
    for cmd in session:
        args = list(cmd)
        stdin = None
        if args[0] == "txn":
            stdin = args.pop(2)
        if args[-1].startswith("STDIN:"):
            stdin = args.pop()[6:]
        r = etcdctl(ctl, endpoint, *args, input=stdin)
        out.append((cmd, r.returncode, _normalise(r.stdout), _normalise(r.stderr)))
    return out


def compare(got, want):
    mismatches = [(g[0], g[1:], w[1:]) for g, w in zip(got, want) if g != w]
    assert not mismatches, "\n\n".join(
        f"{cmd}\n  pyetcd: {g}\n  etcd:   {w}" for cmd, g, w in mismatches)


@pytest.mark.conformance
@pytest.mark.parametrize("ctl_version", ["3.5", "3.4"])
def test_auth_session_matches_real_etcd(ctl_version, servers, etcdctl34, etcdctl35, etcd35):
    ctl = etcdctl34 if ctl_version == "3.4" else etcdctl35
    session = SESSION if ctl_version == "3.5" else [c for c in SESSION if c not in SESSION_35_ONLY]
    ours = servers("pyetcd").start()
    theirs = servers("etcd").start()
    got = run_session(ctl, ours.endpoint, session)
    want = run_session(ctl, theirs.endpoint, session)
    compare(got, want)
    assert any(g[1] != 0 for g in got) and any(g[1] == 0 for g in got)
