"""Conversion between the core's dataclasses and pyetcd.pb.pyetcdpb.raft_pb2.

The only module of pyetcd.raft that imports protobuf code; the peer
transport uses ``encode_message``/``decode_message``, the WAL may use the
entry, hard-state and snapshot helpers.  Round trips are exact (decoded
``Message.entries`` is a list, or ``()`` when empty).
"""
from __future__ import annotations

from pyetcd.pb.pyetcdpb import raft_pb2 as pb

from .types import (ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState,
                    Message, MessageType, Snapshot, SnapshotMetadata)

_ENTRY_TYPES = {int(t): t for t in EntryType}
_MESSAGE_TYPES = {int(t): t for t in MessageType}
_CC_TYPES = {int(t): t for t in ConfChangeType}


def entry_to_pb(e: Entry, out: pb.RaftEntry | None = None) -> pb.RaftEntry:
    if out is None:
        out = pb.RaftEntry()
    out.term = e.term
    out.index = e.index
    out.type = int(e.type)
    out.data = e.data
    return out


def entry_from_pb(p: pb.RaftEntry) -> Entry:
    return Entry(p.term, p.index, _ENTRY_TYPES[p.type], p.data)


def conf_state_to_pb(cs: ConfState, out: pb.RaftConfState | None = None) -> pb.RaftConfState:
    if out is None:
        out = pb.RaftConfState()
    out.voters[:] = cs.voters
    out.learners[:] = cs.learners
    return out


def conf_state_from_pb(p: pb.RaftConfState) -> ConfState:
    return ConfState(tuple(p.voters), tuple(p.learners))


def snapshot_to_pb(s: Snapshot, out: pb.RaftSnapshot | None = None) -> pb.RaftSnapshot:
    if out is None:
        out = pb.RaftSnapshot()
    out.data = s.data
    md = out.metadata
    conf_state_to_pb(s.metadata.conf_state, md.conf_state)
    md.index = s.metadata.index
    md.term = s.metadata.term
    return out


def snapshot_from_pb(p: pb.RaftSnapshot) -> Snapshot:
    md = p.metadata
    return Snapshot(p.data, SnapshotMetadata(conf_state_from_pb(md.conf_state), md.index,
                                             md.term))


def hard_state_to_pb(hs: HardState) -> pb.RaftHardState:
    return pb.RaftHardState(term=hs.term, vote=hs.vote, commit=hs.commit)


def hard_state_from_pb(p: pb.RaftHardState) -> HardState:
    return HardState(p.term, p.vote, p.commit)


def conf_change_to_pb(cc: ConfChange) -> pb.RaftConfChange:
    return pb.RaftConfChange(type=int(cc.type), node_id=cc.node_id, context=cc.context)


def conf_change_from_pb(p: pb.RaftConfChange) -> ConfChange:
    return ConfChange(_CC_TYPES[p.type], p.node_id, p.context)


def message_to_pb(m: Message) -> pb.RaftMessage:
    p = pb.RaftMessage(type=int(m.type), to=m.to, term=m.term, log_term=m.log_term,
                       index=m.index, commit=m.commit, reject=m.reject,
                       reject_hint=m.reject_hint, context=m.context)
    setattr(p, "from", m.frm)  # "from" is a Python keyword
    if m.entries:
        add = p.entries.add
        for e in m.entries:
            entry_to_pb(e, add())
    if m.snapshot is not None:
        snapshot_to_pb(m.snapshot, p.snapshot)
    return p


def message_from_pb(p: pb.RaftMessage) -> Message:
    snap = snapshot_from_pb(p.snapshot) if p.HasField("snapshot") else None
    ents = [Entry(e.term, e.index, _ENTRY_TYPES[e.type], e.data)
            for e in p.entries] if p.entries else ()
    return Message(_MESSAGE_TYPES[p.type], p.to, getattr(p, "from"), p.term, p.log_term,
                   p.index, ents, p.commit, snap, p.reject, p.reject_hint, p.context)


def encode_message(m: Message) -> bytes:
    return message_to_pb(m).SerializeToString()


def decode_message(data: bytes) -> Message:
    p = pb.RaftMessage()
    p.ParseFromString(data)
    return message_from_pb(p)


def encode_entry(e: Entry) -> bytes:
    return entry_to_pb(e).SerializeToString()


def decode_entry(data: bytes) -> Entry:
    p = pb.RaftEntry()
    p.ParseFromString(data)
    return entry_from_pb(p)


def encode_hard_state(hs: HardState) -> bytes:
    return hard_state_to_pb(hs).SerializeToString()


def decode_hard_state(data: bytes) -> HardState:
    p = pb.RaftHardState()
    p.ParseFromString(data)
    return hard_state_from_pb(p)


def encode_snapshot(s: Snapshot) -> bytes:
    return snapshot_to_pb(s).SerializeToString()


def decode_snapshot(data: bytes) -> Snapshot:
    p = pb.RaftSnapshot()
    p.ParseFromString(data)
    return snapshot_from_pb(p)
