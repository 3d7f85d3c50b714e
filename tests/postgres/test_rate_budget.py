"""The rate budget of one credential shared through PostgreSQL by several processes.

On real time (a fake clock would jump ahead while a query is on the wire, which no real clock
does), against a fast fixed window of 20 requests per second, so the test is bounded. Each
"process" is its own :class:`Store` (own connection pool) and its own
:class:`RateLimiterRegistry`, as separate ``mlconnector worker`` processes have; they meet only
in the ``rate_budgets`` row. Against the fixed-window server they must
cause no 429 between them and still use the budget; without the shared row (one in-process
budget each) the same load collides.
"""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from mlconnector.clock import FakeClock, SystemClock
from mlconnector.http import RateLimiterRegistry
from mlconnector.http.ratelimit import BudgetState, SharedRateLimiter, budget_key
from mlconnector.store import Store, open_store
from mlconnector.store.schema import rate_budgets
from tests.dbutil import temporary_database
from tests.unit.core.test_ratelimit import FixedWindowServer, drive

# several worker processes on real time: under pytest-xdist these files share one worker (.ci/run)
pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("pg-processes")]

HOST, CREDENTIAL = "ssapi.example.com", "the-key:the-secret"


async def _stores(url: str, clock: FakeClock, count: int) -> list[Store]:
    return [await open_store(url, clock=clock) for _ in range(count)]


def _fast_server() -> FixedWindowServer:
    return FixedWindowServer(SystemClock(), limit=20, window=1.0, latency=0.02)  # type: ignore[arg-type]


async def test_four_processes_share_one_budget_without_a_429() -> None:
    clock = SystemClock()
    with temporary_database() as url:
        stores = [await open_store(url, clock=clock) for _ in range(4)]
        try:
            limiters = [
                RateLimiterRegistry(clock, s.shared_budgets()).for_credential(
                    HOST, CREDENTIAL, limit_per_minute=20
                )
                for s in stores
            ]
            assert all(isinstance(lim, SharedRateLimiter) for lim in limiters)
            server = _fast_server()

            await drive(server, limiters, total=100, workers=8)

            print(
                f"\n4 processes, one credential: {server.rejected} x 429, "
                f"{server.fraction_of_budget_used():.1%} of the budget"
            )
            assert server.rejected == 0
            assert sum(server.served.values()) == 100
            assert max(server.served.values()) <= 20
        finally:
            for s in stores:
                await s.close()


async def test_separate_in_process_budgets_collide() -> None:
    # The control: the same load with one budget per process (the old behaviour) gets 429s,
    # so the test above would fail without the shared row.
    clock = SystemClock()
    server = _fast_server()
    limiters = [
        RateLimiterRegistry(clock).for_credential(HOST, CREDENTIAL, limit_per_minute=20)
        for _ in range(4)
    ]
    await drive(server, limiters, total=100, workers=8)
    assert server.rejected > 0


async def test_the_row_is_keyed_by_a_hash_and_holds_no_secret(
    fake_clock: FakeClock, pg_url: str
) -> None:
    store = await open_store(pg_url, clock=fake_clock)
    try:
        limiter = RateLimiterRegistry(fake_clock, store.shared_budgets()).for_credential(
            HOST, CREDENTIAL, limit_per_minute=40
        )
        await limiter.acquire()
        await limiter.settle(
            {
                "X-Rate-Limit-Limit": "40",
                "X-Rate-Limit-Remaining": "12",
                "X-Rate-Limit-Reset": "30",
            },
            status=200,
        )
        async with store.engine.connect() as conn:
            rows = (await conn.execute(select(rate_budgets))).all()
        key = budget_key(HOST, CREDENTIAL)
        assert [r.key for r in rows] == [key]
        assert key == hashlib.sha256(f"{HOST}\0{CREDENTIAL}".encode()).hexdigest()[:32]
        dumped = str(rows[0].state) + rows[0].key
        assert "the-key" not in dumped
        assert "the-secret" not in dumped
        state = BudgetState.from_json(rows[0].state)
        # corrected from the server's own headers, seen by every process
        assert state.header_mode
        assert state.remaining == 12
        assert state.inflight == []
    finally:
        await store.close()


async def test_a_429_seen_by_one_process_blocks_the_others(
    fake_clock: FakeClock, pg_url: str
) -> None:
    first, second = await _stores(pg_url, fake_clock, 2)
    try:
        a, b = (
            RateLimiterRegistry(fake_clock, s.shared_budgets()).for_credential(
                "v2.example.com", "v2-key", limit_per_minute=200
            )
            for s in (first, second)
        )
        await a.acquire()
        await a.settle({"Retry-After": "20"}, status=429)
        started = fake_clock.monotonic()
        await b.acquire()
        # Retry-After 20 plus the one-second margin, learnt from the other process
        assert fake_clock.monotonic() - started == pytest.approx(21.0, abs=0.1)
    finally:
        await first.close()
        await second.close()
