"""PostgreSQL only: the round trips of a shared rate-budget step (:mod:`mlconnector.store.budgets`).

A step is one compare-and-set statement in autocommit when no other process stepped the budget
since this one last did (a step under the row lock was four statements: BEGIN, SELECT … FOR
UPDATE, UPDATE, COMMIT); a step after another process's costs one more (the failed
compare-and-set returns the row as it is). Statements and transactions are counted
with :mod:`tests.postgres.counting`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, text

from mlconnector.clock import FakeClock
from mlconnector.http import RateLimiterRegistry
from mlconnector.http.ratelimit import BudgetState, RateLimiter
from mlconnector.store import Store, open_store
from mlconnector.store.budgets import CAS_TRIES
from mlconnector.store.schema import metadata, rate_budgets
from tests.postgres.counting import Counts, count_statements

pytestmark = pytest.mark.postgres

HEADERS = {"X-Rate-Limit-Limit": "40", "X-Rate-Limit-Remaining": "30", "X-Rate-Limit-Reset": "50"}
#: a guard against a hang, not a timing assertion
GUARD = 30


def _count(store: Store) -> Counts:
    return count_statements(store.engine)


@pytest.fixture
async def stores(pg_url: str, fake_clock: FakeClock) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores with separate engines (as two processes) on one emptied database."""
    first = await open_store(pg_url, clock=fake_clock)
    second = await open_store(pg_url, clock=fake_clock)
    names = ", ".join(t.name for t in metadata.sorted_tables)

    async def empty() -> None:
        async with first.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))

    await empty()
    try:
        yield first, second
    finally:
        await empty()  # the database is the session's: leave no budget row to other tests
        await first.close()
        await second.close()


def _limiter(store: Store, clock: FakeClock) -> RateLimiter:
    return RateLimiterRegistry(clock, store.shared_budgets()).for_credential(
        "ssapi.example.com", "key:secret", limit_per_minute=40
    )


async def _row(store: Store) -> tuple[int, BudgetState]:
    async with store.engine.connect() as conn:
        row = (await conn.execute(select(rate_budgets.c.version, rate_budgets.c.state))).one()
    return row.version, BudgetState.from_json(row.state)


async def test_a_step_is_one_statement_without_a_transaction(
    stores: tuple[Store, Store], fake_clock: FakeClock
) -> None:
    store = stores[0]
    counts = _count(store)
    limiter = _limiter(store, fake_clock)
    await limiter.acquire()  # the row is new: a read finds nothing, an insert creates it
    assert counts.take() == (2, 0)
    await limiter.settle(HEADERS, status=200)
    assert counts.take() == (1, 0)
    for _ in range(5):
        await limiter.acquire()
        await limiter.settle(HEADERS, status=200)
        assert counts.take() == (2, 0)  # one per request start, one per answer
    version, state = await _row(store)
    assert version == 12
    assert state.header_mode
    assert state.inflight == []
    # the server's 30 (the headers of the first answer), less the five starts since in its window
    assert state.remaining == 30 - 5


async def test_a_step_after_another_process_costs_one_more_statement(
    stores: tuple[Store, Store], fake_clock: FakeClock
) -> None:
    counts = _count(stores[1])
    a, b = _limiter(stores[0], fake_clock), _limiter(stores[1], fake_clock)
    await a.acquire()
    await a.settle(HEADERS, status=200)
    await b.acquire()  # b has never seen the row: it reads it, then sets it
    assert counts.take() == (2, 0)
    await b.settle(HEADERS, status=200)
    assert counts.take() == (1, 0)
    await a.acquire()
    await b.acquire()  # b's view is a version old: the lost compare-and-set returns the row
    assert counts.take() == (2, 0)
    _version, state = await _row(stores[0])
    assert len(state.inflight) == 2  # nothing lost: both starts are counted
    assert state.remaining == 30 - 3  # the first answer said 30; three starts since


async def test_concurrent_steps_of_two_processes_lose_nothing(
    stores: tuple[Store, Store],
) -> None:
    initial = BudgetState(limit=1000)

    def take(state: BudgetState) -> int | None:
        state.try_start(0.0, 0.05)
        return state.remaining

    seen = await asyncio.wait_for(
        asyncio.gather(*(stores[i % 2].step_budget("k", initial, take) for i in range(60))),
        GUARD,
    )
    # every step saw the one before it: 60 distinct values, down to 1000 - 60
    assert sorted(seen, reverse=True) == list(range(999, 939, -1))  # type: ignore[type-var]
    version, _state = await _row(stores[0])
    assert version == 60


async def test_a_process_that_keeps_losing_takes_the_row_lock(
    stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, other = stores
    initial = BudgetState(limit=100)

    def take(state: BudgetState) -> int | None:
        state.try_start(0.0, 0.05)
        return state.remaining

    assert await first.step_budget("k", initial, take) == 99
    budgets = first._budgets
    assert budgets is not None
    real = budgets._compare_and_set

    async def losing(key: str, version: int, state: BudgetState) -> bool:
        # another process steps the row between this one's read and its write, every time
        await other.step_budget(key, initial, take)
        return await real(key, version, state)

    monkeypatch.setattr(budgets, "_compare_and_set", losing)
    counts = _count(first)
    remaining = await asyncio.wait_for(first.step_budget("k", initial, take), GUARD)
    assert (budgets.stats.conflicts, budgets.stats.locked) == (CAS_TRIES, 1)
    # each lost race cost one statement; the locked step BEGIN, SELECT … FOR UPDATE, UPDATE
    # (and its COMMIT, which SQLAlchemy sends without a cursor)
    assert counts.take() == (CAS_TRIES + 2, 1)
    # the other process stepped CAS_TRIES times, this one once: nothing lost or doubled
    assert remaining == 99 - CAS_TRIES - 1
    version, state = await _row(first)
    assert (version, state.remaining) == (1 + CAS_TRIES + 1, remaining)


async def test_an_answer_without_budget_news_rides_on_the_next_step(
    stores: tuple[Store, Store], fake_clock: FakeClock
) -> None:
    store = stores[0]
    counts = _count(store)
    limiter = RateLimiterRegistry(fake_clock, store.shared_budgets()).for_credential(
        "plex.example.com", "plex-key", limit_per_minute=100
    )
    await limiter.acquire()
    counts.take()
    await limiter.settle({"Content-Type": "application/json"}, status=200)  # V2, Plex: no headers
    assert counts.take() == (0, 0)
    _version, state = await _row(store)
    assert len(state.inflight) == 1  # still counted in flight (sliding window: holds nothing)
    counts.take()
    await limiter.acquire()
    assert counts.take() == (1, 0)
    _version, state = await _row(store)
    assert len(state.inflight) == 1  # the first request's end went with this start
    assert len(state.starts) == 2
    counts.take()  # (the reads of the row above)
    # a 429 is news even without headers: one step at once, and the credential is blocked
    await limiter.settle({}, status=429)
    assert counts.take() == (1, 0)
    _version, state = await _row(store)
    assert state.inflight == []
    assert state.blocked_until > fake_clock.now().timestamp()
