"""The seed's section 1 verbatim apart from the addresses: certificates made
with the seed's openssl steps (minus ``-signkey``, which OpenSSL 3 refuses
together with ``-CA``), three members started with the seed's flags, and
``member list -w table`` with the real etcdctl using --cacert --cert --key
(the seed uses the peer certificate as the client certificate)."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from pyetcd.testing import LocalCluster, etcdctl

CNF = """[req]
req_extensions = v3_req
distinguished_name = req_distinguished_name
[ req_distinguished_name ]
[ v3_req ]
basicConstraints = CA:FALSE
keyUsage = nonRepudiation,digitalSignature,keyEncipherment
subjectAltName = @alt_names
[alt_names]
IP.1 = 127.0.0.1
"""

STEPS = [
    "openssl genrsa -out ca.key 2048",
    'openssl req -new -key ca.key -out ca.csr -subj "/CN=etcd"',
    "openssl x509 -req -in ca.csr -out ca.crt -signkey ca.key -days 365",
    "openssl genrsa -out server.key 2048",
    'openssl req -new -key server.key -out server.csr -subj "/CN=etcd-server" -config etcd.cnf',
    "openssl x509 -req -in server.csr -out server.crt -CA ca.crt -CAkey ca.key -CAcreateserial "
    "-days 365 -extensions v3_req -extfile etcd.cnf",
    "openssl genrsa -out peer.key 2048",
    'openssl req -new -key peer.key -out peer.csr -subj "/CN=etcd-peer" -config etcd.cnf',
    "openssl x509 -req -in peer.csr -out peer.crt -CA ca.crt -CAkey ca.key -CAcreateserial "
    "-days 365 -extensions v3_req -extfile etcd.cnf",
]


@pytest.mark.conformance
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_seed_section_1_with_openssl_certificates(workdir, etcdctl34, etcdctl35):
    pki = workdir / "pki"
    pki.mkdir()
    (pki / "etcd.cnf").write_text(CNF)
    for step in STEPS:
        r = subprocess.run(step, shell=True, cwd=pki, capture_output=True, text=True)
        assert r.returncode == 0, (step, r.stderr)
    # the seed's flags; pki files named as the seed names them
    c = LocalCluster("pyetcd", workdir / "c")
    for m in c.members:
        m.cluster_args = [a.replace("http://", "https://") for a in m.cluster_args]
        m.scheme_override = "https"
    for m in c.members:
        m.extra = ["--client-cert-auth", f"--trusted-ca-file={pki}/ca.crt",
                   f"--cert-file={pki}/server.crt", f"--key-file={pki}/server.key",
                   "--peer-client-cert-auth", f"--peer-trusted-ca-file={pki}/ca.crt",
                   f"--peer-cert-file={pki}/peer.crt", f"--peer-key-file={pki}/peer.key"]
        m.pki_files = pki
    c.start()
    try:
        eps = ",".join(f"https://{m.endpoint}" for m in c.members)
        flags = [f"--cacert={pki}/ca.crt", f"--cert={pki}/peer.crt", f"--key={pki}/peer.key"]
        for ctl in (etcdctl34, etcdctl35):
            r = etcdctl(ctl, eps, *flags, "member", "list", "-w", "table")
            assert r.returncode == 0, r.stderr
            assert "IS LEARNER" in r.stdout and r.stdout.count("started") == 3
        assert etcdctl(etcdctl35, eps, *flags, "put", "name", "张三").returncode == 0
        assert etcdctl(etcdctl34, eps, *flags, "get", "name").stdout.split() == ["name", "张三"]
    finally:
        c.stop()
