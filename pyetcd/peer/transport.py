"""Peer transport: long-lived streams between members carrying Raft messages.

Each member dials every other member once (one outgoing stream per peer,
used only for sending) and accepts their streams (used only for receiving).
A stream is TCP (or TLS for ``https://`` peer URLs: the SSL contexts are
passed in, so connection setup lives in one place) carrying length-prefixed
protobuf frames:

    dialer -> PeerHello            (cluster id, from, to)
    dialer <- PeerHelloResponse    (ok, or why the member refuses)
    dialer -> PeerFrame*           (many Raft messages per frame)

Every message queued for a peer while its writer was busy goes out in the
next frame, so a Ready's appends, heartbeats and votes share one write.

A snapshot message (a member too far behind for the log) travels with the
leader's backend file: ``snapshot_file()`` makes a copy, the copy goes out in
``SNAPSHOT_CHUNK`` frames before the message, whose data is only
:data:`SNAPSHOT_IN_FILE`; the receiver appends the chunks to a file in
``snapshot_dir`` and renames it ``<index>.snap.db`` (:func:`received_snapshot`)
before it hands the message on, so neither side holds the database in memory
and no frame grows with it.  A
broken stream is redialled with exponential backoff; messages queued while a
peer is unreachable are dropped (Raft retransmits) and ``on_unreachable``
tells the Raft node so it can probe again later.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import ssl
import struct
from dataclasses import dataclass
from typing import Callable, Protocol
from urllib.parse import urlsplit

from pyetcd.pb.pyetcdpb import peer_pb2
from pyetcd.raft.codec import message_from_pb, message_to_pb
from pyetcd.raft.types import Message, MessageType, SnapshotMetadata
from pyetcd.util.tasks import cancel_and_wait

log = logging.getLogger("pyetcd.peer")

_LEN = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
SNAPSHOT_CHUNK = 4 * 1024 * 1024
SNAPSHOT_IN_FILE = b"pyetcd:snapshot-in-file"  # a SNAP message's data: the db came beside it


def with_file_metadata(m: Message, meta: SnapshotMetadata | None) -> Message:
    """The snapshot message describing the backend file sent with it: the
    file is newer than the leader's Raft snapshot, so its index, term and
    configuration go in the message (etcd's merged snapshot)."""
    if meta is None or meta.index < m.snapshot.metadata.index:
        return m
    return dataclasses.replace(m, snapshot=dataclasses.replace(m.snapshot, metadata=meta))


def received_snapshot(snapshot_dir: str, index: int) -> str:
    """Where a snapshot's backend file received for ``index`` is kept."""
    return os.path.join(snapshot_dir, f"{index:016x}.snap.db")


DIAL_TIMEOUT = 1.0
BACKOFF_MIN, BACKOFF_MAX = 0.05, 1.0


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    n = _LEN.unpack(await reader.readexactly(4))[0]
    if n > MAX_FRAME:
        raise ConnectionError(f"peer frame of {n} bytes exceeds the limit")
    return await reader.readexactly(n)


def write_frame(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(_LEN.pack(len(data)) + data)


def encode_frame(messages: list[Message]) -> bytes:
    frame = peer_pb2.PeerFrame()
    frame.messages.extend(message_to_pb(m) for m in messages)
    return frame.SerializeToString()


def _host_port(url: str) -> tuple[str, int]:
    u = urlsplit(url)
    if not u.hostname or not u.port:
        raise ValueError(f"peer URL needs host and port: {url}")
    return u.hostname, u.port


class Peer:
    """The sending side towards one member."""

    def __init__(self, transport: "Transport", member_id: int, urls: list[str]):
        self.t = transport
        self.id = member_id
        self.urls = list(urls)
        self.queue: list[Message] = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.active = False  # a stream is established
        self.stopped = False
        self._url_index = 0

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"peer-{self.id:x}")

    def send(self, msgs: list[Message]) -> None:
        if not self.active:
            self._drop(msgs)
            return
        self.queue.extend(msgs)
        self.wake.set()

    def _drop(self, msgs: list[Message]) -> None:
        for m in msgs:
            if m.type == MessageType.SNAP:
                self.t.host.on_snapshot_status(self.id, False)
        self.t.host.on_unreachable(self.id)

    async def _dial(self):
        url = self.urls[self._url_index % len(self.urls)]
        self._url_index += 1
        host, port = _host_port(url)
        ssl_ctx = self.t.client_ssl if url.startswith("https") else None
        async with asyncio.timeout(DIAL_TIMEOUT):  # (wait_for may swallow a cancel in 3.11)
            reader, writer = await asyncio.open_connection(
                host, port, ssl=ssl_ctx, server_hostname=host if ssl_ctx else None)
        hello = peer_pb2.PeerHello(cluster_id=self.t.cluster_id, to=self.id, version="pyetcd")
        setattr(hello, "from", self.t.local_id)
        t0 = asyncio.get_running_loop().time()
        try:
            write_frame(writer, hello.SerializeToString())
            await writer.drain()
            async with asyncio.timeout(5):
                resp = peer_pb2.PeerHelloResponse.FromString(await read_frame(reader))
        except BaseException:
            writer.close()
            raise
        self.t.host.on_rtt(self.id, asyncio.get_running_loop().time() - t0)
        if not resp.ok:
            writer.close()
            raise PermissionError(resp.error)
        return reader, writer

    async def _run(self) -> None:
        backoff = BACKOFF_MIN
        logged = False
        while not self.stopped:
            try:
                reader, writer = await self._dial()
            except asyncio.CancelledError:
                raise
            except PermissionError as exc:
                log.error("peer %x refused our stream: %s", self.id, exc)
                if "has been removed" in str(exc):
                    self.t.host.on_removed()
                await asyncio.sleep(BACKOFF_MAX)
                continue
            except Exception as exc:  # noqa: BLE001 - this task must redial, whatever a dial met
                # (refused, timed out, bad TLS, or a listener that hung up
                # mid-handshake: a member being killed accepts, then drops,
                # an immediate redial, which raised IncompleteReadError and
                # ended this task, so the member never heard from us again)
                if not logged:
                    log.warning("cannot reach peer %x at %s: %s", self.id, self.urls, exc)
                    logged = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            log.info("established stream to peer %x", self.id)
            backoff, logged = BACKOFF_MIN, False
            self.active = True
            self.t.on_active(self.id)
            try:
                await self._pump(reader, writer)
            except asyncio.CancelledError:
                writer.close()
                raise
            except Exception as exc:  # noqa: BLE001 - likewise: redial
                log.warning("lost stream to peer %x: %s", self.id, exc)
            finally:
                self.active = False
                dropped, self.queue = self.queue, []
                if dropped:
                    self._drop(dropped)
                writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # the peer never writes on this stream: a read returning means it closed,
        # and the stream must stop counting as active at once (a proposal sent
        # into a dead stream would be lost)
        eof = asyncio.get_running_loop().create_task(reader.read(1))
        eof.add_done_callback(lambda _t: self.wake.set())
        try:
            await self._pump_frames(writer, eof)
        finally:
            eof.cancel()

    async def _pump_frames(self, writer: asyncio.StreamWriter, eof: asyncio.Task) -> None:
        while True:
            if eof.done():
                raise ConnectionError("peer closed the stream")
            if not self.queue:
                self.wake.clear()
                await self.wake.wait()
                if eof.done():
                    raise ConnectionError("peer closed the stream")
                await asyncio.sleep(0)  # gather what else this loop iteration sends
            msgs, self.queue = self.queue, []
            if any(m.type == MessageType.SNAP for m in msgs):
                await self._send_with_snapshots(writer, msgs)
                continue
            write_frame(writer, encode_frame(msgs))
            await writer.drain()

    async def _send_with_snapshots(self, writer: asyncio.StreamWriter, msgs: list[Message]) -> None:
        """In order: the messages before a snapshot message, the backend file
        in chunks, then the snapshot message itself (data: the marker)."""
        loop = asyncio.get_running_loop()
        batch: list[Message] = []
        for m in msgs:
            if m.type != MessageType.SNAP:
                batch.append(m)
                continue
            if batch:
                write_frame(writer, encode_frame(batch))
                batch = []
            path, meta = await loop.run_in_executor(None, self.t.host.snapshot_file)
            m = with_file_metadata(m, meta)
            try:
                size = os.path.getsize(path)
                log.info("sending a snapshot of %d bytes at index %d to peer %x", size,
                         m.snapshot.metadata.index, self.id)
                with open(path, "rb") as f:
                    while True:
                        chunk = await loop.run_in_executor(None, f.read, SNAPSHOT_CHUNK)
                        if not chunk:
                            break
                        write_frame(writer, peer_pb2.PeerFrame(snapshot_chunk=chunk).SerializeToString())
                        await writer.drain()
            finally:
                os.remove(path)
            marked = dataclasses.replace(m, snapshot=dataclasses.replace(m.snapshot, data=SNAPSHOT_IN_FILE))
            write_frame(writer, encode_frame([marked]))
            await writer.drain()
            log.info("sent a snapshot at index %d to peer %x", m.snapshot.metadata.index, self.id)
            self.t.host.on_snapshot_status(self.id, True)
        if batch:
            write_frame(writer, encode_frame(batch))
            await writer.drain()

    async def stop(self) -> None:
        self.stopped = True
        await cancel_and_wait(self.task, log, f"stream to peer {self.id:x}")


class PeerHost(Protocol):
    """What the transport needs from the member it serves: one object."""

    def on_messages(self, msgs: list[Message]) -> None:
        """Raft messages arrived from a peer."""

    def on_unreachable(self, member_id: int) -> None:
        """Messages to ``member_id`` were dropped (its stream is down)."""

    def on_snapshot_status(self, member_id: int, ok: bool) -> None:
        """A snapshot to ``member_id`` was sent, or could not be."""

    def is_removed(self, member_id: int) -> bool:
        """``member_id`` was removed from the cluster (its streams are refused)."""

    def member_list(self) -> list[bytes]:
        """The members as JSON, for a joining member's query."""

    def on_removed(self) -> None:
        """A peer refused us as removed: this member must stop."""

    def snapshot_file(self) -> tuple[str, "SnapshotMetadata | None"]:
        """A copy of the backend to send with a snapshot (removed once sent),
        and the metadata of the state in it (None: keep the message's)."""

    def on_rtt(self, member_id: int, seconds: float) -> None:
        """The round trip of a stream handshake with ``member_id``."""


@dataclass
class PeerTLS:
    """TLS for peer streams: the listener's and the dialer's contexts, and a
    check of a verified peer certificate (returns why it is refused, or "")."""
    server_ssl: ssl.SSLContext | None = None
    client_ssl: ssl.SSLContext | None = None
    check_peer_cert: Callable[[dict | None], str] = lambda _cert: ""


class Transport:
    def __init__(self, local_id: int, cluster_id: int, host: PeerHost, *,
                 snapshot_dir: str | None = None, tls: PeerTLS | None = None):
        self.local_id = local_id
        self.cluster_id = cluster_id
        self.host = host
        self.snapshot_dir = snapshot_dir    # where received backend files are kept
        tls = tls or PeerTLS()
        self.server_ssl = tls.server_ssl
        self.client_ssl = tls.client_ssl
        self.check_peer_cert = tls.check_peer_cert
        self.peers: dict[int, Peer] = {}
        self.servers: list[asyncio.AbstractServer] = []
        self.active_since: dict[int, float] = {}
        self._conns: set[asyncio.Task] = set()
        self._by_sender: dict[int, set[asyncio.Task]] = {}

    def on_active(self, member_id: int) -> None:
        self.active_since[member_id] = asyncio.get_running_loop().time()

    async def listen(self, urls: list[str]) -> None:
        for url in urls:
            host, port = _host_port(url)
            ssl_ctx = self.server_ssl if url.startswith("https") else None
            try:
                srv = await asyncio.start_server(self._accept, host, port, ssl=ssl_ctx,
                                                 reuse_address=True)
            except OSError as exc:  # etcd's text: listen tcp H:P: bind: address already in use
                why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
                shown = f"[{host}]" if ":" in host else host
                raise OSError(f"listen tcp {shown}:{port}: bind: {why}") from None
            self.servers.append(srv)

    def add_peer(self, member_id: int, urls: list[str]) -> None:
        if member_id == self.local_id or member_id in self.peers:
            return
        p = Peer(self, member_id, urls)
        self.peers[member_id] = p
        p.start()

    def update_peer(self, member_id: int, urls: list[str]) -> None:
        p = self.peers.get(member_id)
        if p is not None:
            p.urls = list(urls)

    async def remove_peer(self, member_id: int) -> None:
        p = self.peers.pop(member_id, None)
        if p is not None:
            await p.stop()
        # close its streams to us too: its redial is then refused as removed,
        # which is how a removed member that missed its removal learns of it
        for t in list(self._by_sender.get(member_id, ())):
            t.cancel()

    def send(self, msgs) -> None:
        by_peer: dict[int, list[Message]] = {}
        for m in msgs:
            by_peer.setdefault(m.to, []).append(m)
        for to, batch in by_peer.items():
            p = self.peers.get(to)
            if p is None:
                continue
            p.send(batch)

    def is_active(self, member_id: int) -> bool:
        p = self.peers.get(member_id)
        return p is not None and p.active

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._conns.add(task)
        peer = writer.get_extra_info("peername")
        part = None  # (file, path) of a snapshot being received
        try:
            sender = await self._handshake(reader, writer, peer)
            if sender is None:
                return
            self._by_sender.setdefault(sender, set()).add(task)
            while True:
                data = await read_frame(reader)
                if self.host.is_removed(sender):
                    log.warning("closing the stream of removed member %x", sender)
                    return
                part = await self._receive(peer_pb2.PeerFrame.FromString(data), part, sender)
        except ssl.SSLError as exc:
            log.error("TLS handshake with peer %s failed: %s", peer, exc)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, asyncio.TimeoutError):
            log.debug("stream from peer %s closed", peer)
        except asyncio.CancelledError:
            log.debug("stream from peer %s closed by this member", peer)
        except Exception:  # noqa: BLE001 - a bad peer must never take the member down
            log.exception("peer stream from %s failed", peer)
        finally:
            self._conns.discard(task)
            for tasks in self._by_sender.values():
                tasks.discard(task)
            if part is not None:  # the stream broke mid-snapshot: the leader sends it again
                part[0].close()
                os.remove(part[1])
            writer.close()

    async def _handshake(self, reader, writer, peer) -> int | None:
        """Read the dialer's hello and answer it; the sender's id when the
        stream is accepted, None when it was answered and is done."""
        hello = peer_pb2.PeerHello.FromString(await asyncio.wait_for(read_frame(reader), 5))
        sender = getattr(hello, "from")
        if writer.get_extra_info("ssl_object") is not None:
            error = self.check_peer_cert(writer.get_extra_info("peercert"))
            if error:
                await self._answer(writer, peer, error)
                return None
        if hello.cluster_id == 0 and hello.to == 0:  # a joining member's query
            resp = peer_pb2.PeerHelloResponse(ok=False, cluster_id=self.cluster_id,
                                              members=self.host.member_list())
            write_frame(writer, resp.SerializeToString())
            await writer.drain()
            return None
        error = self._refusal(hello, sender)
        await self._answer(writer, peer, error)
        return None if error else sender

    @staticmethod
    async def _answer(writer, peer, error: str) -> None:
        if error:
            log.error("refusing peer stream from %s: %s", peer, error)
        write_frame(writer, peer_pb2.PeerHelloResponse(ok=not error, error=error).SerializeToString())
        await writer.drain()

    def _refusal(self, hello, sender: int) -> str:
        """Why a stream is refused ("" when it is accepted)."""
        if hello.cluster_id != self.cluster_id:
            return (f"cluster ID mismatch: member {self.local_id:x} is in cluster "
                    f"{self.cluster_id:x}, the remote member {sender:x} claims cluster "
                    f"{hello.cluster_id:x}")
        if hello.to != self.local_id:
            return f"member {self.local_id:x} is not the addressed member {hello.to:x}"
        if self.host.is_removed(sender):
            return f"member {sender:x} has been removed from the cluster"
        return ""

    async def _receive(self, frame, part, sender: int):
        """One frame: snapshot chunks to the file being received, messages
        to the host; returns the snapshot file still being received."""
        msgs = [message_from_pb(p) for p in frame.messages]
        if frame.snapshot_chunk:
            part = await self._snapshot_chunk(part, sender, frame.snapshot_chunk)
        if any(m.type == MessageType.SNAP for m in msgs):
            msgs, part = await self._snapshot_arrived(msgs, part, sender)
        if msgs:
            self.host.on_messages(msgs)
        return part

    async def _snapshot_chunk(self, part, sender: int, chunk: bytes):
        loop = asyncio.get_running_loop()
        if part is None:
            if self.snapshot_dir is None:
                raise ConnectionError("a snapshot chunk, but this member keeps no snapshots")
            path = os.path.join(self.snapshot_dir, f"from-{sender:x}.snap.db.part")
            part = (open(path, "wb"), path)
        await loop.run_in_executor(None, part[0].write, chunk)
        return part

    async def _snapshot_arrived(self, msgs: list[Message], part, sender: int):
        """File the received backend under the snapshot's index and pass the
        message on; a snapshot message whose file did not arrive is dropped
        (the leader sends the snapshot again)."""
        out = []
        for m in msgs:
            if m.type != MessageType.SNAP or m.snapshot is None or m.snapshot.data != SNAPSHOT_IN_FILE:
                out.append(m)
                continue
            if part is None:
                log.error("dropping a snapshot message from %x: its backend file did not arrive", sender)
                continue
            f, path = part
            part = None

            def finish() -> str:
                f.flush()
                os.fsync(f.fileno())
                f.close()
                final = received_snapshot(self.snapshot_dir, m.snapshot.metadata.index)
                os.replace(path, final)
                return final
            final = await asyncio.get_running_loop().run_in_executor(None, finish)
            log.info("received a snapshot of %d bytes at index %d from %x", os.path.getsize(final),
                     m.snapshot.metadata.index, sender)
            out.append(m)
        return out, part

    async def stop(self) -> None:
        for srv in self.servers:
            srv.close()
        for p in list(self.peers.values()):
            await p.stop()
        for t in list(self._conns):
            t.cancel()
        for srv in self.servers:
            try:
                await asyncio.wait_for(srv.wait_closed(), 1)
            except asyncio.TimeoutError:
                log.warning("peer listener did not close within 1 s")


async def fetch_cluster(urls: list[str], local_id: int = 0, client_ssl=None,
                        timeout: float = 2.0) -> tuple[int, list[bytes]]:
    """Ask an existing member (any of ``urls``) for the cluster id and member
    list: what a member started with ``--initial-cluster-state existing``
    needs before it can talk to the cluster."""
    last: Exception | None = None
    for url in urls:
        try:
            host, port = _host_port(url)
            ssl_ctx = client_ssl if url.startswith("https") else None
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ssl_ctx,
                                        server_hostname=host if ssl_ctx else None), timeout)
            hello = peer_pb2.PeerHello(cluster_id=0, to=0, version="pyetcd")
            setattr(hello, "from", local_id)
            write_frame(writer, hello.SerializeToString())
            await writer.drain()
            resp = peer_pb2.PeerHelloResponse.FromString(await asyncio.wait_for(read_frame(reader), timeout))
            writer.close()
            if resp.cluster_id:
                return resp.cluster_id, list(resp.members)
            last = ConnectionError(resp.error or "no cluster id in the answer")
        except (OSError, asyncio.TimeoutError, ConnectionError, ValueError, ssl.SSLError) as exc:
            last = exc
    raise ConnectionError(f"could not retrieve the cluster from {urls}: {last}")
