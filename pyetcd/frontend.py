"""``python -m pyetcd.frontend --relay SOCKET -- <the member's flags>``: one
gRPC front-end process of a member started with ``--frontends N`` (see
pyetcd/api/relay.py).  The member starts it and stops it; it listens on the
member's TCP client URLs beside it (SO_REUSEPORT) and relays every call to
it over the unix socket.  It exits when the member goes away."""
from __future__ import annotations

import asyncio
import logging
import signal
import sys

import grpc

from pyetcd.api.relay import RelayClient
from pyetcd.api.serving import bind, grpc_options
from pyetcd.server.config import ConfigError, parse_args

log = logging.getLogger("pyetcd.frontend")


async def run(relay_path: str, argv: list[str]) -> int:
    cfg = parse_args(argv)
    relay = RelayClient()
    await relay.connect(relay_path)
    server = grpc.aio.server(options=grpc_options(cfg, reuse_port=True))
    server.add_generic_rpc_handlers((relay.generic_handler(),))
    bind(server, cfg, tcp_only=True)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiters = [loop.create_task(stop.wait()), loop.create_task(relay.lost.wait())]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()
    await server.stop(grace=0.5)
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
