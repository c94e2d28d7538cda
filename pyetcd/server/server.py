"""EtcdServer: propose-and-wait, the apply path, membership, timers.

A write travels: gRPC handler -> :meth:`EtcdServer.propose` (encoded as an
``InternalRequest`` with a member-unique id, a waiter registered) -> the
Raft node (raft_node.py: replicated, persisted, committed) ->
:meth:`EtcdServer.apply_entries` (committed entries in index order, one
backend batch for the whole run, ``consistent_index`` stored with it, entries
at or below it skipped) -> the backend commit -> the waiter gets the response.

Acknowledgement happens only after the backend commit of the batch; until the
write-ahead log lands, that commit is fsynced, so every acknowledged write is
on disk (one fsync per batch, shared by every request in it).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import struct
import time

from pyetcd import errors
from pyetcd.auth.store import CREDENTIALS, AuthInfo, AuthStore, new_token_prefix
from pyetcd.lease.lessor import Lessor
from pyetcd.mvcc.kvstore import KVStore
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.pyetcdpb.internal_pb2 import InternalRequest
from pyetcd.storage import wal as wal_mod
from pyetcd.storage.backend import SENDING_SUFFIX, Backend
from pyetcd.storage.restore import import_etcd_data_dir, is_bbolt
from pyetcd.storage.failpoints import APPLY_BEFORE_CONSISTENT_INDEX, failpoint
from pyetcd.storage.snap import Snapshotter
from pyetcd.storage.wal import WAL

from pyetcd.peer.transport import SNAPSHOT_IN_FILE, Transport, fetch_cluster, received_snapshot
from pyetcd.raft.config import Config as RaftConfig
from pyetcd.raft.rawnode import RawNode
from pyetcd.raft.storage import MemoryStorage
from pyetcd.raft.types import NONE, ConfChange, ConfChangeType, Snapshot

from .alarms import AlarmStore
from .apply import Applier
from .apply_auth import AUTH_FIELDS, apply_auth_request, check_apply
from .config import Config
from .bootstrap import BootstrapError, bootstrap_new, find_self, restart
from .membership import Cluster, Member, compute_member_id
from .metrics import ServerMetrics
from .raft_node import RaftNode, conf_change_context, parse_conf_change_context
from .tls import check_peer_cert, peer_contexts

log = logging.getLogger("pyetcd.server")
_U64 = struct.Struct(">Q")
SLOW_APPLY = 0.1  # etcd warns of an apply over 100 ms


class IDGenerator:
    """Member-unique request ids: low 16 bits of the member id, then a
    millisecond timestamp and a counter (etcd's idutil layout)."""

    def __init__(self, member_id: int, now_ms: int):
        self.prefix = (member_id & 0xFFFF) << 48
        self.suffix = (now_ms & ((1 << 40) - 1)) << 8

    def next(self) -> int:
        self.suffix += 1
        return self.prefix | (self.suffix & ((1 << 48) - 1))



def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_exception(errors.TIMEOUT())


class EtcdServer:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.metrics = ServerMetrics()
        self.state_hooks: list = []  # called after the state is (re)opened
        self.data_dir = cfg.data_dir_path
        self.max_request_bytes = cfg.max_request_bytes
        self.max_txn_ops = cfg.max_txn_ops
        self.request_timeout = 5.0 + 2 * cfg.election_timeout / 1000.0
        self.election_ticks = max(2, cfg.election_timeout // cfg.heartbeat_interval)
        db_path = os.path.join(self.data_dir, "member", "snap", "db")
        if is_bbolt(db_path):  # restored by the real etcdctl/etcdutl: take it over
            info = import_etcd_data_dir(self.data_dir, cfg.initial_advertise_peer_urls,
                                        map_size=cfg.quota_bytes + 256 * 1024**2)
            log.info("imported an etcd (bbolt) data dir: member %x of cluster %x",
                     info["member_id"], info["cluster_id"])
        self._open_state(db_path)
        self.applied_index, self.term = self.kv.consistent_index()
        self._snap_index = self.applied_index
        self._snapshotting = False
        self.storage = MemoryStorage()
        self.member_id = 0
        self.leader_id = NONE
        self.raft: RaftNode | None = None
        self.wal = None
        self.snapshotter: Snapshotter | None = None
        self.transport: Transport | None = None
        self._waiters: dict[int, asyncio.Future] = {}
        self._tasks: list[asyncio.Task] = []
        self._lease_ticks = 0
        self._gc_ticks = 0
        self._published = False
        self._backend_inflight = 0
        self.stopped = False
        self.stop_event: asyncio.Event | None = None
        self.fatal: BaseException | None = None

    def _open_state(self, db_path: str) -> None:
        """Open the backend and everything kept in it (also after a snapshot
        from the leader replaced it)."""
        cfg = self.cfg
        quota = cfg.quota_bytes
        # the WAL makes every acknowledged write durable; LMDB commits sync their
        # data but not the meta page (never corrupt, may lose the last commits,
        # which the WAL replays) and are fully synced before a snapshot
        self.backend = Backend(db_path, map_size=quota + max(quota // 4, 256 * 1024**2),
                               durable=True, metasync=False)
        self.backend.on_commit = self.metrics.backend_commit.observe
        min_ttl = -(-(3 * self.election_ticks // 2) * cfg.heartbeat_interval // 1000)
        self.lessor = Lessor(self.backend, min_ttl=max(1, min_ttl))
        self.kv = KVStore(self.backend, self.lessor)
        self.alarms = AlarmStore(self.backend)
        self.cluster = Cluster(self.backend)
        self.applier = Applier(self.kv, self.lessor, self.alarms)
        old_auth = getattr(self, "auth", None)
        self.auth = AuthStore(self.backend, token_ttl=float(cfg.auth_token_ttl),
                              bcrypt_cost=cfg.bcrypt_cost)
        if old_auth is not None and self.auth.enabled:
            self.auth.tokens = old_auth.tokens  # member-local: survive a snapshot install
        for hook in self.state_hooks:
            hook()

    # ---- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.cfg
        self.stop_event = asyncio.Event()
        wal_dir = os.path.join(self.data_dir, "member", "wal")
        snap_dir = os.path.join(self.data_dir, "member", "snap")
        self.snapshotter = Snapshotter(snap_dir)
        for n in os.listdir(snap_dir):  # snapshot transfers a stop or crash cut short
            if n.endswith((SENDING_SUFFIX, ".snap.db.part", ".snap.db")):
                os.remove(os.path.join(snap_dir, n))
        if wal_mod.exists(wal_dir):
            self.wal = self._replay_wal(wal_dir)
        elif self.cluster.members:
            # a data dir written by a restore tool (or before the WAL existed):
            # the backend holds everything; start a WAL at its applied index
            self.member_id = self._find_self_in_backend()
            restart(self.cluster, self.storage, self.applied_index, self.term)
            self.wal = self._create_wal(wal_dir)
            log.info("restarting member %x in cluster %x at applied index %d (new WAL)",
                     self.member_id, self.cluster.cluster_id, self.applied_index)
        elif cfg.initial_cluster_state == "existing":
            await self._join_existing()
            self.wal = self._create_wal(wal_dir)
        else:
            self.member_id = bootstrap_new(cfg, self.cluster, self.storage)
            self.wal = self._create_wal(wal_dir)
            log.info("starting member %x in new cluster %x", self.member_id, self.cluster.cluster_id)
        self.idgen = IDGenerator(self.member_id, int(time.time() * 1000))
        self.wal.on_fsync = self.metrics.wal_fsync.observe
        self.backend.put("meta", b"local_member_id", _U64.pack(self.member_id))
        ops, _ = await asyncio.wrap_future(self.backend.commit())
        self.backend.release(ops)
        hs, _ = self.storage.initial_state()
        self.term = max(self.term, hs.term)
        applied = max(min(self.applied_index, hs.commit), self.storage.first_index() - 1)
        if self.applied_index > hs.commit:
            log.warning("the backend has applied index %d beyond the WAL's commit %d: the WAL "
                        "lost synced data; entries up to %d are taken from the backend",
                        self.applied_index, hs.commit, self.applied_index)
        rcfg = RaftConfig(id=self.member_id, election_tick=self.election_ticks, heartbeat_tick=1,
                          pre_vote=cfg.pre_vote, check_quorum=True,
                          applied=applied,
                          max_size_per_msg=1024 * 1024, max_inflight_msgs=512)
        node = RawNode(rcfg, self.storage)
        server_ssl, client_ssl = peer_contexts(cfg)
        self.transport = Transport(
            self.member_id, self.cluster.cluster_id, on_messages=self._on_peer_messages,
            on_unreachable=lambda mid: node.report_unreachable(mid),
            on_snapshot_status=lambda mid, ok: node.report_snapshot(mid, ok),
            is_removed=lambda mid: mid in self.cluster.removed,
            member_list=lambda: [m.to_json() for m in self.cluster.members.values()],
            on_removed=self._on_removed,
            snapshot_file=lambda: self.backend.snapshot_copy(snap_dir),
            snapshot_dir=snap_dir,
            server_ssl=server_ssl, client_ssl=client_ssl,
            check_peer_cert=lambda pc: check_peer_cert(cfg, pc),
            on_rtt=self.metrics.observe_peer_rtt)
        await self.transport.listen(cfg.listen_peer_urls)
        for m in self.cluster.members.values():
            self.transport.add_peer(m.id, m.peer_urls)
        gc.collect()
        gc.freeze()  # the restored index is long-lived: keep it out of collections
        self.raft = RaftNode(self, node, self.storage, self.transport, wal=self.wal,
                             tick_seconds=cfg.heartbeat_interval / 1000.0)
        self.raft.snapshotter = self.snapshotter
        self.raft.start()
        if self.cluster.voters() == [self.member_id]:
            node.campaign()  # a single member need not wait an election timeout
            self.raft.receive([])
        self._tasks.append(asyncio.get_running_loop().create_task(self._publish()))

    def _wal_metadata(self) -> bytes:
        return _U64.pack(self.member_id) + _U64.pack(self.cluster.cluster_id)

    def _create_wal(self, wal_dir: str):
        """A new WAL that starts where the Raft storage starts: its snapshot
        (file + marker) and hard state are persisted before anything else."""
        w = WAL.create(wal_dir, self._wal_metadata())
        snap = self.storage.snapshot()
        if snap.metadata.index:
            self.snapshotter.save(snap)
            w.save_snapshot(snap.metadata.index, snap.metadata.term)
        hs, _ = self.storage.initial_state()
        if hs.term or hs.commit:
            w.save(hs, [], True)
        return w

    def _replay_wal(self, wal_dir: str):
        """Restart: the newest snapshot the WAL can open at, then every entry
        and the hard state after it.  The backend's consistent index decides
        which committed entries still need applying."""
        allowed = WAL.valid_snapshot_entries(wal_dir)
        snap = self.snapshotter.load_newest(allowed=allowed)
        si, st = (snap.metadata.index, snap.metadata.term) if snap else (0, 0)
        w = WAL.open(wal_dir, si, st)
        metadata, hs, entries = w.read_all()
        self.member_id = _U64.unpack(metadata[:8])[0]
        if not self.cluster.cluster_id:
            self.cluster.set_cluster_id(_U64.unpack(metadata[8:16])[0])
        if snap is not None:
            self.storage.apply_snapshot(snap)
            self._snap_index = max(self._snap_index, si)
        if entries:
            self.storage.append(entries)
        self.storage.set_hard_state(hs)
        self.term = max(self.term, hs.term)
        log.info("restarting member %x in cluster %x: WAL replayed (snapshot %d, %d entries, "
                 "commit %d, applied %d)", self.member_id, self.cluster.cluster_id, si,
                 len(entries), hs.commit, self.applied_index)
        return w

    def _find_self_in_backend(self) -> int:
        mine = sorted(self.cfg.initial_advertise_peer_urls)
        local = self.backend.get("meta", b"local_member_id")
        if local:
            return _U64.unpack(local)[0]
        for m in self.cluster.members.values():
            if sorted(m.peer_urls) == mine:
                return m.id
        raise BootstrapError("cannot find this member in the stored member list")

    async def _join_existing(self) -> None:
        from .bootstrap import initial_members
        members = initial_members(self.cfg)
        urls = [u for name, us in members.items() if name != self.cfg.name for u in us]
        try:
            cid, member_jsons = await fetch_cluster(urls, client_ssl=peer_contexts(self.cfg)[1])
        except ConnectionError as exc:
            raise BootstrapError(str(exc)) from None
        self.member_id, found = find_self(self.cfg, member_jsons)
        self.cluster.set_cluster_id(cid)
        for m in found:
            self.cluster.add(m)
        log.info("joining existing cluster %x as member %x", cid, self.member_id)

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        for t in self._tasks:
            t.cancel()
        log.debug("stopping: raft")
        if self.raft is not None:
            await self.raft.stop()
        log.debug("stopping: transport")
        if self.transport is not None:
            await self.transport.stop()
        log.debug("stopping: backend")
        while self._backend_inflight:
            await asyncio.sleep(0.01)
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(errors.STOPPED())
        self.backend.close()

    async def _stop_after_removal(self) -> None:
        """A removed leader first hands leadership to a caught-up voter (the
        Raft core does that once the removal is applied), then stops."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * self.cfg.election_timeout / 1000.0
        while self.raft is not None and self.raft.is_leader and loop.time() < deadline:
            await asyncio.sleep(self.cfg.heartbeat_interval / 1000.0)
        self._on_removed()

    def _on_removed(self) -> None:
        log.warning("this member (%x) has been permanently removed from the cluster; stopping",
                    self.member_id)
        self.on_fatal(SystemExit("removed from the cluster"))

    def on_fatal(self, exc: BaseException) -> None:
        self.fatal = exc
        if self.stop_event is not None:
            self.stop_event.set()

    # ---- proposals ----------------------------------------------------------------------
    def _new_request(self, req: InternalRequest) -> tuple[int, bytes, asyncio.Future]:
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

    async def propose(self, req: InternalRequest, require_leader: bool = False):
        if require_leader and self.leader_id == NONE:
            raise errors.NO_LEADER()
        if self.auth.enabled and not req.HasField("authenticate"):
            ai = await self.auth_info()
            if ai is not None:
                req.header.username = ai.username
                req.header.auth_revision = ai.revision
        rid, data, fut = self._new_request(req)
        self.raft.propose(data)
        result = await self._wait(rid, fut)
        if isinstance(result, errors.EtcdError):
            raise result
        return result

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

    def next_lease_id(self) -> int:
        return self.idgen.next() & ((1 << 63) - 1)

    # ---- apply ----------------------------------------------------------------------------
    def apply_entries(self, entries: list[tuple[int, int, bytes]]) -> None:
        """Apply committed (index, term, data) entries in order, then hand the
        batch to the backend; waiters are answered once it is committed."""
        started = time.monotonic()
        results = []
        applier = self.applier
        parse = InternalRequest.FromString
        last_index, last_term = self.applied_index, self.term
        for index, term, data in entries:
            if index <= self.applied_index:
                continue  # already in the backend (consistent_index guard)
            last_index, last_term = index, term
            if not data:
                continue
            req = parse(data)
            try:
                result = self._apply_one(applier, req, index)
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
            log.warning("apply request took too long; took=%.3fs expected-duration=%.0fms entries=%d",
                        took, SLOW_APPLY * 1000, len(entries))
        self._commit_backend(results)

    def _commit_backend(self, results) -> None:
        """Hand the batch to the backend and answer its waiters: the entries
        are in the WAL of a quorum, so an applied write is acknowledged
        without waiting for LMDB."""
        fut = asyncio.wrap_future(self.backend.commit())
        self._backend_inflight += 1
        fut.add_done_callback(lambda f: self._committed(f, ()))
        if results:
            self._resolve(results)

    def _committed(self, fut: asyncio.Future, results) -> None:
        self._backend_inflight -= 1
        if fut.cancelled() or fut.exception() is not None:
            exc = None if fut.cancelled() else fut.exception()
            log.critical("backend commit failed; no further writes are acknowledged: %s", exc)
            self.on_fatal(exc or RuntimeError("backend commit cancelled"))
            err = errors.EtcdError("Unavailable", f"etcdserver: backend write failed: {exc}")
            self._resolve([(rid, err) for rid, _ in results])
            return
        ops, _ = fut.result()
        self.backend.release(ops)
        self._resolve(results)

    def _resolve(self, results) -> None:
        waiters = self._waiters
        for rid, result in results:
            fut = waiters.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_result(result)

    def _apply_one(self, applier: Applier, req: InternalRequest, index: int = 0):
        if self.auth.enabled:
            check_apply(self.auth, self.lessor, req, _kind(req))
        if req.HasField("put"):
            return applier.put(req.put)
        if req.HasField("delete_range"):
            return applier.delete_range(req.delete_range)
        if req.HasField("txn"):
            return applier.txn(req.txn)
        if req.HasField("compaction"):
            return applier.compaction(req.compaction)
        if req.HasField("lease_grant"):
            return applier.lease_grant(req.lease_grant)
        if req.HasField("lease_revoke"):
            return applier.lease_revoke(req.lease_revoke)
        if req.HasField("alarm"):
            return applier.alarm(req.alarm)
        if req.HasField("lease_checkpoint"):
            return applier.lease_checkpoint(req.lease_checkpoint)
        if req.HasField("member_attr"):
            a = req.member_attr
            self.cluster.set_attributes(a.member_id, a.name, a.client_urls)
            return None
        kind = _kind(req)
        if kind in AUTH_FIELDS:
            return apply_auth_request(self, self.auth, req, kind, index)
        raise errors.EtcdError("Unknown", "etcdserver: unknown request in log entry")

    # ---- auth ------------------------------------------------------------------------
    async def auth_info(self) -> AuthInfo | None:
        """The user of the request being served (etcd's AuthInfoFromCtx): from
        its token, else from the CN of its verified client certificate; None
        when auth is off or the request carries neither."""
        auth = self.auth
        if not auth.enabled:
            return None
        creds = CREDENTIALS.get()
        if creds is None:
            return None
        if creds.token is not None:
            ai = await self._token_info(creds.token)
            if ai is None:
                log.warning("invalid auth token")
                raise errors.INVALID_AUTH_TOKEN()
            return ai
        if creds.cn:
            return AuthInfo(creds.cn, auth.revision)
        return None

    async def _token_info(self, token: str) -> AuthInfo | None:
        # "<prefix>.<raft index>": wait until the Authenticate entry that made
        # it is applied here (etcd's isValidSimpleToken)
        parts = token.split(".")
        if len(parts) != 2 or not parts[1].isdigit():
            return None
        index = int(parts[1])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        while self.applied_index < index:
            if loop.time() > deadline or self.stopped:
                return None
            await asyncio.sleep(0.005)
        return self.auth.info_from_token(token)

    async def check_read(self, chk) -> AuthInfo | None:
        """etcd's doSerialize, first half: check a locally served read."""
        if not self.auth.enabled:
            return None
        ai = await self.auth_info()
        chk(ai if ai is not None else AuthInfo("", 0))
        return ai

    def check_read_revision(self, ai: AuthInfo | None) -> None:
        """doSerialize, second half: the auth store changed while reading."""
        if ai is not None and ai.revision and ai.revision != self.auth.revision:
            raise errors.AUTH_OLD_REVISION()

    async def require_auth_info(self) -> AuthInfo | None:
        if not self.auth.enabled:
            return None
        ai = await self.auth_info()
        if ai is None:
            raise errors.USER_EMPTY()
        return ai

    async def check_admin(self) -> None:
        """etcd's IsAdminPermitted on the request's user (API-layer checks)."""
        if self.auth.enabled:
            self.auth.is_admin_permitted(await self.auth_info())

    async def authenticate(self, name: str, password: str) -> pb.AuthenticateResponse:
        await self.linearizable_read()
        loop = asyncio.get_running_loop()
        while True:
            auth = self.auth
            if not auth.enabled:
                raise errors.AUTH_NOT_ENABLED()
            u = auth.users.get(name)
            if u is None or u.options.no_password:
                raise errors.AUTH_FAILED()
            rev = auth.revision
            from pyetcd.auth.store import check_password
            ok = await loop.run_in_executor(None, check_password, u.password, password)
            if not ok:
                log.info("invalid password for user %s", name)
                raise errors.AUTH_FAILED()
            req = InternalRequest()
            req.authenticate.name = name
            req.authenticate.simple_token = new_token_prefix()
            resp = await self.propose(req)
            if rev == self.auth.revision:
                return resp

    # ---- membership changes -------------------------------------------------------------
    def check_conf_change(self, cc: ConfChange) -> tuple[bool, errors.EtcdError | None]:
        """etcd's ValidateConfigurationChange, against the applied member list."""
        cl = self.cluster
        member, _ = parse_conf_change_context(cc.context)
        if cc.type in (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER_NODE):
            if cc.node_id in cl.removed:
                return False, errors.MEMBER_NOT_FOUND()
            m = cl.members.get(cc.node_id)
            if m is not None and not (m.is_learner and cc.type == ConfChangeType.ADD_NODE):
                return False, errors.MEMBER_EXIST()
            if m is None and member is not None:
                for u in member.get("peerURLs", []):
                    if cl.peer_url_owner(u) is not None:
                        return False, errors.PEER_URL_EXIST()
        elif cc.type in (ConfChangeType.REMOVE_NODE, ConfChangeType.UPDATE_NODE):
            if cc.node_id not in cl.members:
                return False, errors.MEMBER_NOT_FOUND()
        return True, None

    def apply_conf_change(self, index: int, term: int, cc: ConfChange, err) -> None:
        member, rid = parse_conf_change_context(cc.context)
        if err is None:
            cl = self.cluster
            if cc.type in (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER_NODE):
                if cc.node_id in cl.members:
                    cl.promote(cc.node_id)
                elif member is not None:
                    m = Member(cc.node_id, member.get("name", ""), member.get("peerURLs", []),
                               member.get("clientURLs", []), cc.type == ConfChangeType.ADD_LEARNER_NODE)
                    cl.add(m)
                    if self.transport is not None:
                        self.transport.add_peer(m.id, m.peer_urls)
            elif cc.type == ConfChangeType.REMOVE_NODE:
                cl.remove(cc.node_id)
                if self.transport is not None and cc.node_id != self.member_id:
                    asyncio.get_running_loop().create_task(self.transport.remove_peer(cc.node_id))
            elif cc.type == ConfChangeType.UPDATE_NODE and member is not None:
                cl.update_peer_urls(cc.node_id, member.get("peerURLs", []))
                if self.transport is not None:
                    self.transport.update_peer(cc.node_id, member.get("peerURLs", []))
        self.kv.set_consistent_index(index, term)
        self.applied_index = max(self.applied_index, index)
        self._commit_backend([(rid, err if err is not None else self.cluster.to_pb())] if rid else [])
        if err is None and cc.type == ConfChangeType.REMOVE_NODE and cc.node_id == self.member_id:
            asyncio.get_running_loop().create_task(self._stop_after_removal())

    _CC_TYPES = {"add": ConfChangeType.ADD_NODE, "add_learner": ConfChangeType.ADD_LEARNER_NODE,
                 "remove": ConfChangeType.REMOVE_NODE, "update": ConfChangeType.UPDATE_NODE}

    async def propose_conf_change(self, kind: str, node_id: int, member: Member | None):
        """Propose a membership change (kind: add, add_learner, remove, update)
        and wait until it is applied; returns the new member list."""
        cc_type = self._CC_TYPES[kind]
        rid = self.idgen.next()
        ctx = conf_change_context(member.to_json() if member else b"{}", rid)
        fut = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        self.raft.propose_conf_change(ConfChange(cc_type, node_id, ctx))
        result = await self._wait(rid, fut)
        if isinstance(result, errors.EtcdError):
            raise result
        return result

    def _leader_channel(self):
        """A cached gRPC channel to the leader's client URL (for the requests
        etcd forwards to the leader: lease keep-alive and time-to-live,
        learner promotion)."""
        import grpc
        lead = self.cluster.members.get(self.leader_id)
        if lead is None or not lead.client_urls:
            raise errors.NO_LEADER()
        url = lead.client_urls[0]
        target = url.split("://", 1)[-1]
        cached = getattr(self, "_lead_chan", None)
        if cached is not None and cached[0] == target:
            return cached[1]
        if cached is not None:
            asyncio.get_running_loop().create_task(cached[1].close())
        if url.startswith("https"):
            from .tls import _read, client_files
            cert, key, ca = client_files(self.cfg)
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(ca, "trusted CA file") if ca else None,
                private_key=_read(key, "key file"), certificate_chain=_read(cert, "certificate file"))
            ch = grpc.aio.secure_channel(target, creds)
        else:
            ch = grpc.aio.insecure_channel(target)
        self._lead_chan = (target, ch)
        return ch

    async def forward_to_leader(self, service: str, method: str, request, stream: bool = False):
        import grpc
        resp_type = getattr(pb, type(request).__name__.replace("Request", "Response"))
        ch = self._leader_channel()
        kind = ch.stream_stream if stream else ch.unary_unary
        call = kind(f"/etcdserverpb.{service}/{method}",
                    request_serializer=type(request).SerializeToString,
                    response_deserializer=resp_type.FromString)
        creds = CREDENTIALS.get()
        md = (("token", creds.token),) if creds is not None and creds.token else None
        try:
            if stream:
                async for resp in call(iter([request]), timeout=self.request_timeout, metadata=md):
                    return resp
                raise errors.NO_LEADER()
            return await call(request, timeout=self.request_timeout, metadata=md)
        except grpc.aio.AioRpcError as exc:
            raise errors.EtcdError(exc.code().name.title().replace("_", ""), exc.details()) from None

    # ---- snapshots ----------------------------------------------------------------------
    def maybe_snapshot(self) -> None:
        """Every --snapshot-count applied entries: record a Raft snapshot at
        the applied index and drop the log before it (keeping some entries so
        slightly slow followers catch up without a full snapshot)."""
        applied = self.applied_index
        if applied - self._snap_index < self.cfg.snapshot_count or self._snapshotting:
            return
        self._snapshotting = True
        asyncio.get_running_loop().create_task(self._snapshot(applied))

    async def _snapshot(self, index: int) -> None:
        try:
            # what the backend holds up to ``index`` must be on disk before the
            # log that could rebuild it is dropped
            ops, _ = await asyncio.wrap_future(self.backend.commit())
            self.backend.release(ops)
            await asyncio.get_running_loop().run_in_executor(None, self.backend.sync)
            cs = self.raft.node.raft.trk.conf_state() if self.raft else None
            try:
                snap = self.storage.create_snapshot(index, cs, b"")
            except Exception as exc:  # noqa: BLE001 - out of date or unavailable: skip
                log.debug("skipping snapshot at %d: %s", index, exc)
                return
            if self.raft is not None and self.raft.wal is not None:
                await self.raft.save_snapshot(snap)
            compact_to = index - self.cfg.experimental_snapshot_catchup_entries
            if compact_to > self.storage.first_index():
                self.storage.compact(compact_to)
            self._snap_index = index
            log.info("saved snapshot at index %d; compacted the raft log to %d", index,
                     max(compact_to, 0))
        finally:
            self._snapshotting = False

    async def restore_from_snapshot(self, snap: Snapshot) -> None:
        """Install the leader's backend (a member too far behind for the log)."""
        if snap.data != SNAPSHOT_IN_FILE:
            self.applied_index = max(self.applied_index, snap.metadata.index)
            return
        source = received_snapshot(self.snapshotter.dir, snap.metadata.index)
        log.info("installing a snapshot at index %d (%d bytes) from the leader",
                 snap.metadata.index, os.path.getsize(source))
        while self._backend_inflight:
            await asyncio.sleep(0.005)
        path = self.backend.path
        self.backend.close()
        Backend.install(path, source)
        self._open_state(path)
        ci, term = self.kv.consistent_index()
        self.applied_index = max(ci, snap.metadata.index)
        self.term = max(self.term, term)
        self._snap_index = snap.metadata.index
        for m in self.cluster.members.values():
            if self.transport is not None:
                self.transport.add_peer(m.id, m.peer_urls)
        self.backend.put("meta", b"local_member_id", _U64.pack(self.member_id))

    # ---- reads ------------------------------------------------------------------------
    async def linearizable_read(self) -> None:
        """Wait until this member has applied everything committed before now
        (ReadIndex: the leader confirms it still leads with a heartbeat round,
        batched across concurrent reads)."""
        fut = self.raft.read_index()
        try:
            await asyncio.wait_for(fut, self.request_timeout)
        except asyncio.TimeoutError:
            raise errors.TIMEOUT() from None

    # ---- events from the Raft node --------------------------------------------------------
    def _on_peer_messages(self, msgs) -> None:
        if self.raft is not None:
            self.raft.receive(msgs)

    def on_leader_change(self, lead: int, is_leader: bool, was_leader: bool) -> None:
        if lead != self.leader_id:
            if lead != NONE:
                self.metrics.leader_changes += 1
            log.info("raft: member %x elected leader %x at term %d", self.member_id, lead,
                     self.raft.node.raft.term if self.raft else 0)
        self.leader_id = lead
        if is_leader and not was_leader:
            self.lessor.promote(extend=self.cfg.election_timeout / 1000.0)
        elif was_leader and not is_leader:
            self.lessor.demote()

    def after_ready(self) -> None:
        if self.raft is not None:
            self.term = self.raft.node.raft.term
        self.maybe_snapshot()

    def on_tick(self, ticks: int) -> None:
        self._gc_ticks += ticks
        if self._gc_ticks * self.cfg.heartbeat_interval >= 1000:
            self._gc_ticks = 0
            # The key index holds millions of long-lived objects; a full
            # collection rescans them all (150 ms per 300k keys), a latency
            # spike for every request.  Collect the young generations, then
            # move the survivors out of the collector's sight.
            gc.collect(1)
            gc.freeze()
        self._lease_ticks += ticks
        if self._lease_ticks * self.cfg.heartbeat_interval >= 500:
            self._lease_ticks = 0
            if self.raft.is_leader:
                for lid in self.lessor.expired():
                    req = InternalRequest()
                    req.lease_revoke.ID = lid
                    if self.auth.enabled:  # etcd revokes with root's authority (WithRoot)
                        req.header.username = "root"
                        req.header.auth_revision = self.auth.revision
                    asyncio.get_running_loop().create_task(self._revoke(req, lid))

    async def _revoke(self, req: InternalRequest, lid: int) -> None:
        try:
            await self.propose(req)
        except errors.EtcdError as exc:
            if exc.message != errors.LEASE_NOT_FOUND.message:
                log.warning("failed to revoke expired lease %x: %s", lid, exc.message)

    async def _publish(self) -> None:
        """Publish this member's name and client URLs through the log."""
        req = InternalRequest()
        req.member_attr.member_id = self.member_id
        req.member_attr.name = self.cfg.name
        req.member_attr.client_urls.extend(self.cfg.advertise_client_urls)
        while not self.stopped:
            try:
                await self.propose(req)
                log.info("published local member to cluster through raft; name=%s client-urls=%s",
                         self.cfg.name, ",".join(self.cfg.advertise_client_urls))
                return
            except errors.EtcdError as exc:
                log.debug("publish failed (%s); retrying", exc.message)
                await asyncio.sleep(0.5)
            req.ClearField("header")

    # ---- status ----------------------------------------------------------------------
    @property
    def cluster_id(self) -> int:
        return self.cluster.cluster_id

    @property
    def committed_index(self) -> int:
        return self.raft.node.raft.raft_log.committed if self.raft else self.applied_index

    def is_learner(self) -> bool:
        m = self.cluster.members.get(self.member_id)
        return bool(m and m.is_learner)

    async def alarm(self, request: pb.AlarmRequest) -> pb.AlarmResponse:
        req = InternalRequest()
        req.alarm.CopyFrom(request)
        return await self.propose(req)

    def header(self, h: pb.ResponseHeader, revision: int = 0) -> None:
        h.cluster_id = self.cluster.cluster_id
        h.member_id = self.member_id
        h.raft_term = self.term
        if not h.revision:
            h.revision = revision or self.kv.current_rev


def _kind(req: InternalRequest) -> str:
    for fd, _ in req.ListFields():
        if fd.name != "header":
            return fd.name
    return ""
