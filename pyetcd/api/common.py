"""Shared pieces of the gRPC servicers: error mapping and request checks."""
from __future__ import annotations

import asyncio
import functools
import logging

import grpc
from google.protobuf import message as _message
from google.protobuf import symbol_database

from pyetcd import errors
from pyetcd.auth.store import CREDENTIALS, Credentials

log = logging.getLogger("pyetcd.api")

_CODES = {c.name.replace("_", "").lower(): c for c in grpc.StatusCode}


def status_code(name: str) -> grpc.StatusCode:
    return _CODES.get(name.lower(), grpc.StatusCode.UNKNOWN)


# what a learner answers itself (etcd's isRPCSupportedForLearner); a Range
# only when serializable
_LEARNER_RPCS = {"Status", "MemberList", "MoveLeader", "MemberPromote", "Alarm", "Hash", "HashKV",
                 "Snapshot", "Defragment", "Downgrade"}


def unary(fn):
    """Wrap a unary handler: EtcdError -> its gRPC status; anything else ->
    UNKNOWN with a one-line message (logged with its traceback here, never
    sent to the client).  The handler receives the request already decoded
    (see :func:`register`)."""

    name = fn.__name__
    learner_ok = name in _LEARNER_RPCS

    @functools.wraps(fn)
    async def wrapper(self, request, context):
        code = "OK"
        started = self._started
        key = self._mkeys[name]
        started[key] = started.get(key, 0) + 1
        handled = self._handled
        counted = False
        try:
            if type(request) is bytes:
                request = await _decode(self, name, request, context)
            s = self.s
            if not learner_ok and s.is_learner() and not (
                    name == "Range" and request.serializable):
                raise errors.NOT_SUPPORTED_FOR_LEARNER()
            if s.leader_id == 0 and require_leader(context):
                raise errors.NO_LEADER()
            if s.gate.enabled:
                CREDENTIALS.set(credentials_of(context))
            return await fn(self, request, context)
        except errors.EtcdError as exc:
            # counted before the answer goes out: a client that reads the
            # metrics right after its error sees it counted
            hk = key + (exc.code,)
            handled[hk] = handled.get(hk, 0) + 1
            counted = True
            await context.abort(status_code(exc.code), exc.message)
        except grpc.aio.AbortError:
            code = _code_of(context)
            raise
        except Exception as exc:  # noqa: BLE001 - the client gets a clean status
            hk = key + ("Unknown",)
            handled[hk] = handled.get(hk, 0) + 1
            counted = True
            log.exception("unexpected error in %s", fn.__name__)
            await context.abort(grpc.StatusCode.UNKNOWN, f"etcdserver: {type(exc).__name__}: {exc}")
        finally:
            if not counted:
                hk = key + (code,)
                handled[hk] = handled.get(hk, 0) + 1

    return wrapper


def _go_code(c: grpc.StatusCode) -> str:
    """grpc-go's name of a status code (``InvalidArgument``), as etcd's
    grpc_server_handled_total labels it."""
    return "".join(p.capitalize() for p in c.name.split("_")) if c is not grpc.StatusCode.OK else "OK"


_GO_CODES = {c: _go_code(c) for c in grpc.StatusCode}


def _code_of(context) -> str:
    try:
        c = context.code()
    except Exception:  # noqa: BLE001 - older grpc: no code() on the aio context
        c = None
    return _GO_CODES.get(c, "Unknown") if c is not None else "Unknown"


def _counted_stream(fn, servicer, key):
    """Count a streaming handler in grpc_server_started/handled_total."""
    import inspect

    def begin() -> None:
        servicer._started[key] = servicer._started.get(key, 0) + 1

    def done(code: str) -> None:
        hk = key + (code,)
        servicer._handled[hk] = servicer._handled.get(hk, 0) + 1

    def code_of(exc: BaseException, context) -> str:
        return _code_of(context) if isinstance(exc, grpc.aio.AbortError) else "Canceled"

    if inspect.isasyncgenfunction(fn):
        async def gen_wrapper(request, context):
            begin()
            code = "OK"
            try:
                async for item in fn(request, context):
                    yield item
            except BaseException as exc:
                code = code_of(exc, context)
                raise
            finally:
                done(code)
        return gen_wrapper

    async def coro_wrapper(request, context):
        begin()
        code = "OK"
        try:
            return await fn(request, context)
        except BaseException as exc:
            code = code_of(exc, context)
            raise
        finally:
            done(code)
    return coro_wrapper


def credentials_of(context) -> Credentials:
    """The token (metadata ``token``, or ``authorization`` with an optional
    ``Bearer `` prefix) and the CN of a verified client certificate."""
    md = {}
    for k, v in context.invocation_metadata() or ():
        md.setdefault(k, v)
    token = md.get("token", md.get("authorization"))
    if token is not None and token.startswith("Bearer "):
        token = token[7:]
    return Credentials(token, client_cn(context))


def client_cn(context) -> str | None:
    """The CN of the connection's verified client certificate, if any."""
    try:
        names = (context.auth_context() or {}).get("x509_common_name")
    except Exception:  # noqa: BLE001 - no TLS on this connection
        names = None
    if not names:
        return None
    first = names[0]
    return first.decode() if isinstance(first, bytes) else str(first)


def set_credentials(server, context) -> None:
    """For streaming handlers (the unary wrapper does this itself)."""
    if server.gate.enabled:
        CREDENTIALS.set(credentials_of(context))


def stream(check_leader: bool = True):
    """Wrap a server-streaming handler (an async generator): etcd's
    require-leader check (unless ``check_leader`` is False), the request's
    credentials, and errors mapped as :func:`unary` maps them."""
    def decorate(fn):
        name = fn.__name__

        @functools.wraps(fn)
        async def wrapper(self, request, context):
            s = self.s
            try:
                if check_leader and s.leader_id == 0 and require_leader(context):
                    raise errors.NO_LEADER()
                set_credentials(s, context)
                async for item in fn(self, request, context):
                    yield item
            except errors.EtcdError as exc:
                await context.abort(status_code(exc.code), exc.message)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - the client gets a clean status
                log.exception("unexpected error in %s", name)
                await context.abort(grpc.StatusCode.UNKNOWN, f"etcdserver: {type(exc).__name__}: {exc}")
        return wrapper
    return decorate


DEADLINE_MARGIN = 0.01
CONTEXT_DEADLINE = "context deadline exceeded"


async def before_deadline(context, coro):
    """Run a handler's wait within the client's deadline.  etcd's handlers
    see that deadline in their context and answer ``ctx.Err()`` (code
    Unknown, ``context deadline exceeded``) when it passes; answering just
    before it lets the client get that answer rather than its own
    DEADLINE_EXCEEDED."""
    remaining = context.time_remaining()
    if remaining is None:
        return await coro
    try:
        async with asyncio.timeout(max(remaining - DEADLINE_MARGIN, 0.0)):
            return await coro
    except TimeoutError:
        raise errors.EtcdError("Unknown", CONTEXT_DEADLINE) from None


def require_leader(context) -> bool:
    """True when the client sent etcd's require-leader metadata."""
    for k, v in context.invocation_metadata() or ():
        if k == "hasleader" and v == "true":
            return True
    return False


# ---- registration: our own decoding, so limits and garbage get grpc-go's answers ------
_sym = symbol_database.Default()


async def _decode(servicer, method: str, raw: bytes, context):
    limit = servicer._max_recv
    if len(raw) > limit:
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                            f"grpc: received message larger than max ({len(raw)} vs. {limit})")
    try:
        return servicer._request_types[method].FromString(raw)
    except _message.DecodeError as exc:
        await context.abort(grpc.StatusCode.INTERNAL, f"grpc: error unmarshalling request: {exc}")


class StreamDecodeError:
    """Stands in for a stream message that failed to decode."""

    __slots__ = ("error",)

    def __init__(self, error: str):
        self.error = error


def _stream_decoder(cls):
    def decode(raw: bytes):
        try:
            return cls.FromString(raw)
        except _message.DecodeError as exc:
            return StreamDecodeError(f"grpc: error unmarshalling request: {exc}")
    return decode


def method_handlers(service_descriptor, servicer, max_recv: int) -> dict:
    """{method name: grpc handler} for every method of the service that
    ``servicer`` implements.  Unary requests arrive as bytes and are decoded
    by :func:`unary` (so an oversized or malformed message gets grpc-go's
    status and text, as etcd returns them); the gRPC transport limit is set
    higher than ``max_recv`` for that."""
    servicer._max_recv = max_recv
    servicer._request_types = {}
    metrics = servicer.s.metrics
    servicer._started, servicer._handled = metrics.grpc_started, metrics.grpc_handled
    servicer._mkeys = {}
    handlers = {}
    for m in service_descriptor.methods:
        if not hasattr(servicer, m.name):
            continue  # not served yet: gRPC answers UNIMPLEMENTED
        req_cls = _sym.GetSymbol(m.input_type.full_name)
        resp_cls = _sym.GetSymbol(m.output_type.full_name)
        kind = ("bidi_stream" if m.client_streaming and m.server_streaming else
                "server_stream" if m.server_streaming else
                "client_stream" if m.client_streaming else "unary")
        key = servicer._mkeys[m.name] = (kind, service_descriptor.full_name, m.name)
        fn = getattr(servicer, m.name)
        if kind != "unary":
            fn = _counted_stream(fn, servicer, key)
        ser = resp_cls.SerializeToString
        if m.client_streaming and m.server_streaming:
            h = grpc.stream_stream_rpc_method_handler(
                fn, request_deserializer=_stream_decoder(req_cls), response_serializer=ser)
        elif m.server_streaming:
            servicer._request_types[m.name] = req_cls
            h = grpc.unary_stream_rpc_method_handler(
                fn, request_deserializer=req_cls.FromString, response_serializer=ser)
        else:
            servicer._request_types[m.name] = req_cls
            h = grpc.unary_unary_rpc_method_handler(fn, request_deserializer=None,
                                                    response_serializer=ser)
        handlers[m.name] = h
    return handlers


def register(grpc_server, service_descriptor, handlers: dict) -> None:
    grpc_server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service_descriptor.full_name, handlers),))
