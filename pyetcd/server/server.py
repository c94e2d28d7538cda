"""EtcdServer: propose-and-wait, the apply loop, response headers, and the
narrow facade the API layer calls.

A write travels: gRPC handler -> a facade method (``put``, ``txn``, ...) ->
:meth:`EtcdServer.propose` (encoded as an ``InternalRequest`` with a
member-unique id, a waiter registered) -> the Raft node (raft_node.py:
replicated, persisted, committed) -> :meth:`EtcdServer.apply_committed`
(committed entries in index order through the applier chain, one backend
batch for the whole run, ``consistent_index`` stored with it, entries at or
below it skipped) -> the waiter gets the response.  An applied write is
acknowledged without waiting for the LMDB commit: the entry is already in
the WAL of a quorum, and a restart replays what the backend lacks.

The member's other concerns live beside it, each in its own module and held
here as a declared field: the state stores (stores.py), bootstrap
(bootstrap.py), the applier chain (apply/), the quota (quota.py), the auth
gate (auth_gate.py), leader forwarding (forward.py), membership changes
(reconfig.py), Raft snapshots (snapshots.py), maintenance (maintenance.py),
the watch hub (watch_hub.py), tick-driven timers (housekeeping.py), the
compactor (compactor.py) and the peer transport's events (peering.py).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import struct
import time

from pyetcd import errors
from pyetcd.cluster import Member, parse_conf_change_context
from pyetcd.mvcc.kvstore import MVCCError
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.pyetcdpb.internal_pb2 import InternalRequest
from pyetcd.raft.config import Config as RaftConfig
from pyetcd.raft.rawnode import RawNode
from pyetcd.raft.types import NONE, ConfChange, ConfChangeType, EntryType, decode_conf_change
from pyetcd.storage import schema
from pyetcd.storage.failpoints import (APPLY_BEFORE_CONSISTENT_INDEX, STALE_READS, defect,
                                      defects, failpoint)
from pyetcd.storage.snap import Snapshotter
from pyetcd.util.idgen import IDGenerator
from pyetcd.util.tasks import spawn
from pyetcd.version import ETCD_VERSION

from . import apply as apply_layer
from .apply import request_kind
from .auth_gate import AuthGate
from .bootstrap import member_paths, open_raft, take_over_etcd_data
from .compactor import start_compactor
from .config import Config
from .forward import LeaderForwarder
from .housekeeping import Housekeeping
from .leases import LeaseOps
from .maintenance import Maintenance, alarm_errors
from .metrics import ServerMetrics
from .peering import PeerEvents, tcp_fetch_cluster, tcp_transport
from .quota import Quota
from .raft_node import RaftNode
from .reconfig import Reconfig
from .snapshots import RaftSnapshots
from .stores import Stores, open_stores
from .tls import client_files
from .watch_hub import WatchHub

log = logging.getLogger("pyetcd.server")
_U64 = struct.Struct(">Q")
SLOW_APPLY = 0.1  # etcd warns of an apply over 100 ms
MAX_RAFT_MSG_SIZE = 1024 * 1024
MAX_INFLIGHT_MSGS = 512


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_exception(errors.TIMEOUT())


class EtcdServer:
    """One member.  ``transport_factory(member_id, cluster_id, host,
    snapshot_dir)`` and ``fetch_cluster(peer_urls)`` default to the real
    TCP/TLS peer transport; ``clock`` is the monotonic clock of leases and
    tokens; ``ticker`` False leaves Raft time to the caller
    (``server.raft.tick()``), as the in-process test cluster does."""

    def __init__(self, cfg: Config, *, transport_factory=None, fetch_cluster=None,
                 clock=time.monotonic, ticker: bool = True):
        self.cfg = cfg
        self.metrics = ServerMetrics()
        self.data_dir = cfg.data_dir_path
        self.db_path, _, self.snap_dir = member_paths(self.data_dir)
        self.max_request_bytes = cfg.max_request_bytes
        self.max_txn_ops = cfg.max_txn_ops
        self.request_timeout = 5.0 + 2 * cfg.election_timeout / 1000.0
        self.election_ticks = max(2, cfg.election_timeout // cfg.heartbeat_interval)
        self.clock = clock
        self.ticker = ticker
        self.transport_factory = transport_factory or (
            lambda *args: tcp_transport(cfg, *args))
        self.fetch_cluster = fetch_cluster or tcp_fetch_cluster(cfg)
        self.quota = Quota(cfg.quota_bytes, db_size=lambda: self.backend.size_for_quota(),
                           raise_alarm=lambda: self.propose_request("alarm", pb.AlarmRequest(
                               action=pb.AlarmRequest.ACTIVATE, memberID=self.member_id,
                               alarm=pb.NOSPACE)),
                           has_alarm=lambda: self.alarms.has(pb.NOSPACE))
        take_over_etcd_data(cfg)
        # fn(revision) whenever the store's revision changes (applied, or a
        # snapshot installed): the front-ends' view of what is applied
        self.revision_listeners: list = []
        self.stores: Stores = self._open_stores(None)
        self.applied_index, self.term = self.kv.consistent_index()
        self.watch_hub = WatchHub(self.kv)
        self.gate = AuthGate(self)
        self.reconfig = Reconfig(self)
        self.maintenance = Maintenance(lambda: self.stores, self.header)
        self.leases = LeaseOps(self)
        self.housekeeping = Housekeeping(self, cfg.heartbeat_interval)
        self.forwarder = LeaderForwarder(self._leader_client_url, lambda: client_files(cfg),
                                         self.request_timeout)
        self.peer_events = PeerEvents(self)
        self.snapshots: RaftSnapshots | None = None
        self.compactor = None
        self.raft: RaftNode | None = None
        self.transport = None
        self.idgen: IDGenerator | None = None
        self.member_id = 0
        self.leader_id = NONE
        self._waiters: dict[int, asyncio.Future] = {}
        self._tasks: list[asyncio.Task] = []
        self._backend_inflight = 0
        self.stopped = False
        self.stop_event: asyncio.Event | None = None
        self.fatal: BaseException | None = None
        self._stale_reads = defect(STALE_READS)
        if defects():
            log.warning("TEST-ONLY DEFECTS ENABLED (%s): this member is deliberately unsafe",
                        ",".join(sorted(defects())))

    def _open_stores(self, previous: Stores | None) -> Stores:
        """Open the state and compose the applier over it (again after a
        snapshot from the leader replaced the backend)."""
        stores = open_stores(self.cfg, self.db_path, on_commit=self.metrics.backend_commit.observe,
                             clock=self.clock, previous=previous)
        self.stores = stores
        stores.kv.listeners.append(self._revision_changed)
        for fn in self.revision_listeners:
            fn(stores.kv.current_rev)
        self.applier = apply_layer.build(stores, self.quota)
        self.reader = apply_layer.KVApplier(stores.kv, stores.lessor)  # locally served reads
        if previous is not None:
            self.watch_hub.attach(stores.kv)
        return stores

    def _revision_changed(self, changes, rev: int) -> None:
        for fn in self.revision_listeners:
            fn(rev)

    # the current state (replaced by a snapshot install)
    backend = property(lambda self: self.stores.backend)
    kv = property(lambda self: self.stores.kv)
    lessor = property(lambda self: self.stores.lessor)
    alarms = property(lambda self: self.stores.alarms)
    cluster = property(lambda self: self.stores.cluster)
    auth = property(lambda self: self.stores.auth)

    # ---- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.cfg
        self.stop_event = asyncio.Event()
        snapshotter = Snapshotter(self.snap_dir)
        rs = await open_raft(cfg, self.stores, snapshotter, self.fetch_cluster)
        self.member_id, self.term = rs.member_id, rs.term
        self.snapshots = RaftSnapshots(self, snapshotter, rs.storage, rs.snap_index)
        self.idgen = IDGenerator(self.member_id, int(time.time() * 1000))
        rs.wal.on_fsync = self.metrics.wal_fsync.observe
        self.backend.put(schema.META, schema.LOCAL_MEMBER_ID, _U64.pack(self.member_id))
        ops, _ = await asyncio.wrap_future(self.backend.commit())
        self.backend.release(ops)
        rcfg = RaftConfig(id=self.member_id, election_tick=self.election_ticks, heartbeat_tick=1,
                          pre_vote=cfg.pre_vote, check_quorum=True, applied=rs.raft_applied,
                          max_size_per_msg=MAX_RAFT_MSG_SIZE, max_inflight_msgs=MAX_INFLIGHT_MSGS)
        node = RawNode(rcfg, rs.storage)
        self.transport = await self.transport_factory(self.member_id, self.cluster.cluster_id,
                                                      self.peer_events, self.snap_dir)
        for m in self.cluster.members.values():
            self.transport.add_peer(m.id, m.peer_urls)
        gc.collect()
        gc.freeze()  # the restored index is long-lived: keep it out of collections
        self.raft = RaftNode(self, node, rs.storage, self.transport, wal=rs.wal,
                             snapshotter=snapshotter, applied=self.applied_index,
                             tick_seconds=cfg.heartbeat_interval / 1000.0, ticker=self.ticker)
        self.raft.start()
        if self.cluster.voters() == [self.member_id]:
            self.raft.campaign()  # a single member need not wait an election timeout
        self._tasks.append(spawn(self.reconfig.publish(), log, "publishing this member"))
        self.compactor = start_compactor(self)

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        for t in self._tasks:
            t.cancel()
        if self.compactor is not None:
            await self.compactor.stop()
        await self.watch_hub.stop()
        if self.raft is not None:
            await self.raft.stop()
        if self.transport is not None:
            await self.transport.stop()
        await self.forwarder.close()
        while self._backend_inflight:
            await asyncio.sleep(0.01)
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(errors.STOPPED())
        self.backend.close()

    def on_removed(self) -> None:
        log.warning("this member (%x) has been permanently removed from the cluster; stopping",
                    self.member_id)
        self.on_fatal(SystemExit("removed from the cluster"))

    def on_fatal(self, exc: BaseException) -> None:
        self.fatal = exc
        if self.stop_event is not None:
            self.stop_event.set()

    # ---- proposals ----------------------------------------------------------------------
    def _register(self, req: InternalRequest) -> tuple[int, bytes, asyncio.Future]:
        if self.stopped or self.fatal is not None:
            raise errors.STOPPED()
        rid = self.idgen.next()
        req.header.ID = rid
        data = req.SerializeToString()
        if len(data) > self.max_request_bytes:
            raise errors.REQUEST_TOO_LARGE()
        fut = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        return rid, data, fut

    async def propose(self, req: InternalRequest):
        """Replicate ``req`` and wait until it is applied here; returns its
        response or raises its error.  With auth on, the request's user goes
        in the header (re-checked on every member's apply path)."""
        if self.auth.enabled and not req.HasField("authenticate"):
            ai = await self.gate.auth_info()
            if ai is not None:
                req.header.username = ai.username
                req.header.auth_revision = ai.revision
        rid, data, fut = self._register(req)
        self.raft.propose(data)
        result = await self._wait(rid, fut)
        if isinstance(result, errors.EtcdError):
            raise result
        return result

    async def propose_request(self, kind: str, request, as_root: bool = False):
        """Propose one request (``kind``: its InternalRequest field) and answer
        it with this member's header; ``as_root``: with root's authority (the
        member's own requests, as etcd's WithRoot)."""
        req = InternalRequest()
        getattr(req, kind).CopyFrom(request)
        if as_root and self.auth.enabled:
            req.header.username = "root"
            req.header.auth_revision = self.auth.revision
        resp = await self.propose(req)
        if resp is not None:
            self.header(resp.header)
        return resp

    async def _wait(self, rid: int, fut: asyncio.Future):
        # a timer on the future itself: cheaper than wait_for's task per request
        timer = asyncio.get_running_loop().call_later(self.request_timeout, _expire, fut)
        try:
            return await fut
        except BaseException:
            self.metrics.proposals_failed += 1
            raise
        finally:
            timer.cancel()
            self._waiters.pop(rid, None)

    async def propose_conf_change(self, kind: str, node_id: int, member: Member | None):
        """Propose a membership change (kind: add, add_learner, remove, update)
        and wait until it is applied; returns the new member list."""
        rid = self.idgen.next()
        fut = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        self.raft.propose_conf_change(self.reconfig.conf_change(kind, node_id, member, rid))
        result = await self._wait(rid, fut)
        if isinstance(result, errors.EtcdError):
            raise result
        return result

    @property
    def pending_proposals(self) -> int:
        return len(self._waiters)

    def next_lease_id(self) -> int:
        return self.idgen.next() & ((1 << 63) - 1)

    # ---- the apply loop (RaftHost) ------------------------------------------------------------
    def apply_committed(self, entries) -> int:
        """Apply committed entries in order: runs of normal entries in one
        backend batch each, conf changes one by one between them."""
        batch = []
        for e in entries:
            if e.type == EntryType.CONF_CHANGE:
                if batch:
                    self._apply_batch(batch)
                    batch = []
                self._apply_conf_change(e)
            else:
                batch.append(e)
        if batch:
            self._apply_batch(batch)
        return self.applied_index

    def _apply_batch(self, entries) -> None:
        started = time.monotonic()
        results = []
        applier = self.applier
        parse = InternalRequest.FromString
        last_index, last_term = self.applied_index, self.term
        for e in entries:
            if e.index <= self.applied_index:
                continue  # already in the backend (consistent_index guard)
            last_index, last_term = e.index, e.term
            if not e.data:
                # a new leader's empty entry: every entry of earlier terms is
                # applied (a revoke the old leader proposed among them), so
                # now this leader decides expiry, as etcd's Promote does here
                if self.raft.is_leader and e.term == self.raft.term and not self.lessor.primary:
                    self.lessor.promote(extend=self.cfg.election_timeout / 1000.0)
                continue
            req = parse(e.data)
            try:
                result = applier.apply(req, request_kind(req), e.index)
            except errors.EtcdError as exc:
                result = exc
            results.append((req.header.ID, result))
        if last_index > self.applied_index:
            failpoint(APPLY_BEFORE_CONSISTENT_INDEX)
            self.kv.set_consistent_index(last_index, last_term)
            self.applied_index = last_index
        took = time.monotonic() - started
        if took > SLOW_APPLY:
            self.metrics.slow_applies += 1
            log.warning("apply request took too long; took=%.3fs expected-duration=%.0fms "
                        "entries=%d", took, SLOW_APPLY * 1000, len(entries))
        self._commit_backend(results)

    def _apply_conf_change(self, e) -> None:
        if e.index <= self.applied_index:
            return
        cc = decode_conf_change(e.data) if e.data else None
        err, rid = None, 0
        if cc is not None:
            _, rid = parse_conf_change_context(cc.context)
            err = self.reconfig.check(cc)
            if err is None:
                self.raft.apply_conf_change(cc)
                self.reconfig.apply(cc)
            else:  # keep Raft's config in step with the member list: a no-op
                self.raft.apply_conf_change(ConfChange(ConfChangeType.UPDATE_NODE, cc.node_id, b""))
        self.kv.set_consistent_index(e.index, e.term)
        self.applied_index = max(self.applied_index, e.index)
        self._commit_backend([(rid, err if err is not None else self.cluster.to_pb())] if rid else [])

    def _commit_backend(self, results) -> None:
        """Hand the batch to the backend and answer its waiters: the entries
        are in the WAL of a quorum, so an applied write is acknowledged
        without waiting for LMDB."""
        fut = asyncio.wrap_future(self.backend.commit())
        self._backend_inflight += 1
        fut.add_done_callback(self._committed)
        if results:
            self._resolve(results)

    def _committed(self, fut: asyncio.Future) -> None:
        self._backend_inflight -= 1
        if fut.cancelled() or fut.exception() is not None:
            exc = None if fut.cancelled() else fut.exception()
            log.critical("backend commit failed; no further writes are acknowledged: %s", exc)
            self.on_fatal(exc or RuntimeError("backend commit cancelled"))
            return
        ops, _ = fut.result()
        self.backend.release(ops)

    def _resolve(self, results) -> None:
        waiters = self._waiters
        for rid, result in results:
            fut = waiters.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_result(result)

    async def install_snapshot(self, snap) -> int:
        """Install the leader's backend (a member too far behind for the log)."""
        source = self.snapshots.received_file(snap)
        if source is None:
            self.applied_index = max(self.applied_index, snap.metadata.index)
            return self.applied_index
        while self._backend_inflight:
            await asyncio.sleep(0.005)
        self.backend.close()
        self.snapshots.install(self.db_path, source, snap.metadata.index)
        self._open_stores(self.stores)
        ci, term = self.kv.consistent_index()
        self.applied_index = max(ci, snap.metadata.index)
        self.term = max(self.term, term)
        for m in self.cluster.members.values():
            self.transport.add_peer(m.id, m.peer_urls)
        self.backend.put(schema.META, schema.LOCAL_MEMBER_ID, _U64.pack(self.member_id))
        return self.applied_index

    def on_leader_change(self, lead: int, is_leader: bool, was_leader: bool) -> None:
        if lead != self.leader_id:
            if lead != NONE:
                self.metrics.leader_changes += 1
            log.info("raft: member %x elected leader %x at term %d", self.member_id, lead,
                     self.raft.term if self.raft else 0)
        self.leader_id = lead
        if was_leader and not is_leader:
            self.lessor.demote()
        # promotion waits for this leader's empty entry to apply (_apply_batch)

    def on_ticks(self, ticks: int) -> None:
        self.housekeeping.on_ticks(ticks)

    def after_ready(self) -> None:
        term = self.raft.term
        if term != self.term:
            self.term = term
            for fn in self.revision_listeners:   # they publish the term too
                fn(self.kv.current_rev)
        self.snapshots.maybe_create()

    # ---- reads and headers ------------------------------------------------------------------
    async def linearizable_read(self) -> None:
        """Wait until this member has applied everything committed before now
        (ReadIndex: the leader confirms it still leads with a heartbeat round,
        batched across concurrent reads)."""
        if self._stale_reads:   # a test-only defect: serve whatever is applied here
            return
        fut = self.raft.read_index()
        try:
            await asyncio.wait_for(fut, self.request_timeout)
        except asyncio.TimeoutError:
            raise errors.TIMEOUT() from None

    def header(self, h: pb.ResponseHeader, revision: int = 0) -> None:
        h.cluster_id = self.cluster.cluster_id
        h.member_id = self.member_id
        h.raft_term = self.term
        if not h.revision:
            h.revision = revision or self.kv.current_rev

    @property
    def cluster_id(self) -> int:
        return self.cluster.cluster_id

    @property
    def committed_index(self) -> int:
        return self.raft.committed if self.raft else self.applied_index

    @property
    def is_leader(self) -> bool:
        return self.raft is not None and self.raft.is_leader

    def revision_kv(self, key: bytes, rev: int):
        """The key as it was at ``rev`` (None: absent, or compacted away)."""
        try:
            rr = self.kv.range(key, None, rev=rev)
        except MVCCError:
            return None
        return rr.kvs[0] if rr.kvs else None

    def is_learner(self) -> bool:
        m = self.cluster.members.get(self.member_id)
        return bool(m and m.is_learner)

    def _leader_client_url(self) -> str:
        lead = self.cluster.members.get(self.leader_id)
        if lead is None or not lead.client_urls:
            raise errors.NO_LEADER()
        return lead.client_urls[0]

    # ---- facade: KV ---------------------------------------------------------------------------
    def check_quota(self, request) -> None:
        """Refuse a Put/Txn/LeaseGrant over the backend quota before proposing."""
        self.quota.check(request)

    async def range(self, r: pb.RangeRequest) -> pb.RangeResponse:
        if not r.serializable:
            await self.linearizable_read()
        ai = await self.gate.check("range", r)
        resp = self.reader.range(r)
        self.gate.check_revision(ai)
        self.header(resp.header)
        return resp

    def local_range(self, r: pb.RangeRequest) -> pb.RangeResponse:
        """A range of what this member has applied, unchecked (health probes)."""
        return self.reader.range(r)

    async def put(self, r: pb.PutRequest) -> pb.PutResponse:
        return await self.propose_request("put", r)

    async def delete_range(self, r: pb.DeleteRangeRequest) -> pb.DeleteRangeResponse:
        return await self.propose_request("delete_range", r)

    async def txn(self, r: pb.TxnRequest) -> pb.TxnResponse:
        """A read-only txn is served here after a linearizable read (as etcd
        does); any other goes through the log."""
        if not apply_layer.is_readonly_txn(r):
            return await self.propose_request("txn", r)
        await self.linearizable_read()
        ai = await self.gate.check("txn", r)
        if self.alarms.has(pb.CORRUPT):
            raise errors.CORRUPT()
        resp = self.reader.txn(r)
        self.gate.check_revision(ai)
        self.header(resp.header)
        return resp

    async def compact(self, r: pb.CompactionRequest) -> pb.CompactionResponse:
        return await self.propose_request("compaction", r)

    # ---- facade: leases -------------------------------------------------------------------------
    async def lease_grant(self, r: pb.LeaseGrantRequest) -> pb.LeaseGrantResponse:
        g = pb.LeaseGrantRequest()
        g.CopyFrom(r)
        if g.ID == 0:
            g.ID = self.next_lease_id()
        return await self.propose_request("lease_grant", g)

    async def lease_revoke(self, r: pb.LeaseRevokeRequest) -> pb.LeaseRevokeResponse:
        return await self.propose_request("lease_revoke", r)

    async def lease_time_to_live(self, r: pb.LeaseTimeToLiveRequest):
        return await self.leases.time_to_live(r)

    async def lease_leases(self) -> pb.LeaseLeasesResponse:
        return await self.leases.leases()

    async def lease_renew(self, r: pb.LeaseKeepAliveRequest) -> pb.LeaseKeepAliveResponse:
        return await self.leases.renew(r)

    # ---- facade: cluster ---------------------------------------------------------------------------
    async def member_list(self, linearizable: bool) -> pb.MemberListResponse:
        if linearizable:
            await self.linearizable_read()
        resp = pb.MemberListResponse(members=self.cluster.to_pb())
        self.header(resp.header)
        return resp

    async def member_add(self, urls: list[str], is_learner: bool) -> pb.MemberAddResponse:
        return await self.reconfig.member_add(urls, is_learner)

    async def member_remove(self, member_id: int) -> pb.MemberRemoveResponse:
        return await self.reconfig.member_remove(member_id)

    async def member_update(self, member_id: int, urls: list[str]) -> pb.MemberUpdateResponse:
        return await self.reconfig.member_update(member_id, urls)

    async def member_promote(self, r: pb.MemberPromoteRequest) -> pb.MemberPromoteResponse:
        return await self.reconfig.member_promote(r)

    # ---- facade: maintenance -------------------------------------------------------------------------
    def status(self) -> pb.StatusResponse:
        resp = pb.StatusResponse(
            version=ETCD_VERSION, dbSize=self.backend.size(), dbSizeInUse=self.backend.size_in_use(),
            leader=self.leader_id, raftIndex=self.committed_index, raftTerm=self.term,
            raftAppliedIndex=self.applied_index, isLearner=self.is_learner())
        if self.leader_id == NONE:
            resp.errors.append(errors.NO_LEADER.message)
        resp.errors.extend(alarm_errors(self.alarms))
        self.header(resp.header)
        return resp

    async def alarm(self, r: pb.AlarmRequest) -> pb.AlarmResponse:
        return await self.propose_request("alarm", r)

    async def hash(self) -> pb.HashResponse:
        return await self.maintenance.hash()

    async def hash_kv(self, revision: int) -> pb.HashKVResponse:
        return await self.maintenance.hash_kv(revision)

    async def defragment(self) -> pb.DefragmentResponse:
        return await self.maintenance.defragment()

    def snapshot(self):
        """The backend as etcd streams it: SnapshotResponses with the
        database's bytes, remaining_bytes counting down, then its sha256."""
        return self.maintenance.snapshot()

    async def move_leader(self, target: int) -> pb.MoveLeaderResponse:
        """Hand leadership to ``target`` (on the leader, after the admin check)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        self.raft.transfer_leader(target)
        while self.leader_id != target:
            if loop.time() > deadline:
                raise errors.EtcdError("Unknown",
                                       "etcdserver: request timed out, leader transfer took too long")
            await asyncio.sleep(self.cfg.heartbeat_interval / 1000.0)
        resp = pb.MoveLeaderResponse()
        self.header(resp.header)
        return resp

    # ---- facade: auth --------------------------------------------------------------------------------
    async def auth_request(self, kind: str, request):
        """An auth management request (``kind``: its InternalRequest field)."""
        return await self.gate.request(kind, request)

    async def authenticate(self, name: str, password: str) -> pb.AuthenticateResponse:
        return await self.gate.authenticate(name, password)
