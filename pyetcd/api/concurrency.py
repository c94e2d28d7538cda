"""Server-side recipes behind the Lock and Election services.

etcd serves v3lock and v3election with its Go ``concurrency`` client talking
to the server itself (``mutex.go``, ``election.go``, ``key.go``); this module
is the same logic against the server's facade directly: writes go through
the log, reads are linearizable, waits use the server's watch hub.  Keys and revisions are exactly etcd's, so a lock taken
here and one taken by ``etcdctl lock`` (client-side recipe) exclude each other.

- lock key: ``<name>/<lease id in hex>``, value "", attached to the lease;
  the owner is the key with the lowest create revision under ``<name>/``;
- a waiter waits for every key under the prefix created before its own to be
  deleted, then **re-reads its own key**: if the session lease expired
  meanwhile the key is gone and the lock is refused (the bug Jepsen found in
  etcd 3.4.3, fixed in etcd #11408);
- a waiter whose request is abandoned deletes its key (etcd's Unlock on error).
"""
from __future__ import annotations

import asyncio

from pyetcd import errors
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.mvccpb.kv_pb2 import Event
from pyetcd.util.keys import prefix_end

DEFAULT_SESSION_TTL = 60  # concurrency.defaultSessionTTL

ERR_SESSION_EXPIRED = errors.EtcdError("Unknown", "mutex: session is expired")
ERR_NOT_LEADER = errors.EtcdError("Unknown", "election: not leader")
ERR_NO_LEADER = errors.EtcdError("Unknown", "election: no leader")
ERR_MISSING_LEADER_KEY = errors.EtcdError("Unknown", '"leader" field must be provided')


def compare_create(key: bytes, rev: int) -> pb.Compare:
    return pb.Compare(result=pb.Compare.EQUAL, target=pb.Compare.CREATE, key=key,
                      create_revision=rev)


def first_create(pfx: bytes) -> pb.RangeRequest:
    """WithFirstCreate: the oldest key under the prefix."""
    return pb.RangeRequest(key=pfx, range_end=prefix_end(pfx), limit=1,
                           sort_target=pb.RangeRequest.CREATE, sort_order=pb.RangeRequest.ASCEND)


def last_create(pfx: bytes, max_create_rev: int) -> pb.RangeRequest:
    """WithLastCreate + WithMaxCreateRev: the newest key created at or before."""
    return pb.RangeRequest(key=pfx, range_end=prefix_end(pfx), limit=1,
                           sort_target=pb.RangeRequest.CREATE, sort_order=pb.RangeRequest.DESCEND,
                           max_create_revision=max_create_rev)


def as_client_error(exc: errors.EtcdError) -> errors.EtcdError:
    """What etcd's services answer for an error their internal client got:
    the Go client turns etcd's error texts into its own error values, which
    carry no gRPC status, so the text is sent with code Unknown."""
    return errors.EtcdError("Unknown", exc.message)


class LocalClient:
    """The few client calls the recipes need, served by this member."""

    def __init__(self, server):
        self.s = server

    @staticmethod
    async def _call(coro):
        try:
            return await coro
        except errors.EtcdError as exc:
            raise as_client_error(exc) from None

    async def txn(self, t: pb.TxnRequest) -> pb.TxnResponse:
        return await self._call(self.s.txn(t))

    async def get(self, r: pb.RangeRequest) -> pb.RangeResponse:
        return await self._call(self.s.range(r))

    async def delete(self, key: bytes) -> pb.DeleteRangeResponse:
        return await self._call(self.s.delete_range(pb.DeleteRangeRequest(key=key)))

    async def grant(self, ttl: int) -> int:
        resp = await self._call(self.s.lease_grant(pb.LeaseGrantRequest(TTL=ttl)))
        return resp.ID

    async def watch(self, key: bytes, end: bytes | None, rev: int):
        """Responses (store WatchResponses with events) of a watch from ``rev``;
        raises COMPACTED when that revision is gone."""
        ready = asyncio.Event()
        ws = self.s.watch_hub.new_stream(on_ready=ready.set)
        try:
            ws.watch(0, key, end, rev)
            while True:
                item = ws.pop()
                if item is None:
                    ready.clear()
                    await ready.wait()
                    continue
                if item.compact_revision:
                    raise errors.COMPACTED()
                if item.events:
                    yield item
        finally:
            ws.close()

    async def wait_delete(self, key: bytes, rev: int) -> None:
        async for resp in self.watch(key, None, rev):
            if any(ev.type == Event.DELETE for ev in resp.events):
                return

    async def wait_deletes(self, pfx: bytes, max_create_rev: int) -> pb.ResponseHeader:
        """Until no key under ``pfx`` created at or before ``max_create_rev`` is left."""
        while True:
            resp = await self.get(last_create(pfx, max_create_rev))
            if not resp.kvs:
                return resp.header
            await self.wait_delete(resp.kvs[0].key, resp.header.revision)

    async def cleanup(self, coro) -> None:
        """Run a clean-up write even when the caller was cancelled."""
        try:
            await asyncio.shield(asyncio.ensure_future(coro))
        except (errors.EtcdError, asyncio.CancelledError):
            pass


async def session_lease(c: LocalClient, lease: int) -> int:
    """concurrency.NewSession(WithLease(lease)): 0 grants a 60 s lease."""
    if lease == 0:
        return await c.grant(DEFAULT_SESSION_TTL)
    return lease


async def lock(c: LocalClient, name: bytes, lease: int) -> tuple[bytes, pb.ResponseHeader]:
    lease = await session_lease(c, lease)
    pfx = name + b"/"
    my_key = pfx + b"%x" % lease
    t = pb.TxnRequest(
        compare=[compare_create(my_key, 0)],
        success=[pb.RequestOp(request_put=pb.PutRequest(key=my_key, value=b"", lease=lease)),
                 pb.RequestOp(request_range=first_create(pfx))],
        failure=[pb.RequestOp(request_range=pb.RangeRequest(key=my_key)),
                 pb.RequestOp(request_range=first_create(pfx))])
    resp = await c.txn(t)
    my_rev = resp.header.revision
    if not resp.succeeded:
        my_rev = resp.responses[0].response_range.kvs[0].create_revision
    owner = resp.responses[1].response_range.kvs
    if not owner or owner[0].create_revision == my_rev:
        return my_key, resp.header
    try:
        await c.wait_deletes(pfx, my_rev - 1)
        # the session may have expired while waiting: the key must still be ours
        g = await c.get(pb.RangeRequest(key=my_key))
    except BaseException:
        await c.cleanup(c.delete(my_key))
        raise
    if not g.kvs:
        raise ERR_SESSION_EXPIRED
    return my_key, g.header


# ---- election (concurrency/election.go) ----------------------------------------------------
class Election:
    """One campaign: the leader key ``<name>/<lease hex>`` and its create revision."""

    def __init__(self, c: LocalClient, name: bytes, key: bytes = b"", rev: int = 0,
                 lease: int = 0):
        self.c = c
        self.name = name
        self.pfx = name + b"/"
        self.key = key
        self.rev = rev
        self.lease = lease
        self.is_leader = bool(key)  # ResumeElection: we hold a session
        self.header: pb.ResponseHeader | None = None

    async def campaign(self, value: bytes) -> None:
        c = self.c
        self.lease = await session_lease(c, self.lease)
        k = self.pfx + b"%x" % self.lease
        t = pb.TxnRequest(
            compare=[compare_create(k, 0)],
            success=[pb.RequestOp(request_put=pb.PutRequest(key=k, value=value, lease=self.lease))],
            failure=[pb.RequestOp(request_range=pb.RangeRequest(key=k))])
        resp = await c.txn(t)
        self.key, self.rev, self.is_leader = k, resp.header.revision, True
        if not resp.succeeded:
            kv = resp.responses[0].response_range.kvs[0]
            self.rev = kv.create_revision
            if kv.value != value:
                try:
                    await self.proclaim(value)
                except errors.EtcdError:
                    await self.resign()
                    raise
        try:
            await c.wait_deletes(self.pfx, self.rev - 1)
        except asyncio.CancelledError:
            await c.cleanup(self.resign())
            raise
        except errors.EtcdError:
            self.is_leader = False
            raise
        self.header = resp.header

    async def proclaim(self, value: bytes) -> None:
        if not self.is_leader:
            raise ERR_NOT_LEADER
        t = pb.TxnRequest(
            compare=[compare_create(self.key, self.rev)],
            success=[pb.RequestOp(request_put=pb.PutRequest(key=self.key, value=value,
                                                             lease=self.lease))])
        resp = await self.c.txn(t)
        if not resp.succeeded:
            self.key = b""
            raise ERR_NOT_LEADER
        self.header = resp.header

    async def resign(self) -> None:
        if not self.is_leader:
            return
        t = pb.TxnRequest(compare=[compare_create(self.key, self.rev)],
                          success=[pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(
                              key=self.key))])
        try:
            resp = await self.c.txn(t)
            self.header = resp.header
        finally:
            self.key = b""
            self.is_leader = False

    async def leader(self) -> pb.RangeResponse:
        resp = await self.c.get(first_create(self.pfx))
        if not resp.kvs:
            raise ERR_NO_LEADER
        return resp

    async def observe(self):
        """(header, kv) for the leader's key and each of its proclamations, for
        one leader after another (concurrency.Election.Observe)."""
        c = self.c
        while True:
            resp = await c.get(first_create(self.pfx))
            if resp.kvs:
                hdr, kv = resp.header, resp.kvs[0]
            else:
                hdr = kv = None
                async for wr in c.watch(self.pfx, prefix_end(self.pfx), resp.header.revision):
                    puts = [ev for ev in wr.events if ev.type == Event.PUT]
                    if puts:
                        kv = puts[0].kv
                        hdr = pb.ResponseHeader()
                        c.s.header(hdr, kv.mod_revision)
                        break
            yield hdr, kv
            async for wr in c.watch(kv.key, None, hdr.revision + 1):
                deleted = False
                for ev in wr.events:
                    if ev.type == Event.DELETE:
                        deleted = True
                        break
                    h = pb.ResponseHeader()
                    c.s.header(h, wr.revision)
                    yield h, ev.kv
                if deleted:
                    break
