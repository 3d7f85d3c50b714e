"""PostgreSQL only: leases between separate connections use FOR UPDATE SKIP LOCKED."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from mlconnector.clock import FakeClock
from mlconnector.store import Store, open_store
from mlconnector.store.schema import leases, metadata
from tests.dbutil import temporary_database

pytestmark = pytest.mark.postgres

TTL = timedelta(seconds=60)
#: a guard against a hang, not a timing assertion: SKIP LOCKED must not wait on the held lock
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


async def test_locked_lease_row_is_skipped_not_waited_for(stores: tuple[Store, Store]) -> None:
    first, second = stores
    await first.create_connection("acme")
    await first.claim_any_lease("seed", ["orders", "inventory"], TTL)  # creates both rows
    await first.release_lease("acme", "orders", "seed")
    await first.release_lease("acme", "inventory", "seed")

    async with first.engine.connect() as holder:
        # Session 1 holds the (acme, orders) row lock, as a worker mid-claim would.
        await holder.execute(
            select(leases)
            .where(leases.c.connection == "acme", leases.c.flow == "orders")
            .with_for_update()
        )
        taken = await asyncio.wait_for(second.try_acquire_lease("acme", "orders", "w2", TTL), GUARD)
        assert taken is None
        other = await asyncio.wait_for(
            second.claim_any_lease("w2", ["orders", "inventory"], TTL), GUARD
        )
        assert other is not None
        assert (other.flow, other.owner) == ("inventory", "w2")
        await holder.rollback()
    # Once the lock is gone the lease is free again.
    assert await second.try_acquire_lease("acme", "orders", "w2", TTL) is not None


async def test_two_engines_racing_for_one_lease(stores: tuple[Store, Store]) -> None:
    first, second = stores
    await first.create_connection("acme")
    for _ in range(5):
        results = await asyncio.gather(
            first.try_acquire_lease("acme", "orders", "w1", TTL),
            second.try_acquire_lease("acme", "orders", "w2", TTL),
        )
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert await first.release_lease("acme", "orders", winners[0].owner) is True


async def test_many_workers_claim_disjoint_leases(stores: tuple[Store, Store]) -> None:
    first, second = stores
    for i in range(4):
        await first.create_connection(f"c{i}")
    flows = ["orders", "inventory", "shipments"]
    claims = await asyncio.gather(
        *((first if i % 2 else second).claim_any_lease(f"w{i}", flows, TTL) for i in range(20))
    )
    pairs = [(c.connection, c.flow) for c in claims if c is not None]
    assert len(pairs) == 12
    assert len(set(pairs)) == 12


async def test_concurrent_enqueue_across_engines(stores: tuple[Store, Store]) -> None:
    first, second = stores
    await first.create_connection("acme")
    results = await asyncio.gather(
        *(
            (first if i % 2 else second).enqueue("acme", "orders", "create", "one-key", {"i": i})
            for i in range(10)
        )
    )
    assert sum(r.created for r in results) == 1
    assert len({r.operation.id for r in results}) == 1


async def test_workers_starting_together_migrate_once(fake_clock: FakeClock) -> None:
    with temporary_database() as url:
        opening = asyncio.gather(*(open_store(url, clock=fake_clock) for _ in range(4)))
        stores = await asyncio.wait_for(opening, GUARD)
        try:
            await stores[0].create_connection("acme")
            for store in stores:
                assert [c.name for c in await store.list_connections()] == ["acme"]
        finally:
            for store in stores:
                await store.close()
