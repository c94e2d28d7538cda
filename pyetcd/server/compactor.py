"""Auto compaction (etcd's ``etcdserver/api/v3compactor``).

``--auto-compaction-mode periodic|revision`` with ``--auto-compaction-retention``:

- periodic: the retention is a duration (a bare integer means hours, as in
  etcd).  Every ``min(retention, 1h) / 10`` the compactor samples the current
  revision, keeping ``retention / interval + 1`` samples; once ``retention``
  has passed since the start (then every ``min(retention, 1h)``) it compacts
  to the oldest sample, i.e. the revision of ``retention`` ago, unless that
  was already done.
- revision: every 5 minutes it compacts to ``current revision - retention``
  when that is positive and changed.

Only the leader compacts (the compactor is paused on followers); each
compaction is an ordinary Compaction request proposed through the log, so it
happens on every member.  ``ErrCompacted`` counts as success.  Retention 0
disables the compactor.

The clock and sleep are injectable so tests drive it without waiting.
"""
from __future__ import annotations

import asyncio
import logging
import time

from pyetcd import errors
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.util.duration import parse_go_duration
from pyetcd.util.tasks import cancel_and_wait, spawn

log = logging.getLogger("pyetcd.compactor")

REVISION_INTERVAL = 300.0  # etcd's revInterval (5 minutes)
_HOUR = 3600.0


def parse_retention(mode: str, retention: str) -> float:
    """etcd's parseCompactionRetention: seconds (periodic) or revisions."""
    retention = retention or "0"
    try:
        h = int(retention)
    except ValueError:
        h = -1
    if h >= 0:
        return float(h) if mode == "revision" else h * _HOUR
    return parse_go_duration(retention)


class Compactor:
    def __init__(self, server, mode: str, retention: float, *, clock=time.monotonic,
                 sleep=asyncio.sleep, revision_interval: float = REVISION_INTERVAL):
        if mode not in ("periodic", "revision"):
            raise ValueError(f"unknown auto-compaction-mode {mode!r}")
        self.server = server
        self.mode = mode
        self.retention = retention
        self.clock = clock
        self.sleep = sleep
        self.revision_interval = revision_interval
        self.task: asyncio.Task | None = None
        self.compactions: list[int] = []  # revisions compacted (for tests and logs)

    # ---- control --------------------------------------------------------------------
    def start(self) -> None:
        run = self._run_periodic if self.mode == "periodic" else self._run_revision
        self.task = spawn(run(), log, f"auto {self.mode} compactor")
        log.info("started auto %s compactor; compact-retention=%s", self.mode, self.retention)

    async def stop(self) -> None:
        await cancel_and_wait(self.task, log, f"auto {self.mode} compactor")
        self.task = None

    # ---- helpers ----------------------------------------------------------------------
    def _paused(self) -> bool:
        raft = self.server.raft
        return raft is None or not raft.is_leader or self.server.stopped

    def _rev(self) -> int:
        return self.server.kv.current_rev

    async def _compact(self, rev: int) -> bool:
        try:
            await self.server.compact(pb.CompactionRequest(revision=rev))
        except errors.EtcdError as exc:
            if exc.message == errors.COMPACTED.message:
                return True
            log.warning("failed auto %s compaction; revision=%d error=%s", self.mode, rev,
                        exc.message)
            return False
        self.compactions.append(rev)
        return True

    # ---- periodic ---------------------------------------------------------------------
    async def _run_periodic(self) -> None:
        period = self.retention
        compact_interval = min(period, _HOUR)
        retry = compact_interval / 10
        retentions = int(period / retry) + 1
        revs: list[int] = []
        last_rev = 0
        last_success = self.clock()
        base = period
        while True:
            revs.append(self._rev())
            if len(revs) > retentions:
                revs = revs[1:]  # revs[0] is the revision of `period` ago
            await self.sleep(retry)
            if self._paused():
                continue
            rev = revs[0]
            if self.clock() - last_success < base or rev == last_rev:
                continue
            if base == period:
                base = compact_interval  # waited the full period once; then every interval
            log.info("starting auto periodic compaction; revision=%d compact-period=%ss", rev, period)
            start = self.clock()
            if await self._compact(rev):
                log.info("completed auto periodic compaction; revision=%d took=%.3fs", rev,
                         self.clock() - start)
                last_rev = rev
                last_success = self.clock()

    # ---- revision -----------------------------------------------------------------------
    async def _run_revision(self) -> None:
        prev = 0
        while True:
            await self.sleep(self.revision_interval)
            if self._paused():
                continue
            rev = self._rev() - int(self.retention)
            if rev <= 0 or rev == prev:
                continue
            log.info("starting auto revision compaction; revision=%d revision-compaction-retention=%d",
                     rev, int(self.retention))
            if await self._compact(rev):
                prev = rev
                log.info("completed auto revision compaction; revision=%d", rev)


def start_compactor(server, **kw) -> Compactor | None:
    """Start the compactor the server's flags ask for (None when disabled)."""
    cfg = server.cfg
    mode = cfg.auto_compaction_mode or "periodic"
    retention = parse_retention(mode, cfg.auto_compaction_retention)
    if retention <= 0:
        return None
    c = Compactor(server, mode, retention, **kw)
    c.start()
    return c
