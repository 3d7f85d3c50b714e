"""PostgreSQL only: the store's lane (``store/lane.py``), a few connections kept out of the pool
in autocommit for reads and writes of one statement. Counted with the pool's events and the
server's backend ids, not timed."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from mlconnector.store import AuditEvent, Store
from mlconnector.store.lane import AutocommitLane
from tests.dbutil import ADMIN_URL
from tests.postgres.counting import count_statements

pytestmark = pytest.mark.postgres


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _checkouts(store: Store) -> list[int]:
    seen = [0]

    @event.listens_for(store.engine.sync_engine, "checkout")
    def _checkout(*_: Any) -> None:
        seen[0] += 1

    return seen


def _lane(store: Store, **kwargs: Any) -> AutocommitLane:
    return AutocommitLane(
        store.engine.execution_options(isolation_level="AUTOCOMMIT"), size=2, **kwargs
    )


async def _pid(lane: AutocommitLane) -> int:
    async with lane.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_reads_reuse_one_connection_without_checkouts(store: Store) -> None:
    checkouts = _checkouts(store)
    lane = _lane(store)
    try:
        pids = {await _pid(lane) for _ in range(20)}
        assert len(pids) == 1
        assert checkouts[0] == 1  # the lane's one checkout, then none
        assert (lane.lent, lane.overflow, lane.held) == (20, 0, 1)
        async with lane.connect() as conn:  # in autocommit: each statement its own snapshot
            first = (await conn.execute(text("SELECT now()"))).scalar_one()
            await conn.execute(text("SELECT pg_sleep(0.01)"))
            second = (await conn.execute(text("SELECT now()"))).scalar_one()
        assert second > first
    finally:
        await lane.aclose()
    assert lane.held == 0
    assert store.engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_when_every_lane_connection_is_lent_a_block_gets_an_ordinary_checkout(
    store: Store,
) -> None:
    lane = _lane(store)
    release, all_in = asyncio.Event(), asyncio.Event()
    inside: list[int] = []

    async def hold() -> None:
        async with lane.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            inside.append(int(pid))
            if len(inside) == 3:
                all_in.set()
            await release.wait()

    try:
        tasks = [asyncio.create_task(hold()) for _ in range(3)]
        await asyncio.wait_for(all_in.wait(), 30)
        assert len(set(inside)) == 3  # nobody waited for the lane
        assert (lane.lent, lane.overflow, lane.held) == (2, 1, 2)
        release.set()
        await asyncio.gather(*tasks)
        assert lane.held == 2
    finally:
        await lane.aclose()
    assert store.engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_an_idle_lane_connection_is_given_back_and_a_dead_one_replaced(store: Store) -> None:
    ticks = Ticks()
    lane = _lane(store, idle_after=10.0, monotonic=ticks)
    try:
        first = await _pid(lane)
        ticks.now += 5.0
        assert await _pid(lane) == first  # in use: no ping, the same session
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        ticks.now += 10.0  # idle 10 s: pinged, found dead, replaced
        second = await _pid(lane)
        assert second != first
        assert lane.held == 1
        ticks.now += 10.0  # idle again, alive: pinged and kept
        assert await _pid(lane) == second
    finally:
        await lane.aclose()


async def test_a_lane_connection_that_fails_is_not_lent_again(store: Store) -> None:
    lane = _lane(store)
    try:
        first = await _pid(lane)
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        with pytest.raises(DBAPIError):  # in use a moment ago: not pinged (as the pool)
            await _pid(lane)
        assert lane.held == 0
        assert await _pid(lane) != first
        with pytest.raises(DBAPIError):  # an error of the statement: given back too
            async with lane.connect() as conn:
                await conn.execute(text("SELECT 1/0"))
        assert lane.held == 0
        await _pid(lane)
    finally:
        await lane.aclose()
    assert store.engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_writes_of_one_statement_open_no_transaction(store: Store) -> None:
    await store.create_connection("acme")
    counts = count_statements(store.engine)
    await store.set_cursor("acme", "orders", "x")
    event = AuditEvent(
        connection="acme",
        flow="orders",
        direction="internal",
        entity="flow",
        action="read",
        outcome="ok",
    )
    await store.append_audit(event)
    await store.append_audits([event])
    assert await store.get_cursor("acme", "orders") is not None
    assert counts.take() == (4, 0)  # four statements, none opened a transaction
    await store.append_audits([event, event])  # two rows: one transaction
    assert counts.take() == (1, 1)
    assert await store.count_audit_events() == 4
