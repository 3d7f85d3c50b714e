"""PostgreSQL only: an engine job asks at each run whether a one-off run or a backfill holds the
flow lock of its (connection, flow) (``Store.flow_lock_free``): one statement in autocommit, which
takes and gives back the advisory lock (was six: two transactions of two statements)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mlconnector.clock import FakeClock
from mlconnector.store import Store, open_store
from tests.postgres.counting import count_statements

pytestmark = pytest.mark.postgres


@pytest.fixture
async def stores(pg_url: str, fake_clock: FakeClock) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores with separate engines (separate server sessions)."""
    first = await open_store(pg_url, clock=fake_clock)
    second = await open_store(pg_url, clock=fake_clock)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_asking_is_one_statement_and_leaves_the_lock_free(
    stores: tuple[Store, Store],
) -> None:
    first, second = stores
    counts = count_statements(second.engine)
    assert await second.flow_lock_free("acme", "orders")
    assert counts.take() == (1, 0)
    # it gave the lock back: another session takes it, and then the question says no
    async with first.flow_lock("acme", "orders") as held:
        assert held
        assert not await second.flow_lock_free("acme", "orders")
        assert counts.take() == (1, 0)
    async with second.flow_lock("acme", "orders") as held:  # nor does a "no" keep it
        assert held
