"""The member's watchable store and the task that drives it: catch-up of
unsynced watchers from the backend, retries of victims (watchers whose
stream queue was full).  One per server, shared by the Watch, Lock and
Election services; re-attached to the MVCC store when a snapshot install
replaces it."""
from __future__ import annotations

import asyncio
import logging

from pyetcd.mvcc.watchable_store import WatchableStore

from pyetcd.util.tasks import cancel_and_wait

log = logging.getLogger("pyetcd.watch")

SYNC_PERIOD = 0.1           # etcd's watchResyncPeriod
MORE_HISTORY_DELAY = 0.005  # a catch-up round left history to read: the next one soon


class WatchHub:
    def __init__(self, kv):
        self.store = WatchableStore(kv, on_work=self._kick)
        self._work: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def attach(self, kv) -> None:
        """Watch a new MVCC store (after a snapshot install)."""
        self.store.attach(kv)

    def new_stream(self, on_ready):
        """A watch stream (see WatchableStore.new_stream); the sync task runs
        from the first stream on."""
        self.ensure_running()
        return self.store.new_stream(on_ready=on_ready)

    def _kick(self) -> None:
        if self._work is not None:
            self._work.set()

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._work = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait(self._task, log, "watch sync task")
        self._task = None

    async def _run(self) -> None:
        store = self.store
        work = self._work
        while True:
            try:
                await asyncio.wait_for(work.wait(), SYNC_PERIOD)
            except asyncio.TimeoutError:
                pass  # the periodic round
            work.clear()
            try:
                while store.victims and store.move_victims():
                    pass
                if store.unsynced.watchers and store.sync_watchers():
                    await asyncio.sleep(MORE_HISTORY_DELAY)
                    work.set()
            except Exception:  # noqa: BLE001 - keep serving the other watchers
                log.exception("watch sync round failed")
                await asyncio.sleep(SYNC_PERIOD)
