"""A client port another process holds: the member refuses to start with
etcd's error text and exit status, no traceback, with or without front-ends
(which share the member's ports with SO_REUSEPORT, and so would once have
joined a stranger's SO_REUSEPORT listener silently).  Real etcd 3.5 is run
the same way, so the text is checked against the original."""
from __future__ import annotations

import socket

import pytest

from pyetcd.testing import free_port

def _refused(s, port: int) -> None:
    """``s`` exits 1 at start with etcd's text for ``port`` in use, no traceback."""
    s.start(wait=False)
    code = s.proc.wait(timeout=30)
    log = s.log()
    assert code == 1, log[-2000:]
    assert f"listen tcp 127.0.0.1:{port}: bind: address already in use" in log, log[-2000:]
    assert "Traceback" not in log


CASES = [("pyetcd", []), ("pyetcd", ["--frontends", "1"]), ("etcd3.5", [])]


@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain", "reuseport"])
@pytest.mark.parametrize("kind,extra", CASES, ids=["pyetcd", "pyetcd-fe1", "etcd3.5"])
def test_a_client_port_in_use_is_refused(servers, etcd35, kind, extra, reuse_port):
    port = free_port()
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT if reuse_port else
                      socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", port))
    holder.listen()
    try:
        _refused(servers(kind, client_port=port, extra=extra), port)
    finally:
        holder.close()


@pytest.mark.parametrize("kind", ["pyetcd", "etcd3.5"])
def test_a_peer_port_in_use_is_refused(servers, etcd35, kind):
    port = free_port()
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    try:
        s = servers(kind, peer_port=port)
        s.cluster_args = ["--initial-advertise-peer-urls", s.peer_url,
                          "--initial-cluster", f"{s.name}={s.peer_url}"]
        _refused(s, port)
    finally:
        holder.close()
