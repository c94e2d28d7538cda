"""The v3election service (etcd's ``v3election/election.go``): Campaign waits
for leadership, Proclaim and Resign act on a LeaderKey, Leader reads the
current leader's key, Observe streams the leader's proclamations.  The
recipe is in :mod:`pyetcd.api.concurrency`."""
from __future__ import annotations

from pyetcd.pb.v3electionpb import v3election_pb2 as epb

from .common import before_deadline, stream, unary
from .concurrency import ERR_MISSING_LEADER_KEY, Election, LocalClient


def _resume(c: LocalClient, lk: epb.LeaderKey) -> Election:
    return Election(c, lk.name, lk.key, lk.rev, lk.lease)


class ElectionServicer:
    def __init__(self, server):
        self.s = server
        self.c = LocalClient(server)

    @unary
    async def Campaign(self, request, context):
        e = Election(self.c, request.name, lease=request.lease)
        await before_deadline(context, e.campaign(request.value))
        resp = epb.CampaignResponse()
        resp.header.CopyFrom(e.header)
        resp.leader.name = request.name
        resp.leader.key = e.key
        resp.leader.rev = e.rev
        resp.leader.lease = e.lease
        return resp

    @unary
    async def Proclaim(self, request, context):
        if not request.HasField("leader"):
            raise ERR_MISSING_LEADER_KEY
        e = _resume(self.c, request.leader)
        await e.proclaim(request.value)
        resp = epb.ProclaimResponse()
        resp.header.CopyFrom(e.header)
        return resp

    @unary
    async def Leader(self, request, context):
        r = await Election(self.c, request.name).leader()
        resp = epb.LeaderResponse()
        resp.header.CopyFrom(r.header)
        resp.kv.CopyFrom(r.kvs[0])
        return resp

    @unary
    async def Resign(self, request, context):
        if not request.HasField("leader"):
            raise ERR_MISSING_LEADER_KEY
        e = _resume(self.c, request.leader)
        await e.resign()
        resp = epb.ResignResponse()
        if e.header is not None:
            resp.header.CopyFrom(e.header)
        return resp

    @stream()
    async def Observe(self, request, context):
        async for hdr, kv in Election(self.c, request.name).observe():
            resp = epb.LeaderResponse()
            resp.header.CopyFrom(hdr)
            resp.kv.CopyFrom(kv)
            yield resp
