"""Auth on the apply path and on locally served reads (etcd's
``apply_auth.go`` and the auth parts of ``v3_server.go``).

Each replicated request carries the user and the auth revision the proposing
member saw; every member re-checks the permission when it applies the entry
against its own (identical) auth store, so a permission change that lands
between proposal and apply fails the request with ``revision of auth store
is old`` everywhere.  Auth management requests need the root role
(``needAdminPermission``); UserGet/RoleGet are also allowed for the user
itself / a holder of the role.
"""
from __future__ import annotations

from pyetcd import errors
from pyetcd.auth.store import AuthInfo, AuthStore
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

ADMIN_FIELDS = frozenset({
    "auth_enable", "auth_disable", "auth_status", "auth_user_add", "auth_user_delete",
    "auth_user_change_password", "auth_user_grant_role", "auth_user_revoke_role",
    "auth_role_add", "auth_role_grant_permission", "auth_role_revoke_permission",
    "auth_role_delete", "auth_user_list", "auth_role_list",
})
AUTH_FIELDS = ADMIN_FIELDS | {"authenticate", "auth_user_get", "auth_role_get"}


def header_info(req) -> AuthInfo:
    h = req.header
    return AuthInfo(h.username, h.auth_revision)


def check_lease_puts(auth: AuthStore, ai: AuthInfo | None, lessor, lease_id: int) -> None:
    """Writing a lease's keys: the user must be admin or may write every key."""
    if not lease_id:
        return
    lease = lessor.lookup(lease_id)
    if lease is None:
        return
    try:
        auth.is_admin_permitted(ai)
        return
    except errors.EtcdError:
        pass
    for key in lessor_keys(lessor, lease_id):
        auth.is_put_permitted(ai, key)


def lessor_keys(lessor, lease_id: int) -> list[bytes]:
    lease = lessor.lookup(lease_id)
    if lease is None:
        return []
    return sorted(lease.keys)


def check_put(auth, ai, lessor, p: pb.PutRequest) -> None:
    auth.is_put_permitted(ai, p.key)
    check_lease_puts(auth, ai, lessor, p.lease)
    if p.prev_kv:
        auth.is_range_permitted(ai, p.key, b"")


def check_delete(auth, ai, d: pb.DeleteRangeRequest) -> None:
    auth.is_delete_range_permitted(ai, d.key, d.range_end)
    if d.prev_kv:
        auth.is_range_permitted(ai, d.key, d.range_end)


def _check_ops(auth, ai, lessor, ops) -> None:
    for op in ops:
        kind = op.WhichOneof("request")
        if kind == "request_range":
            auth.is_range_permitted(ai, op.request_range.key, op.request_range.range_end)
        elif kind == "request_put":
            check_put(auth, ai, lessor, op.request_put)
        elif kind == "request_delete_range":
            d = op.request_delete_range
            if d.prev_kv:
                auth.is_range_permitted(ai, d.key, d.range_end)
            auth.is_delete_range_permitted(ai, d.key, d.range_end)
        elif kind == "request_txn":
            check_txn(auth, ai, lessor, op.request_txn)


def check_txn(auth, ai, lessor, rt: pb.TxnRequest) -> None:
    """Every compare and every op of both branches, nested txns included."""
    for c in rt.compare:
        auth.is_range_permitted(ai, c.key, c.range_end)
    _check_ops(auth, ai, lessor, rt.success)
    _check_ops(auth, ai, lessor, rt.failure)


def check_apply(auth: AuthStore, lessor, req, kind: str) -> None:
    """Raise when the user in the entry's header may not apply it."""
    ai = header_info(req)
    if kind in ADMIN_FIELDS:
        auth.is_admin_permitted(ai)
    elif kind == "put":
        check_put(auth, ai, lessor, req.put)
    elif kind == "delete_range":
        check_delete(auth, ai, req.delete_range)
    elif kind == "txn":
        check_txn(auth, ai, lessor, req.txn)
    elif kind == "range":
        r = req.range
        auth.is_range_permitted(ai, r.key, r.range_end)
    elif kind == "lease_revoke":
        check_lease_puts(auth, ai, lessor, req.lease_revoke.ID)
    elif kind == "auth_user_get":
        if req.auth_user_get.name != ai.username:
            auth.is_admin_permitted(ai)
    elif kind == "auth_role_get":
        if not auth.has_role(ai.username, req.auth_role_get.role):
            auth.is_admin_permitted(ai)


def apply_auth_request(s, auth: AuthStore, req, kind: str, index: int):
    """Apply one auth management entry; returns its response."""
    if kind == "auth_enable":
        auth.auth_enable()
        return pb.AuthEnableResponse()
    if kind == "auth_disable":
        auth.auth_disable()
        return pb.AuthDisableResponse()
    if kind == "auth_status":
        return pb.AuthStatusResponse(enabled=auth.enabled, authRevision=auth.revision)
    if kind == "authenticate":
        a = req.authenticate
        return pb.AuthenticateResponse(token=auth.authenticate(a.name, a.simple_token, index))
    if kind == "auth_user_add":
        auth.user_add(req.auth_user_add)
        return pb.AuthUserAddResponse()
    if kind == "auth_user_delete":
        auth.user_delete(req.auth_user_delete.name)
        return pb.AuthUserDeleteResponse()
    if kind == "auth_user_change_password":
        auth.user_change_password(req.auth_user_change_password)
        return pb.AuthUserChangePasswordResponse()
    if kind == "auth_user_grant_role":
        r = req.auth_user_grant_role
        auth.user_grant_role(r.user, r.role)
        return pb.AuthUserGrantRoleResponse()
    if kind == "auth_user_revoke_role":
        r = req.auth_user_revoke_role
        auth.user_revoke_role(r.name, r.role)
        return pb.AuthUserRevokeRoleResponse()
    if kind == "auth_user_get":
        return pb.AuthUserGetResponse(roles=auth.user_get(req.auth_user_get.name))
    if kind == "auth_user_list":
        return pb.AuthUserListResponse(users=auth.user_list())
    if kind == "auth_role_add":
        auth.role_add(req.auth_role_add.name)
        return pb.AuthRoleAddResponse()
    if kind == "auth_role_get":
        return pb.AuthRoleGetResponse(perm=auth.role_get(req.auth_role_get.role))
    if kind == "auth_role_list":
        return pb.AuthRoleListResponse(roles=auth.role_list())
    if kind == "auth_role_delete":
        auth.role_delete(req.auth_role_delete.role)
        return pb.AuthRoleDeleteResponse()
    if kind == "auth_role_grant_permission":
        r = req.auth_role_grant_permission
        if not r.HasField("perm"):
            raise errors.PERMISSION_NOT_GIVEN()
        auth.role_grant_permission(r.name, r.perm)
        return pb.AuthRoleGrantPermissionResponse()
    if kind == "auth_role_revoke_permission":
        r = req.auth_role_revoke_permission
        auth.role_revoke_permission(r.role, r.key, r.range_end)
        return pb.AuthRoleRevokePermissionResponse()
    raise errors.EtcdError("Unknown", "etcdserver: unknown auth request")
