"""The Cluster service: membership as this member knows it."""
from __future__ import annotations

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

from .common import unary


class ClusterServicer:
    def __init__(self, server):
        self.s = server

    @unary
    async def MemberList(self, request, context):
        s = self.s
        if request.linearizable:
            await s.linearizable_read()
        resp = pb.MemberListResponse(members=s.cluster.to_pb())
        s.header(resp.header)
        return resp
