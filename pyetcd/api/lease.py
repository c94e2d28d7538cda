"""The Lease service: grants and revokes go through the log; keep-alives and
time-to-live are answered by the member that decides expiry (the leader;
a follower forwards them)."""
from __future__ import annotations

import grpc

from .common import StreamDecodeError, stream, unary


class LeaseServicer:
    def __init__(self, server):
        self.s = server

    @unary
    async def LeaseGrant(self, request, context):
        self.s.check_quota(request)
        return await self.s.lease_grant(request)

    @unary
    async def LeaseRevoke(self, request, context):
        return await self.s.lease_revoke(request)

    @unary
    async def LeaseTimeToLive(self, request, context):
        return await self.s.lease_time_to_live(request)

    @unary
    async def LeaseLeases(self, request, context):
        return await self.s.lease_leases()

    @stream(check_leader=False)
    async def LeaseKeepAlive(self, request_iterator, context):
        async for req in request_iterator:
            if isinstance(req, StreamDecodeError):
                await context.abort(grpc.StatusCode.INTERNAL, req.error)
            yield await self.s.lease_renew(req)
