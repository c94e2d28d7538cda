"""The Maintenance service: Status, Alarm, Snapshot, Hash, HashKV,
Defragment, MoveLeader (the work is in pyetcd.server.maintenance_ops)."""
from __future__ import annotations

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.version import ETCD_VERSION

from pyetcd import errors
from pyetcd.server import maintenance_ops as ops

from .common import require_leader, set_credentials, status_code, unary


# etcd 3.5.1's authMaintenanceServer returns the auth store's own errors
# untranslated: gRPC code Unknown with the "auth: ..." text
_RAW_AUTH = {
    errors.PERMISSION_DENIED.message: "auth: permission denied",
    errors.USER_EMPTY.message: "auth: user name is empty",
    errors.USER_NOT_FOUND.message: "auth: user not found",
    errors.INVALID_AUTH_TOKEN.message: "auth: invalid auth token",
}


async def _check_admin(s) -> None:
    try:
        await s.check_admin()
    except errors.EtcdError as exc:
        raw = _RAW_AUTH.get(exc.message)
        if raw is None:
            raise
        raise errors.EtcdError("Unknown", raw) from None


class MaintenanceServicer:
    def __init__(self, server):
        self.s = server

    @unary
    async def Status(self, request, context):
        s = self.s
        await s.require_auth_info()
        resp = pb.StatusResponse(
            version=ETCD_VERSION,
            dbSize=s.backend.size(),
            dbSizeInUse=s.backend.size_in_use(),
            leader=s.leader_id,
            raftIndex=s.committed_index,
            raftTerm=s.term,
            raftAppliedIndex=s.applied_index,
            isLearner=s.is_learner(),
        )
        if s.leader_id == 0:
            resp.errors.append(errors.NO_LEADER.message)
        resp.errors.extend(ops.errors_of(s))
        s.header(resp.header)
        return resp

    @unary
    async def Alarm(self, request, context):
        s = self.s
        resp = await s.alarm(request)
        s.header(resp.header)
        return resp

    @unary
    async def Hash(self, request, context):
        s = self.s
        await _check_admin(s)
        h, rev = await ops.hash_backend(s)
        resp = pb.HashResponse(hash=h)
        s.header(resp.header, rev)
        return resp

    @unary
    async def HashKV(self, request, context):
        s = self.s
        await _check_admin(s)
        h, compact_rev, rev = await ops.hash_kv(s, request.revision)
        resp = pb.HashKVResponse(hash=h, compact_revision=compact_rev)
        resp.header.revision = rev
        s.header(resp.header)
        return resp

    @unary
    async def Defragment(self, request, context):
        s = self.s
        await _check_admin(s)
        await ops.defragment(s)
        resp = pb.DefragmentResponse()
        s.header(resp.header)
        return resp

    async def Snapshot(self, request, context):
        import grpc
        s = self.s
        try:
            if s.leader_id == 0 and require_leader(context):
                raise errors.NO_LEADER()
            set_credentials(s, context)
            await _check_admin(s)
            async for resp in ops.snapshot_stream(s):
                yield resp
        except errors.EtcdError as exc:
            await context.abort(status_code(exc.code), exc.message)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001
            import logging
            logging.getLogger("pyetcd.api").exception("snapshot failed")
            await context.abort(grpc.StatusCode.UNKNOWN, f"etcdserver: {type(exc).__name__}: {exc}")

    @unary
    async def MoveLeader(self, request, context):
        import asyncio
        from pyetcd import errors
        s = self.s
        if not s.raft.is_leader:
            raise errors.NOT_LEADER()
        target = s.cluster.members.get(request.targetID)
        if target is None or target.is_learner:
            raise errors.BAD_LEADER_TRANSFEREE()
        await _check_admin(s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.request_timeout
        s.raft.transfer_leader(request.targetID)
        while s.leader_id != request.targetID:
            if loop.time() > deadline:
                raise errors.EtcdError("Unknown",
                                       "etcdserver: request timed out, leader transfer took too long")
            await asyncio.sleep(s.cfg.heartbeat_interval / 1000.0)
        resp = pb.MoveLeaderResponse()
        s.header(resp.header)
        return resp
