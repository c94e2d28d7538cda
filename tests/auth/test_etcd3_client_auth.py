"""The PyPI etcd3 client with user and password, over TLS (grpcio sends the
token call credential only on secure channels)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pyetcd import certs
from pyetcd.testing import etcdctl

SCRIPT = r"""
import sys, etcd3, grpc
host, port, pki = sys.argv[1], int(sys.argv[2]), sys.argv[3]
tls = dict(ca_cert=f"{pki}/ca.crt", cert_cert=f"{pki}/client.crt", cert_key=f"{pki}/client.key")
alice = etcd3.client(host=host, port=port, user="alice", password="alicepw", **tls)
alice.put("/pub/a", "1")
assert alice.get("/pub/a")[0] == b"1"
try:
    alice.get("/secret")
    raise AssertionError("alice read outside her prefix")
except Exception as exc:
    assert "permission denied" in str(exc), exc
try:
    etcd3.client(host=host, port=port, user="alice", password="wrong", **tls).get("/pub/a")
    raise AssertionError("a wrong password was accepted")
except Exception as exc:
    assert "authentication failed" in str(exc), exc
root = etcd3.client(host=host, port=port, user="root", password="rootpw", **tls)
assert root.get("/secret")[0] == b"s"
print("ETCD3-AUTH-OK")
"""


@pytest.mark.conformance
def test_etcd3_client_with_user_and_password(servers, tmp_path, etcdctl35):
    pki = tmp_path / "pki"
    certs.create(str(pki), ["127.0.0.1"], ["localhost"], client_cn="nobody")
    s = servers("pyetcd")
    s.pki = pki
    s.start()
    ep = f"https://{s.endpoint}"
    f = [f"--cacert={pki}/ca.crt", f"--cert={pki}/client.crt", f"--key={pki}/client.key"]
    for cmd in (["user", "add", "root:rootpw"], ["user", "grant-role", "root", "root"],
                ["user", "add", "alice:alicepw"], ["role", "add", "pub"],
                ["role", "grant-permission", "pub", "readwrite", "/pub/", "--prefix"],
                ["user", "grant-role", "alice", "pub"], ["put", "/secret", "s"],
                ["auth", "enable"]):
        r = etcdctl(etcdctl35, ep, *f, *cmd)
        assert r.returncode == 0, (cmd, r.stderr)
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    host, port = s.endpoint.split(":")
    r = subprocess.run([sys.executable, "-c", SCRIPT, host, port, str(pki)], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0 and "ETCD3-AUTH-OK" in r.stdout, r.stdout + r.stderr[-3000:]
