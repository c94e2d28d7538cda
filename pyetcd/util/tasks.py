"""Stopping asyncio tasks."""
from __future__ import annotations

import asyncio
import logging


async def cancel_and_wait(task: asyncio.Task | None, log: logging.Logger, what: str) -> None:
    """Cancel ``task`` and wait until it is done; a failure other than the
    cancellation is logged (with its traceback), not raised: the caller is
    stopping anyway."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:  # noqa: BLE001 - stopping anyway; say what failed
        log.exception("%s failed while stopping", what)


_BACKGROUND: set[asyncio.Task] = set()


def spawn(coro, log: logging.Logger, what: str) -> asyncio.Task:
    """Run ``coro`` in the background: the task is kept referenced until it
    is done (the loop holds only weak references), and a failure is logged
    with its exception instead of vanishing."""
    task = asyncio.get_running_loop().create_task(coro, name=what)
    _BACKGROUND.add(task)

    def done(t: asyncio.Task) -> None:
        _BACKGROUND.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("%s failed: %r", what, t.exception(), exc_info=t.exception())
    task.add_done_callback(done)
    return task
