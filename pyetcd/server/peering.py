"""The member's side of the peer transport: the events it reports (one
:class:`~pyetcd.peer.transport.PeerHost` object) and how the real TCP/TLS
transport is built from etcd's flags.  An in-process test cluster passes
its own ``transport_factory`` and ``fetch_cluster`` instead
(:mod:`pyetcd.testing.inprocess`)."""
from __future__ import annotations

from pyetcd.peer.transport import PeerTLS, Transport, fetch_cluster

from .config import Config
from .tls import check_peer_cert, peer_contexts


class PeerEvents:
    """What the transport tells the member, passed on to its parts."""

    def __init__(self, server):
        self.s = server

    def on_messages(self, msgs) -> None:
        if self.s.raft is not None:
            self.s.raft.receive(msgs)

    def on_unreachable(self, member_id: int) -> None:
        if self.s.raft is not None:
            self.s.raft.report_unreachable(member_id)

    def on_snapshot_status(self, member_id: int, ok: bool) -> None:
        if self.s.raft is not None:
            self.s.raft.report_snapshot(member_id, ok)

    def is_removed(self, member_id: int) -> bool:
        return member_id in self.s.cluster.removed

    def member_list(self) -> list[bytes]:
        return [m.to_json() for m in self.s.cluster.members.values()]

    def on_removed(self) -> None:
        self.s.on_removed()

    def snapshot_file(self):
        return self.s.snapshots.file_to_send()

    def on_rtt(self, member_id: int, seconds: float) -> None:
        self.s.metrics.observe_peer_rtt(member_id, seconds)


def peer_tls(cfg: Config) -> PeerTLS:
    server_ssl, client_ssl = peer_contexts(cfg)
    return PeerTLS(server_ssl, client_ssl, lambda cert: check_peer_cert(cfg, cert))


async def tcp_transport(cfg: Config, member_id: int, cluster_id: int, host,
                        snapshot_dir: str) -> Transport:
    """The real transport, listening on ``--listen-peer-urls``."""
    t = Transport(member_id, cluster_id, host, snapshot_dir=snapshot_dir, tls=peer_tls(cfg))
    await t.listen(cfg.listen_peer_urls)
    return t


def tcp_fetch_cluster(cfg: Config):
    """How a joining member asks running members for the cluster (over the
    peer URLs, with the peer TLS client context)."""
    async def fetch(urls: list[str]) -> tuple[int, list[bytes]]:
        return await fetch_cluster(urls, client_ssl=peer_contexts(cfg)[1])
    return fetch
