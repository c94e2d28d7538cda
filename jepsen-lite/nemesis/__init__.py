"""The nemeses, by name (``--nemesis``)."""
from __future__ import annotations

from .base import Nemesis, Scheduler
from .admin import Admin
from .clock import Clock
from .disk import Disk
from .fuzz import Fuzz
from .member import Membership
from .partition import Partition
from .power import Power
from .process import Kill, Pause

NEMESES = {n.name: n for n in (Kill, Pause, Partition, Membership, Clock, Admin, Power, Disk,
                                Fuzz)}
NEEDS_NETNS = {"partition"}
NEEDS_LAZYFS = {"power"}
NEEDS_CLOCK = {"clock"}

__all__ = ["NEEDS_CLOCK", "NEEDS_LAZYFS", "NEEDS_NETNS", "NEMESES", "Nemesis", "Scheduler"]
