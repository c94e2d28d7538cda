"""A follower's keep-alive across a leader change, in process (no Raft, no
sockets): LeaseOps with a stand-in member whose forwarder fails the way a
follower's does while the leader is dead or an election runs."""
from __future__ import annotations

import asyncio

import pytest

from pyetcd import errors
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.server import leases
from pyetcd.server.leases import LeaseOps


class Gate:
    async def check_lease_keys(self, lease_id: int, read: bool) -> None:
        return None


class Raft:
    is_leader = False


class Forwarder:
    """Answers with ``failures`` errors first, then the leader's response."""

    def __init__(self, failures):
        self.failures = list(failures)
        self.calls = []

    async def forward(self, service, method, request, stream=False, timeout=None):
        self.calls.append((service, method, request.ID, stream, timeout))
        if self.failures:
            raise self.failures.pop(0)
        return pb.LeaseKeepAliveResponse(ID=request.ID, TTL=6)


class Member:
    def __init__(self, forwarder, request_timeout=7.0):
        self.gate, self.raft, self.forwarder = Gate(), Raft(), forwarder
        self.request_timeout = request_timeout

    def header(self, h) -> None:
        h.member_id = 1


@pytest.fixture(autouse=True)
def fast_retry(monkeypatch):
    monkeypatch.setattr(leases, "FORWARD_RETRY", 0.001)


def renew(member, lease_id=0x1234):
    return asyncio.run(LeaseOps(member).renew(pb.LeaseKeepAliveRequest(ID=lease_id)))


def test_keepalive_waits_out_a_leader_change():
    # the dead leader refuses connections, then no leader while the election
    # runs, then the new leader answers: the client sees one answer, no error
    fwd = Forwarder([errors.EtcdError("Unavailable", "failed to connect to all addresses"),
                     errors.NO_LEADER(), errors.NO_LEADER()])
    resp = renew(Member(fwd))
    assert (resp.ID, resp.TTL) == (0x1234, 6)
    assert len(fwd.calls) == 4
    assert all(c[:4] == ("Lease", "LeaseKeepAlive", 0x1234, True) for c in fwd.calls)
    assert all(0 < c[4] <= 7.0 for c in fwd.calls), "each try within the request's deadline"


def test_keepalive_gives_up_with_etcds_timeout():
    fwd = Forwarder([errors.NO_LEADER()] * 10_000)
    with pytest.raises(errors.EtcdError) as exc:
        renew(Member(fwd, request_timeout=0.05))
    assert (exc.value.code, exc.value.message) == ("Unavailable", "etcdserver: request timed out")


def test_leaders_own_refusal_is_not_retried():
    denied = errors.EtcdError("PermissionDenied", "etcdserver: permission denied")
    fwd = Forwarder([denied])
    with pytest.raises(errors.EtcdError) as exc:
        renew(Member(fwd))
    assert exc.value.message == "etcdserver: permission denied"
    assert len(fwd.calls) == 1


def test_member_that_becomes_leader_renews_itself():
    class Lessor:
        def renew(self, lease_id):
            return 9

    member = Member(Forwarder([]))
    member.lessor = Lessor()

    class Flip(Forwarder):
        async def forward(self, *a, **kw):
            member.raft.is_leader = True  # elected while the try was out
            raise errors.NO_LEADER()

    member.forwarder = Flip([])
    resp = renew(member)
    assert resp.TTL == 9
