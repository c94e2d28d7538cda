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
