"""Per-credential rate limiting that paces ahead of time instead of colliding with 429s.

Two modes, chosen by what the server says:

* **Header mode** (ShipStation V1): every response carries ``X-Rate-Limit-Limit``,
  ``X-Rate-Limit-Remaining`` and ``X-Rate-Limit-Reset`` (seconds until the window resets). The
  limiter spends the remaining budget, then sleeps until the reset.
* **Sliding-window mode** (ShipStation V2, Plex: no budget headers): at most ``limit_per_minute``
  requests start in any ``window`` seconds.

A 429 blocks the credential for ``Retry-After`` / ``X-Rate-Limit-Reset`` seconds. One limiter per
credential, shared by every flow using it (:class:`RateLimiterRegistry`), because the server's
budget is per key, not per caller.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Mapping

from mlconnector.clock import Clock

#: Delays below this are rounding residue (``oldest + window - now + safety`` computed right at
#: the deadline is ~1e-15, not 0); sleeping on them never moves a FakeClock forward.
_EPSILON = 1e-6


def _number(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


class RateLimiter:
    """Paces the requests of one credential."""

    def __init__(
        self,
        clock: Clock,
        *,
        limit_per_minute: int | None,
        window: float = 60.0,
        safety: float = 0.05,
        reset_margin: float = 1.0,
        name: str = "",
    ) -> None:
        self.clock = clock
        self.name = name
        self.window = window
        self.safety = safety
        #: ``X-Rate-Limit-Reset`` and ``Retry-After`` are whole seconds; a server that truncates
        #: them announces the reset up to a second early, and a "0" would invite a burst of 429s.
        self.reset_margin = reset_margin
        self.limit = limit_per_minute
        self._remaining: int | None = limit_per_minute
        self._reset_at: float | None = None
        self._blocked_until = 0.0
        self._header_mode = False
        self._inflight = 0
        self._starts: deque[float] = deque()
        self._lock = asyncio.Lock()
        #: how many times acquire() had to wait, and for how long in total (for benchmarks)
        self.waits = 0
        self.waited_seconds = 0.0

    @property
    def header_mode(self) -> bool:
        return self._header_mode

    async def acquire(self) -> None:
        """Wait until one more request may start, and count it as started."""
        async with self._lock:
            while True:
                delay = self._delay_needed(self.clock.monotonic())
                if delay <= _EPSILON:
                    break
                self.waits += 1
                self.waited_seconds += delay
                await self.clock.sleep(delay)
            now = self.clock.monotonic()
            self._inflight += 1
            if self._remaining is not None:
                self._remaining -= 1
            self._starts.append(now)
            if self.limit is not None:
                while len(self._starts) > self.limit:
                    self._starts.popleft()

    def _delay_needed(self, now: float) -> float:
        if self._blocked_until > now:
            return self._blocked_until - now
        if self._header_mode:
            if self._reset_at is not None and now >= self._reset_at:
                # The server's window has rolled over: assume a full budget until told otherwise.
                self._remaining = self.limit
                self._reset_at = None
            if self._remaining is not None and self._remaining <= 0:
                if self._reset_at is None:
                    return 0.0 if self._inflight == 0 else self.safety
                return self._reset_at - now + self.safety
            return 0.0
        if self.limit is None or len(self._starts) < self.limit:
            return 0.0
        oldest = self._starts[0]
        return max(0.0, oldest + self.window - now + self.safety)

    def release(
        self, headers: Mapping[str, str] | None = None, *, status: int | None = None
    ) -> None:
        """Record the end of a request and learn from the response's headers."""
        self._inflight = max(0, self._inflight - 1)
        if headers is None:
            return
        now = self.clock.monotonic()
        limit = _number(headers, "X-Rate-Limit-Limit")
        remaining = _number(headers, "X-Rate-Limit-Remaining")
        reset = _number(headers, "X-Rate-Limit-Reset")
        retry_after = _number(headers, "Retry-After")
        if remaining is not None and reset is not None:
            self._header_mode = True
            if limit is not None:
                self.limit = int(limit)
            new_reset_at = now + reset + self.reset_margin
            estimate = int(remaining) - self._inflight
            same_window = self._reset_at is not None and abs(new_reset_at - self._reset_at) < 1.5
            if same_window and self._remaining is not None:
                self._remaining = min(self._remaining, estimate)
            else:
                self._remaining = estimate
            self._reset_at = new_reset_at
        if status == 429:
            wait = retry_after if retry_after is not None else reset
            self.block(wait + self.reset_margin if wait is not None else self.window)

    def block(self, seconds: float) -> None:
        """Stop every request of this credential for ``seconds`` (a 429 was answered)."""
        now = self.clock.monotonic()
        self._blocked_until = max(self._blocked_until, now + seconds)
        if self._header_mode:
            self._remaining = 0
            self._reset_at = now + seconds


class RateLimiterRegistry:
    """One limiter per credential, shared by every client and flow that uses it."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._limiters: dict[str, RateLimiter] = {}

    def for_credential(
        self, host: str, credential: str, *, limit_per_minute: int | None
    ) -> RateLimiter:
        # The secret itself never becomes a dict key that could be dumped; its hash does.
        digest = hashlib.sha256(f"{host}\0{credential}".encode()).hexdigest()[:16]
        limiter = self._limiters.get(digest)
        if limiter is None:
            limiter = RateLimiter(self.clock, limit_per_minute=limit_per_minute, name=host)
            self._limiters[digest] = limiter
        return limiter
