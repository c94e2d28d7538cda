"""Lease requests that the leader answers (it alone decides expiry and
knows the remaining TTLs): time-to-live, the lease list and keep-alives.
A follower forwards time-to-live and keep-alives to the leader; grants
and revokes are ordinary proposals (the server's facade)."""
from __future__ import annotations

import asyncio
import logging
import time

from pyetcd import errors
from pyetcd.lease.lessor import LeaseExpired, LeaseNotFound, NotPrimary
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

log = logging.getLogger("pyetcd.leases")

RENEW_RETRY = 0.01  # seconds between looks while a renew waits for promotion or a revoke
FORWARD_RETRY = 0.05  # seconds between a follower's tries to reach a leader (etcd's throttle)


class LeaseOps:
    """``server``: the member (its raft node, lessor, gate, forwarder, header)."""

    def __init__(self, server):
        self.s = server

    async def time_to_live(self, r: pb.LeaseTimeToLiveRequest) -> pb.LeaseTimeToLiveResponse:
        s = self.s
        await s.gate.check_lease_keys(r.ID, read=True)
        if not s.raft.is_leader:
            return await s.forwarder.forward("Lease", "LeaseTimeToLive", r)
        await s.linearizable_read()
        resp = pb.LeaseTimeToLiveResponse(ID=r.ID)
        try:
            ttl, granted, keys = s.lessor.time_to_live(r.ID)
        except LeaseNotFound:
            resp.TTL = -1
        else:
            resp.TTL, resp.grantedTTL = ttl, granted
            if r.keys:
                resp.keys.extend(keys)
        s.header(resp.header)
        return resp

    async def leases(self) -> pb.LeaseLeasesResponse:
        s = self.s
        await s.linearizable_read()
        resp = pb.LeaseLeasesResponse(leases=[pb.LeaseStatus(ID=i) for i in sorted(s.lessor.leases)])
        s.header(resp.header)
        return resp

    async def renew(self, r: pb.LeaseKeepAliveRequest) -> pb.LeaseKeepAliveResponse:
        """One keep-alive, renewed by the leader.  A follower forwards it, and
        while there is no leader or none can be reached (a leader just
        killed, an election under way: Unavailable) tries again every 50 ms
        until the request times out, as etcd's LeaseRenew does, so a
        client's keep-alive stream rides out a leader change; the leader's
        own refusals (auth, ...) are answered at once."""
        s = self.s
        await s.gate.check_lease_keys(r.ID, read=False)
        resp = pb.LeaseKeepAliveResponse(ID=r.ID)
        deadline = time.monotonic() + s.request_timeout
        while True:
            if not s.raft.is_leader:
                try:
                    return await s.forwarder.forward(
                        "Lease", "LeaseKeepAlive", r, stream=True,
                        timeout=max(deadline - time.monotonic(), 0.001))
                except errors.EtcdError as exc:
                    if exc.code == "DeadlineExceeded":
                        raise errors.TIMEOUT() from None
                    if exc.code != "Unavailable":
                        raise
                    log.debug("keep-alive of %x not forwarded (%s), retrying", r.ID, exc.message)
                wait = FORWARD_RETRY
            else:
                try:
                    resp.TTL = s.lessor.renew(r.ID)
                    break
                except LeaseNotFound:
                    resp.TTL = 0
                    break
                except (NotPrimary, LeaseExpired):
                    # a new leader still applying earlier terms, or an expired lease
                    # whose revoke is in flight: wait, as etcd's Renew does
                    wait = RENEW_RETRY
            if time.monotonic() >= deadline:
                raise errors.TIMEOUT()
            await asyncio.sleep(wait)
        s.header(resp.header)
        return resp
