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

from pyetcd.api.serving import ListenError, client_server
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


async def metrics_listener(cfg: Config, server):
    """The HTTP endpoints on ``--listen-metrics-urls`` (None without any)."""
    if not cfg.listen_metrics_urls:
        return None
    from pyetcd.server.http import HTTPServer
    from pyetcd.server.tls import metrics_context
    ctx = metrics_context(cfg) if any(u.startswith("https") for u in cfg.listen_metrics_urls) else None
    http = HTTPServer(server, ctx)
    try:
        await http.listen(cfg.listen_metrics_urls)
    except (OSError, ValueError):
        await http.stop()
        raise
    return http


FRONTEND_RESTART_MIN, FRONTEND_RESTART_MAX = 1.0, 30.0  # seconds before a front-end restarts
FRONTEND_STABLE = 10.0  # a front-end that ran this long restarts after the shortest wait


class Frontends:
    """The member's front-end processes (``--frontends N``, api/relay.py):
    started after its gRPC server, stopped (by the PIDs started here) before it."""

    def __init__(self, cfg: Config, argv: list[str], server, table):
        import mmap
        import tempfile
        from pyetcd.api.relay import STATE, RelayHub
        self.cfg, self.argv, self.server = cfg, argv, server
        self.hub = RelayHub(table, on_stats=self._count_ranges)
        self.dir = tempfile.mkdtemp(prefix="pyetcd-relay-")
        self.path = os.path.join(self.dir, "relay.sock")
        # what the front-ends read of the member: its ids, its database, and
        # (shared memory) the revision it has applied and its term
        with open(os.path.join(self.dir, "member.json"), "w") as f:
            json.dump({"member_id": server.member_id, "cluster_id": server.cluster_id,
                       "db": server.db_path, "map_size": server.backend.map_size}, f)
        state = os.path.join(self.dir, "state")
        with open(state, "wb") as f:
            f.write(b"\0" * STATE.size)
        with open(state, "r+b") as f:
            self.state = mmap.mmap(f.fileno(), STATE.size)
        self._pack = STATE.pack_into
        self._publish(server.kv.current_rev)
        server.revision_listeners.append(self._publish)
        self.procs: list = []
        self._watchers: list = []
        self.stopping = False

    def _count_ranges(self, n: int) -> None:
        """Ranges a front-end answered itself, in grpc_server_*_total."""
        m = self.server.metrics
        key = ("unary", "etcdserverpb.KV", "Range")
        m.grpc_started[key] = m.grpc_started.get(key, 0) + n
        m.grpc_handled[key + ("OK",)] = m.grpc_handled.get(key + ("OK",), 0) + n

    def _publish(self, rev: int) -> None:
        self._pack(self.state, 0, rev, self.server.term)

    def _spawn(self):
        import subprocess
        return subprocess.Popen(
            [sys.executable, "-m", "pyetcd.frontend", "--relay", self.path, "--", *self.argv])

    async def start(self) -> None:
        await self.hub.listen(self.path)
        self.procs = [self._spawn() for _ in range(self.cfg.frontends)]
        loop = asyncio.get_running_loop()
        self._watchers = [loop.create_task(self._watch(i)) for i in range(len(self.procs))]
        log.info("started %d gRPC front-end processes (pids %s)", len(self.procs),
                 ",".join(str(p.pid) for p in self.procs))

    async def _watch(self, slot: int) -> None:
        """A front-end that exits while the member runs is started again (its
        clients reconnect meanwhile, to the member or the other front-ends):
        after 1 s, or, when it keeps exiting within 10 s of its start, after
        twice the last wait, up to 30 s."""
        loop = asyncio.get_running_loop()
        delay = FRONTEND_RESTART_MIN
        while True:
            p = self.procs[slot]
            started = loop.time()
            code = await loop.run_in_executor(None, p.wait)
            if self.stopping:
                return
            if loop.time() - started >= FRONTEND_STABLE:
                delay = FRONTEND_RESTART_MIN
            log.warning("gRPC front-end process %d exited (status %s); its clients reconnect to "
                        "the other processes; starting it again in %.0f s", p.pid, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, FRONTEND_RESTART_MAX)
            if self.stopping:
                return
            self.procs[slot] = self._spawn()
            log.info("started gRPC front-end process %d in place of %d", self.procs[slot].pid,
                     p.pid)

    async def stop(self) -> None:
        import shutil
        self.stopping = True
        for t in self._watchers:
            t.cancel()
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        loop = asyncio.get_running_loop()
        for p in self.procs:
            try:
                await asyncio.wait_for(loop.run_in_executor(None, p.wait), 5)
            except TimeoutError:
                p.kill()
                await loop.run_in_executor(None, p.wait)
        await self.hub.close()
        if self._publish in self.server.revision_listeners:
            self.server.revision_listeners.remove(self._publish)
        shutil.rmtree(self.dir, ignore_errors=True)


async def serve(cfg: Config, argv: list[str] | None = None) -> int:
    from pyetcd.offline import RestoreError
    from pyetcd.server.bootstrap import BootstrapError
    from pyetcd.server.server import EtcdServer
    from pyetcd.storage.snap import SnapshotError
    from pyetcd.storage.wal import WALError
    try:
        server = EtcdServer(cfg)
    except RestoreError as exc:
        log.critical("cannot take over the data dir: %s", exc)
        return 1
    try:
        grpc_server = client_server(cfg, server)
    except ListenError as exc:
        log.critical("listener failed: %s", exc)
        await server.stop()
        return 1
    try:
        await server.start()
    except (BootstrapError, WALError, SnapshotError) as exc:
        log.critical("cannot start member: %s", exc)
        await server.stop()
        return 1
    await grpc_server.start()
    fronts = None
    try:
        http = await metrics_listener(cfg, server)
    except (OSError, ValueError) as exc:
        log.critical("cannot listen on --listen-metrics-urls: %s", exc)
        await grpc_server.stop(grace=0)
        await server.stop()
        return 1
    if cfg.frontends > 0:
        fronts = Frontends(cfg, argv or [], server, grpc_server.handler_table)
        await fronts.start()
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
    if fronts is not None:
        await fronts.stop()
    if http is not None:
        await http.stop()
    await grpc_server.stop(grace=1.0)
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
        import uvloop  # a dependency on Linux: the fast event loop
        runner = uvloop.run
    except ImportError:   # a platform uvloop does not support
        log.warning("uvloop is not installed: running on asyncio's event loop (slower)")
        runner = asyncio.run
    profile_path = os.environ.get("PYETCD_PROFILE")
    if profile_path:  # developer aid: cProfile the whole member, stats dumped at exit
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
        try:
            return runner(serve(cfg, argv))
        finally:
            prof.disable()
            prof.dump_stats(f"{profile_path}.{cfg.name}")
    try:
        return runner(serve(cfg, argv))
    except ConfigError as exc:
        fail(str(exc))
    except OSError as exc:
        log.critical("cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
