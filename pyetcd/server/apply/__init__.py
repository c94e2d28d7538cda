"""The apply layer: a committed request -> state change -> response.

The applier is a chain composed when the member's state is opened, as
etcd's ``newAuthApplierV3(newQuotaApplierV3(backend))`` with the capped and
corrupt appliers in between::

    AuthApplier -> AlarmApplier -> QuotaApplier -> BackendApplier (the table)

Every link has ``apply(req, kind, index)``: ``req`` the InternalRequest,
``kind`` the name of its one request field, ``index`` the entry's Raft
index.  A link either raises etcd's error or passes the request on:

- AuthApplier: with auth enabled, the user and auth revision in the entry's
  header must be allowed the request (checked on every member, so a
  permission change that lands between proposal and apply fails the request
  everywhere);
- AlarmApplier: while CORRUPT is raised, Put/DeleteRange/Txn/LeaseGrant
  fail; while NOSPACE is raised, Put, LeaseGrant and writing Txns fail;
- QuotaApplier: a Put, writing Txn or LeaseGrant that takes the backend over
  ``--quota-backend-bytes`` is applied (the write is on every member) but
  answered with ``database space exceeded``, and this member raises the
  NOSPACE alarm; the check is member-local, as in etcd.
"""
from __future__ import annotations

from pyetcd import errors
from pyetcd.auth.requests import check_request
from pyetcd.auth.store import AuthInfo
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

from .backend import BackendApplier
from .kv import KVApplier, is_readonly_txn, range_end

__all__ = ["AlarmApplier", "AuthApplier", "BackendApplier", "KVApplier", "QuotaApplier", "build",
           "is_readonly_txn", "range_end", "request_kind"]


def request_kind(req) -> str:
    """The name of the one request field set in ``req`` ("" for none)."""
    for fd, _ in req.ListFields():
        if fd.name != "header":
            return fd.name
    return ""


_NOSPACE_KINDS = frozenset({"put", "lease_grant", "txn"})
_CORRUPT_KINDS = frozenset({"put", "delete_range", "lease_grant", "txn"})


def _writes(req, kind: str) -> bool:
    return kind != "txn" or not is_readonly_txn(req.txn)


class QuotaApplier:
    def __init__(self, inner, quota):
        self.inner = inner
        self.quota = quota

    def apply(self, req, kind: str, index: int):
        if kind not in _NOSPACE_KINDS or not _writes(req, kind):
            return self.inner.apply(req, kind, index)
        over = not self.quota.available(getattr(req, kind))
        resp = self.inner.apply(req, kind, index)
        if over:
            self.quota.exceeded()
            raise errors.NO_SPACE()
        return resp


class AlarmApplier:
    def __init__(self, inner, alarms):
        self.inner = inner
        self.alarms = alarms

    def apply(self, req, kind: str, index: int):
        alarms = self.alarms
        if alarms.active:
            if kind in _CORRUPT_KINDS and alarms.has(pb.CORRUPT):
                raise errors.CORRUPT()
            if kind in _NOSPACE_KINDS and alarms.has(pb.NOSPACE) and _writes(req, kind):
                raise errors.NO_SPACE()
        return self.inner.apply(req, kind, index)


class AuthApplier:
    def __init__(self, inner, auth, lessor):
        self.inner = inner
        self.auth = auth
        self.lessor = lessor

    def apply(self, req, kind: str, index: int):
        if self.auth.enabled:
            ai = AuthInfo(req.header.username, req.header.auth_revision)
            check_request(self.auth, ai, self.lessor, kind, getattr(req, kind))
        return self.inner.apply(req, kind, index)


def build(stores, quota):
    """The applier chain over the member's opened state (``stores``: kv,
    lessor, alarms, cluster, auth) and its ``quota`` (``available(request)``,
    ``exceeded()``)."""
    backend = BackendApplier(stores)
    return AuthApplier(AlarmApplier(QuotaApplier(backend, quota), stores.alarms),
                       stores.auth, stores.lessor)
