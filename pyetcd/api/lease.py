"""The Lease service: grants and revokes go through the log; keep-alives and
time-to-live are answered by the member that decides expiry."""
from __future__ import annotations

import logging

import grpc

from pyetcd import errors
from pyetcd.lease.lessor import LeaseNotFound
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.pyetcdpb.internal_pb2 import InternalRequest

from pyetcd.server.maintenance_ops import check_quota

from .common import StreamDecodeError, status_code, unary

log = logging.getLogger("pyetcd.api.lease")


class LeaseServicer:
    def __init__(self, server):
        self.s = server

    @unary
    async def LeaseGrant(self, request, context):
        s = self.s
        check_quota(s, request)
        req = InternalRequest()
        req.lease_grant.CopyFrom(request)
        if req.lease_grant.ID == 0:
            req.lease_grant.ID = s.next_lease_id()
        resp = await s.propose(req)
        s.header(resp.header)
        return resp

    @unary
    async def LeaseRevoke(self, request, context):
        s = self.s
        req = InternalRequest()
        req.lease_revoke.CopyFrom(request)
        resp = await s.propose(req)
        s.header(resp.header)
        return resp

    @unary
    async def LeaseTimeToLive(self, request, context):
        s = self.s
        if not s.raft.is_leader:  # only the leader knows the remaining TTL
            return await s.forward_to_leader("Lease", "LeaseTimeToLive", request)
        await s.linearizable_read()
        resp = pb.LeaseTimeToLiveResponse(ID=request.ID)
        try:
            ttl, granted, keys = s.lessor.time_to_live(request.ID)
        except LeaseNotFound:
            resp.TTL = -1
        else:
            resp.TTL, resp.grantedTTL = ttl, granted
            if request.keys:
                resp.keys.extend(keys)
        s.header(resp.header)
        return resp

    @unary
    async def LeaseLeases(self, request, context):
        s = self.s
        await s.linearizable_read()
        resp = pb.LeaseLeasesResponse(leases=[pb.LeaseStatus(ID=i) for i in sorted(s.lessor.leases)])
        s.header(resp.header)
        return resp

    async def LeaseKeepAlive(self, request_iterator, context):
        s = self.s
        try:
            async for req in request_iterator:
                if isinstance(req, StreamDecodeError):
                    await context.abort(grpc.StatusCode.INTERNAL, req.error)
                if not s.raft.is_leader:  # expiry is the leader's: renew there
                    yield await s.forward_to_leader("Lease", "LeaseKeepAlive", req, stream=True)
                    continue
                resp = pb.LeaseKeepAliveResponse(ID=req.ID)
                try:
                    resp.TTL = s.lessor.renew(req.ID)
                except LeaseNotFound:
                    resp.TTL = 0
                s.header(resp.header)
                yield resp
        except errors.EtcdError as exc:
            await context.abort(status_code(exc.code), exc.message)
        except grpc.aio.AbortError:
            raise
        except Exception:  # noqa: BLE001
            log.exception("keep-alive stream failed")
            await context.abort(grpc.StatusCode.UNKNOWN, "etcdserver: keep-alive stream failed")
