"""The Watch service: one bidirectional stream carries many watchers.

Behaviour follows etcd's ``v3rpc/watch.go``:
- a create request is answered with ``created`` (and the watch id: the
  client's, or the stream's lowest free id from 0); an empty range, a
  duplicate id or a negative start revision answer ``created`` + ``canceled``
  with id -1 and etcd's cancel reason;
- a cancel of a known id is answered with ``canceled``; unknown ids get nothing;
- a progress request is answered (id -1, header.revision = current revision)
  only when every watcher of the stream is synced;
- ``progress_notify`` watchers get an empty response every
  ``--experimental-watch-progress-notify-interval`` (default 10 m) unless
  events were sent since the last tick;
- ``prev_kv`` is read at send time from the revision before each event
  (left out when that revision is compacted), ``fragment`` splits responses
  larger than --max-request-bytes;
- a compacted start revision ends in one response with ``canceled`` and
  ``compact_revision`` (header revision 0, as etcd sends it);
- with the require-leader metadata (``hasleader=true``) the stream is refused
  when there is no leader and ended with ``etcdserver: no leader`` after three
  election timeouts without one.

Responses leave in the order they were queued, so ``created`` always
precedes a watcher's events and its events precede its ``canceled``.
"""
from __future__ import annotations

import asyncio
import logging

import grpc

from pyetcd import errors
from pyetcd.mvcc.watchable_store import WatchError, WatchResponse
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.mvccpb.kv_pb2 import Event
from pyetcd.util.duration import parse_go_duration

from .common import StreamDecodeError, require_leader, set_credentials, status_code

log = logging.getLogger("pyetcd.api.watch")

MAX_NO_LEADER_CHECKS = 3    # etcd's maxNoLeaderCnt
DEFAULT_PROGRESS_INTERVAL = 600.0  # etcd's default --experimental-watch-progress-notify-interval


class _StreamState:
    __slots__ = ("prev_kv", "fragment", "progress", "error", "ready")

    def __init__(self):
        self.prev_kv: set[int] = set()
        self.fragment: set[int] = set()
        self.progress: dict[int, bool] = {}
        self.error: tuple | None = None
        self.ready = asyncio.Event()


def fill_header(s, h: pb.ResponseHeader, revision: int) -> None:
    """The server's header with exactly ``revision`` (0 stays 0, as etcd
    sends a compaction cancel)."""
    s.header(h)
    h.revision = revision


def fragments(resp: pb.WatchResponse, limit: int) -> list[pb.WatchResponse]:
    """etcd's sendFragments: split a large response at event boundaries,
    every part but the last marked ``fragment``."""
    if resp.ByteSize() < limit or len(resp.events) < 2:
        return [resp]
    out = []
    events = list(resp.events)
    idx = 0
    while True:
        cur = pb.WatchResponse()
        cur.CopyFrom(resp)
        del cur.events[:]
        cur.fragment = True
        while idx < len(events):
            cur.events.append(events[idx])
            if len(cur.events) > 1 and cur.ByteSize() >= limit:
                del cur.events[-1]
                break
            idx += 1
        if idx == len(events):
            cur.fragment = False
        out.append(cur)
        if not cur.fragment:
            return out


class WatchServicer:
    def __init__(self, server):
        self.s = server
        try:
            self.progress_interval = parse_go_duration(
                server.cfg.experimental_watch_progress_notify_interval or "0") \
                or DEFAULT_PROGRESS_INTERVAL
        except ValueError:
            self.progress_interval = DEFAULT_PROGRESS_INTERVAL

    async def Watch(self, request_iterator, context):
        s = self.s
        need_leader = require_leader(context)
        if need_leader and s.leader_id == 0:
            await context.abort(grpc.StatusCode.UNAVAILABLE, errors.NO_LEADER.message)
        set_credentials(s, context)  # before the tasks below copy the context
        st = _StreamState()
        ws = s.watch_hub.new_stream(on_ready=st.ready.set)
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._recv(request_iterator, ws, st)),
                 loop.create_task(self._ticks(ws, st, need_leader))]
        try:
            while True:
                item = ws.pop()
                if item is None:
                    if st.error is not None:
                        await context.abort(*st.error)
                    st.ready.clear()
                    await st.ready.wait()
                    continue
                if isinstance(item, WatchResponse):
                    for resp in self._responses(item, st):
                        yield resp
                else:
                    yield item
        finally:
            for t in tasks:
                t.cancel()
            ws.close()

    # ---- requests ---------------------------------------------------------------------------
    async def _recv(self, request_iterator, ws, st: _StreamState) -> None:
        try:
            async for req in request_iterator:
                if isinstance(req, StreamDecodeError):
                    st.error = (grpc.StatusCode.INTERNAL, req.error)
                    st.ready.set()
                    return
                kind = req.WhichOneof("request_union")
                if kind == "create_request":
                    reason = await self._denied(req.create_request)
                    if reason is not None:
                        self._control(ws, watch_id=-1, created=True, canceled=True,
                                      cancel_reason=reason)
                        continue
                    self._create(req.create_request, ws, st)
                elif kind == "cancel_request":
                    self._cancel(req.cancel_request.watch_id, ws, st)
                elif kind == "progress_request":
                    ws.request_progress_all()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the stream ends with a clean status
            if not isinstance(exc, (grpc.RpcError, grpc.aio.AioRpcError)):
                log.exception("watch stream receive failed")
            st.error = (grpc.StatusCode.CANCELLED, errors.WATCH_CANCELED.message)
            st.ready.set()

    async def _denied(self, creq: pb.WatchCreateRequest) -> str | None:
        """etcd's isWatchPermitted: the cancel reason, or None when allowed.
        (etcd checks the normalised request: an end of "\0" became empty.)"""
        gate = self.s.gate
        if not gate.enabled:
            return None
        key = creq.key or b"\x00"
        end = b"" if creq.range_end == b"\x00" else creq.range_end
        try:
            await gate.check("range", pb.RangeRequest(key=key, range_end=end))
        except errors.EtcdError:
            # etcd 3.5.1 sends the gRPC error's text for every refusal
            return "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
        return None

    def _control(self, ws, **fields) -> None:
        resp = pb.WatchResponse(**fields)
        fill_header(self.s, resp.header, ws.rev())
        ws.put_control(resp)

    def _create(self, creq: pb.WatchCreateRequest, ws, st: _StreamState) -> None:
        key = creq.key or b"\x00"  # \0 is the smallest key
        if creq.start_revision < 0:
            self._control(ws, watch_id=-1, created=True, canceled=True,
                          cancel_reason=errors.COMPACTED.message)
            return
        end = creq.range_end
        end = None if not end else (b"" if end == b"\x00" else end)
        filters = set(creq.filters)
        try:
            wid = ws.watch(creq.watch_id, key, end, creq.start_revision,
                           no_put=pb.WatchCreateRequest.NOPUT in filters,
                           no_delete=pb.WatchCreateRequest.NODELETE in filters)
        except WatchError as exc:
            self._control(ws, watch_id=-1, created=True, canceled=True, cancel_reason=str(exc))
            return
        if creq.progress_notify:
            st.progress[wid] = True
        if creq.prev_kv:
            st.prev_kv.add(wid)
        if creq.fragment:
            st.fragment.add(wid)
        self._control(ws, watch_id=wid, created=True)

    def _cancel(self, wid: int, ws, st: _StreamState) -> None:
        if ws.cancel(wid):
            self._control(ws, watch_id=wid, canceled=True)
            st.progress.pop(wid, None)
            st.prev_kv.discard(wid)
            st.fragment.discard(wid)

    # ---- timers: progress notifications, leader monitoring ---------------------------------
    async def _ticks(self, ws, st: _StreamState, need_leader: bool) -> None:
        s = self.s
        election = max(s.cfg.election_timeout / 1000.0, 0.01) if need_leader else None
        interval = self.progress_interval
        loop = asyncio.get_running_loop()
        next_progress = loop.time() + interval
        no_leader = 0
        while True:
            wait = next_progress - loop.time()
            if election is not None:
                wait = min(wait, election)
            await asyncio.sleep(max(wait, 0))
            if election is not None:
                no_leader = no_leader + 1 if s.leader_id == 0 else 0
                if no_leader >= MAX_NO_LEADER_CHECKS:
                    st.error = (status_code(errors.NO_LEADER.code), errors.NO_LEADER.message)
                    st.ready.set()
                    return
            if loop.time() >= next_progress:
                next_progress = loop.time() + interval
                for wid, due in list(st.progress.items()):
                    if due:
                        ws.request_progress(wid)
                    st.progress[wid] = True

    # ---- responses --------------------------------------------------------------------------
    def _responses(self, item: WatchResponse, st: _StreamState) -> list[pb.WatchResponse]:
        s = self.s
        resp = pb.WatchResponse(watch_id=item.watch_id, compact_revision=item.compact_revision,
                                canceled=item.compact_revision != 0)
        fill_header(s, resp.header, item.revision)
        if not item.events:
            return [resp]
        resp.events.extend(item.events)
        wid = item.watch_id
        if wid in st.prev_kv:
            self._add_prev_kvs(resp)
        if st.progress.get(wid):
            st.progress[wid] = False  # events sent: skip the next progress notification
        if wid in st.fragment:
            return fragments(resp, s.max_request_bytes)
        return [resp]

    def _add_prev_kvs(self, resp: pb.WatchResponse) -> None:
        for ev in resp.events:
            if ev.type == Event.PUT and ev.kv.create_revision == ev.kv.mod_revision:
                continue  # a create has no previous value
            prev = self.s.revision_kv(ev.kv.key, ev.kv.mod_revision - 1)
            if prev is not None:
                ev.prev_kv.CopyFrom(prev)
