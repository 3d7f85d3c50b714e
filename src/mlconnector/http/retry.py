"""A pure retry policy: given the attempt number and the error, how long to wait (or give up).

Exponential backoff with a cap and injected jitter, so a test can assert exact delays. A server's
own ``Retry-After`` / ``X-Rate-Limit-Reset`` wins over the computed delay.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from mlconnector.errors import ConnectorError, RateLimitedError, RetryableError


def full_jitter(rng: random.Random | None = None) -> Callable[[float], float]:
    """AWS-style "full jitter": a uniform delay in [0, computed]."""
    source = rng or random.Random()
    return lambda delay: source.uniform(0.0, delay)


def no_jitter(delay: float) -> float:
    return delay


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry.

    ``max_attempts`` counts every try of one request except those answered 429: a rate limit is a
    budget, not a failure, and has its own, larger, ``max_rate_limit_waits``.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 60.0
    multiplier: float = 2.0
    max_rate_limit_waits: int = 50
    jitter: Callable[[float], float] = field(default=no_jitter)

    def backoff(self, attempt: int) -> float:
        """Delay before try ``attempt + 1`` after ``attempt`` failed tries (attempt >= 1)."""
        raw = self.base_delay * (self.multiplier ** max(0, attempt - 1))
        return min(self.max_delay, self.jitter(min(raw, self.max_delay)))

    def next_delay(
        self, error: ConnectorError, *, attempts: int, rate_limit_waits: int
    ) -> float | None:
        """Seconds to wait before retrying, or ``None`` to give up and raise."""
        if isinstance(error, RateLimitedError):
            if rate_limit_waits >= self.max_rate_limit_waits:
                return None
            # Wait what the server asked for; no jitter: the server resets the window.
            wait = (
                error.retry_after if error.retry_after is not None else self.backoff(attempts + 1)
            )
            return max(0.0, wait)
        if not isinstance(error, RetryableError):
            return None
        if attempts >= self.max_attempts:
            return None
        delay = self.backoff(attempts)
        if error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return delay
