"""The client port: grpcio's server with etcd's limits and keepalive
policy, every service registered, plaintext or TLS per
``--listen-client-urls``."""
from __future__ import annotations

import logging
import os
import socket
from urllib.parse import urlsplit

import grpc

from pyetcd.server.config import Config, ConfigError

from . import TRANSPORT_RECV_LIMIT, register_services

log = logging.getLogger("pyetcd.api")


def grpc_options(cfg: Config, reuse_port: bool = False) -> list[tuple[str, int]]:
    """Limits and keepalive policy matching etcd's gRPC server; ``reuse_port``
    for a member with front-ends (they share its ports)."""
    return [
        ("grpc.max_receive_message_length", TRANSPORT_RECV_LIMIT),
        ("grpc.max_send_message_length", 2**31 - 1),
        ("grpc.max_concurrent_streams", 2**31 - 1),
        # etcdctl pings every 10 s (grpc-go's floor); etcd allows 5 s
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
        ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.keepalive_time_ms", 2 * 3600 * 1000),
        ("grpc.keepalive_timeout_ms", 20 * 1000),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ]


def listen_address(url: str) -> str:
    u = urlsplit(url)
    if u.scheme in ("unix", "unixs"):
        return f"unix:{u.netloc}{u.path}"
    if not u.hostname or u.port is None:
        raise ConfigError(f"invalid listen URL {url!r}: host and port are required")
    host = u.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{u.port}"


def client_server(cfg: Config, server) -> "grpc.aio.Server":
    """The gRPC server on ``--listen-client-urls`` with every service (the
    handler table in its ``handler_table`` attribute, for the relay)."""
    grpc_server = grpc.aio.server(options=grpc_options(cfg, cfg.frontends > 0))
    table = register_services(grpc_server, server, cfg.max_request_bytes + 512 * 1024)
    grpc_server.handler_table = table
    if (cfg.tls_min_version not in ("", "TLS1.2") or cfg.tls_max_version or cfg.cipher_suites) and \
            any(u.startswith("https") for u in cfg.listen_client_urls):
        log.warning("--tls-min-version/--tls-max-version/--cipher-suites apply to peer connections "
                    "only: gRPC's Python server has no setting for them on the client port")
    bind(grpc_server, cfg)
    return grpc_server


class ListenError(Exception):
    """A client URL this member cannot listen on (etcd's text: ``listen tcp
    127.0.0.1:2379: bind: address already in use``)."""


def probe_tcp(url: str) -> None:
    """Bind ``url``'s address once without SO_REUSEPORT and let it go: a
    port another process holds is refused here as etcd refuses it, even
    when this member is about to share its ports with its front-ends
    (SO_REUSEPORT alone would join any other such listener silently)."""
    u = urlsplit(url)
    host, port = u.hostname or "", u.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go: TIME_WAIT is free
        try:
            sock.bind((host, port))
        except OSError as exc:
            why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise ListenError(f"listen tcp {listen_address(url)}: bind: {why}") from None


def bind(grpc_server, cfg: Config, tcp_only: bool = False, probe: bool = True) -> None:
    """Listen on ``--listen-client-urls`` (``tcp_only``: not the unix ones,
    which front-ends cannot share; ``probe``: refuse a TCP port another
    process holds first, :func:`probe_tcp`).  Raises :class:`ListenError`."""
    for url in cfg.listen_client_urls:
        scheme = urlsplit(url).scheme
        if tcp_only and scheme in ("unix", "unixs"):
            continue
        if probe and scheme in ("http", "https"):
            probe_tcp(url)
        try:
            if scheme in ("https", "unixs"):
                from pyetcd.server.tls import server_credentials
                grpc_server.add_secure_port(listen_address(url), server_credentials(cfg))
            else:
                grpc_server.add_insecure_port(listen_address(url))
        except RuntimeError as exc:  # grpc's "Failed to bind to address ..."
            raise ListenError(f"listen {listen_address(url)}: {exc}".split(";")[0]) from None
