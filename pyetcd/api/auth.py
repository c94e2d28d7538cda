"""The Auth service (etcd's ``v3rpc/auth.go``).  Every request -- reads like
UserGet and AuthStatus included -- goes through the Raft log, as in etcd;
the root-role checks run on the apply path (the auth applier).  The server
hashes passwords on the proposing member; the log carries only the bcrypt
hash (Authenticate entries carry no password at all)."""
from __future__ import annotations

from .common import unary

# RPC name -> the request's field in the replicated request
_KINDS = {
    "AuthEnable": "auth_enable", "AuthDisable": "auth_disable", "AuthStatus": "auth_status",
    "UserAdd": "auth_user_add", "UserGet": "auth_user_get", "UserList": "auth_user_list",
    "UserDelete": "auth_user_delete", "UserChangePassword": "auth_user_change_password",
    "UserGrantRole": "auth_user_grant_role", "UserRevokeRole": "auth_user_revoke_role",
    "RoleAdd": "auth_role_add", "RoleGet": "auth_role_get", "RoleList": "auth_role_list",
    "RoleDelete": "auth_role_delete", "RoleGrantPermission": "auth_role_grant_permission",
    "RoleRevokePermission": "auth_role_revoke_permission",
}


def _proposing(rpc: str, kind: str):
    async def handler(self, request, context):
        return await self.s.auth_request(kind, request)
    handler.__name__ = handler.__qualname__ = rpc
    return unary(handler)


class AuthServicer:
    def __init__(self, server):
        self.s = server

    @unary
    async def Authenticate(self, request, context):
        return await self.s.authenticate(request.name, request.password)


for _rpc, _kind in _KINDS.items():
    setattr(AuthServicer, _rpc, _proposing(_rpc, _kind))
