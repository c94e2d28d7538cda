"""Garbage at a member's ports, drawn from hypothesis strategies: random
bytes, HTTP/2 frames with random or truncated payloads after a valid
connection preface, gRPC calls whose bodies are random bytes (to read-only
methods) or are never valid protobuf (to writing methods), and random
length-prefixed frames at the peer port.

The member must neither crash nor hang (it answers Status after each
burst), and nothing may change in the store: at the end no key exists
outside the workloads' prefix (checked by :meth:`Fuzz.verdict`)."""
from __future__ import annotations

import random
import socket
import struct
import warnings

import grpc
from hypothesis import strategies as st

from ..client import Indeterminate, Refused
from .base import Nemesis

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
READ_METHODS = ["/etcdserverpb.KV/Range", "/etcdserverpb.Maintenance/Status",
                "/etcdserverpb.Cluster/MemberList", "/etcdserverpb.Lease/LeaseLeases"]
WRITE_METHODS = ["/etcdserverpb.KV/Put", "/etcdserverpb.KV/Txn", "/etcdserverpb.KV/DeleteRange",
                 "/etcdserverpb.Lease/LeaseGrant", "/etcdserverpb.Cluster/MemberAdd",
                 "/etcdserverpb.Auth/AuthEnable", "/etcdserverpb.KV/Compact"]
# a field tag with wire type 7 does not exist: such a body never decodes
NEVER_VALID = b"\x0f"

FRAME = st.tuples(st.integers(0, 0xFF), st.integers(0, 0xFF), st.integers(0, 2**31 - 1),
                  st.binary(max_size=512), st.booleans())
GARBAGE = st.binary(min_size=1, max_size=4096)


def _draw(strategy):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return strategy.example()


def _frame(typ: int, flags: int, stream: int, payload: bytes, truncate: bool) -> bytes:
    head = struct.pack(">I", len(payload))[1:] + bytes([typ, flags]) + struct.pack(">I", stream)
    data = head + payload
    return data[:max(1, len(data) // 2)] if truncate else data


def _send(host: str, port: int, data: bytes) -> None:
    try:
        with socket.create_connection((host, port), timeout=1.0) as s:
            s.sendall(data)
            s.settimeout(0.3)
            try:
                s.recv(4096)
            except (socket.timeout, OSError):
                pass  # the member may answer, close, or stay silent
    except OSError:
        pass  # refused or reset: the member is allowed to hang up on garbage


class Fuzz(Nemesis):
    name = "fuzz"
    modes = ("client-bytes", "client-frames", "grpc-bodies", "peer-bytes")

    def __init__(self):
        self.problems: list[dict] = []

    def start(self, run, rng: random.Random) -> dict:
        c = run.cluster
        m = rng.choice([x for x in c.members if x.running and not x.paused])
        mode = rng.choice(self.modes)
        host, cport, pport = m.server.host, m.server.client_port, m.server.peer_port
        n = 0
        for _ in range(20):
            n += 1
            if mode == "client-bytes":
                _send(host, cport, _draw(GARBAGE))
            elif mode == "client-frames":
                _send(host, cport, PREFACE + b"".join(_frame(*_draw(FRAME)) for _ in range(4)))
            elif mode == "peer-bytes":
                body = _draw(GARBAGE)
                _send(host, pport, struct.pack(">I", len(body)) + body if rng.random() < 0.5 else body)
            else:
                self._grpc(m.endpoint, rng)
        alive = self._alive(c, m)
        if not alive:
            self.problems.append({"anomaly": f"{m.name} stopped answering after {mode} garbage",
                                  "running": m.running})
        return {"mode": mode, "member": m.name, "messages": n, "alive": alive}

    @staticmethod
    def _grpc(endpoint: str, rng: random.Random) -> None:
        ch = grpc.insecure_channel(endpoint)
        try:
            if rng.random() < 0.5:
                method, body = rng.choice(READ_METHODS), _draw(st.binary(max_size=256))
            else:
                method, body = rng.choice(WRITE_METHODS), NEVER_VALID + _draw(st.binary(max_size=256))
            try:
                ch.unary_unary(method)(body, timeout=1.0)
            except grpc.RpcError:
                pass  # an error is the right answer to garbage
        finally:
            ch.close()

    @staticmethod
    def _alive(c, m) -> bool:
        client = c.client(m, 3.0)
        try:
            client.status(timeout=3.0)
            return True
        except (Refused, Indeterminate):
            return False
        finally:
            client.close()

    def end(self, run) -> dict:
        return {}

    def heal(self, run) -> None:
        pass  # garbage leaves nothing to undo; verdict() looks at what it did

    def verdict(self, run) -> list[dict]:
        """Problems seen while fuzzing, and keys the garbage may have written."""
        out = list(self.problems)
        for m in run.cluster.members:
            client = run.cluster.client(m, 5.0)
            try:
                resp = client.get(b"\x00", b"\x00", keys_only=True)
            except (Refused, Indeterminate):
                continue
            finally:
                client.close()
            stray = [kv.key for kv in resp.kvs if not kv.key.startswith(b"/jl/")]
            if stray:
                out.append({"anomaly": "keys outside the workloads' prefix appeared",
                            "keys": [k.decode("latin-1") for k in stray[:20]]})
            break
        return out
