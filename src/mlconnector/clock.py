"""Injected time: a ``Clock`` protocol with a system clock and a fake clock for tests.

Nothing deep in the connector reads ``datetime.now()`` or ``time.monotonic()`` directly; it asks
the clock it was given, so a test of a 40-per-minute limit runs in milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What the connector needs to know about time."""

    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a no-op yield when ``seconds <= 0``)."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """Virtual time for tests and benchmarks.

    ``sleep`` does not wait in real time. Sleepers are queued by deadline; once the event loop has
    had a few turns to run every ready task, virtual time jumps to the earliest deadline and that
    sleeper wakes (the "autojump" clock of trio, for asyncio). Concurrent sleepers therefore wake
    in deadline order, as they would in real time, and ``advance`` moves time by hand.
    """

    #: loop turns granted to ready tasks before virtual time jumps forward
    _IDLE_TURNS = 8

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware start datetime")
        self._start = start.astimezone(UTC)
        self._elapsed = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._jump_scheduled = False

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by hand, waking every sleeper whose deadline has passed."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._elapsed += seconds
        self._wake_due()

    def set(self, when: datetime) -> None:
        """Jump to an absolute instant (only forwards)."""
        delta = (when - self.now()).total_seconds()
        self.advance(max(0.0, delta))

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        deadline = self._elapsed + seconds
        if deadline <= self._elapsed:
            # Below float resolution at this elapsed time: a real clock would still move on, and
            # a caller looping "until the delay is 0" would otherwise spin forever.
            deadline = math.nextafter(self._elapsed, math.inf)
        heapq.heappush(self._sleepers, (deadline, next(self._seq), fut))
        self._schedule_jump(loop)
        await fut

    def _schedule_jump(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._jump_scheduled:
            self._jump_scheduled = True
            loop.call_soon(self._maybe_jump, loop, 0)

    def _maybe_jump(self, loop: asyncio.AbstractEventLoop, turns: int) -> None:
        if turns < self._IDLE_TURNS:
            loop.call_soon(self._maybe_jump, loop, turns + 1)
            return
        self._jump_scheduled = False
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)  # cancelled sleepers
        if not self._sleepers:
            return
        deadline = self._sleepers[0][0]
        self._elapsed = max(self._elapsed, deadline)
        self._wake_due()
        if self._sleepers:
            self._schedule_jump(loop)

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._elapsed:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
