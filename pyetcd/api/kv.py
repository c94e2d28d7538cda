"""The KV service: validate as etcd's v3rpc does, then read or propose."""
from __future__ import annotations

from pyetcd import errors
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.pyetcdpb.internal_pb2 import InternalRequest

from pyetcd.server.apply_auth import check_txn as check_txn_auth
from pyetcd.server.maintenance_ops import check_quota

from .common import unary

_SORT_ORDERS = set(pb.RangeRequest.SortOrder.values())
_SORT_TARGETS = set(pb.RangeRequest.SortTarget.values())


def check_range(r: pb.RangeRequest) -> None:
    if not r.key:
        raise errors.EMPTY_KEY()
    if r.sort_order not in _SORT_ORDERS or r.sort_target not in _SORT_TARGETS:
        raise errors.INVALID_SORT_OPTION()


def check_put(r: pb.PutRequest) -> None:
    if not r.key:
        raise errors.EMPTY_KEY()
    if r.ignore_value and r.value:
        raise errors.VALUE_PROVIDED()
    if r.ignore_lease and r.lease:
        raise errors.LEASE_PROVIDED()


def check_delete(r: pb.DeleteRangeRequest) -> None:
    if not r.key:
        raise errors.EMPTY_KEY()


def check_txn(r: pb.TxnRequest, max_ops: int) -> None:
    opc = max(len(r.compare), len(r.success), len(r.failure))
    if opc > max_ops:
        raise errors.TOO_MANY_OPS()
    for c in r.compare:
        if not c.key:
            raise errors.EMPTY_KEY()
    for op in r.success:
        _check_op(op, max_ops - opc)
    for op in r.failure:
        _check_op(op, max_ops - opc)


def _check_op(op: pb.RequestOp, max_ops: int) -> None:
    kind = op.WhichOneof("request")
    if kind == "request_range":
        check_range(op.request_range)
    elif kind == "request_put":
        check_put(op.request_put)
    elif kind == "request_delete_range":
        check_delete(op.request_delete_range)
    elif kind == "request_txn":
        check_txn(op.request_txn, max_ops)
    else:
        raise errors.KEY_NOT_FOUND()


# ---- duplicate-key check (etcd's checkIntervals) --------------------------------------
def _interval(key: bytes, end: bytes) -> tuple[bytes, bytes | None]:
    """A delete's key interval [key, end); end None means the single key."""
    return (key, end if end else None)


def _intersects(dels: list, k: bytes) -> bool:
    for lo, hi in dels:
        if hi is None:
            if lo == k:
                return True
        elif lo <= k < hi:  # etcd compares the end literally: "\0" matches nothing
            return True
    return False


def check_intervals(reqs) -> tuple[set, list]:
    dels = [_interval(r.request_delete_range.key, r.request_delete_range.range_end)
            for r in reqs if r.WhichOneof("request") == "request_delete_range"]
    puts: set[bytes] = set()
    for r in reqs:
        if r.WhichOneof("request") != "request_txn":
            continue
        puts_then, dels_then = check_intervals(r.request_txn.success)
        puts_else, dels_else = check_intervals(r.request_txn.failure)
        for k in puts_then:
            if k in puts or _intersects(dels, k):
                raise errors.DUPLICATE_KEY()
            puts.add(k)
        for k in puts_else:
            if k in puts and k not in puts_then:
                raise errors.DUPLICATE_KEY()
            if _intersects(dels, k):
                raise errors.DUPLICATE_KEY()
            puts.add(k)
        dels.extend(dels_then)
        dels.extend(dels_else)
    for r in reqs:
        if r.WhichOneof("request") != "request_put":
            continue
        k = r.request_put.key
        if k in puts or _intersects(dels, k):
            raise errors.DUPLICATE_KEY()
        puts.add(k)
    return puts, dels


def txn_readonly(r: pb.TxnRequest) -> bool:
    for op in list(r.success) + list(r.failure):
        kind = op.WhichOneof("request")
        if kind in ("request_put", "request_delete_range"):
            return False
        if kind == "request_txn" and not txn_readonly(op.request_txn):
            return False
    return True


class KVServicer:
    def __init__(self, server):
        self.s = server

    @unary
    async def Range(self, request, context):
        check_range(request)
        s = self.s
        if not request.serializable:
            await s.linearizable_read()
        ai = await s.check_read(lambda ai: s.auth.is_range_permitted(ai, request.key, request.range_end))
        resp = s.applier.range(request)
        s.check_read_revision(ai)
        s.header(resp.header)
        return resp

    @unary
    async def Put(self, request, context):
        check_quota(self.s, request)
        check_put(request)
        req = InternalRequest()
        req.put.CopyFrom(request)
        resp = await self.s.propose(req)
        self.s.header(resp.header)
        return resp

    @unary
    async def DeleteRange(self, request, context):
        check_delete(request)
        req = InternalRequest()
        req.delete_range.CopyFrom(request)
        resp = await self.s.propose(req)
        self.s.header(resp.header)
        return resp

    @unary
    async def Txn(self, request, context):
        s = self.s
        check_quota(s, request)
        check_txn(request, s.max_txn_ops)
        check_intervals(request.success)
        check_intervals(request.failure)
        if txn_readonly(request):
            await s.linearizable_read()
            ai = await s.check_read(lambda ai: check_txn_auth(s.auth, ai, s.lessor, request))
            resp = s.applier.txn(request)
            s.check_read_revision(ai)
        else:
            req = InternalRequest()
            req.txn.CopyFrom(request)
            resp = await s.propose(req)
        s.header(resp.header)
        return resp

    @unary
    async def Compact(self, request, context):
        req = InternalRequest()
        req.compaction.CopyFrom(request)
        resp = await self.s.propose(req)
        self.s.header(resp.header)
        return resp
