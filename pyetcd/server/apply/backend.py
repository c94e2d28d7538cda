"""The backend applier: one table, keyed on the request's kind (the name of
its field in ``InternalRequest``), from a committed request to its state
change and response (etcd's ``applierV3backend``).

Each handler takes the request and the entry's Raft index (only
Authenticate uses it: a simple token is named after the index that made
it).  Nothing here checks permissions, alarms or the quota: those are the
wrappers composed around this applier (:func:`pyetcd.server.apply.build`).
"""
from __future__ import annotations

from pyetcd import errors
from pyetcd.lease.lessor import LeaseExists, LeaseNotFound, LeaseTTLTooLarge
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

from .kv import KVApplier


class BackendApplier:
    def __init__(self, stores):
        self.kv = stores.kv
        self.lessor = stores.lessor
        self.alarms = stores.alarms
        self.cluster = stores.cluster
        self.auth = stores.auth
        self.kvs = KVApplier(stores.kv, stores.lessor)
        kvs = self.kvs
        self.table = {
            "put": lambda r, _i: kvs.put(r),
            "delete_range": lambda r, _i: kvs.delete_range(r),
            "txn": lambda r, _i: kvs.txn(r),
            "compaction": lambda r, _i: kvs.compaction(r),
            "lease_grant": self.lease_grant,
            "lease_revoke": self.lease_revoke,
            "lease_checkpoint": self.lease_checkpoint,
            "alarm": self.alarm,
            "member_attr": self.member_attr,
            **_auth_table(stores.auth),
        }

    def apply(self, req, kind: str, index: int):
        handler = self.table.get(kind)
        if handler is None:
            raise errors.EtcdError("Unknown", "etcdserver: unknown request in log entry")
        return handler(getattr(req, kind), index)

    # ---- leases ----------------------------------------------------------------------
    def lease_grant(self, g: pb.LeaseGrantRequest, _index: int) -> pb.LeaseGrantResponse:
        try:
            lease = self.lessor.grant(g.ID, g.TTL)
        except LeaseExists:
            raise errors.LEASE_EXIST() from None
        except LeaseTTLTooLarge:
            raise errors.LEASE_TTL_TOO_LARGE() from None
        except LeaseNotFound:
            raise errors.LEASE_NOT_FOUND() from None
        resp = pb.LeaseGrantResponse(ID=lease.id, TTL=lease.ttl)
        resp.header.revision = self.kv.current_rev
        return resp

    def lease_revoke(self, r: pb.LeaseRevokeRequest, _index: int) -> pb.LeaseRevokeResponse:
        try:
            keys = self.lessor.revoke_keys(r.ID)
        except LeaseNotFound:
            raise errors.LEASE_NOT_FOUND() from None
        txn = self.kv.write()
        try:
            for key in keys:
                txn.delete_range(key, None)
        finally:
            rev = txn.end()
        self.lessor.remove(r.ID)
        resp = pb.LeaseRevokeResponse()
        resp.header.revision = rev
        return resp

    def lease_checkpoint(self, c: pb.LeaseCheckpointRequest, _index: int):
        for cp in c.checkpoints:
            self.lessor.checkpoint(cp.ID, cp.remaining_TTL)
        resp = pb.LeaseCheckpointResponse()
        resp.header.revision = self.kv.current_rev
        return resp

    # ---- alarms and members ------------------------------------------------------------
    def alarm(self, ar: pb.AlarmRequest, _index: int) -> pb.AlarmResponse:
        resp = pb.AlarmResponse()
        resp.header.revision = self.kv.current_rev
        store = self.alarms
        if ar.action == pb.AlarmRequest.GET:
            resp.alarms.extend(store.get(ar.alarm))
        elif ar.action == pb.AlarmRequest.ACTIVATE:
            if ar.alarm != pb.NONE:
                m = store.activate(ar.memberID, ar.alarm)
                if m is not None:
                    resp.alarms.append(m)
        elif ar.action == pb.AlarmRequest.DEACTIVATE:
            m = store.deactivate(ar.memberID, ar.alarm)
            if m is not None:
                resp.alarms.append(m)
        return resp

    def member_attr(self, a, _index: int) -> None:
        """A member publishes its name and client URLs (etcd's attributes)."""
        self.cluster.set_attributes(a.member_id, a.name, a.client_urls)


def _grant_permission(auth, r) -> pb.AuthRoleGrantPermissionResponse:
    if not r.HasField("perm"):
        raise errors.PERMISSION_NOT_GIVEN()
    auth.role_grant_permission(r.name, r.perm)
    return pb.AuthRoleGrantPermissionResponse()


def _done(fn, resp_type):
    """A handler that runs ``fn(request)`` and answers an empty response."""
    def handler(r, _index):
        fn(r)
        return resp_type()
    return handler


def _auth_table(auth) -> dict:
    """Auth management entries (etcd's applierV3backend auth methods)."""
    return {
        "auth_enable": _done(lambda r: auth.auth_enable(), pb.AuthEnableResponse),
        "auth_disable": _done(lambda r: auth.auth_disable(), pb.AuthDisableResponse),
        "auth_status": lambda r, _i: pb.AuthStatusResponse(enabled=auth.enabled,
                                                            authRevision=auth.revision),
        "authenticate": lambda r, index: pb.AuthenticateResponse(
            token=auth.authenticate(r.name, r.simple_token, index)),
        "auth_user_add": _done(auth.user_add, pb.AuthUserAddResponse),
        "auth_user_delete": _done(lambda r: auth.user_delete(r.name), pb.AuthUserDeleteResponse),
        "auth_user_change_password": _done(auth.user_change_password,
                                           pb.AuthUserChangePasswordResponse),
        "auth_user_grant_role": _done(lambda r: auth.user_grant_role(r.user, r.role),
                                      pb.AuthUserGrantRoleResponse),
        "auth_user_revoke_role": _done(lambda r: auth.user_revoke_role(r.name, r.role),
                                       pb.AuthUserRevokeRoleResponse),
        "auth_user_get": lambda r, _i: pb.AuthUserGetResponse(roles=auth.user_get(r.name)),
        "auth_user_list": lambda r, _i: pb.AuthUserListResponse(users=auth.user_list()),
        "auth_role_add": _done(lambda r: auth.role_add(r.name), pb.AuthRoleAddResponse),
        "auth_role_get": lambda r, _i: pb.AuthRoleGetResponse(perm=auth.role_get(r.role)),
        "auth_role_list": lambda r, _i: pb.AuthRoleListResponse(roles=auth.role_list()),
        "auth_role_delete": _done(lambda r: auth.role_delete(r.role), pb.AuthRoleDeleteResponse),
        "auth_role_grant_permission": lambda r, _i: _grant_permission(auth, r),
        "auth_role_revoke_permission": _done(
            lambda r: auth.role_revoke_permission(r.role, r.key, r.range_end),
            pb.AuthRoleRevokePermissionResponse),
    }
