"""The nemeses, by name (``--nemesis``)."""
from __future__ import annotations

from .base import Nemesis, Scheduler
from .partition import Partition
from .power import Power
from .process import Kill, Pause

NEMESES = {n.name: n for n in (Kill, Pause, Partition, Power)}
NEEDS_NETNS = {"partition"}
NEEDS_LAZYFS = {"power"}

__all__ = ["NEEDS_LAZYFS", "NEEDS_NETNS", "NEMESES", "Nemesis", "Scheduler"]
