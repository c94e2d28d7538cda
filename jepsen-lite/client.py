"""The tool's view of an etcd endpoint: the gRPC stubs, one channel per
client, every call with a deadline, and the rule that turns an error into
a history outcome.

A read that fails changed nothing: ``fail``.  A write whose error says it
was refused before it could be applied (a bad argument, a permission, an
unknown lease, a compare that failed) is ``fail``; any other error --
a timeout, a lost connection, no leader, even NOSPACE (etcd applies the
write, then answers NOSPACE) -- leaves it unknown: ``info``."""
from __future__ import annotations

import grpc

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.etcdserverpb import rpc_pb2_grpc as rpc
from pyetcd.pb.v3lockpb import v3lock_pb2 as lockpb
from pyetcd.pb.v3lockpb import v3lock_pb2_grpc as lockrpc

DEFINITE = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE,
            grpc.StatusCode.UNIMPLEMENTED}


class Indeterminate(Exception):
    """The call may or may not have taken effect."""


class Refused(Exception):
    """The call certainly did not take effect."""


def describe(exc: grpc.RpcError) -> str:
    return f"{exc.code().name}: {exc.details()}"


class EtcdClient:
    def __init__(self, endpoint: str, timeout: float = 1.0, credentials=None):
        self.endpoint = endpoint
        self.timeout = timeout
        opts = [("grpc.enable_retries", 0), ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 500)]
        self.channel = (grpc.secure_channel(endpoint, credentials, opts) if credentials is not None
                        else grpc.insecure_channel(endpoint, opts))
        self.kv = rpc.KVStub(self.channel)
        self.lease = rpc.LeaseStub(self.channel)
        self.watch = rpc.WatchStub(self.channel)
        self.cluster = rpc.ClusterStub(self.channel)
        self.maintenance = rpc.MaintenanceStub(self.channel)
        self.lock = lockrpc.LockStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def call(self, method, request, write: bool, timeout: float | None = None):
        """Run one RPC; errors become :class:`Refused` or :class:`Indeterminate`."""
        try:
            return method(request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            if not write or exc.code() in DEFINITE:
                raise Refused(describe(exc)) from None
            raise Indeterminate(describe(exc)) from None

    # ---- the calls the workloads use ----------------------------------------------------
    def get(self, key: bytes, end: bytes = b"", serializable: bool = False, **kw) -> pb.RangeResponse:
        return self.call(self.kv.Range, pb.RangeRequest(key=key, range_end=end,
                                                        serializable=serializable, **kw), False)

    def put(self, key: bytes, value: bytes, lease: int = 0) -> pb.PutResponse:
        return self.call(self.kv.Put, pb.PutRequest(key=key, value=value, lease=lease), True)

    def delete(self, key: bytes, end: bytes = b"") -> pb.DeleteRangeResponse:
        return self.call(self.kv.DeleteRange, pb.DeleteRangeRequest(key=key, range_end=end), True)

    def txn(self, t: pb.TxnRequest, write: bool = True) -> pb.TxnResponse:
        return self.call(self.kv.Txn, t, write)

    def grant(self, ttl: int) -> pb.LeaseGrantResponse:
        return self.call(self.lease.LeaseGrant, pb.LeaseGrantRequest(TTL=ttl), True)

    def revoke(self, lease_id: int) -> pb.LeaseRevokeResponse:
        return self.call(self.lease.LeaseRevoke, pb.LeaseRevokeRequest(ID=lease_id), True)

    def keepalive(self, lease_id: int) -> pb.LeaseKeepAliveResponse:
        """One keep-alive round trip on a short stream."""
        def reqs():
            yield pb.LeaseKeepAliveRequest(ID=lease_id)
        try:
            for resp in self.lease.LeaseKeepAlive(reqs(), timeout=self.timeout):
                return resp
        except grpc.RpcError as exc:
            raise Indeterminate(describe(exc)) from None
        raise Indeterminate("keep-alive stream ended without an answer")

    def status(self, timeout: float | None = None) -> pb.StatusResponse:
        return self.call(self.maintenance.Status, pb.StatusRequest(), False, timeout)

    def lock_acquire(self, name: bytes, lease: int, timeout: float) -> lockpb.LockResponse:
        return self.call(self.lock.Lock, lockpb.LockRequest(name=name, lease=lease), True, timeout)

    def lock_release(self, key: bytes) -> lockpb.UnlockResponse:
        return self.call(self.lock.Unlock, lockpb.UnlockRequest(key=key), True)
