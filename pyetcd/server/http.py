"""The member's HTTP endpoints on ``--listen-metrics-urls``: ``/metrics``,
``/health``, ``/livez``, ``/readyz`` and ``/version``, answered as etcd's
``etcdhttp`` package answers them.

- ``/health``: ``{"health":"true","reason":""}`` with 200; with 503 and
  ``{"health":"false","reason":"ALARM NOSPACE"}`` (or ``ALARM CORRUPT``)
  while an alarm is active (``?exclude=NOSPACE`` ignores it),
  ``RAFT NO LEADER`` without a leader, ``RANGE ERROR:<err>`` when a
  linearizable read (serializable with ``?serializable=true``) fails within
  the request timeout.
- ``/livez``: the serializable_read check; ``/readyz``: data_corruption,
  linearizable_read, non_learner, serializable_read.  ``ok`` with 200, the
  ``[+]name ok`` / ``[-]name failed: reason`` lines with 503 (or with
  ``?verbose``); ``?exclude=name`` skips a check; ``/readyz/<name>`` runs one.
- ``/version``: ``{"etcdserver":"3.5.13","etcdcluster":"3.5.0"}``.
- ``/metrics``: Prometheus text format (see :mod:`.metrics`).

A small HTTP/1.1 server on the member's event loop (one request per
connection, ``Connection: close``); ``https://`` URLs use the client
certificate flags (--cert-file, --key-file, --client-cert-auth with
--trusted-ca-file), as etcd's metrics listener does.
"""
from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qs, urlsplit

from pyetcd import errors
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.version import API_VERSION, ETCD_VERSION

from .metrics import registry_for

log = logging.getLogger("pyetcd.http")

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable", 500: "Internal Server Error"}
MAX_REQUEST_HEAD = 64 * 1024


class HTTPServer:
    def __init__(self, server, ssl_context=None):
        self.s = server
        self.ssl = ssl_context
        self.registry = registry_for(server)
        self.servers: list[asyncio.AbstractServer] = []

    async def listen(self, urls: list[str]) -> None:
        for url in urls:
            u = urlsplit(url)
            if u.scheme not in ("http", "https"):
                raise ValueError(f"unsupported metrics URL scheme {u.scheme!r} in {url!r}")
            ctx = self.ssl if u.scheme == "https" else None
            if u.scheme == "https" and ctx is None:
                raise ValueError(f"{url}: https metrics URLs need --cert-file and --key-file")
            srv = await asyncio.start_server(self._conn, u.hostname, u.port, ssl=ctx,
                                             limit=MAX_REQUEST_HEAD)
            self.servers.append(srv)
            log.info("serving metrics and health on %s", url)

    async def stop(self) -> None:
        for srv in self.servers:
            srv.close()
        for srv in self.servers:
            try:
                await asyncio.wait_for(srv.wait_closed(), 1.0)
            except asyncio.TimeoutError:
                log.warning("metrics listener did not close within 1 s")
        self.servers.clear()

    # ---- one connection ----------------------------------------------------------------
    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(30):
                line = await reader.readline()
                while True:  # headers: none of them matter here
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
            parts = line.decode("latin-1").split()
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                status, ctype, body, extra = 400, "text/plain; charset=utf-8", b"Bad Request\n", {}
            else:
                try:
                    status, ctype, body, extra = await self.route(parts[0], parts[1])
                except Exception as exc:  # noqa: BLE001 - answered, logged, listener unharmed
                    log.exception("HTTP request %s failed", parts[1])
                    status, ctype, extra = 500, "text/plain; charset=utf-8", {}
                    body = f"{type(exc).__name__}: {exc}\n".encode()
            head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
                    f"Content-Type: {ctype}", f"Content-Length: {len(body)}",
                    "Connection: close"]
            head += [f"{k}: {v}" for k, v in extra.items()]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, OSError, ValueError, asyncio.LimitOverrunError):
            log.debug("HTTP client went away or sent a malformed request")
        finally:
            try:
                writer.close()
            except (ConnectionError, OSError, RuntimeError):
                log.debug("closing an HTTP connection failed")

    async def route(self, method: str, target: str):
        u = urlsplit(target)
        path, query = u.path, parse_qs(u.query, keep_blank_values=True)
        if path not in ("/metrics", "/health", "/version", "/livez", "/readyz") and not (
                path.startswith("/livez/") or path.startswith("/readyz/")):
            return 404, "text/plain; charset=utf-8", b"404 page not found\n", {}
        if method != "GET":
            return (405, "text/plain; charset=utf-8", b"Method Not Allowed\n", {"Allow": "GET"})
        if path == "/metrics":
            from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
            return 200, CONTENT_TYPE_PLAIN_0_0_4, generate_latest(self.registry), {}
        if path == "/version":
            body = json.dumps({"etcdserver": ETCD_VERSION, "etcdcluster": f"{API_VERSION}.0"},
                              separators=(",", ":")).encode()
            return 200, "application/json", body, {}
        if path == "/health":
            health, reason = await self.health(set(query.get("exclude", [])),
                                               query.get("serializable", [""])[0] == "true")
            body = json.dumps({"health": health, "reason": reason}, separators=(",", ":")).encode()
            if health == "true":
                self.s.metrics.health_success += 1
                return 200, "text/plain; charset=utf-8", body, {}
            self.s.metrics.health_failures += 1
            log.warning("/health error; output=%s status-code=503", body.decode())
            return 503, "text/plain; charset=utf-8", body + b"\n", {"X-Content-Type-Options": "nosniff"}
        return await self.checks(path, query)

    # ---- /health -----------------------------------------------------------------------
    def _alarm_reason(self, excluded: set[str]) -> str:
        for m in self.s.alarms.get():
            name = pb.AlarmType.Name(m.alarm) if m.alarm in pb.AlarmType.values() else str(m.alarm)
            if name in excluded:
                continue
            return {pb.NOSPACE: "ALARM NOSPACE", pb.CORRUPT: "ALARM CORRUPT"}.get(m.alarm, "ALARM UNKNOWN")
        return ""

    async def _read(self, serializable: bool) -> str:
        """etcd's health Range (keys only, limit 1); "" or the error's text."""
        s = self.s
        try:
            if not serializable:
                await s.linearizable_read()
            s.local_range(pb.RangeRequest(key=b"health", keys_only=True, limit=1))
        except errors.EtcdError as exc:
            return exc.message
        except Exception as exc:  # noqa: BLE001 - reported in the answer, as etcd does
            return str(exc)
        return ""

    async def health(self, excluded: set[str], serializable: bool) -> tuple[str, str]:
        reason = self._alarm_reason(excluded)
        if reason:
            return "false", reason
        if not serializable and not self.s.leader_id:
            return "false", "RAFT NO LEADER"
        err = await self._read(serializable)
        if err:
            return "false", f"RANGE ERROR:{err}"
        return "true", ""

    # ---- /livez, /readyz ---------------------------------------------------------------
    async def _check(self, name: str) -> str:
        s = self.s
        if name == "serializable_read":
            return await self._read(True)
        if name == "linearizable_read":
            return await self._read(False)
        if name == "data_corruption":
            return "alarm activated: CORRUPT" if s.alarms.has(pb.CORRUPT) else ""
        if name == "non_learner":
            return "not supported for learner" if s.is_learner() else ""
        raise KeyError(name)

    async def checks(self, path: str, query: dict):
        kind, _, only = path.strip("/").partition("/")
        names = (["serializable_read"] if kind == "livez" else
                 ["data_corruption", "linearizable_read", "non_learner", "serializable_read"])
        if only:
            if only not in names:
                return 404, "text/plain; charset=utf-8", b"404 page not found\n", {}
            names = [only]
        else:
            excluded = set(query.get("exclude", []))
            unknown = excluded - set(names)
            if unknown:
                log.warning("some health checks cannot be excluded; missing-health-checks=%s",
                            ",".join(sorted(unknown)))
            names = [n for n in names if n not in excluded]
        ok, lines = True, []
        for n in names:
            err = await self._check(n)
            if err:
                ok = False
                lines.append(f"[-]{n} failed: {err}\n")
            else:
                lines.append(f"[+]{n} ok\n")
        reason = "".join(lines)
        if not ok:
            log.error("Health check error; path=%s reason=%s status-code=503", path, reason.strip())
            return 503, "text/plain; charset=utf-8", (reason + "\n").encode(), \
                {"X-Content-Type-Options": "nosniff"}
        body = (reason if "verbose" in query else "") + "ok\n"
        return 200, "text/plain; charset=utf-8", body.encode(), {"X-Content-Type-Options": "nosniff"}
