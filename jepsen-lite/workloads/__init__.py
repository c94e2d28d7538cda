"""The workloads, by name (``--workload``)."""
from __future__ import annotations

from .append import Append
from .lease import LeaseWorkload
from .lock import LockWorkload
from .register import Register
from .setwl import SetWorkload
from .watch import WatchWorkload

WORKLOADS = {w.name: w for w in (Register, Append, SetWorkload, WatchWorkload, LockWorkload,
                                 LeaseWorkload)}
