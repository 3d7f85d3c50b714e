"""SQLite's write-ahead log checkpointed in the background, off the commit path.

By default SQLite checkpoints inside the commit that takes the log past 1,000 pages: that commit
copies the pages into the database file and syncs both files, 10-20 ms on an idle disk and ~90 ms
on a busy one, and every webhook delivery waiting for that group commit waits too (at 16
concurrent deliveries, ~3 such commits per 2,000). Long-running commands instead run
:func:`checkpoint_periodically`: a ``PASSIVE`` checkpoint every ``interval`` seconds on a
connection of its own, which waits for no reader and no writer, while commits only append to
the log. Commits still checkpoint themselves past
:data:`~mlconnector.store.engine.WAL_AUTOCHECKPOINT_PAGES`, so the log stays bounded when this
task falls behind or is not running. A checkpoint also syncs the log, which commits
(``synchronous=NORMAL``) do not: with this task that happens every second, not every 1,000 pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from mlconnector.clock import Clock
from mlconnector.store.repository import Store

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 1.0


async def checkpoint_periodically(
    store: Store, clock: Clock, *, interval: float = DEFAULT_INTERVAL
) -> None:
    """Checkpoint ``store``'s WAL every ``interval`` seconds until cancelled (returns at once on
    PostgreSQL). A failed checkpoint is logged and tried again at the next interval: the log
    is still bounded by the commits' own checkpoints."""
    if store.dialect != "sqlite":
        return
    while True:
        await clock.sleep(interval)
        try:
            await store.checkpoint_wal()
        except Exception as exc:  # noqa: BLE001 - never stops the command; the cap still holds
            log.warning("WAL checkpoint failed (%s); next in %.0f s", type(exc).__name__, interval)


@contextlib.asynccontextmanager
async def checkpointing(
    store: Store, clock: Clock, *, interval: float = DEFAULT_INTERVAL
) -> AsyncIterator[None]:
    """:func:`checkpoint_periodically` in a task for the duration of the block."""
    task = asyncio.create_task(checkpoint_periodically(store, clock, interval=interval))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
