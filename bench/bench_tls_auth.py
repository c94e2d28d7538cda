"""Requests per second with mutual TLS and auth versus plaintext (same
machine, same run), and the TLS handshake rate.

    python -m pytest bench/bench_tls_auth.py --benchmark-enable -s
"""
from __future__ import annotations

import asyncio
import functools
import tempfile
import time
from pathlib import Path

import grpc
import pytest

from bench.load import run
from pyetcd import certs
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.etcdserverpb import rpc_pb2_grpc as pbg
from pyetcd.testing import Server, etcdctl, etcdctl_path


@pytest.fixture(scope="module")
def members():
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        pki = d / "pki"
        certs.create(str(pki), ["127.0.0.1"], ["localhost"], client_cn="nobody")
        plain = Server("pyetcd", d / "plain").start()
        secure = Server("pyetcd", d / "secure")
        secure.pki = pki
        secure.start()
        ctl = etcdctl_path("3.5")
        f = [f"--cacert={pki}/ca.crt", f"--cert={pki}/client.crt", f"--key={pki}/client.key"]
        for cmd in (["user", "add", "root:pw"], ["user", "grant-role", "root", "root"],
                    ["auth", "enable"]):
            assert etcdctl(ctl, f"https://{secure.endpoint}", *f, *cmd).returncode == 0
        yield plain, secure, pki
        plain.stop()
        secure.stop()


def _creds(pki: Path):
    return grpc.ssl_channel_credentials((pki / "ca.crt").read_bytes(),
                                        (pki / "client.key").read_bytes(),
                                        (pki / "client.crt").read_bytes())


def _token(endpoint: str, pki: Path) -> str:
    with grpc.secure_channel(endpoint, _creds(pki)) as ch:
        return pbg.AuthStub(ch).Authenticate(pb.AuthenticateRequest(name="root", password="pw")).token


@pytest.mark.parametrize("op", ["put", "range"])
def test_rps_tls_auth_vs_plaintext(benchmark, members, op):
    plain, secure, pki = members
    token = _token(secure.endpoint, pki)
    out = {}

    def once():
        out["plaintext"] = asyncio.run(run([plain.endpoint], op, 6000, 100, 10))
        out["tls+auth"] = asyncio.run(run(
            [secure.endpoint], op, 6000, 100, 10,
            channel=functools.partial(grpc.aio.secure_channel, credentials=_creds(pki)),
            metadata=(("token", token),)))

    benchmark.pedantic(once, rounds=1, iterations=1)
    figures = {k: v["rps"] for k, v in out.items()}
    benchmark.extra_info.update(figures)
    print(f"\n{op}: requests/s", figures, {k: v["errors"] for k, v in out.items()})
    assert all(v["errors"] == 0 for v in out.values())


def test_tls_handshake_rate(benchmark, members):
    """Full mutual-TLS handshakes against the client port (a new TCP
    connection each, ALPN h2 as gRPC clients offer), one after another."""
    import socket
    import ssl
    _, secure, pki = members
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
    ctx.set_alpn_protocols(["h2"])
    host, port = secure.endpoint.split(":")
    n = 300

    def once():
        t0 = time.perf_counter()
        for _ in range(n):
            with socket.create_connection((host, int(port))) as raw:
                with ctx.wrap_socket(raw, server_hostname=host) as tls:
                    assert tls.selected_alpn_protocol() == "h2"
        return n / (time.perf_counter() - t0)

    rate = benchmark.pedantic(once, rounds=1, iterations=1)
    benchmark.extra_info["handshakes_per_s"] = round(rate)
    print(f"\nTLS handshakes/s (new connection each): {rate:.0f}")
