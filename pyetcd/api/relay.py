"""Front-end processes: more cores for gRPC, one member.

grpcio's cost per call is most of what a request costs, and a Python
process has one core's worth of it.  With ``--frontends N`` the member
starts N front-end processes (``python -m pyetcd.frontend``) that listen on
the same client ports (SO_REUSEPORT: the kernel spreads connections over
every listener, the member's own gRPC server included).  A front-end
answers gRPC itself and relays each call, as raw bytes, to the member over
one unix socket: calls, stream messages and their answers from many
clients share its frames, so the member pays a few microseconds per
request instead of grpcio's cost.  In the member, :class:`RelayHub` runs
each relayed call through the same handlers the member's own gRPC server
uses (the servicers of this package, with their validation, auth, metrics
and errors), with a :class:`RelayContext` standing in for grpc's.

Frames (both ways): ``>IBI`` (length of the rest, type, call id), then by type
- CALL: ``>HI`` method index (``METHODS``), timeout in ms (``NO_TIMEOUT``:
  none), the metadata pyetcd reads (count, then ``>B`` key length, key,
  ``>H`` value length, value), ``>H`` length of the client certificate's
  CN, the CN, then the request (empty for a client-streaming call);
- SEND: a client stream's next message; HALF: the client stream ended;
  CANCEL: the client went away; ACK: ``>I`` response messages of a stream
  the client has taken (the member keeps at most ``WINDOW`` unacknowledged);
  STATS (call id 0): ``>I`` ranges the front-end answered itself since the
  last STATS (counted in the member's gRPC metrics);
- MSG: a response message; END: ``>B`` status code, the details (utf-8).
"""
from __future__ import annotations

import asyncio
import logging
import struct

import grpc
from google.protobuf.message import DecodeError

from . import services
from .common import client_cn

log = logging.getLogger("pyetcd.relay")

CALL, SEND, HALF, CANCEL, MSG, END, ACK, STATS = 1, 2, 3, 4, 5, 6, 7, 8
# a streaming call's responses the member sends ahead of the client (then it
# waits for ACKs: grpc's flow control, carried across the relay)
WINDOW = 32
NO_TIMEOUT = 0xFFFFFFFF
# the member's shared state file: the revision it has applied, its term
STATE = struct.Struct(">QQ")
_HEAD = struct.Struct(">IBI")
_CALL = struct.Struct(">HI")
_U8, _U16 = struct.Struct(">B"), struct.Struct(">H")
FORWARDED_METADATA = ("token", "authorization", "hasleader")
_CODE_INDEX = {c: c.value[0] for c in grpc.StatusCode}
_BY_NUMBER = {c.value[0]: c for c in grpc.StatusCode}


def methods() -> list[tuple[str, str]]:
    """[(path, kind)] of every method, in an order both sides agree on;
    kind: unary, server_stream, bidi_stream."""
    out = []
    for d in services():
        for m in d.methods:
            kind = ("bidi_stream" if m.client_streaming and m.server_streaming else
                    "server_stream" if m.server_streaming else
                    "client_stream" if m.client_streaming else "unary")
            out.append((f"/{d.full_name}/{m.name}", kind))
    return out


METHODS = methods()
METHOD_INDEX = {path: i for i, (path, _) in enumerate(METHODS)}


def frame(kind: int, call_id: int, body: bytes = b"") -> bytes:
    return _HEAD.pack(len(body) + 5, kind, call_id) + body


def call_body(method: int, timeout: float | None, md, cn: str | None, payload: bytes) -> bytes:
    t = NO_TIMEOUT if timeout is None else max(0, min(NO_TIMEOUT - 1, int(timeout * 1000)))
    parts = [_CALL.pack(method, t), _U8.pack(len(md))]
    for k, v in md:
        kb, vb = k.encode(), v.encode() if isinstance(v, str) else v
        parts += [_U8.pack(len(kb)), kb, _U16.pack(len(vb)), vb]
    cnb = cn.encode() if cn else b""
    parts += [_U16.pack(len(cnb)), cnb, payload]
    return b"".join(parts)


def parse_call(body: memoryview):
    method, t = _CALL.unpack_from(body, 0)
    n = body[6]
    off = 7
    md = []
    for _ in range(n):
        kl = body[off]
        k = bytes(body[off + 1:off + 1 + kl]).decode()
        off += 1 + kl
        (vl,) = _U16.unpack_from(body, off)
        md.append((k, bytes(body[off + 2:off + 2 + vl]).decode(errors="replace")))
        off += 2 + vl
    (cl,) = _U16.unpack_from(body, off)
    cn = bytes(body[off + 2:off + 2 + cl]).decode(errors="replace") or None
    off += 2 + cl
    return method, (None if t == NO_TIMEOUT else t / 1000.0), tuple(md), cn, bytes(body[off:])


class FrameConn(asyncio.Protocol):
    """One end of the unix socket: frames out, coalesced per loop iteration
    into one write; frames in, handed to ``on_frame(kind, call_id, body)``."""

    def __init__(self, on_frame, on_lost=None):
        self.on_frame, self.on_lost = on_frame, on_lost
        self.transport = None
        self._out: list[bytes] = []
        self._buf = bytearray()
        self._loop = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._loop = asyncio.get_running_loop()

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(data)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and not self.closed:
            self.transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        n = len(buf)
        off = 0
        view = memoryview(buf)
        try:
            while n - off >= 4:
                (length,) = struct.unpack_from(">I", buf, off)
                if n - off - 4 < length:
                    break
                kind, cid = buf[off + 4], int.from_bytes(buf[off + 5:off + 9], "big")
                self.on_frame(kind, cid, view[off + 9:off + 4 + length])
                off += 4 + length
        finally:
            view.release()
        if off:
            del buf[:off]

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.on_lost is not None:
            self.on_lost(exc)


# ---- the member's side ------------------------------------------------------------------
class RelayContext:
    """What the servicers use of grpc's ServicerContext, for a relayed call."""

    __slots__ = ("_md", "_cn", "_deadline", "_code", "_details")

    def __init__(self, md, cn, timeout):
        self._md, self._cn = md, cn
        self._deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        self._code, self._details = None, ""

    def invocation_metadata(self):
        return self._md

    def auth_context(self):
        return {"x509_common_name": [self._cn.encode()]} if self._cn else {}

    def time_remaining(self):
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    async def abort(self, code, details=""):
        self._code, self._details = code, details
        raise grpc.aio.AbortError()

    def code(self):
        return self._code


class _Stream:
    """A relayed call's client messages (client- and bidi-streaming)."""

    __slots__ = ("queue", "decode")

    def __init__(self, decode):
        self.queue: asyncio.Queue = asyncio.Queue()
        self.decode = decode

    async def __aiter__(self):
        while True:
            item = await self.queue.get()
            if item is None:
                return
            yield self.decode(item) if self.decode else item


class RelayHub:
    """The member's end: a unix-socket server for its front-ends."""

    def __init__(self, table, on_stats=None):
        by_path = {f"/{d.full_name}/{name}": h for d, hs in table for name, h in hs.items()}
        self.handlers = [by_path.get(path) for path, _ in METHODS]
        self.server = None
        self.conns: set = set()
        self.on_stats = on_stats   # fn(ranges answered by a front-end)

    async def listen(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_unix_server(lambda: _HubConn(self), path)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for c in list(self.conns):
            c.abort_all()
            if c.transport is not None:
                c.transport.close()


class _HubConn(FrameConn):
    def __init__(self, hub: RelayHub):
        super().__init__(self._frame, self._lost)
        self.hub = hub
        self.calls: dict[int, asyncio.Task] = {}
        self.streams: dict[int, _Stream] = {}
        self.credits: dict[int, list] = {}   # call id -> [messages it may send, event]

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.hub.conns.add(self)

    def _lost(self, exc) -> None:
        self.hub.conns.discard(self)
        self.abort_all()

    def abort_all(self) -> None:
        for t in list(self.calls.values()):
            t.cancel()
        self.calls.clear()
        self.streams.clear()
        self.credits.clear()

    async def _send_streamed(self, cid: int, data: bytes) -> None:
        c = self.credits.get(cid)
        if c is None:
            c = self.credits[cid] = [WINDOW, asyncio.Event()]
        while c[0] <= 0:
            c[1].clear()
            await c[1].wait()
        c[0] -= 1
        self.send(frame(MSG, cid, data))

    def _frame(self, kind: int, cid: int, body: memoryview) -> None:
        if kind == CALL:
            method, timeout, md, cn, payload = parse_call(body)
            handler = self.hub.handlers[method] if method < len(self.hub.handlers) else None
            if handler is None:
                self.send(frame(END, cid, _U8.pack(_CODE_INDEX[grpc.StatusCode.UNIMPLEMENTED])))
                return
            ctx = RelayContext(md, cn, timeout)
            if handler.request_streaming:
                payload = self.streams[cid] = _Stream(handler.request_deserializer)
            task = asyncio.get_running_loop().create_task(self._serve(cid, handler, ctx, payload))
            self.calls[cid] = task
        elif kind == SEND:
            st = self.streams.get(cid)
            if st is not None:
                st.queue.put_nowait(bytes(body))
        elif kind == HALF:
            st = self.streams.get(cid)
            if st is not None:
                st.queue.put_nowait(None)
        elif kind == ACK:
            c = self.credits.get(cid)
            if c is not None:
                c[0] += int.from_bytes(body[:4], "big")
                c[1].set()
        elif kind == CANCEL:
            t = self.calls.pop(cid, None)
            self.streams.pop(cid, None)
            self.credits.pop(cid, None)
            if t is not None:
                t.cancel()
        elif kind == STATS:
            if self.hub.on_stats is not None:
                self.hub.on_stats(int.from_bytes(body[:4], "big"))

    def _end(self, cid: int, code=grpc.StatusCode.OK, details: str = "") -> None:
        self.calls.pop(cid, None)
        self.streams.pop(cid, None)
        self.credits.pop(cid, None)
        self.send(frame(END, cid, _U8.pack(_CODE_INDEX[code]) + details.encode()))

    async def _serve(self, cid: int, handler, ctx: RelayContext, arg) -> None:
        """Run the handler: ``arg`` is the request (bytes) or, for a
        client-streaming call, its _Stream; answer with MSG(s) and END."""
        ser = handler.response_serializer
        try:
            if handler.request_streaming:
                req = arg.__aiter__()
            else:
                req = arg if handler.request_deserializer is None else \
                    handler.request_deserializer(arg)
            if handler.response_streaming:
                fn = handler.stream_stream if handler.request_streaming else handler.unary_stream
                async for item in fn(req, ctx):
                    await self._send_streamed(cid, ser(item))
            else:
                fn = handler.stream_unary if handler.request_streaming else handler.unary_unary
                self.send(frame(MSG, cid, ser(await fn(req, ctx))))
        except asyncio.CancelledError:
            self.calls.pop(cid, None)
            self.credits.pop(cid, None)
            raise
        except grpc.aio.AbortError:
            self._end(cid, ctx._code or grpc.StatusCode.UNKNOWN, ctx._details)
            return
        except DecodeError as exc:   # what grpc answers a request it cannot decode
            self._end(cid, grpc.StatusCode.INTERNAL, f"grpc: error unmarshalling request: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - the client gets a clean status
            log.exception("relayed call failed")
            self._end(cid, grpc.StatusCode.UNKNOWN, f"etcdserver: {exc}")
            return
        self._end(cid)


# ---- the front-end's side ---------------------------------------------------------------
class _Pending:
    """A relayed call's answer: its messages (a stream) or the response and
    status of a unary call (``fut``)."""

    __slots__ = ("queue", "fut", "resp")

    def __init__(self, streaming: bool):
        self.resp = None
        self.queue = asyncio.Queue() if streaming else None
        self.fut = None if streaming else asyncio.get_running_loop().create_future()


class RelayClient:
    """A front-end's end of the socket: grpc handlers that relay every call."""

    def __init__(self):
        self.conn: FrameConn | None = None
        self.calls: dict[int, _Pending] = {}
        self._next = 0
        self.lost = asyncio.Event()

    async def connect(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        _, self.conn = await loop.create_unix_connection(
            lambda: FrameConn(self._frame, self._lost), path)

    def _lost(self, exc) -> None:
        for p in self.calls.values():
            if p.fut is not None:
                if not p.fut.done():
                    p.fut.set_result((None, grpc.StatusCode.UNAVAILABLE, "etcdserver: member stopped"))
            else:
                p.queue.put_nowait((END, grpc.StatusCode.UNAVAILABLE, "etcdserver: member stopped"))
        self.calls.clear()
        self.lost.set()

    def _frame(self, kind: int, cid: int, body: memoryview) -> None:
        p = self.calls.get(cid)
        if p is None:
            return
        if p.fut is not None:   # unary: the one MSG, then END
            if kind == MSG:
                p.resp = bytes(body)
            elif kind == END:
                del self.calls[cid]
                if not p.fut.done():
                    p.fut.set_result((p.resp, _BY_NUMBER.get(body[0], grpc.StatusCode.UNKNOWN),
                                      bytes(body[1:]).decode(errors="replace")))
            return
        if kind == MSG:
            p.queue.put_nowait((MSG, bytes(body), None))
        elif kind == END:
            del self.calls[cid]
            p.queue.put_nowait((END, _BY_NUMBER.get(body[0], grpc.StatusCode.UNKNOWN),
                                bytes(body[1:]).decode(errors="replace")))

    def _open(self, method: int, request: bytes, context, streaming: bool) -> tuple[int, _Pending]:
        if self.conn is None or self.conn.closed:
            raise ConnectionError("the member is not reachable")
        self._next = cid = (self._next + 1) & 0xFFFFFFFF
        p = self.calls[cid] = _Pending(streaming)
        md = [(k, v) for k, v in (context.invocation_metadata() or ()) if k in FORWARDED_METADATA]
        cn = client_cn(context)
        self.conn.send(frame(CALL, cid, call_body(method, context.time_remaining(), md, cn, request)))
        return cid, p

    def report(self, ranges: int) -> None:
        """Tell the member how many ranges this front-end answered itself."""
        if ranges and self.conn is not None and not self.conn.closed:
            self.conn.send(frame(STATS, 0, ranges.to_bytes(4, "big")))

    def _cancel(self, cid: int) -> None:
        if self.calls.pop(cid, None) is not None and self.conn is not None:
            self.conn.send(frame(CANCEL, cid))

    def handler(self, path: str, kind: str):
        method = METHOD_INDEX[path]

        async def unary(request: bytes, context):
            try:
                cid, p = self._open(method, request, context, False)
            except ConnectionError as exc:
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"etcdserver: {exc}")
            try:
                resp, code, details = await p.fut
            except asyncio.CancelledError:
                self._cancel(cid)
                raise
            if code is not grpc.StatusCode.OK:
                await context.abort(code, details)
            return resp

        async def _responses(cid, p, context):
            try:
                while True:
                    kind_, a, b = await p.queue.get()
                    if kind_ == MSG:
                        yield a
                        if cid in self.calls:
                            self.conn.send(frame(ACK, cid, b"\x00\x00\x00\x01"))
                        continue
                    if a is not grpc.StatusCode.OK:
                        await context.abort(a, b)
                    return
            finally:
                if cid in self.calls:
                    self._cancel(cid)

        async def server_stream(request: bytes, context):
            try:
                cid, p = self._open(method, request, context, True)
            except ConnectionError as exc:
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"etcdserver: {exc}")
            async for item in _responses(cid, p, context):
                yield item

        async def bidi_stream(request_iterator, context):
            try:
                cid, p = self._open(method, b"", context, True)
            except ConnectionError as exc:
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"etcdserver: {exc}")

            async def pump():
                try:
                    async for msg in request_iterator:
                        if cid not in self.calls:
                            return
                        self.conn.send(frame(SEND, cid, msg))
                    if cid in self.calls:
                        self.conn.send(frame(HALF, cid))
                except (asyncio.CancelledError, grpc.aio.AbortError):
                    raise
                except Exception:  # noqa: BLE001 - the client's stream broke: cancel
                    self._cancel(cid)
            pumper = asyncio.get_running_loop().create_task(pump())
            try:
                async for item in _responses(cid, p, context):
                    yield item
            finally:
                pumper.cancel()

        if kind == "unary":
            return grpc.unary_unary_rpc_method_handler(unary)
        if kind == "server_stream":
            return grpc.unary_stream_rpc_method_handler(server_stream)
        return grpc.stream_stream_rpc_method_handler(bidi_stream)

    def generic_handler(self):
        table = {path: self.handler(path, kind) for path, kind in METHODS}

        class _Generic(grpc.GenericRpcHandler):
            def service(self, details):
                return table.get(details.method)
        return _Generic()
