"""Forwarding to the leader: the requests etcd serves only on the leader
(lease keep-alive and time-to-live, which only the leader can answer, and
learner promotion) go from a follower to the leader's client URL over gRPC,
with the request's token, TLS from the client certificate flags (the same
credentials a client library builds: :mod:`pyetcd.util.tlsfiles`)."""
from __future__ import annotations

import logging
from typing import Callable

import grpc

from pyetcd import errors
from pyetcd.auth.store import CREDENTIALS
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.util.tasks import spawn
from pyetcd.util.tlsfiles import channel_credentials

log = logging.getLogger("pyetcd.forward")


def go_code_name(code: grpc.StatusCode) -> str:
    """``DEADLINE_EXCEEDED`` -> ``DeadlineExceeded`` (errors.EtcdError codes)."""
    return code.name.title().replace("_", "")


class LeaderForwarder:
    """``leader_url()``: the leader's first client URL (raises NO_LEADER when
    there is none); ``tls_files()``: (cert, key, CA) for https URLs."""

    def __init__(self, leader_url: Callable[[], str], tls_files: Callable[[], tuple],
                 timeout: float):
        self.leader_url = leader_url
        self.tls_files = tls_files
        self.timeout = timeout
        self._channel: tuple[str, grpc.aio.Channel] | None = None

    def channel(self) -> grpc.aio.Channel:
        """A cached channel to the leader (replaced when the leader moves)."""
        url = self.leader_url()
        target = url.split("://", 1)[-1]
        if self._channel is not None:
            if self._channel[0] == target:
                return self._channel[1]
            spawn(self._channel[1].close(), log, "closing the channel to the old leader")
        if url.startswith("https"):
            cert, key, ca = self.tls_files()
            ch = grpc.aio.secure_channel(target, channel_credentials(ca or None, cert, key))
        else:
            ch = grpc.aio.insecure_channel(target)
        self._channel = (target, ch)
        return ch

    async def forward(self, service: str, method: str, request, stream: bool = False,
                      timeout: float | None = None):
        """Send ``request`` to the leader's ``service.method``; a stream
        method gets one request and returns the first response.  ``timeout``:
        at most this long (never more than the forwarder's own timeout)."""
        timeout = self.timeout if timeout is None else min(timeout, self.timeout)
        resp_type = getattr(pb, type(request).__name__.replace("Request", "Response"))
        ch = self.channel()
        kind = ch.stream_stream if stream else ch.unary_unary
        call = kind(f"/etcdserverpb.{service}/{method}",
                    request_serializer=type(request).SerializeToString,
                    response_deserializer=resp_type.FromString)
        creds = CREDENTIALS.get()
        md = (("token", creds.token),) if creds is not None and creds.token else None
        try:
            if stream:
                async for resp in call(iter([request]), timeout=timeout, metadata=md):
                    return resp
                raise errors.NO_LEADER()
            return await call(request, timeout=timeout, metadata=md)
        except grpc.aio.AioRpcError as exc:
            raise errors.EtcdError(go_code_name(exc.code()), exc.details()) from None

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel[1].close()
            self._channel = None
