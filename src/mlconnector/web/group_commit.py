"""Group commit of webhook deliveries: the receiver's inbox writes, many per transaction.

Every delivery must be durable before it is answered 200, and a transaction per delivery caps the
receiver at the database's commit rate (one SQLite writer, an fsync per commit). Here each
delivery joins a queue and waits; one flusher at a time takes up to ``max_batch`` queued
deliveries and stores them all with ``Store.receive_webhooks`` in **one** transaction. The
batch adapts to the load: a delivery arriving while the flusher is idle is committed at once
(with those that arrived in the same turn of the event loop), so a lone delivery waits for no
timer; deliveries arriving while a commit is in flight queue up and go together in the next
transaction, ``window`` seconds after that commit ended (while busy, the window gathers the
deliveries of clients answered by the last commit: under CPU-bound load a transaction per
handful of deliveries costs ~30 % more receiver CPU than one per dozen).

A delivery's waiter resumes only after its transaction committed,
with its own :class:`~mlconnector.store.Received`, or with the error when the commit failed (the
receiver then answers 503 and claims nothing; ShipStation delivers again).

If a batch fails, its deliveries are retried one transaction each, so one bad delivery (say, of
a connection deleted meanwhile) does not fail the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from mlconnector.clock import Clock
from mlconnector.store import Received, Store

log = logging.getLogger("mlconnector.web.receiver")

#: seconds the next batch waits for others to join while busy (a commit just ended); a delivery
#: arriving while the flusher is idle does not wait
DEFAULT_WINDOW = 0.002
DEFAULT_MAX_BATCH = 100


@dataclass
class _Waiting:
    connection: str
    body: bytes
    headers: Mapping[str, str]
    done: asyncio.Future[Received]


class GroupCommit:
    """Collects concurrent deliveries for ``window`` seconds and stores them in one transaction.
    Build one per app (it belongs to one event loop)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        window: float = DEFAULT_WINDOW,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self.store = store
        self.clock = clock
        self.window = window
        self.max_batch = max(1, max_batch)
        self._queue: list[_Waiting] = []
        self._flusher: asyncio.Task[None] | None = None
        #: transactions committed and deliveries stored (for benchmarks and tests)
        self.batches = 0
        self.stored = 0

    async def receive(self, connection: str, body: bytes, headers: Mapping[str, str]) -> Received:
        """Store one delivery; returns once the transaction holding it has committed. Raises
        what the store raised when it could not be stored."""
        done: asyncio.Future[Received] = asyncio.get_running_loop().create_future()
        # a waiter that went away (client gone) must not leave an error nobody retrieved
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.append(_Waiting(connection, body, headers, done))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        # the commit goes on if this request is cancelled: others in the batch wait for it
        return await asyncio.shield(done)

    async def _flush(self) -> None:
        try:
            # idle until now: commit at once, with the deliveries of this turn of the loop
            await self.clock.sleep(0)
            while True:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                await self._commit(batch)  # those arriving meanwhile queue up for the next
                if not self._queue:
                    return
                if len(self._queue) < self.max_batch:
                    await self.clock.sleep(self.window)
        finally:
            self._flusher = None

    async def _commit(self, batch: list[_Waiting]) -> None:
        items = [(w.connection, w.body, w.headers) for w in batch]
        try:
            received = await self.store.receive_webhooks(items)
        except Exception as exc:  # noqa: BLE001 - handed to each waiter, or retried one by one
            if len(batch) == 1:
                _resolve(batch[0], exc)
                return
            log.warning("webhook group commit of %d failed (%s); one by one", len(batch), exc)
            for waiting in batch:
                await self._commit([waiting])
            return
        self.batches += 1
        self.stored += len(batch)
        for waiting, result in zip(batch, received, strict=True):
            _resolve(waiting, result)


def _resolve(waiting: _Waiting, outcome: Received | BaseException) -> None:
    if waiting.done.done():
        return
    if isinstance(outcome, BaseException):
        waiting.done.set_exception(outcome)
    else:
        waiting.done.set_result(outcome)
