"""``python -m pyetcd.frontend --relay SOCKET -- <the member's flags>``: one
gRPC front-end process of a member started with ``--frontends N`` (see
pyetcd/api/relay.py).  The member starts it and stops it; it listens on the
member's TCP client URLs beside it (SO_REUSEPORT) and relays every call to
it over the unix socket, except serializable ranges, which it serves itself
from the member's database (:class:`LocalReads`).  It exits when the member
goes away."""
from __future__ import annotations

import asyncio
import json
import logging
import mmap
import os
import signal
import sys

import grpc

from pyetcd import errors
from pyetcd.api.kv import check_range
from pyetcd.api.relay import STATE, RelayClient
from pyetcd.api.serving import bind, grpc_options
from pyetcd.mvcc.kvstore import ViewStore
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.server.apply.kv import KVApplier
from pyetcd.server.config import ConfigError, parse_args
from pyetcd.storage import schema
from pyetcd.storage.backend import ReadOnlyBackend

log = logging.getLogger("pyetcd.frontend")
RANGE = "/etcdserverpb.KV/Range"


class LocalReads:
    """Serializable ranges from the member's database, in this process.

    A read here must show every write the member applied before it began
    (what a serializable read on etcd shows), but the database holds what
    the member's writer has committed, a moment behind.  So: read the
    applied revision the member publishes (shared memory), then open a
    view; when the view is behind it, or the request needs what only the
    member has (auth enabled, require-leader, anything an error would
    answer), relay it instead.  Decoding and validation are the member's
    own (api/kv.py, server/apply/kv.py); the header is the member's ids,
    the view's revision and the published term."""

    def __init__(self, relay_dir: str, max_recv: int):
        with open(os.path.join(relay_dir, "member.json")) as f:
            info = json.load(f)
        self.member_id, self.cluster_id = info["member_id"], info["cluster_id"]
        with open(os.path.join(relay_dir, "state"), "rb") as f:
            self.state = mmap.mmap(f.fileno(), STATE.size, prot=mmap.PROT_READ)
        self.backend = ReadOnlyBackend(info["db"], info.get("map_size", 0))
        self.store = ViewStore(self.backend)
        self.kv = KVApplier(self.store, None)
        self.max_recv = max_recv
        self.served = self.relayed = self.failed = 0

    def range(self, raw: bytes, context) -> bytes | None:
        """The response, or None: relay the request (also when reading here
        failed: the member answers, the failure is logged)."""
        try:
            return self._range(raw, context)
        except Exception:  # noqa: BLE001 - the member answers instead
            self.failed += 1
            if self.failed in (1, 10, 100, 1000) or self.failed % 10000 == 0:
                log.exception("front-end %d: a local read failed (%d so far); relayed",
                              os.getpid(), self.failed)
            return None

    def _range(self, raw: bytes, context) -> bytes | None:
        if len(raw) > self.max_recv:
            return None
        try:
            r = pb.RangeRequest.FromString(raw)
        except Exception:  # noqa: BLE001 - the member answers it with grpc-go's text
            return None
        if not r.serializable:
            return None
        for k, _ in context.invocation_metadata() or ():
            if k in ("hasleader", "token", "authorization"):
                return None
        try:
            check_range(r)
        except errors.EtcdError:
            return None
        applied, term = STATE.unpack_from(self.state, 0)
        b = self.backend
        with b.view():
            if b.get(schema.AUTH, schema.AUTH_ENABLED) == b"\x01":
                return None
            if self.store.refresh() < applied:
                return None
            try:
                resp = self.kv.range(r)
            except errors.EtcdError:
                return None
        h = resp.header
        h.cluster_id, h.member_id, h.raft_term = self.cluster_id, self.member_id, term
        self.served += 1
        return resp.SerializeToString()


def _with_local_range(relay: RelayClient, local: LocalReads):
    """The relay's handlers, Range first tried in this process."""
    relayed = relay.handler(RANGE, "unary").unary_unary
    generic = relay.generic_handler()

    async def range_(request: bytes, context):
        out = local.range(request, context)
        if out is not None:
            return out
        local.relayed += 1
        return await relayed(request, context)
    range_handler = grpc.unary_unary_rpc_method_handler(range_)

    class _Generic(grpc.GenericRpcHandler):
        def service(self, details):
            if details.method == RANGE:
                return range_handler
            return generic.service(details)
    return _Generic()


async def run(relay_path: str, argv: list[str]) -> int:
    cfg = parse_args(argv)
    relay = RelayClient()
    await relay.connect(relay_path)
    server = grpc.aio.server(options=grpc_options(cfg, reuse_port=True))
    local = LocalReads(os.path.dirname(relay_path), cfg.max_request_bytes + 512 * 1024)
    server.add_generic_rpc_handlers((_with_local_range(relay, local),))
    bind(server, cfg, tcp_only=True, probe=False)  # the member holds these ports: share them
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async def report() -> None:   # the member's gRPC metrics count what we answer
        sent = 0
        while True:
            await asyncio.sleep(1.0)
            relay.report(local.served - sent)
            sent = local.served
    reporter = loop.create_task(report())
    waiters = [loop.create_task(stop.wait()), loop.create_task(relay.lost.wait())]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()
    await server.stop(grace=0.5)
    reporter.cancel()
    log.info("gRPC front-end %d stopped: %d ranges served here, %d relayed to the member",
             os.getpid(), local.served, local.relayed)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or argv[0] != "--relay":
        print("usage: python -m pyetcd.frontend --relay SOCKET -- <flags>", file=sys.stderr)
        return 2
    relay_path, rest = argv[1], argv[2:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    from pyetcd.main import setup_logging
    try:
        cfg = parse_args(rest)
    except ConfigError as exc:
        print(f"pyetcd frontend: {exc}", file=sys.stderr)
        return 2
    setup_logging(cfg)
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:   # a platform uvloop does not support
        runner = asyncio.run
    try:
        return runner(run(relay_path, rest))
    except OSError as exc:
        log.critical("front-end cannot start: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
