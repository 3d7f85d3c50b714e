"""PostgreSQL only: the round trips a store call costs. A pooled connection is pinged only when
it has been idle (a ping at every checkout was ~20 of a worker run's ~100 statements), and one
that died while idle is replaced before use; reads run without a transaction (no BEGIN and
ROLLBACK round trips; Read Committed takes a snapshot per statement anyway)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from mlconnector.store import Store
from mlconnector.store.engine import create_engine
from tests.dbutil import ADMIN_URL

pytestmark = pytest.mark.postgres


def _count_pings(engine: Any) -> list[int]:
    pings = [0]
    dialect = engine.sync_engine.dialect
    real = dialect.do_ping

    def counting(dbapi_connection: Any) -> bool:
        pings[0] += 1
        return bool(real(dbapi_connection))

    dialect.do_ping = counting
    return pings


async def _backend_pid(engine: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_in_use_is_not_pinged(pg_url: str) -> None:
    engine = create_engine(pg_url, ping_idle_after=60.0)
    pings = _count_pings(engine)
    try:
        pids = {await _backend_pid(engine) for _ in range(10)}
    finally:
        await engine.dispose()
    assert len(pids) == 1  # one pooled connection, checked out ten times
    assert pings[0] == 0


async def test_an_idle_connection_that_died_is_replaced_before_use(pg_url: str) -> None:
    engine = create_engine(pg_url, ping_idle_after=0.0)  # every checkout counts as idle
    pings = _count_pings(engine)
    try:
        first = await _backend_pid(engine)
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        second = await _backend_pid(engine)  # no error: the ping found it dead
    finally:
        await engine.dispose()
    assert second != first
    assert pings[0] >= 2


async def test_a_read_opens_no_transaction(store: Store) -> None:
    async with store._reader.connect() as conn:
        first = (await conn.execute(text("SELECT now()"))).scalar_one()
        await conn.execute(text("SELECT pg_sleep(0.01)"))
        second = (await conn.execute(text("SELECT now()"))).scalar_one()
    assert second > first  # in a transaction, now() would stay the transaction's start
    assert await store.get_cursor("nobody", "orders") is None  # the store's reads work so
