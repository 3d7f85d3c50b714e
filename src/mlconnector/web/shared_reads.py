"""One store read per name at a time, shared by the requests that need it.

The receiver's caches (:mod:`mlconnector.web.tokens`, :mod:`mlconnector.web.backlog`) read a
connection's answer when it expires; the deliveries in flight at that moment wait for the same
read instead of each making its own. Each read runs in a task of its own: a waiter whose client
went away (cancelled) does not cancel the read the others wait for, and a read nobody waits for
(a background refresh) has its outcome retrieved, so an error is not reported as never seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SharedReads(Generic[T]):
    """``get(name)`` awaits the read of ``name`` in flight, or starts one (``load(name)``)."""

    def __init__(self, load: Callable[[str], Coroutine[Any, Any, T]]) -> None:
        self._load = load
        self._tasks: dict[str, asyncio.Task[T]] = {}

    async def get(self, name: str) -> T:
        """The answer of the read of ``name`` (this caller's cancellation leaves it running)."""
        return await asyncio.shield(self.start(name))

    def start(self, name: str) -> asyncio.Task[T]:
        """The read of ``name`` in flight, started now if there is none (nobody need wait)."""
        task = self._tasks.get(name)
        if task is None:
            task = self._tasks[name] = asyncio.create_task(self._load(name))
            task.add_done_callback(lambda t: self._done(name, t))
        return task

    def discard(self, name: str | None = None) -> None:
        """Let the next caller of ``name`` (or of every name) start a new read; reads in
        flight finish for the callers already waiting."""
        if name is None:
            self._tasks.clear()
        else:
            self._tasks.pop(name, None)

    def in_flight(self) -> list[asyncio.Task[T]]:
        return list(self._tasks.values())

    async def aclose(self) -> None:
        """Stop the reads in flight (the store is about to close)."""
        reads = self.in_flight()
        for task in reads:
            task.cancel()
        await asyncio.gather(*reads, return_exceptions=True)

    def _done(self, name: str, task: asyncio.Task[T]) -> None:
        if self._tasks.get(name) is task:  # not a read discarded, then started again
            del self._tasks[name]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone away, or there was none
