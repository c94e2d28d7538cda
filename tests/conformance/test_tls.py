"""Mutual TLS for clients and peers, as the seed's cluster runs: the real
etcdctl with --cacert/--cert/--key against three pyetcd members whose
certificates come from ``pyetcdctl certs create``; clients without a
certificate, with one from another CA, or with an expired one are refused at
the handshake; a member with a certificate from another CA cannot join."""
from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import pytest

from pyetcd import certs
from pyetcd.testing import LocalCluster, Server, etcdctl, free_port


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    certs.create(str(d), ["127.0.0.1"], ["localhost"], client_cn="root")
    return d


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory, pki):
    c = LocalCluster("pyetcd", tmp_path_factory.mktemp("tlsc"), pki=pki).start()
    yield c
    c.stop()


def _eps(c):
    return ",".join(f"https://{m.endpoint}" for m in c.members)


def _flags(pki, who="client"):
    return [f"--cacert={pki}/ca.crt", f"--cert={pki}/{who}.crt", f"--key={pki}/{who}.key"]


@pytest.mark.conformance
@pytest.mark.parametrize("ctl_name", ["etcdctl34", "etcdctl35"])
def test_seed_commands_over_mutual_tls(tls_cluster, pki, ctl_name, request):
    ctl = request.getfixturevalue(ctl_name)
    eps, f = _eps(tls_cluster), _flags(pki)
    r = etcdctl(ctl, eps, *f, "member", "list", "-w", "table")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("https://127.0.0.1:") == 6  # peer and client URLs of 3 members
    r = etcdctl(ctl, eps.split(",")[0], *f, "put", "name", "张三")
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stderr
    r = etcdctl(ctl, eps.split(",")[1], *f, "get", "name")
    assert r.stdout.split() == ["name", "张三"]
    r = etcdctl(ctl, eps, *f, "endpoint", "health")
    assert r.returncode == 0 and (r.stdout + r.stderr).count("is healthy") == 3
    r = etcdctl(ctl, eps, *f, "endpoint", "status", "-w", "json")
    st = json.loads(r.stdout)
    assert len(st) == 3 and len({s["Status"]["leader"] for s in st}) == 1


@pytest.mark.conformance
def test_bad_clients_are_refused_at_the_handshake(tls_cluster, pki, tmp_path, etcdctl35):
    ep = f"https://{tls_cluster.members[0].endpoint}"
    # no client certificate
    r = etcdctl(etcdctl35, ep, f"--cacert={pki}/ca.crt", "get", "x", "--dial-timeout=2s",
                "--command-timeout=4s")
    assert r.returncode != 0 and "handshake" in r.stderr, r.stderr
    # a certificate from another CA
    other = tmp_path / "other"
    certs.create(str(other), ["127.0.0.1"], ["localhost"])
    r = etcdctl(etcdctl35, ep, f"--cacert={pki}/ca.crt", f"--cert={other}/client.crt",
                f"--key={other}/client.key", "get", "x", "--dial-timeout=2s", "--command-timeout=4s")
    assert r.returncode != 0, r.stdout
    # an expired certificate from the right CA
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=10)
    k, c = certs.make_cert(ca_key, ca, "old", server=False, client=True, not_before=past,
                           not_after=past + datetime.timedelta(days=1))
    certs._write(tmp_path / "expired", k, c)
    r = etcdctl(etcdctl35, ep, f"--cacert={pki}/ca.crt", f"--cert={tmp_path}/expired.crt",
                f"--key={tmp_path}/expired.key", "get", "x", "--dial-timeout=2s",
                "--command-timeout=4s")
    assert r.returncode != 0, r.stdout
    # the good client still works
    assert etcdctl(etcdctl35, ep, *_flags(pki), "get", "x").returncode == 0


@pytest.mark.conformance
def test_member_with_a_foreign_ca_cannot_join(tls_cluster, pki, tmp_path, etcdctl35):
    eps, f = _eps(tls_cluster), _flags(pki)
    time.sleep(5.2)
    pp = free_port()
    r = etcdctl(etcdctl35, eps, *f, "member", "add", "intruder", f"--peer-urls=https://127.0.0.1:{pp}",
                "--learner")
    assert r.returncode == 0, r.stderr
    env = {k: v.strip('"') for k, v in (l.split("=", 1) for l in r.stdout.splitlines()
                                         if l.startswith("ETCD_"))}
    other = tmp_path / "foreign"
    certs.create(str(other), ["127.0.0.1"], ["localhost"])
    s = Server("pyetcd", tmp_path / "intruder", name="intruder", peer_port=pp)
    s.pki = other
    s.cluster_args = ["--initial-advertise-peer-urls", env["ETCD_INITIAL_ADVERTISE_PEER_URLS"],
                      "--initial-cluster", env["ETCD_INITIAL_CLUSTER"],
                      "--initial-cluster-state", "existing"]
    s.start(wait=False)
    try:
        rc = s.proc.wait(timeout=30)
    finally:
        s.stop()
    assert rc != 0
    log = s.log()
    assert "cannot start member" in log and ("CERTIFICATE_VERIFY_FAILED" in log or "certificate" in log), log[-2000:]


@pytest.mark.conformance
def test_client_certificate_cn_is_the_user_when_auth_is_enabled(servers, pki, tmp_path, etcdctl35):
    s = servers("pyetcd")
    s.pki = pki
    s.start()
    ep = f"https://{s.endpoint}"
    root = _flags(pki)  # client.crt has CN=root
    for cmd in (["user", "add", "root", "--no-password"], ["role", "add", "root"],
                ["user", "grant-role", "root", "root"], ["user", "add", "alice", "--no-password"],
                ["role", "add", "reader"],
                ["role", "grant-permission", "reader", "read", "/pub/", "--prefix"],
                ["user", "grant-role", "alice", "reader"], ["put", "/pub/x", "1"],
                ["put", "/secret", "s"], ["auth", "enable"]):
        r = etcdctl(etcdctl35, ep, *root, *cmd)
        assert r.returncode == 0, (cmd, r.stderr)
    # CN=root: everything, without --user
    assert etcdctl(etcdctl35, ep, *root, "get", "/secret", "--print-value-only").stdout.strip() == "s"
    # a certificate with CN=alice: only what alice's role allows
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    k, c = certs.make_cert(ca_key, ca, "alice", server=False, client=True)
    certs._write(tmp_path / "alice", k, c)
    alice = [f"--cacert={pki}/ca.crt", f"--cert={tmp_path}/alice.crt", f"--key={tmp_path}/alice.key"]
    assert etcdctl(etcdctl35, ep, *alice, "get", "/pub/x", "--print-value-only").stdout.strip() == "1"
    r = etcdctl(etcdctl35, ep, *alice, "get", "/secret")
    assert r.returncode != 0 and "etcdserver: permission denied" in r.stderr


@pytest.mark.conformance
def test_auto_tls_and_tls_min_version(servers, etcdctl35):
    s = servers("pyetcd", extra=["--auto-tls", "--peer-auto-tls", "--tls-min-version", "TLS1.3"])
    s.scheme_override = "https"
    s.start(wait=False)
    ep = f"https://{s.endpoint}"
    deadline = time.monotonic() + 20
    while True:
        r = etcdctl(etcdctl35, ep, "--insecure-transport=false", "--insecure-skip-tls-verify",
                    "put", "auto", "tls")
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert r.returncode == 0, r.stderr + s.log()[-1500:]
    assert (s.data_dir / "fixtures" / "client" / "cert.pem").exists()
    import socket
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    # the peer listener enforces the minimum (gRPC's Python server offers no
    # TLS version setting for the client port; pyetcd logs that at start)
    with socket.create_connection(("127.0.0.1", s.peer_port)) as raw:
        with pytest.raises(ssl.SSLError):  # TLS 1.2 is below the minimum
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    assert "apply to peer connections only" in s.log()


@pytest.mark.conformance
def test_peer_cert_allowed_cn(workdir, pki, etcdctl35):
    good = LocalCluster("pyetcd", workdir / "good", pki=pki,
                        extra=["--peer-cert-allowed-cn", "etcd-peer"]).start()
    try:
        r = etcdctl(etcdctl35, _eps(good), *_flags(pki), "put", "cn", "ok")
        assert r.returncode == 0, r.stderr
    finally:
        good.stop()
    bad = LocalCluster("pyetcd", workdir / "bad", pki=pki,
                       extra=["--peer-cert-allowed-cn", "someone-else"])
    for m in bad.members:
        m.start(wait=False)
    try:
        time.sleep(4)
        r = etcdctl(etcdctl35, _eps(bad), *_flags(pki), "put", "cn", "no", "--command-timeout=2s")
        assert r.returncode != 0  # no member accepts another's stream: no quorum
        assert "is not the allowed CN 'someone-else'" in bad.members[0].log()
    finally:
        bad.stop()
