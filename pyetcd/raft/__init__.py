"""pyetcd.raft: the Raft consensus core, pure and deterministic (sans-I/O).

Owns: the Raft protocol (elections with pre-vote and check-quorum, log
replication with flow control, snapshots, ReadIndex reads, leader transfer,
single-step membership changes with learners), the ``RawNode`` driver API,
the ``Storage`` protocol with ``MemoryStorage``, and the value types.

May import: the Python standard library only (no asyncio, time, os, socket,
threading; randomness only through the injected ``Config.rng``), and
nothing from pyetcd outside pyetcd.raft.  The single exception is
``pyetcd.raft.codec``, which converts the value types to and from the
protobuf messages in ``pyetcd.pb.pyetcdpb.raft_pb2``; it is not imported here.

Membership changes are single-step: each ConfChange adds or removes one
node (or adds/promotes a learner), takes effect when the application applies
the committed entry (``RawNode.apply_conf_change``), and only one may be
pending at a time.  No joint consensus.  A new leader must apply its
first (empty) entry before accepting a change, which closes the known
single-server-change hole.  A leader that proposes its own removal accepts
no more proposals and, once the removal applies, hands leadership to the
most caught-up voter (TimeoutNow) before stepping down.
"""
from .config import Config
from .core import CAMPAIGN_ELECTION, CAMPAIGN_PRE_ELECTION, CAMPAIGN_TRANSFER, Raft
from .progress import Inflights, Progress, ProgressState, ProgressTracker
from .rawnode import RawNode
from .storage import (Compacted, MemoryStorage, SnapshotOutOfDate,
                      SnapshotTemporarilyUnavailable, Storage, StorageError, Unavailable,
                      bootstrap)
from .types import (NONE, ConfChange, ConfChangeType, ConfState, Entry, EntryType,
                    HardState, Message, MessageType, ProgressStatus, ProposalDropped,
                    ReadOnlyOption, ReadState, Ready, Snapshot, SnapshotMetadata,
                    SoftState, StateType, Status, decode_conf_change, encode_conf_change)

__all__ = [
    "CAMPAIGN_ELECTION", "CAMPAIGN_PRE_ELECTION", "CAMPAIGN_TRANSFER", "Compacted", "Config",
    "ConfChange", "ConfChangeType", "ConfState", "Entry", "EntryType", "HardState",
    "Inflights", "MemoryStorage", "Message", "MessageType", "NONE", "Progress",
    "ProgressState", "ProgressStatus", "ProgressTracker", "ProposalDropped", "Raft",
    "RawNode", "ReadOnlyOption", "ReadState", "Ready", "Snapshot", "SnapshotMetadata",
    "SnapshotOutOfDate", "SnapshotTemporarilyUnavailable", "SoftState", "StateType",
    "Status", "Storage", "StorageError", "Unavailable", "bootstrap", "decode_conf_change",
    "encode_conf_change",
]
