"""RateLimiter and RateLimiterRegistry, on virtual time.

Header mode is driven against a tiny fake of ShipStation V1's limit (a fixed 60 s window of 40
requests per key, ``X-Rate-Limit-*`` headers on every answer, 429 past the limit) served through
``httpx.MockTransport``: the limiter must never collide with a 429 and still use the budget.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.http.ratelimit import BudgetState, RateLimiter, RateLimiterRegistry


class FixedWindowServer:
    """``limit`` requests per fixed ``window``; Reset is whole seconds to the window's end.

    Every request takes ``latency`` seconds of virtual time, so concurrent callers really have
    requests in flight when the budget runs out.
    """

    def __init__(
        self,
        clock: FakeClock,
        *,
        limit: int = 40,
        window: float = 60.0,
        phase: float = 0.0,
        rounding: Callable[[float], int] = math.ceil,
        latency: float = 0.25,
    ) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self.phase = phase
        self.rounding = rounding
        self.latency = latency
        #: successful requests per window index
        self.served: Counter[int] = Counter()
        self.rejected = 0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        """Count the request on arrival; answer after ``latency`` (so callers overlap)."""
        response = self._verdict()
        await self.clock.sleep(self.latency)
        return response

    def _verdict(self) -> httpx.Response:
        now = self.clock.monotonic()
        index = math.floor((now - self.phase) / self.window)
        window_end = self.phase + (index + 1) * self.window
        reset = str(self.rounding(window_end - now))
        used = self.served[index]
        if used >= self.limit:
            self.rejected += 1
            headers = {
                "X-Rate-Limit-Limit": str(self.limit),
                "X-Rate-Limit-Remaining": "0",
                "X-Rate-Limit-Reset": reset,
                "Retry-After": reset,
            }
            return httpx.Response(429, headers=headers, json={"message": "Too Many Requests"})
        self.served[index] += 1
        headers = {
            "X-Rate-Limit-Limit": str(self.limit),
            "X-Rate-Limit-Remaining": str(self.limit - used - 1),
            "X-Rate-Limit-Reset": reset,
        }
        return httpx.Response(200, headers=headers, json={"ok": True})

    def fraction_of_budget_used(self) -> float:
        """Requests served / what the windows spanned (first to last used) could have served."""
        spanned = max(self.served) - min(self.served) + 1
        return sum(self.served.values()) / (spanned * self.limit)


async def drive(
    server: FixedWindowServer,
    limiters: list[RateLimiter],
    *,
    total: int,
    workers: int,
) -> None:
    """``workers`` concurrent callers, spread over ``limiters``, send ``total`` requests."""
    remaining = total
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(server.handle), base_url="https://ssapi.example.com"
    ) as http:

        async def worker(limiter: RateLimiter) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await limiter.acquire()
                response: httpx.Response | None = None
                try:
                    response = await http.get("/orders")
                finally:
                    await limiter.settle(
                        response.headers if response is not None else None,
                        status=response.status_code if response is not None else None,
                    )

        await asyncio.gather(*(worker(limiters[i % len(limiters)]) for i in range(workers)))


@pytest.mark.parametrize("workers", [1, 4, 16])
@pytest.mark.parametrize("phase", [0.0, 17.3], ids=["aligned", "phase-shifted"])
async def test_header_mode_spends_the_budget_then_waits_for_reset(
    fake_clock: FakeClock, workers: int, phase: float
) -> None:
    server = FixedWindowServer(fake_clock, phase=phase)
    limiter = RateLimiter(fake_clock, limit_per_minute=40)

    await drive(server, [limiter], total=2000, workers=workers)

    fraction = server.fraction_of_budget_used()
    print(
        f"\nheader mode, {workers} worker(s), phase {phase}: 2000 requests, "
        f"{server.rejected} x 429, {fraction:.1%} of the budget, "
        f"{fake_clock.monotonic():.0f} s virtual, {limiter.waits} waits"
    )
    assert limiter.header_mode
    assert server.rejected == 0
    assert sum(server.served.values()) == 2000
    assert max(server.served.values()) <= 40
    assert fraction >= 0.97


async def test_header_mode_survives_a_server_that_rounds_reset_down(
    fake_clock: FakeClock,
) -> None:
    # Whether ShipStation rounds Reset up or down is not documented; rounding down means the
    # header promises the reset up to a second early.
    server = FixedWindowServer(fake_clock, phase=17.3, rounding=math.floor)
    limiter = RateLimiter(fake_clock, limit_per_minute=40)

    await drive(server, [limiter], total=400, workers=1)

    print(f"\nfloor-rounded Reset: {server.rejected} x 429, {server.fraction_of_budget_used():.1%}")
    assert server.rejected == 0
    assert server.fraction_of_budget_used() >= 0.97


async def test_flows_sharing_a_credential_share_one_budget(fake_clock: FakeClock) -> None:
    server = FixedWindowServer(fake_clock)
    registry = RateLimiterRegistry(fake_clock)
    orders_flow = registry.for_credential("ssapi.example.com", "key:secret", limit_per_minute=40)
    shipments_flow = registry.for_credential("ssapi.example.com", "key:secret", limit_per_minute=40)

    await drive(server, [orders_flow, shipments_flow], total=400, workers=4)

    assert orders_flow is shipments_flow
    assert server.rejected == 0
    assert max(server.served.values()) <= 40


async def test_sliding_window_caps_starts_per_window(fake_clock: FakeClock) -> None:
    limiter = RateLimiter(fake_clock, limit_per_minute=10, window=60.0)
    starts: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            await limiter.acquire()
            starts.append(fake_clock.monotonic())
            await fake_clock.sleep(0.5)  # the request itself
            limiter.release(None)

    await asyncio.gather(*(worker(7) for _ in range(5)))

    assert not limiter.header_mode
    assert len(starts) == 35
    assert starts == sorted(starts)
    for first in starts:
        assert sum(1 for s in starts if first <= s < first + 60.0) <= 10
    # Paced, not starved: the 11th request starts as soon as the 1st leaves the window.
    assert starts[10] == pytest.approx(starts[0] + 60.0 + limiter.safety)
    assert starts[-1] <= 3 * (60.0 + limiter.safety) + 1e-6


async def test_without_a_limit_and_without_headers_nothing_waits(fake_clock: FakeClock) -> None:
    limiter = RateLimiter(fake_clock, limit_per_minute=None)
    for _ in range(500):
        await limiter.acquire()
        limiter.release({"Content-Type": "application/json"}, status=200)
    assert fake_clock.monotonic() == 0
    assert limiter.waits == 0


@pytest.mark.parametrize(
    ("headers", "blocked_for"),
    [
        # Whole-second hints get the limiter's one-second margin (they may be truncated).
        ({"Retry-After": "30"}, 31.0),
        ({"X-Rate-Limit-Reset": "12", "X-Rate-Limit-Remaining": "0"}, 13.0),
        ({"Retry-After": "0"}, 1.0),  # never a burst of immediate retries
        ({}, 60.0),  # no hint: a whole window
    ],
    ids=["retry-after", "reset", "retry-after-zero", "no-header"],
)
async def test_a_429_blocks_every_caller_of_the_credential(
    fake_clock: FakeClock, headers: dict[str, str], blocked_for: float
) -> None:
    limiter = RateLimiter(fake_clock, limit_per_minute=None)
    assert limiter.reset_margin == 1.0
    await limiter.acquire()
    limiter.release(headers, status=429)

    started: list[float] = []

    async def caller() -> None:
        await limiter.acquire()
        started.append(fake_clock.monotonic())
        limiter.release(None)

    await asyncio.gather(caller(), caller(), caller())
    assert started == [blocked_for] * 3


async def test_block_by_hand_after_a_429_seen_elsewhere(fake_clock: FakeClock) -> None:
    limiter = RateLimiter(fake_clock, limit_per_minute=40)
    limiter.block(45)
    await limiter.acquire()
    assert fake_clock.monotonic() == 45


def test_registry_keeps_one_limiter_per_host_and_credential(fake_clock: FakeClock) -> None:
    registry = RateLimiterRegistry(fake_clock)
    a = registry.for_credential("ssapi.shipstation.com", "KEY-A:SECRET-A", limit_per_minute=40)
    assert (
        registry.for_credential("ssapi.shipstation.com", "KEY-A:SECRET-A", limit_per_minute=40) is a
    )
    assert (
        registry.for_credential("ssapi.shipstation.com", "KEY-B:SECRET-B", limit_per_minute=40)
        is not a
    )
    assert (
        registry.for_credential("api.shipstation.com", "KEY-A:SECRET-A", limit_per_minute=200)
        is not a
    )
    assert a.limit == 40
    assert a.clock is fake_clock


def test_registry_never_holds_the_secret_in_clear(fake_clock: FakeClock) -> None:
    secret = "sk_live_51Hx-very-secret-value"
    registry = RateLimiterRegistry(fake_clock)
    limiter = registry.for_credential("ssapi.shipstation.com", secret, limit_per_minute=40)

    def dump(obj: object) -> str:
        return repr(vars(obj))

    assert secret not in dump(registry)
    assert secret not in dump(limiter)
    assert secret not in repr(list(vars(registry).values()))


def test_the_budget_state_keeps_one_window_of_starts(fake_clock: FakeClock) -> None:
    """The state is the shared row on PostgreSQL, read and written at every request: it holds
    the starts of the last window only, not the last ``limit`` (10,000 for a Plex key) of all
    time, nor every start ever when there is no limit; the pacing is the same."""
    from mlconnector.http.ratelimit import BudgetState

    paced = BudgetState(limit=10_000, window=60.0)
    unlimited = BudgetState(limit=None, window=60.0)
    now = 0.0
    for _ in range(600):  # one request every second for ten minutes
        assert paced.try_start(now, 0.05) == 0.0
        assert unlimited.try_start(now, 0.05) == 0.0
        now += 1.0
    assert len(paced.starts) <= 61
    assert len(unlimited.starts) <= 61
    tight = BudgetState(limit=3, window=60.0)
    for at in (0.0, 70.0, 71.0, 72.0):  # the first start has left the window
        assert tight.try_start(at, 0.05) == 0.0
    assert tight.try_start(73.0, 0.05) == pytest.approx(70.0 + 60.0 - 73.0 + 0.05)


def test_the_budget_state_round_trips_every_field() -> None:
    state = BudgetState(limit=40, window=30.0, reset_at=12.5, blocked_until=0.5, header_mode=True)
    state.try_start(1.0, 0.05)
    state.try_start(2.0, 0.05)
    data = state.to_json()
    assert data == dataclasses.asdict(state)  # every field, none forgotten
    assert set(data) == {f.name for f in dataclasses.fields(BudgetState)}
    data["inflight"].append(99.0)  # a copy: the state does not change with it
    assert state.inflight == [1.0, 2.0]
    assert BudgetState.from_json(state.to_json()) == state
