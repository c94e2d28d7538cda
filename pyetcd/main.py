"""``pyetcd``: the server entry point and composition root (etcd's flags and
ETCD_* variables).  It wires the layers together, so it sits above them all."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from urllib.parse import urlsplit

import grpc

from pyetcd.api import TRANSPORT_RECV_LIMIT
from pyetcd.version import ETCD_VERSION, __version__

from pyetcd.server.config import Config, ConfigError, fail, parse_args

log = logging.getLogger("pyetcd")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "error": logging.ERROR, "panic": logging.CRITICAL, "fatal": logging.CRITICAL}


class JSONFormatter(logging.Formatter):
    """etcd-style structured log lines: level, ts, caller, msg, fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "level": record.levelname.lower().replace("warning", "warn"),
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "caller": f"{record.module}:{record.lineno}",
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(cfg: Config) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = cfg.log_level if cfg.log_level in _LEVELS else "info"
    root.setLevel(_LEVELS[level])


def grpc_options(cfg: Config) -> list[tuple[str, int]]:
    """Limits and keepalive policy matching etcd's gRPC server."""
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
        ("grpc.so_reuseport", 0),
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


async def serve(cfg: Config) -> int:
    from pyetcd.api import register_services
    from pyetcd.server.bootstrap import BootstrapError
    from pyetcd.storage.restore import RestoreError
    from pyetcd.storage.snap import SnapshotError
    from pyetcd.storage.wal import WALError
    from pyetcd.server.server import EtcdServer

    from pyetcd.server import compactor, maintenance_ops
    try:
        server = EtcdServer(cfg)
    except RestoreError as exc:
        log.critical("cannot take over the data dir: %s", exc)
        return 1
    maintenance_ops.install(server)  # backend quota in the applier
    grpc_server = grpc.aio.server(options=grpc_options(cfg))
    register_services(grpc_server, server, cfg.max_request_bytes + 512 * 1024)
    if (cfg.tls_min_version not in ("", "TLS1.2") or cfg.tls_max_version or cfg.cipher_suites) and \
            any(u.startswith("https") for u in cfg.listen_client_urls):
        log.warning("--tls-min-version/--tls-max-version/--cipher-suites apply to peer connections "
                    "only: gRPC's Python server has no setting for them on the client port")
    for url in cfg.listen_client_urls:
        scheme = urlsplit(url).scheme
        if scheme in ("https", "unixs"):
            from pyetcd.server.tls import server_credentials
            grpc_server.add_secure_port(listen_address(url), server_credentials(cfg))
        else:
            grpc_server.add_insecure_port(listen_address(url))
    try:
        await server.start()
    except (BootstrapError, WALError, SnapshotError) as exc:
        log.critical("cannot start member: %s", exc)
        await server.stop()
        return 1
    await grpc_server.start()
    http = None
    if cfg.listen_metrics_urls:
        from pyetcd.server.http import HTTPServer
        from pyetcd.server.tls import metrics_context
        ctx = metrics_context(cfg) if any(u.startswith("https") for u in cfg.listen_metrics_urls) else None
        http = HTTPServer(server, ctx)
        try:
            await http.listen(cfg.listen_metrics_urls)
        except (OSError, ValueError) as exc:
            log.critical("cannot listen on --listen-metrics-urls: %s", exc)
            await http.stop()
            await grpc_server.stop(grace=0)
            await server.stop()
            return 1
    compactor.start(server)
    log.info("ready to serve client requests; name=%s member-id=%x cluster-id=%x data-dir=%s "
             "listen-client-urls=%s version=%s (etcd API %s)", cfg.name, server.member_id,
             server.cluster_id, server.data_dir, ",".join(cfg.listen_client_urls), __version__,
             ETCD_VERSION)
    stop = server.stop_event
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down%s", f" ({server.fatal})" if server.fatal else "")
    if http is not None:
        await http.stop()
    await grpc_server.stop(grace=1.0)
    await compactor.stop(server)
    await server.stop()
    log.info("stopped")
    return 1 if server.fatal is not None and not isinstance(server.fatal, SystemExit) else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg = parse_args(argv)
    except ConfigError as exc:
        fail(str(exc))
    setup_logging(cfg)
    for w in cfg.warnings:
        log.warning(w)
    os.makedirs(cfg.data_dir_path, mode=0o700, exist_ok=True)
    try:
        import uvloop  # optional: the fast event loop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    profile_path = os.environ.get("PYETCD_PROFILE")
    if profile_path:  # developer aid: cProfile the whole member, stats dumped at exit
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
        try:
            return runner(serve(cfg))
        finally:
            prof.disable()
            prof.dump_stats(f"{profile_path}.{cfg.name}")
    try:
        return runner(serve(cfg))
    except ConfigError as exc:
        fail(str(exc))
    except OSError as exc:
        log.critical("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
