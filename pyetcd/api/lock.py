"""The v3lock service (etcd's ``v3lock/lock.go``): Lock waits until the named
lock is held by the request's lease and returns the owner key; Unlock deletes
that key.  The recipe itself is in :mod:`pyetcd.api.concurrency`."""
from __future__ import annotations

from pyetcd.pb.v3lockpb import v3lock_pb2 as lockpb

from .common import before_deadline, unary
from .concurrency import LocalClient, lock


class LockServicer:
    def __init__(self, server):
        self.s = server
        self.c = LocalClient(server)

    @unary
    async def Lock(self, request, context):
        key, header = await before_deadline(context, lock(self.c, request.name, request.lease))
        resp = lockpb.LockResponse(key=key)
        resp.header.CopyFrom(header)
        return resp

    @unary
    async def Unlock(self, request, context):
        d = await self.c.delete(request.key)
        resp = lockpb.UnlockResponse()
        resp.header.CopyFrom(d.header)
        return resp
