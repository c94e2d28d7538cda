"""The KV half of the backend applier: Range, Put, DeleteRange, Txn and
Compaction against the MVCC store (etcd's ``applierV3backend``).

Every member applies the same committed entries in the same order, so
nothing here may depend on time, randomness or member-local state:

- Put with ``ignore_value``/``ignore_lease`` needs the key to exist
  (``key not found``); an unknown lease fails with ``requested lease not
  found`` before anything is written.
- Txn evaluates every compare (of the chosen branch and of nested txns)
  against the state before the txn, checks every op of the chosen path
  (leases, keys for ignore_*, read revisions), and only then writes, so a
  failing txn writes nothing.  Reads inside the txn see its earlier writes.
- Range fetches everything when sorting or filtering, else ``limit + 1`` to
  compute ``more``; ``count`` is the number of keys before filtering.

Responses carry only ``header.revision``; the server fills in cluster id,
member id and raft term.  Alarms and the quota are wrappers around this
(see :mod:`pyetcd.server.apply`).
"""
from __future__ import annotations

from pyetcd import errors
from pyetcd.mvcc.kvstore import CompactedError, FutureRevError, KVStore
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb

RangeRequest = pb.RangeRequest
_SORT_KEYS = {
    RangeRequest.KEY: lambda kv: kv.key,
    RangeRequest.VERSION: lambda kv: kv.version,
    RangeRequest.CREATE: lambda kv: kv.create_revision,
    RangeRequest.MOD: lambda kv: kv.mod_revision,
    RangeRequest.VALUE: lambda kv: kv.value,
}


def range_end(end: bytes) -> bytes | None:
    """etcd's mkGteRange: b"" means one key (None), b"\\0" means no upper bound (b"")."""
    if not end:
        return None
    if end == b"\x00":
        return b""
    return end


def _mvcc_error(exc: Exception) -> errors.EtcdError:
    if isinstance(exc, CompactedError):
        return errors.COMPACTED()
    if isinstance(exc, FutureRevError):
        return errors.FUTURE_REV()
    raise exc


class KVApplier:
    def __init__(self, kv: KVStore, lessor):
        self.kv = kv
        self.lessor = lessor

    # ---- reads ------------------------------------------------------------------------
    def range(self, r: pb.RangeRequest, txn=None) -> pb.RangeResponse:
        limit = r.limit
        filtered = (r.min_mod_revision or r.max_mod_revision or
                    r.min_create_revision or r.max_create_revision)
        if r.sort_order != RangeRequest.NONE or filtered:
            limit = 0
        if limit > 0:
            limit += 1
        source = txn if txn is not None else self.kv
        try:
            rr = source.range(r.key, range_end(r.range_end), r.revision, limit, r.count_only)
        except (CompactedError, FutureRevError) as exc:
            raise _mvcc_error(exc) from None
        kvs = rr.kvs
        if filtered:
            kvs = [kv for kv in kvs if _keep(r, kv)]
        order = r.sort_order
        if r.sort_target != RangeRequest.KEY and order == RangeRequest.NONE:
            order = RangeRequest.ASCEND
        if order != RangeRequest.NONE and kvs:
            keyf = _SORT_KEYS.get(r.sort_target)
            if keyf is None:
                raise errors.INVALID_SORT_OPTION()
            if not (r.sort_target == RangeRequest.KEY and order == RangeRequest.ASCEND):
                kvs = sorted(kvs, key=keyf, reverse=order == RangeRequest.DESCEND)
        resp = pb.RangeResponse()
        if r.limit > 0 and len(kvs) > r.limit:
            kvs = kvs[:r.limit]
            resp.more = True
        resp.header.revision = rr.rev
        resp.count = rr.count
        if r.keys_only:
            for kv in kvs:
                kv.ClearField("value")
        resp.kvs.extend(kvs)
        return resp

    # ---- writes -----------------------------------------------------------------------
    def put(self, p: pb.PutRequest, txn=None) -> pb.PutResponse:
        own = txn is None
        if own:
            if p.lease and self.lessor.lookup(p.lease) is None:
                raise errors.LEASE_NOT_FOUND()
            txn = self.kv.write()
        try:
            return self._put(p, txn)
        finally:
            if own:
                txn.end()

    def _put(self, p: pb.PutRequest, txn) -> pb.PutResponse:
        resp = pb.PutResponse()
        value, lease = p.value, p.lease
        prev = None
        if p.ignore_value or p.ignore_lease or p.prev_kv:
            rr = txn.range(p.key, None)
            prev = rr.kvs[0] if rr.kvs else None
        if p.ignore_value or p.ignore_lease:
            if prev is None:
                raise errors.KEY_NOT_FOUND()
            if p.ignore_value:
                value = prev.value
            if p.ignore_lease:
                lease = prev.lease
        if p.prev_kv and prev is not None:
            resp.prev_kv.CopyFrom(prev)
        resp.header.revision = txn.put(p.key, value, lease)
        return resp

    def delete_range(self, d: pb.DeleteRangeRequest, txn=None) -> pb.DeleteRangeResponse:
        own = txn is None
        if own:
            txn = self.kv.write()
        try:
            resp = pb.DeleteRangeResponse()
            end = range_end(d.range_end)
            if d.prev_kv:
                resp.prev_kvs.extend(txn.range(d.key, end).kvs)
            resp.deleted, resp.header.revision = txn.delete_range(d.key, end)
        finally:
            if own:
                txn.end()
        return resp

    # ---- txn --------------------------------------------------------------------------
    def txn(self, rt: pb.TxnRequest) -> pb.TxnResponse:
        writes = not is_readonly_txn(rt)
        path = self._compare_path(rt)
        if writes:
            self._check_path(rt, path, 0, self._check_put)
        self._check_path(rt, path, 0, self._check_range)
        txn = self.kv.write()
        try:
            resp = pb.TxnResponse()
            self._apply_txn(rt, path, 0, resp, txn)
        finally:
            rev = txn.end()
        resp.header.revision = rev
        return resp

    def _compare_path(self, rt: pb.TxnRequest) -> list[bool]:
        ok = all(self._compare(c) for c in rt.compare)
        path = [ok]
        for op in (rt.success if ok else rt.failure):
            if op.WhichOneof("request") == "request_txn":
                path.extend(self._compare_path(op.request_txn))
        return path

    def _compare(self, c: pb.Compare) -> bool:
        try:
            rr = self.kv.range(c.key, range_end(c.range_end))
        except (CompactedError, FutureRevError):
            return False
        if not rr.kvs:
            if c.target == pb.Compare.VALUE:
                return False
            return _compare_kv(c, None)
        return all(_compare_kv(c, kv) for kv in rr.kvs)

    def _check_path(self, rt: pb.TxnRequest, path: list[bool], i: int, check) -> int:
        """Run ``check`` on every non-txn op the txn will execute (etcd's
        checkRequests); returns how many path slots this txn used."""
        used = 1
        for op in (rt.success if path[i] else rt.failure):
            if op.WhichOneof("request") == "request_txn":
                used += self._check_path(op.request_txn, path, i + used, check)
            else:
                check(op)
        return used

    def _check_put(self, op: pb.RequestOp) -> None:
        if op.WhichOneof("request") != "request_put":
            return
        p = op.request_put
        if (p.ignore_value or p.ignore_lease) and self.kv.index.latest(p.key) is None:
            raise errors.KEY_NOT_FOUND()
        if p.lease and self.lessor.lookup(p.lease) is None:
            raise errors.LEASE_NOT_FOUND()

    def _check_range(self, op: pb.RequestOp) -> None:
        if op.WhichOneof("request") != "request_range":
            return
        rev = op.request_range.revision
        if rev == 0:
            return
        if rev > self.kv.current_rev:
            raise errors.FUTURE_REV()
        if rev < self.kv.compact_main_rev:
            raise errors.COMPACTED()

    def _apply_txn(self, rt, path, i, resp: pb.TxnResponse, txn) -> int:
        ok = path[i]
        resp.succeeded = ok
        used = 1
        for op in (rt.success if ok else rt.failure):
            out = resp.responses.add()
            kind = op.WhichOneof("request")
            if kind == "request_range":
                out.response_range.CopyFrom(self.range(op.request_range, txn))
            elif kind == "request_put":
                out.response_put.CopyFrom(self._put(op.request_put, txn))
            elif kind == "request_delete_range":
                out.response_delete_range.CopyFrom(self.delete_range(op.request_delete_range, txn))
            elif kind == "request_txn":
                sub = out.response_txn
                sub.header.SetInParent()
                used += self._apply_txn(op.request_txn, path, i + used, sub, txn)
        return used

    # ---- compaction -----------------------------------------------------------
    def compaction(self, c: pb.CompactionRequest) -> pb.CompactionResponse:
        """The old revisions leave the backend in the same commit as this
        entry, so the reply (sent after that commit) is always physical."""
        try:
            self.kv.compact(c.revision)
        except (CompactedError, FutureRevError) as exc:
            raise _mvcc_error(exc) from None
        resp = pb.CompactionResponse()
        resp.header.revision = self.kv.current_rev
        return resp


def is_readonly_txn(rt: pb.TxnRequest) -> bool:
    """No Put or DeleteRange in any branch, nested txns included."""
    for op in list(rt.success) + list(rt.failure):
        kind = op.WhichOneof("request")
        if kind in ("request_put", "request_delete_range"):
            return False
        if kind == "request_txn" and not is_readonly_txn(op.request_txn):
            return False
    return True


def _keep(r: pb.RangeRequest, kv) -> bool:
    if r.max_mod_revision and kv.mod_revision > r.max_mod_revision:
        return False
    if r.min_mod_revision and kv.mod_revision < r.min_mod_revision:
        return False
    if r.max_create_revision and kv.create_revision > r.max_create_revision:
        return False
    if r.min_create_revision and kv.create_revision < r.min_create_revision:
        return False
    return True


def _compare_kv(c: pb.Compare, kv) -> bool:
    t = c.target
    if t == pb.Compare.VALUE:
        a = kv.value if kv is not None else b""
        b = c.value
        result = (a > b) - (a < b)
    else:
        if t == pb.Compare.CREATE:
            a, b = (kv.create_revision if kv else 0), c.create_revision
        elif t == pb.Compare.MOD:
            a, b = (kv.mod_revision if kv else 0), c.mod_revision
        elif t == pb.Compare.VERSION:
            a, b = (kv.version if kv else 0), c.version
        elif t == pb.Compare.LEASE:
            a, b = (kv.lease if kv else 0), c.lease
        else:
            return True
        result = (a > b) - (a < b)
    res = c.result
    if res == pb.Compare.EQUAL:
        return result == 0
    if res == pb.Compare.NOT_EQUAL:
        return result != 0
    if res == pb.Compare.GREATER:
        return result > 0
    if res == pb.Compare.LESS:
        return result < 0
    return True
