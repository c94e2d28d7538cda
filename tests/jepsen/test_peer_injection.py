"""With peer TLS on, a connection to the peer port that cannot present a
certificate of the cluster's CA never gets a Raft message in: a forged
append with a huge term (which moves every member to that term if stepped)
changes nothing, whether sent in the clear, over TLS without a client
certificate, or with a certificate from another CA.  Without peer TLS a
stranger who does not know the cluster id is refused; one who knows it
gets in (the control that shows the check would see an injection: plain
peer links are not authenticated, in etcd either)."""
from __future__ import annotations

import socket
import ssl
import struct

import pytest

from pyetcd import certs
from pyetcd.client import Client
from pyetcd.pb.pyetcdpb import peer_pb2, raft_pb2
from pyetcd.testing import LocalCluster

HUGE_TERM = 1 << 40


def _frame(msg: bytes) -> bytes:
    return struct.pack(">I", len(msg)) + msg


def _forged(cluster_id: int, to: int) -> bytes:
    hello = peer_pb2.PeerHello(cluster_id=cluster_id, to=to, version="forger")
    setattr(hello, "from", 0xBAD)
    append = raft_pb2.RaftMessage(type=3, to=to, term=HUGE_TERM, log_term=HUGE_TERM,
                                  index=1 << 40)     # MsgApp
    setattr(append, "from", 0xBAD)
    return _frame(hello.SerializeToString()) + _frame(
        peer_pb2.PeerFrame(messages=[append]).SerializeToString())


def _send(port: int, data: bytes, ctx: ssl.SSLContext | None) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as raw:
            s = ctx.wrap_socket(raw, server_hostname="127.0.0.1") if ctx else raw
            s.sendall(data)
            s.settimeout(2)
            return repr(s.recv(4096))
    except (ssl.SSLError, OSError) as exc:
        return f"refused: {exc!r}"


def _status(c: LocalCluster, pki):
    kw = dict(cacert=str(pki / "ca.crt"), cert=str(pki / "client.crt"),
              key=str(pki / "client.key"), insecure_transport=False) if pki else {}
    eps = ",".join(("https://" if pki else "") + m.endpoint for m in c.members)
    with Client(eps, **kw) as cl:
        st = cl.status()
        return st.raftTerm, st.header.cluster_id, st.header.member_id, st.leader


@pytest.mark.parametrize("tls", [True, False], ids=["peer-tls", "plaintext"])
def test_a_stranger_cannot_inject_raft_messages(tmp_path, tls):
    """(The plaintext case: the stranger does not know the cluster id.)"""
    pki = None
    if tls:
        pki = tmp_path / "pki"
        certs.create(str(pki), ["127.0.0.1"], ["localhost"])
    c = LocalCluster("pyetcd", tmp_path / "c", n=3, pki=pki).start()
    try:
        term, cid, mid, leader = _status(c, pki)
        target = c.members[0]
        attempts = []
        cluster_id = cid if tls else 0x1234  # with TLS the forger even knows the cluster id
        attempts.append(_send(target.peer_port, _forged(cluster_id, leader), None))
        if tls:
            no_cert = ssl.create_default_context(cafile=str(pki / "ca.crt"))
            no_cert.check_hostname = False
            attempts.append(_send(target.peer_port, _forged(cid, leader), no_cert))
            other = tmp_path / "other"
            certs.create(str(other), ["127.0.0.1"], ["localhost"])
            foreign = ssl.create_default_context()
            foreign.check_hostname, foreign.verify_mode = False, ssl.CERT_NONE
            foreign.load_cert_chain(str(other / "peer.crt"), str(other / "peer.key"))
            attempts.append(_send(target.peer_port, _forged(cid, leader), foreign))
        after = _status(c, pki)
        assert after[0] == term and after[3] == leader, (attempts, after)
        assert all(m.proc.poll() is None for m in c.members)
    finally:
        c.stop()


def test_control_plaintext_peer_with_the_cluster_id_gets_in(tmp_path):
    c = LocalCluster("pyetcd", tmp_path / "c", n=3).start()
    try:
        term, cid, _, leader = _status(c, None)
        target = next(m for m in c.members if m.peer_port)
        _send(target.peer_port, _forged(cid, _member_id_of(c, target)), None)
        import time
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _status(c, None)[0] < HUGE_TERM:
            time.sleep(0.2)
        assert _status(c, None)[0] >= HUGE_TERM   # the forged term was stepped
    finally:
        c.stop()


def _member_id_of(c: LocalCluster, m) -> int:
    with Client(m.endpoint) as cl:
        return cl.status().header.member_id
