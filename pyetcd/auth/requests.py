"""Which requests a user may make (etcd's ``apply_auth.go`` checks and the
auth half of ``v3_server.go``), one function per request kind.

The same checks run twice for a replicated request, as in etcd: on the
apply path of every member (against the user and auth revision carried in
the entry's header) and, for reads served locally, in the API layer.  Each
raises etcd's error (``permission denied``, ...) or returns.

``lessor`` is anything with ``lookup(lease_id)`` returning an object with a
``keys`` set (or None): writing or revoking a lease's keys needs write
permission on every one of them.
"""
from __future__ import annotations

from pyetcd import errors
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

from .store import AuthInfo, AuthStore

# auth management requests that need the root role (etcd's needAdminPermission)
ADMIN_KINDS = frozenset({
    "auth_enable", "auth_disable", "auth_status", "auth_user_add", "auth_user_delete",
    "auth_user_change_password", "auth_user_grant_role", "auth_user_revoke_role",
    "auth_role_add", "auth_role_grant_permission", "auth_role_revoke_permission",
    "auth_role_delete", "auth_user_list", "auth_role_list",
})
AUTH_KINDS = ADMIN_KINDS | {"authenticate", "auth_user_get", "auth_role_get"}


def lease_keys(lessor, lease_id: int) -> list[bytes]:
    return lessor.keys(lease_id) if lessor.lookup(lease_id) is not None else []


def check_lease_puts(auth: AuthStore, ai: AuthInfo | None, lessor, lease_id: int) -> None:
    """Writing a lease's keys: the user must be admin or may write every key."""
    if not lease_id or lessor.lookup(lease_id) is None:
        return
    try:
        auth.is_admin_permitted(ai)
        return
    except errors.EtcdError:
        pass
    for key in lease_keys(lessor, lease_id):
        auth.is_put_permitted(ai, key)


def check_put(auth: AuthStore, ai, lessor, p: pb.PutRequest) -> None:
    auth.is_put_permitted(ai, p.key)
    check_lease_puts(auth, ai, lessor, p.lease)
    if p.prev_kv:
        auth.is_range_permitted(ai, p.key, b"")


def check_delete(auth: AuthStore, ai, d: pb.DeleteRangeRequest) -> None:
    auth.is_delete_range_permitted(ai, d.key, d.range_end)
    if d.prev_kv:
        auth.is_range_permitted(ai, d.key, d.range_end)


def check_range(auth: AuthStore, ai, r: pb.RangeRequest) -> None:
    auth.is_range_permitted(ai, r.key, r.range_end)


def _check_ops(auth: AuthStore, ai, lessor, ops) -> None:
    for op in ops:
        kind = op.WhichOneof("request")
        if kind == "request_range":
            check_range(auth, ai, op.request_range)
        elif kind == "request_put":
            check_put(auth, ai, lessor, op.request_put)
        elif kind == "request_delete_range":
            d = op.request_delete_range
            if d.prev_kv:
                auth.is_range_permitted(ai, d.key, d.range_end)
            auth.is_delete_range_permitted(ai, d.key, d.range_end)
        elif kind == "request_txn":
            check_txn(auth, ai, lessor, op.request_txn)


def check_txn(auth: AuthStore, ai, lessor, rt: pb.TxnRequest) -> None:
    """Every compare and every op of both branches, nested txns included."""
    for c in rt.compare:
        auth.is_range_permitted(ai, c.key, c.range_end)
    _check_ops(auth, ai, lessor, rt.success)
    _check_ops(auth, ai, lessor, rt.failure)


def check_user_get(auth: AuthStore, ai, r) -> None:
    if r.name != ai.username:
        auth.is_admin_permitted(ai)


def check_role_get(auth: AuthStore, ai, r) -> None:
    if not auth.has_role(ai.username, r.role):
        auth.is_admin_permitted(ai)


_CHECKS = {
    "put": lambda auth, ai, lessor, r: check_put(auth, ai, lessor, r),
    "delete_range": lambda auth, ai, lessor, r: check_delete(auth, ai, r),
    "txn": check_txn,
    "range": lambda auth, ai, lessor, r: check_range(auth, ai, r),
    "lease_revoke": lambda auth, ai, lessor, r: check_lease_puts(auth, ai, lessor, r.ID),
    "auth_user_get": lambda auth, ai, lessor, r: check_user_get(auth, ai, r),
    "auth_role_get": lambda auth, ai, lessor, r: check_role_get(auth, ai, r),
}


def check_request(auth: AuthStore, ai: AuthInfo, lessor, kind: str, request) -> None:
    """Raise when ``ai`` may not make the request of ``kind`` (the name of
    its field in an InternalRequest: ``put``, ``txn``, ``auth_user_add``...).
    Kinds without a rule (lease grants, alarms, compactions, ...) pass."""
    if kind in ADMIN_KINDS:
        auth.is_admin_permitted(ai)
        return
    check = _CHECKS.get(kind)
    if check is not None:
        check(auth, ai, lessor, request)
