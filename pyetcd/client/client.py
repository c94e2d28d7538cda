"""A small synchronous etcd v3 client over gRPC (used by pyetcdctl and tests).

One :class:`Client` talks to one endpoint at a time (the first that answers
in ``dial_timeout``); every call takes ``timeout`` (etcdctl's
--command-timeout).  Errors come back as :class:`ClientError` carrying the
gRPC code name and etcd's message text.  With ``user``/``password`` the
client authenticates first and sends the token in the ``token`` metadata,
as the Go client does.
"""
from __future__ import annotations

from typing import Iterator

import grpc

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.etcdserverpb import rpc_pb2_grpc as rpc
from pyetcd.util.tlsfiles import channel_credentials


class ClientError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def parse_endpoint(endpoint: str) -> tuple[str, bool]:
    """'http://h:p' / 'https://h:p' / 'h:p' -> (host:port, tls?)."""
    if "://" in endpoint:
        scheme, _, rest = endpoint.partition("://")
        return rest.rstrip("/"), scheme in ("https", "unixs")
    return endpoint, False


class Client:
    def __init__(self, endpoints: list[str] | str, *, dial_timeout: float = 2.0,
                 timeout: float = 5.0, cacert: str | None = None, cert: str | None = None,
                 key: str | None = None, insecure_transport: bool = True,
                 user: str | None = None, password: str | None = None):
        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(",") if e]
        self.endpoints = endpoints
        self.timeout = timeout
        self.dial_timeout = dial_timeout
        self._creds = None
        if cacert or cert or key:
            self._creds = channel_credentials(cacert, cert, key)
        self.insecure_transport = insecure_transport
        self.channel = None
        self.endpoint = None
        self._metadata: list[tuple[str, str]] = []
        self._connect()
        if user:
            if password is None and ":" in user:
                user, password = user.split(":", 1)
            resp = self._call(rpc.AuthStub(self.channel).Authenticate,
                              pb.AuthenticateRequest(name=user, password=password or ""))
            self._metadata = [("token", resp.token)]

    def _connect(self) -> None:
        last = None
        for ep in self.endpoints:
            target, tls = parse_endpoint(ep)
            if tls or (self._creds is not None and not self.insecure_transport):
                creds = self._creds or grpc.ssl_channel_credentials()
                ch = grpc.secure_channel(target, creds)
            else:
                ch = grpc.insecure_channel(target)
            try:
                grpc.channel_ready_future(ch).result(timeout=self.dial_timeout)
            except grpc.FutureTimeoutError as exc:
                last = exc
                ch.close()
                continue
            self.channel, self.endpoint = ch, ep
            self.kv = rpc.KVStub(ch)
            self.maintenance = rpc.MaintenanceStub(ch)
            self.cluster = rpc.ClusterStub(ch)
            self.lease = rpc.LeaseStub(ch)
            return
        raise ClientError("DeadlineExceeded", "context deadline exceeded") from last

    @property
    def metadata(self) -> list[tuple[str, str]]:
        """The call metadata (the auth token, once authenticated)."""
        return list(self._metadata)

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request, timeout: float | None = None):
        try:
            return method(request, timeout=timeout or self.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise ClientError(exc.code().name, exc.details() or str(exc)) from None

    # ---- KV -------------------------------------------------------------------------
    def put(self, key: bytes, value: bytes, lease: int = 0, prev_kv: bool = False) -> pb.PutResponse:
        return self._call(self.kv.Put, pb.PutRequest(key=key, value=value, lease=lease,
                                                     prev_kv=prev_kv))

    def get(self, key: bytes, range_end: bytes = b"", **kw) -> pb.RangeResponse:
        return self._call(self.kv.Range, pb.RangeRequest(key=key, range_end=range_end, **kw))

    def delete(self, key: bytes, range_end: bytes = b"", prev_kv: bool = False) -> pb.DeleteRangeResponse:
        return self._call(self.kv.DeleteRange,
                          pb.DeleteRangeRequest(key=key, range_end=range_end, prev_kv=prev_kv))

    def txn(self, request: pb.TxnRequest) -> pb.TxnResponse:
        return self._call(self.kv.Txn, request)

    def compact(self, revision: int, physical: bool = False) -> pb.CompactionResponse:
        return self._call(self.kv.Compact, pb.CompactionRequest(revision=revision,
                                                                physical=physical))

    # ---- lease ------------------------------------------------------------------------
    def lease_grant(self, ttl: int, lease_id: int = 0) -> pb.LeaseGrantResponse:
        return self._call(self.lease.LeaseGrant, pb.LeaseGrantRequest(TTL=ttl, ID=lease_id))

    # ---- maintenance --------------------------------------------------------------------
    def status(self) -> pb.StatusResponse:
        return self._call(self.maintenance.Status, pb.StatusRequest())

    def alarm(self, action: int = pb.AlarmRequest.GET, member_id: int = 0,
              alarm: int = pb.NONE) -> pb.AlarmResponse:
        return self._call(self.maintenance.Alarm,
                          pb.AlarmRequest(action=action, memberID=member_id, alarm=alarm))

    def alarm_list(self) -> list[pb.AlarmMember]:
        return list(self.alarm().alarms)

    def alarm_disarm(self) -> list[pb.AlarmMember]:
        """etcdctl alarm disarm: deactivate every active alarm."""
        out = []
        for a in self.alarm_list():
            out.extend(self.alarm(pb.AlarmRequest.DEACTIVATE, a.memberID, a.alarm).alarms)
        return out

    def defragment(self, timeout: float | None = None) -> pb.DefragmentResponse:
        return self._call(self.maintenance.Defragment, pb.DefragmentRequest(), timeout)

    def hash_kv(self, revision: int = 0) -> pb.HashKVResponse:
        return self._call(self.maintenance.HashKV, pb.HashKVRequest(revision=revision))

    def hash(self) -> pb.HashResponse:
        return self._call(self.maintenance.Hash, pb.HashRequest())

    def snapshot(self, timeout: float | None = None) -> Iterator[pb.SnapshotResponse]:
        try:
            for resp in self.maintenance.Snapshot(pb.SnapshotRequest(), timeout=timeout,
                                                  metadata=self._metadata):
                yield resp
        except grpc.RpcError as exc:
            raise ClientError(exc.code().name, exc.details() or str(exc)) from None

    def save_snapshot(self, path: str, timeout: float | None = None) -> int:
        """etcd's snapshot.Save: stream into ``path.part``, check the size
        says a sha256 follows, fsync, rename; returns the size."""
        part = path + ".part"
        n = 0
        with open(part, "wb") as f:
            for resp in self.snapshot(timeout):
                f.write(resp.blob)
                n += len(resp.blob)
            f.flush()
            import os
            os.fsync(f.fileno())
        if n % 512 != 32:
            raise ClientError("DataLoss", f"sha256 checksum not found [bytes: {n}]")
        import os
        os.replace(part, path)
        return n

    # ---- cluster ----------------------------------------------------------------------
    def member_list(self) -> pb.MemberListResponse:
        return self._call(self.cluster.MemberList, pb.MemberListRequest())

    def member_add(self, peer_urls: list[str], learner: bool = False) -> pb.MemberAddResponse:
        return self._call(self.cluster.MemberAdd, pb.MemberAddRequest(peerURLs=peer_urls,
                                                                      isLearner=learner))

    def member_remove(self, member_id: int) -> pb.MemberRemoveResponse:
        return self._call(self.cluster.MemberRemove, pb.MemberRemoveRequest(ID=member_id))

    def member_update(self, member_id: int, peer_urls: list[str]) -> pb.MemberUpdateResponse:
        return self._call(self.cluster.MemberUpdate, pb.MemberUpdateRequest(ID=member_id,
                                                                            peerURLs=peer_urls))

    def member_promote(self, member_id: int) -> pb.MemberPromoteResponse:
        return self._call(self.cluster.MemberPromote, pb.MemberPromoteRequest(ID=member_id))

    # ---- watch ------------------------------------------------------------------------
    def watch(self, create: pb.WatchCreateRequest) -> Iterator[pb.WatchResponse]:
        """One watcher on its own stream; yields every WatchResponse (the
        created notice first) until the stream ends or the caller stops."""
        import threading
        done = threading.Event()

        def requests():
            yield pb.WatchRequest(create_request=create)
            done.wait()  # the request side stays open as long as we watch

        stream = rpc.WatchStub(self.channel).Watch(requests(), metadata=self._metadata)
        try:
            for resp in stream:
                yield resp
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise ClientError(exc.code().name, exc.details() or str(exc)) from None
        finally:
            done.set()
            stream.cancel()

    # ---- lease ------------------------------------------------------------------------
    def lease_revoke(self, lease_id: int) -> pb.LeaseRevokeResponse:
        return self._call(self.lease.LeaseRevoke, pb.LeaseRevokeRequest(ID=lease_id))

    def lease_time_to_live(self, lease_id: int, keys: bool = False) -> pb.LeaseTimeToLiveResponse:
        return self._call(self.lease.LeaseTimeToLive, pb.LeaseTimeToLiveRequest(ID=lease_id, keys=keys))

    def leases(self) -> pb.LeaseLeasesResponse:
        return self._call(self.lease.LeaseLeases, pb.LeaseLeasesRequest())

    def keep_alive(self, lease_id: int, every=None) -> Iterator[pb.LeaseKeepAliveResponse]:
        """Renew the lease: one request now, then one each ``every(ttl)``
        seconds (None: only once); yields each answer until the lease is gone
        (an answer with TTL <= 0 ends it, as the Go client's channel closes)."""
        import queue as _queue
        reqs: _queue.Queue = _queue.Queue()
        reqs.put(pb.LeaseKeepAliveRequest(ID=lease_id))

        def requests():
            while True:
                r = reqs.get()
                if r is None:
                    return
                yield r

        stream = self.lease.LeaseKeepAlive(requests(), metadata=self._metadata)
        try:
            for resp in stream:
                yield resp
                if resp.TTL <= 0 or every is None:
                    return
                import time as _time
                _time.sleep(every(resp.TTL))
                reqs.put(pb.LeaseKeepAliveRequest(ID=lease_id))
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise ClientError(exc.code().name, exc.details() or str(exc)) from None
        finally:
            reqs.put(None)
            stream.cancel()
