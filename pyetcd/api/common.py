"""Shared pieces of the gRPC servicers: error mapping and request checks."""
from __future__ import annotations

import functools
import logging

import grpc

from pyetcd import errors

log = logging.getLogger("pyetcd.api")

_CODES = {c.name.replace("_", "").lower(): c for c in grpc.StatusCode}


def status_code(name: str) -> grpc.StatusCode:
    return _CODES.get(name.lower(), grpc.StatusCode.UNKNOWN)


def unary(fn):
    """Wrap a unary handler: EtcdError -> its gRPC status; anything else ->
    UNKNOWN with a one-line message (logged with its traceback here, never
    sent to the client)."""

    @functools.wraps(fn)
    async def wrapper(self, request, context):
        try:
            return await fn(self, request, context)
        except errors.EtcdError as exc:
            await context.abort(status_code(exc.code), exc.message)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - the client gets a clean status
            log.exception("unexpected error in %s", fn.__name__)
            await context.abort(grpc.StatusCode.UNKNOWN, f"etcdserver: {type(exc).__name__}: {exc}")

    return wrapper


def require_leader(context) -> bool:
    """True when the client sent etcd's require-leader metadata."""
    for k, v in context.invocation_metadata() or ():
        if k == "hasleader" and v == "true":
            return True
    return False
