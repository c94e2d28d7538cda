"""The Maintenance service (Status, Alarm; the rest arrives with issue 7)."""
from __future__ import annotations

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.version import ETCD_VERSION

from .common import unary


class MaintenanceServicer:
    def __init__(self, server):
        self.s = server

    @unary
    async def Status(self, request, context):
        s = self.s
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
        s.header(resp.header)
        return resp

    @unary
    async def Alarm(self, request, context):
        s = self.s
        resp = await s.alarm(request)
        s.header(resp.header)
        return resp

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
