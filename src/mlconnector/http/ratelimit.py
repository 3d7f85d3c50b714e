"""Per-credential rate budgets that pace ahead of time instead of colliding with 429s.

Two modes, chosen by what the server says:

* **Header mode** (ShipStation V1): every response carries ``X-Rate-Limit-Limit``,
  ``X-Rate-Limit-Remaining`` and ``X-Rate-Limit-Reset`` (seconds until the window resets). The
  budget spends the remaining requests, then waits until the reset.
* **Sliding-window mode** (ShipStation V2, Plex: no budget headers): at most ``limit_per_minute``
  requests start in any ``window`` seconds.

A 429 blocks the credential for ``Retry-After`` / ``X-Rate-Limit-Reset`` seconds. The budget is
per credential, shared by every flow and connection using it (:class:`RateLimiterRegistry`),
because the server counts per key, not per caller. Its state is one :class:`BudgetState`:

* :class:`RateLimiter` keeps it in this process (the embedded SQLite deployment);
* :class:`SharedRateLimiter` keeps it behind a :class:`BudgetBackend` (a PostgreSQL row, stepped
  by compare-and-set on its version, :mod:`mlconnector.store.budgets`), so every worker process
  spends one budget.

Waiting is fair: requests of one process queue FIFO on an :class:`asyncio.Lock` (only its head
waits on the budget), so connections and flows sharing a credential take turns in arrival order;
across processes each process's head competes for the row (a lost compare-and-set is tried
again on the row as it is; after a few, the step takes the row lock).
The budget is keyed by a hash of host and credential, never by the secret.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from mlconnector.clock import Clock

#: Delays below this are rounding residue (``oldest + window - now + safety`` computed right at
#: the deadline is ~1e-15, not 0); sleeping on them never moves a FakeClock forward.
_EPSILON = 1e-6
#: a request counted in flight for longer than this is forgotten (its process died mid-request)
INFLIGHT_TTL = 120.0

T = TypeVar("T")


def _number(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def budget_news(headers: Mapping[str, str] | None, status: int | None) -> bool:
    """Whether an answer tells the budget more than that its request ended (what
    :meth:`BudgetState.learn` acts on besides that): a 429, or the budget headers."""
    if status == 429:
        return True
    if headers is None:
        return False
    return (
        _number(headers, "X-Rate-Limit-Remaining") is not None
        and _number(headers, "X-Rate-Limit-Reset") is not None
    )


def budget_key(host: str, credential: str) -> str:
    """The key of a credential's budget: a hash of host and credential (never the secret)."""
    return hashlib.sha256(f"{host}\0{credential}".encode()).hexdigest()[:32]


@dataclass
class BudgetState:
    """Everything one credential's budget knows, on one time axis (``now`` is passed in)."""

    limit: int | None
    window: float = 60.0
    remaining: int | None = None
    reset_at: float | None = None
    blocked_until: float = 0.0
    header_mode: bool = False
    #: start times of requests still waiting for their answer
    inflight: list[float] = field(default_factory=list)
    #: start times of the last ``limit`` requests (sliding-window mode)
    starts: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.remaining is None:
            self.remaining = self.limit

    # --- serialisation (the shared row) ---------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies field by field (~0.5 ms a shared step, profiled)
        return {
            "limit": self.limit,
            "window": self.window,
            "remaining": self.remaining,
            "reset_at": self.reset_at,
            "blocked_until": self.blocked_until,
            "header_mode": self.header_mode,
            "inflight": list(self.inflight),
            "starts": list(self.starts),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BudgetState:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    # --- the steps ------------------------------------------------------------------------------
    def delay_needed(self, now: float, safety: float) -> float:
        """Seconds to wait before one more request may start (0: now)."""
        self.inflight = [t for t in self.inflight if t > now - INFLIGHT_TTL]
        # a start older than one window (and the safety) no longer holds a request back: drop
        # it, so the state (the shared row, read and written at every step) holds one window's
        # starts, not the last ``limit`` of all time (10,000 for a Plex key), nor, without a
        # limit, every start ever
        recent = now - self.window - safety
        if self.starts and self.starts[0] <= recent:
            self.starts = [t for t in self.starts if t > recent]
        if self.blocked_until > now:
            return self.blocked_until - now
        if self.header_mode:
            if self.reset_at is not None and now >= self.reset_at:
                # The server's window has rolled over: assume a full budget until told otherwise.
                self.remaining = self.limit
                self.reset_at = None
            if self.remaining is not None and self.remaining <= 0:
                if self.reset_at is None:
                    return 0.0 if not self.inflight else safety
                return self.reset_at - now + safety
            return 0.0
        if self.limit is None or len(self.starts) < self.limit:
            return 0.0
        oldest = self.starts[0]
        return max(0.0, oldest + self.window - now + safety)

    def try_start(self, now: float, safety: float) -> float:
        """Start one request now if the budget allows (returns 0), else the delay to wait."""
        delay = self.delay_needed(now, safety)
        if delay > _EPSILON:
            return delay
        self.inflight.append(now)
        if self.remaining is not None:
            self.remaining -= 1
        self.starts.append(now)
        if self.limit is not None and len(self.starts) > self.limit:
            del self.starts[: len(self.starts) - self.limit]
        return 0.0

    def learn(
        self,
        now: float,
        headers: Mapping[str, str] | None,
        status: int | None,
        *,
        reset_margin: float,
    ) -> None:
        """End one request and correct the budget from the server's own headers."""
        if self.inflight:
            self.inflight.pop(0)
        if headers is None:
            return
        limit = _number(headers, "X-Rate-Limit-Limit")
        remaining = _number(headers, "X-Rate-Limit-Remaining")
        reset = _number(headers, "X-Rate-Limit-Reset")
        retry_after = _number(headers, "Retry-After")
        if remaining is not None and reset is not None:
            self.header_mode = True
            if limit is not None:
                self.limit = int(limit)
            new_reset_at = now + reset + reset_margin
            # requests still in flight may not have been counted by the server yet
            estimate = int(remaining) - len(self.inflight)
            same_window = self.reset_at is not None and abs(new_reset_at - self.reset_at) < 1.5
            if same_window and self.remaining is not None:
                self.remaining = min(self.remaining, estimate)
            else:
                self.remaining = estimate
            self.reset_at = new_reset_at
        if status == 429:
            wait = retry_after if retry_after is not None else reset
            self.block(now, wait + reset_margin if wait is not None else self.window)

    def block(self, now: float, seconds: float) -> None:
        """No request of this credential starts for ``seconds`` (a 429 was answered)."""
        self.blocked_until = max(self.blocked_until, now + seconds)
        if self.header_mode:
            self.remaining = 0
            self.reset_at = now + seconds


class RateLimiter:
    """Paces the requests of one credential, with the budget kept in this process."""

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
        self._initial = BudgetState(limit=limit_per_minute, window=window)
        self.state = BudgetState(limit=limit_per_minute, window=window)
        self._lock = asyncio.Lock()  # FIFO: waiters are served in arrival order
        #: how many times acquire() had to wait, and for how long in total (for benchmarks)
        self.waits = 0
        self.waited_seconds = 0.0

    @property
    def header_mode(self) -> bool:
        return self.state.header_mode

    @property
    def limit(self) -> int | None:
        return self.state.limit

    def _now(self) -> float:
        return self.clock.monotonic()

    async def _step(self, step: Callable[[BudgetState], T]) -> T:
        """Apply ``step`` to the budget state (atomically, where the state is shared)."""
        return step(self.state)

    async def acquire(self) -> None:
        """Wait until one more request may start, and count it as started."""
        async with self._lock:
            while True:
                # ``now`` is read inside the step: after the row lock, where the state is shared
                delay = await self._step(lambda s: s.try_start(self._now(), self.safety))
                if delay <= _EPSILON:
                    return
                self.waits += 1
                self.waited_seconds += delay
                await self.clock.sleep(delay)

    def release(
        self, headers: Mapping[str, str] | None = None, *, status: int | None = None
    ) -> None:
        """Record the end of a request and learn from the response's headers."""
        self.state.learn(self._now(), headers, status, reset_margin=self.reset_margin)

    async def settle(
        self, headers: Mapping[str, str] | None = None, *, status: int | None = None
    ) -> None:
        """:meth:`release`, awaited (what the HTTP client calls after every answer)."""
        await self._step(
            lambda s: s.learn(self._now(), headers, status, reset_margin=self.reset_margin)
        )

    def block(self, seconds: float) -> None:
        """Stop every request of this credential for ``seconds`` (a 429 was answered)."""
        self.state.block(self._now(), seconds)


class BudgetBackend(Protocol):
    """Where shared budgets live: ``step_budget`` applies ``step`` to the state of ``key`` under a
    lock every process honours (creating it from ``initial`` when missing) and saves it."""

    async def step_budget(
        self, key: str, initial: BudgetState, step: Callable[[BudgetState], T]
    ) -> T: ...


class SharedRateLimiter(RateLimiter):
    """A :class:`RateLimiter` whose budget lives in a :class:`BudgetBackend` seen by every
    process. Times are wall-clock seconds (``clock.now()``), the one axis processes share."""

    def __init__(self, clock: Clock, backend: BudgetBackend, key: str, **kwargs: Any) -> None:
        super().__init__(clock, **kwargs)
        self.backend = backend
        self.key = key
        #: answers that told nothing but the end of their request, not yet taken off the row
        self._finished = 0

    def _now(self) -> float:
        return self.clock.now().timestamp()

    async def _step(self, step: Callable[[BudgetState], T]) -> T:
        finished = self._finished

        def keep(state: BudgetState) -> T:
            now = self._now()
            for _ in range(finished):  # the ends of requests settled without a step
                state.learn(now, None, None, reset_margin=self.reset_margin)
            result = step(state)
            self.state = state  # the last state seen, for header_mode/limit and benchmarks
            return result

        result = await self.backend.step_budget(self.key, self._initial, keep)
        self._finished -= finished
        return result

    async def settle(
        self, headers: Mapping[str, str] | None = None, *, status: int | None = None
    ) -> None:
        """:meth:`RateLimiter.settle`; an answer with no budget news (not a 429, no
        ``X-Rate-Limit-Remaining/Reset``: every answer of V2 and Plex but their 429s) only
        ends its request, and that is carried by this process's next step of the budget
        instead of a step of its own. Until then the request still counts in flight, which
        holds nothing back in sliding-window mode and errs on the safe side in header mode;
        a process that never steps the budget again leaves it to ``INFLIGHT_TTL``."""
        if not budget_news(headers, status):
            self._finished += 1
            return
        await super().settle(headers, status=status)

    def release(
        self, headers: Mapping[str, str] | None = None, *, status: int | None = None
    ) -> None:
        raise TypeError("a shared budget is settled with `await limiter.settle(...)`")

    def block(self, seconds: float) -> None:
        raise TypeError("a shared budget learns of a 429 through `await limiter.settle(...)`")


class RateLimiterRegistry:
    """One budget per credential, shared by every client and flow that uses it; with a
    ``backend`` (PostgreSQL when scaled out) also by every process."""

    def __init__(self, clock: Clock, backend: BudgetBackend | None = None) -> None:
        self.clock = clock
        self.backend = backend
        self._limiters: dict[str, RateLimiter] = {}

    def for_credential(
        self, host: str, credential: str, *, limit_per_minute: int | None
    ) -> RateLimiter:
        # The secret itself never becomes a key that could be dumped; its hash does.
        key = budget_key(host, credential)
        limiter = self._limiters.get(key)
        if limiter is None:
            if self.backend is None:
                limiter = RateLimiter(self.clock, limit_per_minute=limit_per_minute, name=host)
            else:
                limiter = SharedRateLimiter(
                    self.clock, self.backend, key, limit_per_minute=limit_per_minute, name=host
                )
            self._limiters[key] = limiter
        return limiter
