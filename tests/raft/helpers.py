"""Helpers for driving bare ``Raft`` state machines in unit and paper tests.

``Network`` delivers messages synchronously between in-process nodes, like
etcd-raft's test network: ``cut``/``isolate``/``recover`` and per-link drop
rates (with a seeded rng, so tests are deterministic).
"""
from __future__ import annotations

import random

from pyetcd.raft import (Config, ConfState, Entry, MemoryStorage, Message, MessageType, Raft,
                         Snapshot, SnapshotMetadata, StateType)

MT = MessageType


def new_storage(voters=(), learners=()) -> MemoryStorage:
    s = MemoryStorage()
    s.apply_snapshot(Snapshot(b"", SnapshotMetadata(ConfState(tuple(voters), tuple(learners)),
                                                    0, 0)))
    return s


def new_raft(id: int, voters=(), election: int = 10, heartbeat: int = 1, storage=None,
             learners=(), **kw) -> Raft:
    if storage is None:
        storage = new_storage(voters, learners)
    kw.setdefault("rng", random.Random(id))
    return Raft(Config(id=id, election_tick=election, heartbeat_tick=heartbeat, **kw), storage)


def read_messages(r: Raft) -> list[Message]:
    msgs, r.msgs = r.msgs, []
    return msgs


def persist(r: Raft, storage: MemoryStorage) -> None:
    """Move the unstable part of the log to storage (what the application does)."""
    u = r.raft_log.unstable
    if u.snapshot is not None:
        storage.apply_snapshot(u.snapshot)
        r.raft_log.stable_snap_to(u.snapshot.metadata.index)
    if u.entries:
        storage.append(list(u.entries))
        last = u.entries[-1]
        r.raft_log.stable_to(last.index, last.term)


def entries_of(r: Raft) -> list[tuple[int, int, bytes]]:
    return [(e.term, e.index, e.data) for e in r.raft_log.all_entries()]


def log_with_terms(terms) -> MemoryStorage:
    """Storage whose entries 1..n have the given terms (and a 3-voter config)."""
    s = new_storage()
    s.append([Entry(t, i) for i, t in enumerate(terms, 1)])
    return s


class BlackHole:
    """A peer that swallows every message."""

    def step(self, m):
        pass


class Network:
    def __init__(self, *peers, seed: int = 0, **kw) -> None:
        """``peers``: Raft instances, ``None`` (new default node) or BlackHole."""
        ids = list(range(1, len(peers) + 1))
        self.peers = {}
        self.storage = {}
        for id, p in zip(ids, peers):
            if p is None:
                self.storage[id] = new_storage(ids)
                self.peers[id] = new_raft(id, ids, storage=self.storage[id], **kw)
            else:
                self.peers[id] = p
        self.dropm: dict[tuple[int, int], float] = {}
        self.ignorem: set[MessageType] = set()
        self.rng = random.Random(seed)

    def send(self, *msgs: Message) -> None:
        queue = list(msgs)
        while queue:
            m = queue.pop(0)
            p = self.peers.get(m.to)
            if p is None:
                continue
            p.step(m)
            if isinstance(p, Raft):
                queue.extend(self.filter(read_messages(p)))

    def filter(self, msgs):
        out = []
        for m in msgs:
            if m.type in self.ignorem:
                continue
            if m.type == MT.HUP:
                raise AssertionError("unexpected MsgHup")
            perc = self.dropm.get((m.frm, m.to), 0.0)
            if perc and self.rng.random() < perc:
                continue
            out.append(m)
        return out

    def campaign(self, id: int) -> None:
        self.send(Message(MT.HUP, to=id, frm=id))

    def propose(self, id: int, data: bytes = b"somedata") -> None:
        self.send(Message(MT.PROP, to=id, frm=id, entries=[Entry(0, 0, data=data)]))

    def drop(self, frm: int, to: int, perc: float) -> None:
        self.dropm[(frm, to)] = perc

    def cut(self, a: int, b: int) -> None:
        self.drop(a, b, 2.0)
        self.drop(b, a, 2.0)

    def isolate(self, id: int) -> None:
        for other in self.peers:
            if other != id:
                self.cut(id, other)

    def ignore(self, t: MessageType) -> None:
        self.ignorem.add(t)

    def recover(self) -> None:
        self.dropm = {}
        self.ignorem = set()

    def leader_ids(self):
        return [id for id, p in self.peers.items()
                if isinstance(p, Raft) and p.state == StateType.LEADER]
