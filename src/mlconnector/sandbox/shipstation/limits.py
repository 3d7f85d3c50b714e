"""Server-side rate limits of the simulated ShipStation, on the injected clock.

* V1: 40 requests per minute **per API key**, a fixed 60 s window that starts at the key's first
  request; every response says ``X-Rate-Limit-Limit/Remaining/Reset`` (Reset = whole seconds
  until the window ends). Rejected requests do not use up budget.
* V2: 200 requests per minute per key in a sliding 60 s window; a 429 carries ``Retry-After``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from mlconnector.clock import Clock


@dataclass
class Verdict:
    """The limiter's answer for one request."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # whole seconds until budget comes back

    def v1_headers(self) -> dict[str, str]:
        """The three headers every V1 response carries."""
        return {
            "X-Rate-Limit-Limit": str(self.limit),
            "X-Rate-Limit-Remaining": str(self.remaining),
            "X-Rate-Limit-Reset": str(self.reset),
        }


class FixedWindowLimiter:
    """V1: ``limit`` requests per ``window`` seconds per key, windows anchored at first use."""

    def __init__(self, clock: Clock, limit: int = 40, window: float = 60.0) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, key: str) -> Verdict:
        """Count one request of ``key``."""
        now = self.clock.monotonic()
        start, used = self._windows.get(key, (now, 0))
        if now >= start + self.window:
            start, used = now, 0
        reset = max(0, math.ceil(start + self.window - now))
        if used >= self.limit:
            self._windows[key] = (start, used)
            return Verdict(False, self.limit, 0, reset)
        used += 1
        self._windows[key] = (start, used)
        return Verdict(True, self.limit, self.limit - used, reset)

    def reset(self) -> None:
        """Forget every window."""
        self._windows.clear()


class SlidingWindowLimiter:
    """V2: at most ``limit`` requests start in any ``window`` seconds, per key."""

    def __init__(self, clock: Clock, limit: int = 200, window: float = 60.0) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str) -> Verdict:
        """Count one request of ``key``."""
        now = self.clock.monotonic()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            retry = max(1, math.ceil(hits[0] + self.window - now))
            return Verdict(False, self.limit, 0, retry)
        hits.append(now)
        return Verdict(True, self.limit, self.limit - len(hits), 0)

    def reset(self) -> None:
        """Forget every window."""
        self._hits.clear()
