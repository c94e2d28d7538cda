"""Value types of the consensus core: frozen, slotted dataclasses and enums.

Rules:
- Every value that crosses the core's boundary (messages, entries, states)
  is immutable; the core never mutates what it handed out.
- ``Message.entries`` is any sequence (usually a list slice of the log);
  receivers must treat it as read-only.
- Node id 0 (``NONE``) means "no node" (no leader, no vote).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Sequence

NONE = 0


class ProposalDropped(Exception):
    """The proposal (or read request) was not accepted; the caller may retry."""


class MessageType(IntEnum):
    HUP = 0                # local: start an election
    BEAT = 1               # local: leader sends heartbeats
    PROP = 2               # proposal (local or forwarded to the leader)
    APP = 3
    APP_RESP = 4
    VOTE = 5
    VOTE_RESP = 6
    SNAP = 7
    HEARTBEAT = 8
    HEARTBEAT_RESP = 9
    UNREACHABLE = 10       # local: transport reports a peer unreachable
    SNAP_STATUS = 11       # local: transport reports snapshot send result
    CHECK_QUORUM = 12      # local
    TRANSFER_LEADER = 13
    TIMEOUT_NOW = 14
    READ_INDEX = 15
    READ_INDEX_RESP = 16
    PRE_VOTE = 17
    PRE_VOTE_RESP = 18


LOCAL_MESSAGES = frozenset({MessageType.HUP, MessageType.BEAT, MessageType.UNREACHABLE,
                            MessageType.SNAP_STATUS, MessageType.CHECK_QUORUM})
RESPONSE_MESSAGES = frozenset({MessageType.APP_RESP, MessageType.VOTE_RESP,
                               MessageType.HEARTBEAT_RESP, MessageType.UNREACHABLE,
                               MessageType.PRE_VOTE_RESP})


def vote_resp_type(t: MessageType) -> MessageType:
    return MessageType.VOTE_RESP if t == MessageType.VOTE else MessageType.PRE_VOTE_RESP


class EntryType(IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class StateType(IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    LEADER = 2
    PRE_CANDIDATE = 3


class ConfChangeType(IntEnum):
    ADD_NODE = 0
    REMOVE_NODE = 1
    UPDATE_NODE = 2
    ADD_LEARNER_NODE = 3


class ReadOnlyOption(IntEnum):
    SAFE = 0         # confirm leadership with a heartbeat round per read batch
    LEASE_BASED = 1  # trust the check-quorum lease (clock-drift sensitive)


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


def entry_size(e: Entry) -> int:
    """Approximate encoded size, used for message and batch limits."""
    return len(e.data) + 16


@dataclass(frozen=True, slots=True)
class HardState:
    term: int = 0
    vote: int = NONE
    commit: int = 0


EMPTY_HARD_STATE = HardState()


@dataclass(frozen=True, slots=True)
class ConfState:
    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    conf_state: ConfState = ConfState()
    index: int = 0
    term: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    data: bytes = b""
    metadata: SnapshotMetadata = SnapshotMetadata()

    @property
    def index(self) -> int:
        return self.metadata.index

    @property
    def term(self) -> int:
        return self.metadata.term


EMPTY_SNAPSHOT = Snapshot()


@dataclass(frozen=True, slots=True)
class Message:
    type: MessageType
    to: int = NONE
    frm: int = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: Sequence[Entry] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class ConfChange:
    type: ConfChangeType
    node_id: int
    context: bytes = b""


_CC_HEADER = struct.Struct(">BQ")


def encode_conf_change(cc: ConfChange) -> bytes:
    """Entry payload of a CONF_CHANGE entry (stdlib only, no protobuf)."""
    return _CC_HEADER.pack(int(cc.type), cc.node_id) + cc.context


def decode_conf_change(data: bytes) -> ConfChange:
    t, node_id = _CC_HEADER.unpack_from(data)
    return ConfChange(ConfChangeType(t), node_id, bytes(data[_CC_HEADER.size:]))


@dataclass(frozen=True, slots=True)
class SoftState:
    lead: int = NONE
    raft_state: StateType = StateType.FOLLOWER


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read request ``request_ctx`` may be served once applied >= index."""
    index: int
    request_ctx: bytes


@dataclass(frozen=True, slots=True)
class Ready:
    """Everything the application must do, in this order:

    1. persist ``snapshot`` (if any), then ``entries``, then ``hard_state``
       (if any) to stable storage, with an fsync when ``must_sync``;
    2. send ``messages``;
    3. apply ``committed_entries`` (and call ``apply_conf_change`` for
       CONF_CHANGE entries) and serve ``read_states`` once applied;
    4. call ``RawNode.advance(ready)``.
    """
    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: Sequence[Entry] = ()
    snapshot: Snapshot | None = None
    committed_entries: Sequence[Entry] = ()
    messages: Sequence[Message] = ()
    read_states: Sequence[ReadState] = ()
    must_sync: bool = False


@dataclass(frozen=True, slots=True)
class ProgressStatus:
    match: int
    next: int
    state: str
    is_learner: bool
    recent_active: bool


@dataclass(frozen=True, slots=True)
class Status:
    id: int
    hard_state: HardState
    soft_state: SoftState
    applied: int
    lead_transferee: int
    conf_state: ConfState
    progress: dict = field(default_factory=dict)  # id -> ProgressStatus (leader only)
