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

from .common import StreamDecodeError, set_credentials, status_code, unary

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
        await self._check_lease_keys(request.ID, read=True)
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

    async def _check_lease_keys(self, lease_ids, read: bool) -> None:
        """etcd's checkLeaseTimeToLive (read) and checkLeaseRenew (write):
        admin, or permission on every attached key.  (LeaseGrant and
        LeaseLeases are unchecked, as in etcd 3.5.1: verified against it.)"""
        s = self.s
        if not s.auth.enabled:
            return
        rev = s.auth.revision
        ai = await s.require_auth_info()
        try:
            s.auth.is_admin_permitted(ai)
            return
        except errors.EtcdError:
            pass
        ids = [lease_ids] if isinstance(lease_ids, int) else lease_ids
        for lid in ids:
            lease = s.lessor.lookup(lid)
            for key in sorted(lease.keys) if lease is not None else ():
                if read:
                    s.auth.is_range_permitted(ai, key, b"")
                else:
                    s.auth.is_put_permitted(ai, key)
        if not read and rev != s.auth.revision:
            raise errors.AUTH_OLD_REVISION()

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
            set_credentials(s, context)
            async for req in request_iterator:
                if isinstance(req, StreamDecodeError):
                    await context.abort(grpc.StatusCode.INTERNAL, req.error)
                await self._check_lease_keys(req.ID, read=False)
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
