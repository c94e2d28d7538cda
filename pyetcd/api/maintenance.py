"""The Maintenance service: Status, Alarm, Snapshot, Hash, HashKV,
Defragment, MoveLeader (the work is the server's: :mod:`pyetcd.server.maintenance`)."""
from __future__ import annotations

from pyetcd import errors

from .common import stream, unary

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
        await s.gate.check_admin()
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
        await self.s.gate.require_auth_info()
        return self.s.status()

    @unary
    async def Alarm(self, request, context):
        return await self.s.alarm(request)

    @unary
    async def Hash(self, request, context):
        await _check_admin(self.s)
        return await self.s.hash()

    @unary
    async def HashKV(self, request, context):
        await _check_admin(self.s)
        return await self.s.hash_kv(request.revision)

    @unary
    async def Defragment(self, request, context):
        await _check_admin(self.s)
        return await self.s.defragment()

    @stream()
    async def Snapshot(self, request, context):
        await _check_admin(self.s)
        async for resp in self.s.snapshot():
            yield resp

    @unary
    async def MoveLeader(self, request, context):
        s = self.s
        if not s.is_leader:
            raise errors.NOT_LEADER()
        target = s.cluster.members.get(request.targetID)
        if target is None or target.is_learner:
            raise errors.BAD_LEADER_TRANSFEREE()
        await _check_admin(s)
        return await s.move_leader(request.targetID)
