"""Configuration of one Raft node (validated; randomness is injected)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from .types import NONE, ReadOnlyOption


@dataclass(slots=True)
class Config:
    id: int
    election_tick: int = 10
    heartbeat_tick: int = 1
    # Max bytes of entries per MsgApp (at least one entry is always sent).
    max_size_per_msg: int = 1024 * 1024
    # Max bytes of committed entries handed out per Ready (None: same as above).
    max_committed_size_per_ready: int | None = None
    # Max MsgApps in flight to one follower in REPLICATE state.
    max_inflight_msgs: int = 256
    # Max bytes of uncommitted entry payloads on the leader (0: unlimited).
    max_uncommitted_entries_size: int = 0
    pre_vote: bool = False
    check_quorum: bool = False
    read_only_option: ReadOnlyOption = ReadOnlyOption.SAFE
    # The last applied index, when restarting.
    applied: int = 0
    disable_proposal_forwarding: bool = False
    # The source of election-timeout randomness; seeded from id if omitted.
    rng: random.Random | None = field(default=None)

    def validate(self) -> None:
        if self.id == NONE:
            raise ValueError("cannot use none as id")
        if self.heartbeat_tick <= 0:
            raise ValueError("heartbeat tick must be greater than 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("election tick must be greater than heartbeat tick")
        if self.max_inflight_msgs <= 0:
            raise ValueError("max inflight messages must be greater than 0")
        if self.read_only_option == ReadOnlyOption.LEASE_BASED and not self.check_quorum:
            raise ValueError("check_quorum must be enabled for lease-based reads")
        if self.rng is None:
            self.rng = random.Random(self.id)
