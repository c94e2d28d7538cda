"""The Cluster service: the member list and membership changes (the checks,
etcd's ``--strict-reconfig-check`` among them, are the server's:
:mod:`pyetcd.server.reconfig`)."""
from __future__ import annotations

from .common import unary


class ClusterServicer:
    def __init__(self, server):
        self.s = server

    @unary
    async def MemberList(self, request, context):
        return await self.s.member_list(request.linearizable)

    @unary
    async def MemberAdd(self, request, context):
        return await self.s.member_add(list(request.peerURLs), request.isLearner)

    @unary
    async def MemberRemove(self, request, context):
        return await self.s.member_remove(request.ID)

    @unary
    async def MemberUpdate(self, request, context):
        return await self.s.member_update(request.ID, list(request.peerURLs))

    @unary
    async def MemberPromote(self, request, context):
        return await self.s.member_promote(request)
