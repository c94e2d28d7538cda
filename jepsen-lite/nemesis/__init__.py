"""The nemeses, by name (``--nemesis``)."""
from __future__ import annotations

from .base import Nemesis, Scheduler
from .process import Kill, Pause

NEMESES = {n.name: n for n in (Kill, Pause)}
NEEDS_NETNS = set()

__all__ = ["NEEDS_NETNS", "NEMESES", "Nemesis", "Scheduler"]
