"""PostgreSQL only: batches enqueued and claimed by separate sessions (two workers) at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from mlconnector.clock import FakeClock
from mlconnector.store import Link, OperationState, Store, open_store
from mlconnector.store.schema import metadata

pytestmark = pytest.mark.postgres


@pytest.fixture
async def stores(pg_url: str, fake_clock: FakeClock) -> AsyncIterator[list[Store]]:
    """Three stores with separate engines (separate server sessions) on one empty database."""
    opened = [await open_store(pg_url, clock=fake_clock) for _ in range(3)]
    names = ", ".join(t.name for t in metadata.sorted_tables)
    async with opened[0].engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await opened[0].create_connection("acme")
    try:
        yield opened
    finally:
        for store in opened:
            await store.close()


async def test_concurrent_batches_create_and_claim_each_operation_once(
    stores: list[Store],
) -> None:
    items = [("ss.order.upsert", f"orders:k{i}", {"n": i}) for i in range(200)]
    results = await asyncio.gather(
        *(store.enqueue_many("acme", "orders", items, claim=True) for store in stores)
    )
    for i in range(len(items)):
        assert sum(r[i].created for r in results) == 1
        assert sum(r[i].claimed for r in results) == 1  # never sent by two workers
        assert len({r[i].operation.id for r in results}) == 1
    counts = await stores[0].count_operations(connection="acme")
    assert counts[OperationState.SENT] == 200
    assert sum(counts.values()) == 200


async def test_settle_batches_from_two_sessions_upsert_the_same_links(
    stores: list[Store],
) -> None:
    first, second = stores[0], stores[1]
    queued = await first.enqueue_many(
        "acme", "orders", [("k", f"orders:{i}", {}) for i in range(50)], claim=True
    )
    ids = [e.operation.id for e in queued]
    links = [Link("acme", f"key-{i}", "p", "g", ss_order_id=str(i)) for i in range(50)]
    done = await asyncio.gather(
        first.settle_batch(confirms=[(i, "a") for i in ids[:25]], links=links),
        second.settle_batch(confirms=[(i, "b") for i in ids[25:]], links=links),
    )
    assert sorted(op.id for part in done for op in part) == ids
    assert len(await first.list_links("acme")) == 50
