"""The backend quota (etcd's ``quota.go``, ``backendQuota``).

A Put, Txn or LeaseGrant whose cost would take the database over
``--quota-backend-bytes`` is refused before it is proposed (``check``) with
``database space exceeded``, and the member proposes a NOSPACE alarm; once
the alarm is applied every member refuses writes (the alarm applier) until
``alarm disarm``.  On the apply path (``available``/``exceeded``) a write
that got through is applied everywhere, and only this member's answer
becomes NOSPACE.
"""
from __future__ import annotations

import logging
from typing import Awaitable, Callable

from pyetcd import errors
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.util.tasks import spawn

log = logging.getLogger("pyetcd.quota")

# etcd's cost model
KV_OVERHEAD = 256
LEASE_OVERHEAD = 64


def cost(request) -> int:
    """etcd's quota cost of a request."""
    if isinstance(request, pb.PutRequest):
        return KV_OVERHEAD + len(request.key) + len(request.value)
    if isinstance(request, pb.TxnRequest):
        def side(ops):
            return sum(KV_OVERHEAD + (len(op.request_put.key) + len(op.request_put.value)
                                      if op.WhichOneof("request") == "request_put" else 0)
                       for op in ops)
        return max(side(request.success), side(request.failure))
    if isinstance(request, pb.LeaseGrantRequest):
        return LEASE_OVERHEAD
    return 0


class Quota:
    """``db_size()`` reads the backend's current size; ``raise_alarm()``
    proposes the NOSPACE alarm (at most one proposal in flight); ``has_alarm()``
    says whether it is already raised."""

    def __init__(self, quota_bytes: int, db_size: Callable[[], int],
                 raise_alarm: Callable[[], Awaitable[object]], has_alarm: Callable[[], bool]):
        self.quota_bytes = quota_bytes
        self.db_size = db_size
        self.raise_alarm = raise_alarm
        self.has_alarm = has_alarm
        self.raising = False

    def available(self, request) -> bool:
        return self.db_size() + cost(request) < self.quota_bytes

    def check(self, request) -> None:
        """Before proposing (etcd's quotaKVServer / quotaLeaseServer)."""
        if not self.available(request):
            self.exceeded()
            raise errors.NO_SPACE()

    def exceeded(self) -> None:
        """The quota is exceeded: raise the NOSPACE alarm, once."""
        if self.raising or self.has_alarm():
            return
        self.raising = True
        log.warning("database space exceeded; raising alarm; quota-size-bytes=%d "
                    "current-db-size-bytes=%d", self.quota_bytes, self.db_size())
        spawn(self._raise(), log, "NOSPACE alarm proposal")

    async def _raise(self) -> None:
        try:
            await self.raise_alarm()
        except errors.EtcdError as exc:
            log.warning("failed to raise the NOSPACE alarm: %s", exc.message)
        finally:
            self.raising = False
