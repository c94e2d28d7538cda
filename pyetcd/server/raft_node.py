"""The one Ready loop: drives the sans-I/O Raft node with time, the network,
the disk and the apply path.

Everything that reaches the node (ticks, peer messages, proposals, read
requests) is queued and fed to it at the top of one loop iteration, then
every Ready is handled in order:

1. a leader sends its messages first (appends go out while it writes its own
   disk: safe, since commitment needs a quorum of *persisted* logs);
2. the snapshot, hard state and entries are persisted (one WAL write and one
   fdatasync for the whole Ready, in a worker thread);
3. a follower sends its messages (acknowledgements only after persisting);
4. committed entries go to the host's apply loop (which applies conf
   changes to the node through :meth:`RaftNode.apply_conf_change`, in log
   order);
5. read states release the linearizable reads waiting on them;
6. ``advance``.

While one Ready is being persisted, new proposals and messages accumulate and
enter the node together in the next iteration: batching follows load.

Why sending before persisting is safe here: the core counts the leader's own
appended entries toward commitment, but follower acknowledgements are only
stepped into the node at the top of a later iteration, after this Ready's
fsync has finished; so no entry is ever committed on the strength of the
leader's unpersisted copy.  A lone voter commits at once, and its Ready's
committed entries are applied only after the same fsync.
"""
from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import logging
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from pyetcd.raft.rawnode import RawNode
from pyetcd.raft.storage import MemoryStorage
from pyetcd.raft.types import (NONE, ConfChange, ConfState, Entry, Message, MessageType,
                               ProposalDropped, Snapshot, StateType, Status)
from pyetcd.storage.failpoints import (ACK_BEFORE_FSYNC, RAFT_AFTER_SAVE, RAFT_AFTER_SAVE_SNAP,
                                      RAFT_BEFORE_SAVE, RAFT_BEFORE_SAVE_SNAP,
                                      RAFT_BEFORE_WAL_RELEASE, SKIP_FSYNC, defect, failpoint)
from pyetcd.util.tasks import cancel_and_wait

log = logging.getLogger("pyetcd.raft_node")
LATE_SYNC_SECONDS = 3.0  # the ackBeforeFsync test defect syncs this much later
_U64 = struct.Struct(">Q")


class RaftHost(Protocol):
    """What the Ready loop needs from the member it serves (the server)."""

    def apply_committed(self, entries: list[Entry]) -> int:
        """Apply committed entries in order; returns the applied index."""

    async def install_snapshot(self, snap: Snapshot) -> int:
        """Replace the state with a snapshot's; returns the applied index."""

    def on_leader_change(self, lead: int, is_leader: bool, was_leader: bool) -> None:
        """The leader (or this member's role) changed."""

    def on_ticks(self, ticks: int) -> None:
        """``ticks`` heartbeat intervals passed (timers that follow Raft time)."""

    def after_ready(self) -> None:
        """One Ready was handled."""

    def on_fatal(self, exc: BaseException) -> None:
        """The loop failed: the member must stop acknowledging."""


class RaftNode:
    """``ticker``: True runs a real-time ticker every ``tick_seconds``; False
    leaves time to the caller (:meth:`tick`), as a test's fake clock does."""

    def __init__(self, host: RaftHost, node: RawNode, storage: MemoryStorage, transport, *,
                 wal=None, snapshotter=None, applied: int = 0, tick_seconds: float = 0.1,
                 ticker: bool = True):
        self.host = host
        self.node = node
        self.storage = storage
        self.transport = transport
        self.wal = wal
        self.snapshotter = snapshotter
        self.applied = applied
        self.tick_seconds = tick_seconds
        self.ticker = ticker
        self.pending: list[bytes] = []
        self.pending_cc: list[ConfChange] = []
        self.inbox: list[Message] = []
        self.ticks = 0
        self.read_batch: list[asyncio.Future] = []
        self.reads_in_flight: dict[bytes, tuple[list[asyncio.Future], int]] = {}
        self.applied_waiters: list[tuple[int, int, asyncio.Future]] = []
        self._seq = itertools.count()
        self._read_ctx = itertools.count(1)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal")
        self.lead = NONE
        self.is_leader = False
        self.stopped = False
        self.failed: BaseException | None = None
        # how long the loop lets work accumulate before feeding the node,
        # while it is busy: 2 ms turn a thousand small Readies a second into a
        # few big ones (check perf l, 3 members: 1,581 -> 2,548 writes/s), but
        # a lone request would only wait them out (etcd-benchmark put at
        # 100/s, 3 members: p50 20 ms with the delay, 7 ms without), so it
        # applies only after a feed that carried two or more requests or
        # entries (``_busy``)
        self.batch_delay = 0.002
        self._busy = False
        self._unsynced = next((d for d in (ACK_BEFORE_FSYNC, SKIP_FSYNC) if defect(d)), None)

    # ---- inputs (any coroutine on the loop) ---------------------------------------------
    def propose(self, data: bytes) -> None:
        self.pending.append(data)
        self._wake.set()

    def propose_conf_change(self, cc: ConfChange) -> None:
        self.pending_cc.append(cc)
        self._wake.set()

    def receive(self, msgs: list[Message]) -> None:
        self.inbox.extend(msgs)
        self._wake.set()

    def read_index(self) -> asyncio.Future:
        """A future resolved once this member has applied everything committed
        before the call (a linearizable read may then run locally)."""
        fut = asyncio.get_running_loop().create_future()
        self.read_batch.append(fut)
        self._wake.set()
        return fut

    def wait_applied(self, index: int) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        if self.applied >= index:
            fut.set_result(None)
        else:
            heapq.heappush(self.applied_waiters, (index, next(self._seq), fut))
        return fut

    def _save(self, hs, entries, sync: bool) -> None:
        failpoint(RAFT_BEFORE_SAVE)
        if self._unsynced is not None:   # a test-only defect: acknowledge before syncing
            self.wal.save(hs, entries, False)
            if sync and self._unsynced == ACK_BEFORE_FSYNC:
                threading.Timer(LATE_SYNC_SECONDS, self._late_sync).start()
        else:
            self.wal.save(hs, entries, sync)
        failpoint(RAFT_AFTER_SAVE)

    def _late_sync(self) -> None:
        try:
            self.wal.sync()
        except Exception:  # noqa: BLE001 - the WAL is closed at stop: nothing to sync
            log.debug("late sync skipped", exc_info=True)

    def _persist_snapshot(self, snap) -> None:
        """A snapshot received from the leader: file first, then the WAL
        marker (a restart opens the WAL at the newest snapshot it names)."""
        failpoint(RAFT_BEFORE_SAVE_SNAP)
        self.snapshotter.save(snap)
        self.wal.save_snapshot(snap.metadata.index, snap.metadata.term)
        failpoint(RAFT_AFTER_SAVE_SNAP)

    async def save_snapshot(self, snap) -> None:
        """Persist a snapshot taken by the server (WAL marker, snapshot file)
        and release the WAL before it."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._disk, self._save_snapshot_sync, snap)

    def _save_snapshot_sync(self, snap) -> None:
        self._persist_snapshot(snap)
        failpoint(RAFT_BEFORE_WAL_RELEASE)
        self.wal.release_to(snap.metadata.index)
        self.snapshotter.purge()

    def transfer_leader(self, to: int) -> None:
        self.node.transfer_leader(to)
        self._wake.set()

    def tick(self, n: int = 1) -> None:
        """Advance Raft time by ``n`` heartbeat intervals."""
        self.ticks += n
        self._wake.set()

    def campaign(self) -> None:
        """Start an election now (a lone voter need not wait a timeout)."""
        self.node.campaign()
        self._wake.set()

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed conf change to the node (from the host's apply loop)."""
        return self.node.apply_conf_change(cc)

    def report_unreachable(self, member_id: int) -> None:
        self.node.report_unreachable(member_id)

    def report_snapshot(self, member_id: int, ok: bool) -> None:
        self.node.report_snapshot(member_id, ok)

    # ---- state ----------------------------------------------------------------------------
    @property
    def term(self) -> int:
        return self.node.raft.term

    @property
    def committed(self) -> int:
        return self.node.raft.raft_log.committed

    def conf_state(self) -> ConfState:
        return self.node.raft.trk.conf_state()

    def status(self) -> Status:
        return self.node.status()

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(), name="raft-loop")]
        if self.ticker:
            self._tasks.append(loop.create_task(self._ticker(), name="raft-ticker"))

    async def stop(self) -> None:
        self.stopped = True
        self._wake.set()
        for t in self._tasks:
            await cancel_and_wait(t, log, t.get_name())
        self._disk.shutdown(wait=True)
        if self.wal is not None:
            self.wal.close()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            self.ticks += 1
            self._wake.set()

    async def _run(self) -> None:
        try:
            while not self.stopped:
                await self._wake.wait()
                # let every handler that is ready to run enqueue its proposal
                # first: one Ready then carries them all
                await asyncio.sleep(self.batch_delay if self._busy else 0)
                self._wake.clear()
                self._feed()
                while self.node.has_ready() and not self.stopped:
                    await self._handle(self.node.ready())
                    if self.inbox or self.pending or self.ticks or self.read_batch:
                        self._wake.set()
                        break
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - the member must stop acknowledging
            self.failed = exc
            log.critical("raft loop failed; this member stops serving writes: %r", exc,
                         exc_info=True)
            self.host.on_fatal(exc)

    # ---- feeding the node ---------------------------------------------------------------
    def _feed(self) -> None:
        node = self.node
        ticks, self.ticks = self.ticks, 0
        for _ in range(ticks):
            node.tick()
        if ticks:
            self.host.on_ticks(ticks)
        inbox, self.inbox = self.inbox, []
        work = len(self.pending) + len(self.read_batch)
        for m in inbox:
            if m.type == MessageType.APP or m.type == MessageType.PROP:
                work += len(m.entries)
            elif m.type == MessageType.READ_INDEX:
                work += 1
        self._busy = work >= 2
        for m in inbox:
            try:
                node.step(m)
            except Exception as exc:  # noqa: BLE001 - a malformed peer message is dropped
                log.warning("dropping peer message %s from %x: %s", m.type.name, m.frm, exc)
        if self.pending and self._leader_reachable():
            batch, self.pending = self.pending, []
            try:
                node.propose_batch(batch)
            except ProposalDropped:
                self.pending[:0] = batch  # no leader after all: keep them for later
        if self.pending_cc and node.lead != NONE:
            ccs, self.pending_cc = self.pending_cc, []
            for cc in ccs:
                try:
                    node.propose_conf_change(cc)
                except ProposalDropped:
                    self.pending_cc.append(cc)
        if self.read_batch and node.lead != NONE:
            batch, self.read_batch = self.read_batch, []
            ctx = _U64.pack(next(self._read_ctx))
            self.reads_in_flight[ctx] = (batch, 0)
            try:
                node.read_index(ctx)
            except ProposalDropped:
                del self.reads_in_flight[ctx]
                self.read_batch[:0] = batch
        if ticks and self.reads_in_flight:
            self._retry_reads(ticks)

    def _leader_reachable(self) -> bool:
        """Forwarding a proposal to a leader whose stream is down would lose
        it; such proposals wait here for the next leader instead."""
        lead = self.node.lead
        if lead == NONE:
            return False
        return lead == self.node.id or self.transport.is_active(lead)

    def _retry_reads(self, ticks: int) -> None:
        """A ReadIndex lost with a leader change is asked again (etcd retries
        every 500 ms)."""
        for ctx, (batch, age) in list(self.reads_in_flight.items()):
            age += ticks
            if age * self.tick_seconds >= 0.5:
                del self.reads_in_flight[ctx]
                self.read_batch.extend(f for f in batch if not f.done())
            else:
                self.reads_in_flight[ctx] = (batch, age)
        if self.read_batch:
            self._wake.set()

    # ---- one Ready --------------------------------------------------------------------
    async def _handle(self, rd) -> None:
        node = self.node
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state)
        leader_now = node.is_leader
        if leader_now and rd.messages:
            self.transport.send(rd.messages)
        if rd.snapshot is not None:
            self.applied = await self.host.install_snapshot(rd.snapshot)
            self._release_applied()
            stored = dataclasses.replace(rd.snapshot, data=b"")  # the backend holds the data
            if self.wal is not None:
                await asyncio.get_running_loop().run_in_executor(
                    self._disk, self._persist_snapshot, stored)
            self.storage.apply_snapshot(stored)
        if self.wal is not None and (rd.entries or rd.hard_state is not None):
            await asyncio.get_running_loop().run_in_executor(
                self._disk, self._save, rd.hard_state, list(rd.entries), rd.must_sync)
        if rd.entries:
            self.storage.append(rd.entries)
        if rd.hard_state is not None:
            self.storage.set_hard_state(rd.hard_state)
        if not leader_now and rd.messages:
            self.transport.send(rd.messages)
        if rd.committed_entries:
            self.applied = self.host.apply_committed(rd.committed_entries)
            self._release_applied()
        for rs in rd.read_states:
            entry = self.reads_in_flight.pop(rs.request_ctx, None)
            if entry is None:
                continue
            for fut in entry[0]:
                if not fut.done():
                    self._chain(self.wait_applied(rs.index), fut)
        node.advance(rd)
        self.host.after_ready()

    @staticmethod
    def _chain(src: asyncio.Future, dst: asyncio.Future) -> None:
        def done(_):
            if not dst.done():
                dst.set_result(None)
        src.add_done_callback(done)

    def _on_soft_state(self, ss) -> None:
        was_leader = self.is_leader
        self.lead = ss.lead
        self.is_leader = ss.raft_state == StateType.LEADER
        self.host.on_leader_change(ss.lead, self.is_leader, was_leader)
        if ss.lead != NONE:
            self._wake.set()  # proposals waiting for a leader can go now

    def _release_applied(self) -> None:
        applied = self.applied
        w = self.applied_waiters
        while w and w[0][0] <= applied:
            _, _, fut = heapq.heappop(w)
            if not fut.done():
                fut.set_result(None)
