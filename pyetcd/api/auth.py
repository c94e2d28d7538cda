"""The Auth service (etcd's ``v3rpc/auth.go`` + the auth half of
``v3_server.go``).  Every request -- reads like UserGet and AuthStatus
included -- goes through the Raft log, as in etcd; the root-role checks run
on the apply path (:mod:`pyetcd.server.apply_auth`).  Passwords are hashed
here, on the proposing member, off the event loop; the log carries only the
bcrypt hash (AuthenticateRequest entries carry no password at all)."""
from __future__ import annotations

import asyncio

from pyetcd.auth.store import hash_password
from pyetcd.pb.pyetcdpb.internal_pb2 import InternalRequest

from .common import unary


class AuthServicer:
    def __init__(self, server):
        self.s = server

    async def _propose(self, field: str, request):
        req = InternalRequest()
        getattr(req, field).CopyFrom(request)
        resp = await self.s.propose(req)
        self.s.header(resp.header)
        return resp

    async def _hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, hash_password, password, self.s.auth.bcrypt_cost)

    @unary
    async def AuthEnable(self, request, context):
        return await self._propose("auth_enable", request)

    @unary
    async def AuthDisable(self, request, context):
        return await self._propose("auth_disable", request)

    @unary
    async def AuthStatus(self, request, context):
        return await self._propose("auth_status", request)

    @unary
    async def Authenticate(self, request, context):
        s = self.s
        resp = await s.authenticate(request.name, request.password)
        s.header(resp.header)
        return resp

    @unary
    async def UserAdd(self, request, context):
        if not request.options.no_password:
            request.hashedPassword = await self._hash(request.password)
            request.password = ""
        return await self._propose("auth_user_add", request)

    @unary
    async def UserGet(self, request, context):
        return await self._propose("auth_user_get", request)

    @unary
    async def UserList(self, request, context):
        return await self._propose("auth_user_list", request)

    @unary
    async def UserDelete(self, request, context):
        return await self._propose("auth_user_delete", request)

    @unary
    async def UserChangePassword(self, request, context):
        if request.password:
            request.hashedPassword = await self._hash(request.password)
            request.password = ""
        return await self._propose("auth_user_change_password", request)

    @unary
    async def UserGrantRole(self, request, context):
        return await self._propose("auth_user_grant_role", request)

    @unary
    async def UserRevokeRole(self, request, context):
        return await self._propose("auth_user_revoke_role", request)

    @unary
    async def RoleAdd(self, request, context):
        return await self._propose("auth_role_add", request)

    @unary
    async def RoleGet(self, request, context):
        return await self._propose("auth_role_get", request)

    @unary
    async def RoleList(self, request, context):
        return await self._propose("auth_role_list", request)

    @unary
    async def RoleDelete(self, request, context):
        return await self._propose("auth_role_delete", request)

    @unary
    async def RoleGrantPermission(self, request, context):
        return await self._propose("auth_role_grant_permission", request)

    @unary
    async def RoleRevokePermission(self, request, context):
        return await self._propose("auth_role_revoke_permission", request)
