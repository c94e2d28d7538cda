"""The KV service: validate as etcd's v3rpc does, then read or propose."""
from __future__ import annotations

from pyetcd import errors
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

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


class KVServicer:
    def __init__(self, server):
        self.s = server

    @unary
    async def Range(self, request, context):
        check_range(request)
        return await self.s.range(request)

    @unary
    async def Put(self, request, context):
        self.s.check_quota(request)
        check_put(request)
        return await self.s.put(request)

    @unary
    async def DeleteRange(self, request, context):
        check_delete(request)
        return await self.s.delete_range(request)

    @unary
    async def Txn(self, request, context):
        s = self.s
        s.check_quota(request)
        check_txn(request, s.max_txn_ops)
        check_intervals(request.success)
        check_intervals(request.failure)
        return await s.txn(request)

    @unary
    async def Compact(self, request, context):
        return await self.s.compact(request)
