"""Seeded, deterministic simulation of a pyetcd.raft cluster.

Every source of non-determinism (network, crashes, client load, timeouts)
comes from one ``random.Random(seed)``, so one seed replays one run exactly:

    python -m tests.sim --seed 7 [--steps 5000] [--nodes 3] [--verbose]

The simulated world:
- a network that drops, duplicates, delays and reorders messages, and
  partitions/heals; messages to or from a node that a receiver knows was
  removed are dropped (as etcd's transport does);
- a disk per node (a MemoryStorage): a node persists a Ready before sending
  its messages; a crash loses everything not persisted, including a torn
  tail of the Ready being written;
- an application per node: a hash chain over the applied entries, snapshots
  with log compaction, conf changes, and linearizable reads.

Invariants checked after every step (``Cluster.check``): at most one leader
per term; log matching; leader completeness; applied sequences are prefixes
of each other; committed entries are never lost or changed; commit indexes
never decrease; no read returns a stale index.  ``Cluster.heal_and_converge``
checks liveness: after healing, a leader emerges within a bounded number of
ticks and every acknowledged proposal is applied on every member.
"""
from __future__ import annotations

import argparse
import random
import struct
import sys
import zlib
from dataclasses import dataclass, field

from pyetcd.raft import (Config, ConfChange, ConfChangeType, ConfState, EntryType,
                         MemoryStorage, Message, MessageType, ProposalDropped, RawNode,
                         Snapshot, StateType, bootstrap, decode_conf_change)

MT = MessageType


class InvariantViolation(AssertionError):
    pass


@dataclass
class SimOptions:
    nodes: int = 3
    pre_vote: bool = True
    check_quorum: bool = True
    election_tick: int = 10
    heartbeat_tick: int = 1
    drop_rate: float = 0.05
    dup_rate: float = 0.02
    max_delay: int = 3            # in ticks
    snapshot_every: int = 40      # applied entries between snapshots
    keep_entries: int = 5         # entries kept behind a snapshot when compacting
    max_size_per_msg: int = 4096
    max_inflight_msgs: int = 16
    max_members: int = 5
    max_crashed: int | None = None  # default: a minority


@dataclass
class App:
    """The replicated state machine: a CRC chain over applied entries."""
    applied: int = 0
    digest: int = 0
    conf_state: ConfState = field(default_factory=ConfState)

    def snapshot_data(self) -> bytes:
        return struct.pack(">QI", self.applied, self.digest)

    @classmethod
    def from_snapshot(cls, snap: Snapshot) -> "App":
        if snap.data:
            applied, digest = struct.unpack(">QI", snap.data)
        else:
            applied, digest = snap.metadata.index, 0
        return cls(applied, digest, snap.metadata.conf_state)


class SimNode:
    def __init__(self, id: int, storage: MemoryStorage) -> None:
        self.id = id
        self.storage = storage
        self.node: RawNode | None = None
        self.app = App()
        self.removed_ids: set[int] = set()  # removals this node has applied
        self.last_commit = 0      # in-memory commit of the current incarnation
        self.durable_commit = 0   # highest commit seen in the persisted hard state
        self.incarnation = 0

    @property
    def up(self) -> bool:
        return self.node is not None


class Cluster:
    def __init__(self, seed: int, opts: SimOptions | None = None, log=None) -> None:
        self.seed = seed
        self.opts = opts or SimOptions()
        self.rng = random.Random(seed)
        self.log = log
        self.now = 0
        self.seq = 0
        self.in_flight: list[tuple[int, int, Message]] = []
        self.partition: dict[int, int] | None = None  # id -> group
        self.nodes: dict[int, SimNode] = {}
        self.next_id = self.opts.nodes + 1
        self.removed: set[int] = set()
        self.leaders: dict[int, int] = {}            # term -> leader id
        self.committed: dict[int, tuple[int, bytes]] = {}  # index -> (term, data)
        self.commit_term: dict[int, int] = {}        # index -> upper bound of commit term
        self.applied_digest: dict[int, int] = {}     # index -> digest after applying it
        self.acked: dict[bytes, int] = {}            # proposal -> index applied at
        self.max_acked = 0
        self.pending_reads: dict[bytes, tuple[int, int]] = {}  # ctx -> (node, acked at ask)
        self.reads_served = 0
        self.snapshots_sent = 0
        self.proposals = 0
        voters = list(range(1, self.opts.nodes + 1))
        for id in voters:
            s = MemoryStorage()
            bootstrap(s, voters)
            self.nodes[id] = SimNode(id, s)
            self.start(id)

    # -- lifecycle ---------------------------------------------------------------------
    def say(self, msg: str) -> None:
        if self.log:
            self.log(f"[t={self.now}] {msg}")

    def config(self, id: int) -> Config:
        o = self.opts
        return Config(id=id, election_tick=o.election_tick, heartbeat_tick=o.heartbeat_tick,
                      max_size_per_msg=o.max_size_per_msg, max_inflight_msgs=o.max_inflight_msgs,
                      pre_vote=o.pre_vote, check_quorum=o.check_quorum,
                      applied=self.nodes[id].app.applied,
                      rng=random.Random(self.rng.getrandbits(32)))

    def start(self, id: int) -> None:
        """(Re)start a node from what its disk holds."""
        sn = self.nodes[id]
        snap = sn.storage.snapshot()
        sn.app = App.from_snapshot(snap)
        sn.incarnation += 1
        sn.node = RawNode(self.config(id), sn.storage)
        sn.last_commit = sn.node.raft.raft_log.committed
        self.say(f"start {id} (applied={sn.app.applied}, commit={sn.last_commit})")

    def crash(self, id: int, torn: bool = False) -> None:
        sn = self.nodes[id]
        if not sn.up:
            return
        if torn and sn.node.has_ready():
            # Crash in the middle of persisting a Ready: a prefix of its
            # entries reaches the disk, the hard state and messages do not.
            rd = sn.node.ready()
            if rd.snapshot is not None:
                sn.storage.apply_snapshot(rd.snapshot)
            if rd.entries:
                sn.storage.append(rd.entries[:self.rng.randrange(len(rd.entries) + 1)])
        sn.node = None
        self.say(f"crash {id}{' (torn write)' if torn else ''}")

    def down_count(self) -> int:
        return sum(1 for id, sn in self.nodes.items() if not sn.up and id not in self.removed)

    # -- network -----------------------------------------------------------------------
    def send(self, m: Message) -> None:
        o = self.opts
        if m.type == MT.SNAP:
            self.snapshots_sent += 1
        if self.rng.random() < o.drop_rate:
            self._drop(m)
            return
        copies = 2 if self.rng.random() < o.dup_rate else 1
        for _ in range(copies):
            self.seq += 1
            self.in_flight.append((self.now + self.rng.randint(0, o.max_delay), self.seq, m))

    def _drop(self, m: Message) -> None:
        if m.type == MT.SNAP:
            self._report_snapshot(m, ok=False)

    def _report_snapshot(self, m: Message, ok: bool) -> None:
        sender = self.nodes.get(m.frm)
        if sender is not None and sender.up:
            sender.node.report_snapshot(m.to, ok)

    def reachable(self, a: int, b: int) -> bool:
        if self.partition is None:
            return True
        return self.partition.get(a, -1) == self.partition.get(b, -2)

    def deliver_one(self) -> bool:
        """Deliver one due message, picked at random (reordering)."""
        due = [k for k, (t, _, _) in enumerate(self.in_flight) if t <= self.now]
        if not due:
            return False
        _, _, m = self.in_flight.pop(self.rng.choice(due))
        self._deliver(m)
        return True

    def _deliver(self, m: Message) -> None:
        dst = self.nodes.get(m.to)
        if (dst is None or not dst.up or not self.reachable(m.frm, m.to)
                or m.frm in dst.removed_ids):
            self._drop(m)
            return
        if m.type == MT.SNAP:
            self._report_snapshot(m, ok=True)
        try:
            dst.node.step(m)
        except ProposalDropped:
            pass

    def deliver_all(self, limit: int = 10_000) -> None:
        n = 0
        while self.deliver_one() and n < limit:
            n += 1

    # -- the Ready loop ----------------------------------------------------------------
    def process_ready(self, id: int) -> bool:
        sn = self.nodes[id]
        if not sn.up or not sn.node.has_ready():
            return False
        node = sn.node
        rd = node.ready()
        if rd.snapshot is not None:
            sn.storage.apply_snapshot(rd.snapshot)
            self._restore_app(sn, rd.snapshot)
        sn.storage.append(rd.entries)
        if rd.hard_state is not None:
            sn.storage.set_hard_state(rd.hard_state)
        for m in rd.messages:
            self.send(m)
        for e in rd.committed_entries:
            self._apply(sn, e)
            if not sn.up:
                return True
        for rs in rd.read_states:
            self._serve_read(sn, rs)
        node.advance(rd)
        self._maybe_snapshot(sn)
        return True

    def process_all(self) -> None:
        for id in list(self.nodes):
            self.process_ready(id)

    def _restore_app(self, sn: SimNode, snap: Snapshot) -> None:
        sn.app = App.from_snapshot(snap)
        want = self.applied_digest.get(sn.app.applied)
        if want is not None and want != sn.app.digest:
            raise InvariantViolation(f"node {sn.id} restored a snapshot at {sn.app.applied} "
                                     f"with digest {sn.app.digest:#x} != {want:#x}")

    def _apply(self, sn: SimNode, e) -> None:
        app = sn.app
        if e.index != app.applied + 1:
            raise InvariantViolation(f"node {sn.id} applied {e.index} after {app.applied}")
        app.digest = zlib.crc32(struct.pack(">QQB", e.index, e.term, e.type) + e.data,
                                app.digest)
        app.applied = e.index
        want = self.applied_digest.setdefault(e.index, app.digest)
        if want != app.digest:
            raise InvariantViolation(f"node {sn.id} applied a different entry at {e.index}")
        if e.type == EntryType.CONF_CHANGE:
            cc = decode_conf_change(e.data)
            app.conf_state = sn.node.apply_conf_change(cc)
            if cc.type == ConfChangeType.REMOVE_NODE:
                sn.removed_ids.add(cc.node_id)
                self.removed.add(cc.node_id)
            self.say(f"node {sn.id} applied {cc.type.name} {cc.node_id} -> {app.conf_state}")
        elif e.data and e.data not in self.acked:
            self.acked[e.data] = e.index
            self.max_acked = max(self.max_acked, e.index)

    def _serve_read(self, sn: SimNode, rs) -> None:
        asked = self.pending_reads.pop(rs.request_ctx, None)
        if asked is None:
            return
        _, acked_when_asked = asked
        if rs.index < acked_when_asked:
            raise InvariantViolation(f"stale read on node {sn.id}: read index {rs.index} < "
                                     f"{acked_when_asked} acknowledged before the request")
        self.reads_served += 1

    def _maybe_snapshot(self, sn: SimNode) -> None:
        app = sn.app
        snap_index = sn.storage.snapshot().metadata.index
        if app.applied - snap_index < self.opts.snapshot_every:
            return
        sn.storage.create_snapshot(app.applied, app.conf_state, app.snapshot_data())
        compact_to = app.applied - self.opts.keep_entries
        if compact_to > sn.storage.first_index():
            sn.storage.compact(compact_to)

    # -- client actions ----------------------------------------------------------------
    def live_members(self) -> list[int]:
        return [id for id, sn in self.nodes.items() if sn.up and id not in self.removed]

    def propose(self, id: int, data: bytes | None = None) -> bool:
        sn = self.nodes[id]
        if not sn.up:
            return False
        self.proposals += 1
        try:
            sn.node.propose(data or b"p%d" % self.proposals)
            return True
        except ProposalDropped:
            return False

    def read(self, id: int) -> bool:
        sn = self.nodes[id]
        if not sn.up:
            return False
        ctx = b"r%d" % self.rng.getrandbits(48)
        self.pending_reads[ctx] = (id, self.max_acked)
        try:
            sn.node.read_index(ctx)
            return True
        except ProposalDropped:
            del self.pending_reads[ctx]
            return False

    def conf_change(self, id: int, cc: ConfChange) -> bool:
        sn = self.nodes[id]
        if not sn.up:
            return False
        try:
            sn.node.propose_conf_change(cc)
            self.say(f"node {id} proposes {cc.type.name} {cc.node_id}")
            return True
        except ProposalDropped:
            return False

    def add_member(self, via: int, learner: bool = False, start: bool = True) -> int:
        """Propose a brand-new member; it starts with an empty disk (or stays down)."""
        new = self.next_id
        t = ConfChangeType.ADD_LEARNER_NODE if learner else ConfChangeType.ADD_NODE
        if not self.conf_change(via, ConfChange(t, new)):
            return 0
        self.next_id += 1
        self.nodes[new] = SimNode(new, MemoryStorage())
        # joins with the current member list, so it ignores removed members
        self.nodes[new].removed_ids = set(self.nodes[via].removed_ids)
        if start:
            self.start(new)
        return new

    def tick(self, id: int | None = None) -> None:
        ids = [id] if id is not None else list(self.nodes)
        for i in ids:
            sn = self.nodes[i]
            if sn.up:
                sn.node.tick()
        if id is None:
            self.now += 1

    # -- invariants --------------------------------------------------------------------
    def check(self) -> None:
        logs = {}
        for id, sn in self.nodes.items():
            if not sn.up:
                continue
            r = sn.node.raft
            if r.state == StateType.LEADER:
                prev = self.leaders.setdefault(r.term, id)
                if prev != id:
                    raise InvariantViolation(f"two leaders in term {r.term}: {prev} and {id}")
            if r.raft_log.committed < sn.last_commit:
                raise InvariantViolation(f"node {id} commit went back "
                                         f"{sn.last_commit}->{r.raft_log.committed}")
            sn.last_commit = r.raft_log.committed
            # A commit is observable only once durable (a sole voter commits
            # in memory before persisting; a torn write may undo that).
            durable = sn.storage.hard_state.commit
            if durable < sn.durable_commit:
                raise InvariantViolation(f"node {id} durable commit went back "
                                         f"{sn.durable_commit}->{durable}")
            committed = min(r.raft_log.committed, durable)
            log = r.raft_log
            first = log.first_index()
            ents = log.all_entries()
            logs[id] = (first, ents)
            for i in range(max(sn.durable_commit + 1, first), committed + 1):
                e = ents[i - first]
                rec = self.committed.setdefault(i, (e.term, e.data))
                if rec != (e.term, e.data):
                    raise InvariantViolation(f"committed entry {i} changed on node {id}: "
                                             f"{rec} -> {(e.term, e.data)}")
                ct = self.commit_term.get(i)
                if ct is None or r.term < ct:
                    self.commit_term[i] = r.term
            sn.durable_commit = max(sn.durable_commit, committed)
        self._check_log_matching(logs)
        self._check_leader_completeness(logs)

    def _check_log_matching(self, logs) -> None:
        seen: dict[tuple[int, int], tuple[int, bytes, int]] = {}
        for id, (first, ents) in logs.items():
            prev_term = None
            for e in ents:
                key = (e.index, e.term)
                val = (prev_term, e.data, e.type)
                old = seen.get(key)
                if old is None or old[0] is None:
                    seen[key] = val if old is None or prev_term is not None else old
                    if old is not None and old[1:] != val[1:]:
                        raise InvariantViolation(f"log matching violated at {key} on node {id}")
                elif old[1:] != val[1:] or (prev_term is not None and old[0] != prev_term):
                    raise InvariantViolation(f"log matching violated at {key} on node {id}")
                prev_term = e.term

    def _check_leader_completeness(self, logs) -> None:
        for id, (first, ents) in logs.items():
            r = self.nodes[id].node.raft
            if r.state != StateType.LEADER:
                continue
            last = first + len(ents) - 1
            for i, ct in self.commit_term.items():
                if ct >= r.term or i < first:
                    continue
                if i > last or ents[i - first].term != self.committed[i][0]:
                    raise InvariantViolation(f"leader {id} (term {r.term}) lacks committed "
                                             f"entry {i} (committed by term {ct})")

    # -- a random step -----------------------------------------------------------------
    def random_step(self) -> str:
        rng = self.rng
        ids = [id for id in self.nodes if id not in self.removed]
        x = rng.random()
        if x < 0.30:
            self.tick()
            self.process_all()
            return "tick"
        if x < 0.60:
            for _ in range(rng.randint(1, 8)):
                self.deliver_one()
            return "deliver"
        if x < 0.75:
            self.process_ready(rng.choice(list(self.nodes)))
            return "ready"
        if x < 0.85:
            self.propose(rng.choice(ids))
            return "propose"
        if x < 0.88:
            self.read(rng.choice(ids))
            return "read"
        if x < 0.905:
            return self._random_fault()
        if x < 0.915:
            return self._random_conf_change()
        if x < 0.92:
            self._random_transfer()
            return "transfer"
        self.tick()
        return "tick-only"

    def _random_fault(self) -> str:
        rng = self.rng
        ids = [id for id in self.nodes if id not in self.removed]
        kind = rng.choice(["crash", "restart", "partition", "heal", "restart"])
        max_crashed = self.opts.max_crashed
        if max_crashed is None:
            max_crashed = (len(ids) - 1) // 2
        if kind == "crash" and self.down_count() < max_crashed:
            self.crash(rng.choice(ids), torn=rng.random() < 0.5)
        elif kind == "restart":
            down = [id for id in ids if not self.nodes[id].up]
            if down:
                self.start(rng.choice(down))
        elif kind == "partition" and len(ids) > 1:
            self.partition = {id: rng.randrange(2) for id in self.nodes}
            self.say(f"partition {self.partition}")
        elif kind == "heal":
            self.partition = None
            self.say("heal")
        return kind

    def _random_conf_change(self) -> str:
        rng = self.rng
        leader = self.leader()
        if leader is None:
            return "conf-none"
        cs = self.nodes[leader].node.raft.trk.conf_state()
        members = len(cs.voters) + len(cs.learners)
        choice = rng.random()
        if choice < 0.35 and members < self.opts.max_members:
            self.add_member(leader, learner=rng.random() < 0.5, start=rng.random() < 0.8)
            return "add"
        if choice < 0.6 and cs.learners:
            self.conf_change(leader, ConfChange(ConfChangeType.ADD_NODE, rng.choice(cs.learners)))
            return "promote"
        if len(cs.voters) > 1:
            victim = rng.choice(cs.voters + cs.learners)
            self.conf_change(leader, ConfChange(ConfChangeType.REMOVE_NODE, victim))
            return "remove"
        return "conf-none"

    def _random_transfer(self) -> None:
        leader = self.leader()
        if leader is None:
            return
        voters = self.nodes[leader].node.raft.trk.voters
        others = sorted(v for v in voters if v != leader)
        if others:
            self.nodes[leader].node.transfer_leader(self.rng.choice(others))

    def leader(self) -> int | None:
        best = None
        for id, sn in self.nodes.items():
            if sn.up and id not in self.removed and sn.node.is_leader:
                if best is None or sn.node.raft.term > self.nodes[best].node.raft.term:
                    best = id
        return best

    # -- scripting helpers (named scenarios) --------------------------------------------
    def settle(self, ticks: int = 1) -> None:
        """Advance ``ticks`` ticks, delivering and processing everything due."""
        for _ in range(ticks):
            self.tick()
            self.pump()

    def pump(self) -> None:
        for _ in range(50):
            self.process_all()
            if not any(t <= self.now for t, _, _ in self.in_flight):
                break
            self.deliver_all()
        self.check()

    def wait_for(self, cond, max_ticks: int = 300) -> int:
        for t in range(max_ticks):
            if cond():
                return t
            self.settle()
        raise InvariantViolation(f"condition not reached within {max_ticks} ticks")

    def isolate(self, *ids: int) -> None:
        self.partition = {i: (0 if i in ids else 1) for i in self.nodes}
        self.say(f"isolate {ids}")

    def heal(self) -> None:
        self.partition = None

    # -- liveness ----------------------------------------------------------------------
    def heal_and_converge(self, max_ticks: int | None = None) -> int:
        """Heal everything; return ticks until a leader and full replication."""
        o = self.opts
        if max_ticks is None:
            max_ticks = 30 * o.election_tick
        self.partition = None
        saved = (o.drop_rate, o.dup_rate)
        o.drop_rate = o.dup_rate = 0.0
        for id, sn in self.nodes.items():
            if not sn.up and id not in self.removed:
                self.start(id)
        try:
            for t in range(max_ticks):
                self.tick()
                for _ in range(3):
                    self.process_all()
                    self.deliver_all()
                self.process_all()
                self.check()
                if self._converged():
                    return t
            raise InvariantViolation(f"no convergence within {max_ticks} ticks after healing: "
                                     f"leader={self.leader()} max_acked={self.max_acked} "
                                     f"applied={self.applied_summary()}")
        finally:
            o.drop_rate, o.dup_rate = saved

    def members(self) -> tuple[int, ...]:
        leader = self.leader()
        if leader is None:
            return ()
        cs = self.nodes[leader].node.raft.trk.conf_state()
        return cs.voters + cs.learners

    def _converged(self) -> bool:
        leader = self.leader()
        if leader is None:
            return False
        lsn = self.nodes[leader]
        if lsn.node.raft.raft_log.committed < lsn.node.raft.raft_log.last_index():
            return False
        for id in self.members():
            sn = self.nodes.get(id)
            if sn is None or not sn.up or sn.app.applied < self.max_acked:
                return False
        return True

    def applied_summary(self) -> dict[int, int]:
        return {id: (sn.app.applied if sn.up else -1) for id, sn in self.nodes.items()}


def run(seed: int, steps: int = 2000, opts: SimOptions | None = None, verbose: bool = False,
        converge: bool = True) -> Cluster:
    """One simulation run; raises InvariantViolation with the seed in the message."""
    c = Cluster(seed, opts, log=print if verbose else None)
    step = 0
    try:
        for step in range(steps):
            what = c.random_step()
            if verbose:
                c.say(f"step {step}: {what}")
            c.check()
        if converge:
            c.heal_and_converge()
    except AssertionError as e:
        raise InvariantViolation(f"seed {seed} (nodes={c.opts.nodes}) failed at step {step}: "
                                 f"{e}\nreplay: python -m tests.sim --seed {seed} "
                                 f"--steps {steps} --nodes {c.opts.nodes}") from e
    return c


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=1, help="run this many seeds from --seed")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--nodes", type=int, default=3, choices=[1, 3, 5])
    p.add_argument("--no-pre-vote", action="store_true")
    p.add_argument("--no-check-quorum", action="store_true")
    p.add_argument("--verbose", "-v", action="store_true")
    a = p.parse_args(argv)
    for seed in range(a.seed, a.seed + a.seeds):
        opts = SimOptions(nodes=a.nodes, pre_vote=not a.no_pre_vote,
                          check_quorum=not a.no_check_quorum)
        try:
            c = run(seed, a.steps, opts, a.verbose)
        except InvariantViolation as e:
            print(f"FAIL {e}")
            return 1
        print(f"ok seed={seed} nodes={a.nodes} steps={a.steps} ticks={c.now} "
              f"committed={max(c.committed, default=0)} acked={len(c.acked)} "
              f"reads={c.reads_served} leaders={len(c.leaders)} removed={sorted(c.removed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
