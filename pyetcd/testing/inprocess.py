"""A cluster of real :class:`~pyetcd.server.server.EtcdServer` objects in one
event loop: real backends, WALs and appliers in temp dirs, an in-memory peer
network, and time in the test's hands.

- Raft time moves only when the test says so (:meth:`InProcessCluster.tick`):
  no election starts by itself, so a run is the same every time;
- leases and tokens read a :class:`FakeClock` that :meth:`tick` advances too;
- the network delivers messages in order on the next loop iteration, and
  can drop a link or isolate a member (:meth:`cut`, :meth:`isolate`,
  :meth:`heal`); a snapshot's backend file moves from the sender's snapshot
  dir to the receiver's, as the TCP transport streams it;
- ``grpc=True`` also serves each member's gRPC API on a loopback port (for
  leader forwarding, or a client's view).

::

    async with InProcessCluster(tmp_path, n=3) as c:
        leader = await c.wait_leader()
        await leader.put(pb.PutRequest(key=b"k", value=b"v"))
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

from pyetcd.peer.transport import SNAPSHOT_IN_FILE, received_snapshot, with_file_metadata
from pyetcd.raft.types import MessageType
from pyetcd.server.config import parse_args
from pyetcd.server.server import EtcdServer

from .procs import free_port

TICK_MS = 100


class FakeClock:
    """A monotonic clock that moves only when advanced."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class MemoryNetwork:
    """Links between in-process members (by member id)."""

    def __init__(self):
        self.transports: dict[int, MemoryTransport] = {}
        self.by_url: dict[str, int] = {}
        self.cut_links: set[frozenset] = set()
        self.delivered = 0
        self.dropped = 0

    def factory(self, peer_urls: list[str]):
        """The ``transport_factory`` for the member advertising ``peer_urls``."""
        async def make(member_id: int, cluster_id: int, host, snapshot_dir: str):
            t = MemoryTransport(self, member_id, cluster_id, host, snapshot_dir)
            self.transports[member_id] = t
            for u in peer_urls:
                self.by_url[u] = member_id
            return t
        return make

    async def fetch_cluster(self, urls: list[str]) -> tuple[int, list[bytes]]:
        for u in urls:
            t = self.transports.get(self.by_url.get(u, 0))
            if t is not None and not t.stopped:
                return t.cluster_id, t.host.member_list()
        raise ConnectionError(f"could not retrieve the cluster from {urls}: no member answers")

    def linked(self, a: int, b: int) -> bool:
        ta, tb = self.transports.get(a), self.transports.get(b)
        return (ta is not None and tb is not None and not ta.stopped and not tb.stopped
                and frozenset((a, b)) not in self.cut_links)

    def cut(self, a: int, b: int) -> None:
        self.cut_links.add(frozenset((a, b)))

    def isolate(self, a: int) -> None:
        for b in self.transports:
            if b != a:
                self.cut(a, b)

    def heal(self) -> None:
        self.cut_links.clear()


class MemoryTransport:
    """The peer transport's interface (add/update/remove peers, send,
    is_active, active_since, stop) over a :class:`MemoryNetwork`."""

    def __init__(self, net: MemoryNetwork, member_id: int, cluster_id: int, host,
                 snapshot_dir: str):
        self.net = net
        self.local_id = member_id
        self.cluster_id = cluster_id
        self.host = host
        self.snapshot_dir = snapshot_dir
        self.peers: set[int] = set()
        self.active_since: dict[int, float] = {}
        self.stopped = False

    def add_peer(self, member_id: int, urls: list[str]) -> None:
        if member_id != self.local_id:
            self.peers.add(member_id)
            self.active_since.setdefault(member_id, asyncio.get_running_loop().time())

    def update_peer(self, member_id: int, urls: list[str]) -> None:
        pass  # members are addressed by id here: there is no URL to dial

    async def remove_peer(self, member_id: int) -> None:
        self.peers.discard(member_id)
        self.active_since.pop(member_id, None)

    def is_active(self, member_id: int) -> bool:
        return member_id in self.peers and self.net.linked(self.local_id, member_id)

    def send(self, msgs) -> None:
        loop = asyncio.get_running_loop()
        for m in msgs:
            if not self.is_active(m.to):
                self.net.dropped += 1
                if m.type == MessageType.SNAP:
                    self.host.on_snapshot_status(m.to, False)
                self.host.on_unreachable(m.to)
                continue
            if m.type == MessageType.SNAP:
                m = self._carry_snapshot(m)
            self.net.delivered += 1
            loop.call_soon(self._deliver, m)

    def _carry_snapshot(self, m):
        """Move the backend copy to the receiver, as the TCP transport streams it."""
        dest = self.net.transports[m.to]
        src, meta = self.host.snapshot_file()
        m = with_file_metadata(m, meta)
        os.replace(src, received_snapshot(dest.snapshot_dir, m.snapshot.metadata.index))
        asyncio.get_running_loop().call_soon(self.host.on_snapshot_status, m.to, True)
        return replace(m, snapshot=replace(m.snapshot, data=SNAPSHOT_IN_FILE))

    def _deliver(self, m) -> None:
        dest = self.net.transports.get(m.to)
        if dest is not None and self.net.linked(self.local_id, m.to):
            dest.host.on_messages([m])

    async def stop(self) -> None:
        self.stopped = True


class InProcessCluster:
    """``n`` members in ``workdir``; ``flags`` are more etcd flags for every
    member (``["--snapshot-count", "20"]``); ``grpc`` also serves each
    member's API on a loopback port."""

    def __init__(self, workdir, n: int = 3, flags=(), grpc: bool = False,
                 token: str = "inprocess"):
        self.workdir = Path(workdir)
        self.n = n
        self.flags = list(flags)
        self.use_grpc = grpc
        self.token = token
        self.clock = FakeClock()
        self.net = MemoryNetwork()
        self.servers: list[EtcdServer] = []
        self.grpc_servers: list = []
        self.names = [f"m{i}" for i in range(n)]
        self.peer_urls = {name: f"http://{name}.peer.invalid:2380" for name in self.names}

    def _config(self, name: str, state: str, initial: str):
        client = f"http://127.0.0.1:{free_port()}" if self.use_grpc else \
            f"http://{name}.client.invalid:2379"
        return parse_args([
            "--name", name, "--data-dir", str(self.workdir / f"{name}.etcd"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", self.peer_urls[name],
            "--initial-advertise-peer-urls", self.peer_urls[name],
            "--initial-cluster", initial, "--initial-cluster-state", state,
            "--initial-cluster-token", self.token, "--heartbeat-interval", str(TICK_MS),
            "--election-timeout", str(10 * TICK_MS), *self.flags])

    def _server(self, cfg) -> EtcdServer:
        return EtcdServer(cfg, transport_factory=self.net.factory(cfg.initial_advertise_peer_urls),
                          fetch_cluster=self.net.fetch_cluster, clock=self.clock, ticker=False)

    async def start(self) -> "InProcessCluster":
        initial = ",".join(f"{n}={self.peer_urls[n]}" for n in self.names)
        for name in self.names:
            self.servers.append(self._server(self._config(name, "new", initial)))
        for s in self.servers:
            await self._start(s)
        return self

    async def _start(self, s: EtcdServer) -> None:
        await s.start()
        if self.use_grpc:
            from pyetcd.api.serving import client_server
            g = client_server(s.cfg, s)
            await g.start()
            self.grpc_servers.append(g)

    async def add_member(self, name: str) -> EtcdServer:
        """Start a new member that joins (``--initial-cluster-state
        existing``): ``member_add`` its peer URL on the cluster first."""
        self.peer_urls[name] = f"http://{name}.peer.invalid:2380"
        self.names.append(name)
        initial = ",".join(f"{n}={self.peer_urls[n]}" for n in self.names)
        s = self._server(self._config(name, "existing", initial))
        self.servers.append(s)
        await self._start(s)
        return s

    @property
    def running(self) -> list[EtcdServer]:
        return [s for s in self.servers if not s.stopped]

    async def stop(self) -> None:
        for g in self.grpc_servers:
            await g.stop(grace=0)
        for s in self.servers:
            await s.stop()

    async def __aenter__(self) -> "InProcessCluster":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ---- time ---------------------------------------------------------------------------
    async def settle(self, rounds: int = 20) -> None:
        """Let messages, Readies and applies run (a few loop iterations each)."""
        for _ in range(rounds):
            await asyncio.sleep(0.003)

    async def tick(self, n: int = 1) -> None:
        """``n`` heartbeat intervals pass on every running member."""
        for _ in range(n):
            self.clock.advance(TICK_MS / 1000.0)
            for s in self.running:
                s.raft.tick(1)
            await self.settle(3)

    async def wait_leader(self, max_ticks: int = 100) -> EtcdServer:
        """Tick until exactly one running member leads and all agree."""
        for _ in range(max_ticks):
            leaders = [s for s in self.running if s.raft.is_leader]
            if len(leaders) == 1 and all(s.leader_id == leaders[0].member_id for s in self.running
                                         if self.net.linked(s.member_id, leaders[0].member_id)
                                         or s is leaders[0]):
                return leaders[0]
            await self.tick()
        raise TimeoutError("no leader")

    async def ready(self, max_ticks: int = 100) -> EtcdServer:
        """A leader, and every member's name published and applied everywhere
        (what ``member list`` shows as started); returns the leader."""
        leader = await self.wait_leader(max_ticks)
        await self.until(lambda: all(m.name for s in self.running
                                     for m in s.cluster.members.values()), max_ticks)
        return leader

    async def until(self, predicate, max_ticks: int = 100) -> None:
        """Tick until ``predicate()`` holds."""
        for _ in range(max_ticks):
            if predicate():
                return
            await self.tick()
        raise TimeoutError("condition not reached")

    # ---- faults ----------------------------------------------------------------------------
    def cut(self, a: EtcdServer, b: EtcdServer) -> None:
        self.net.cut(a.member_id, b.member_id)

    def isolate(self, a: EtcdServer) -> None:
        self.net.isolate(a.member_id)

    def heal(self) -> None:
        self.net.heal()

    def followers(self) -> list[EtcdServer]:
        return [s for s in self.running if not s.raft.is_leader]
