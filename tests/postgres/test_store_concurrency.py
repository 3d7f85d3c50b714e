"""PostgreSQL only: what separate server sessions share — the rate budget row (stepped under its
row lock, no update lost) and the flow locks of one-off runs (advisory locks, and their
handshake with the engine's running jobs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from mlconnector.clock import FakeClock
from mlconnector.http.ratelimit import BudgetState
from mlconnector.store import Store, open_store
from mlconnector.store.schema import metadata

pytestmark = pytest.mark.postgres

#: a guard against a hang, not a timing assertion
GUARD = 30


@pytest.fixture
async def stores(pg_url: str, fake_clock: FakeClock) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores with separate engines (separate server sessions) on one empty database."""
    first = await open_store(pg_url, clock=fake_clock)
    second = await open_store(pg_url, clock=fake_clock)
    names = ", ".join(t.name for t in metadata.sorted_tables)
    async with first.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_concurrent_budget_steps_lose_no_update(stores: tuple[Store, Store]) -> None:
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


async def test_a_flow_lock_is_held_across_sessions(stores: tuple[Store, Store]) -> None:
    first, second = stores
    async with first.flow_lock("acme", "orders") as held:
        assert held
        assert not await second.flow_lock_free("acme", "orders")
        async with second.flow_lock("acme", "orders") as other:
            assert not other
        assert await second.flow_lock_free("acme", "inventory")  # per (connection, flow)
    assert await second.flow_lock_free("acme", "orders")


async def test_a_running_engine_job_refuses_the_flow_lock(stores: tuple[Store, Store]) -> None:
    first, _ = stores
    async with first.engine.begin() as conn:  # the shape of procrastinate's jobs table
        await conn.execute(text("CREATE TABLE procrastinate_jobs (lock text, status text)"))
        await conn.execute(text("INSERT INTO procrastinate_jobs VALUES ('acme:orders', 'doing')"))
    try:
        async with first.flow_lock("acme", "orders") as held:
            assert not held
        async with first.flow_lock("acme", "inventory") as held:
            assert held
    finally:
        async with first.engine.begin() as conn:
            await conn.execute(text("DROP TABLE procrastinate_jobs"))
