"""PostgreSQL only: the round trips of procrastinate's queries in our app. Its pool's connections
are in autocommit (no ``BEGIN``/``COMMIT`` around each query) and checked only when unused for a
while (procrastinate's default pings at every checkout): one statement per query, not four. A
connection that died while unused is still replaced before use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import psycopg_pool
import pytest

from mlconnector.sync.jobs import build_app
from tests.dbutil import ADMIN_URL

pytestmark = pytest.mark.postgres


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the pool's connection check reached the server."""
    count = [0]
    real = psycopg_pool.AsyncConnectionPool.check_connection

    async def counting(conn: Any) -> None:
        count[0] += 1
        await real(conn)

    monkeypatch.setattr(psycopg_pool.AsyncConnectionPool, "check_connection", counting)
    return count


@pytest.fixture
async def connector(request: pytest.FixtureRequest, pg_url: str) -> AsyncIterator[Any]:
    app = build_app(pg_url, pool_size=1, ping_idle_after=request.param)
    async with app.open_async():
        yield app.connector


async def _pid(connector: Any) -> int:
    row = await connector.execute_query_one_async("SELECT pg_backend_pid() AS pid")
    return int(row["pid"])


@pytest.mark.parametrize("connector", [60.0], indirect=True)
async def test_a_query_runs_outside_a_transaction(connector: Any) -> None:
    row = await connector.execute_query_one_async(
        "SELECT txid_current_if_assigned() IS NULL AS fresh, "
        "now() = statement_timestamp() AS own_transaction"
    )
    # after a BEGIN, now() would be the BEGIN's time, earlier than the statement's
    assert row == {"fresh": True, "own_transaction": True}
    async with connector.pool.connection() as conn:
        assert conn.autocommit


@pytest.mark.parametrize("connector", [60.0], indirect=True)
async def test_a_connection_in_use_is_checked_once(pings: list[int], connector: Any) -> None:
    pids = {await _pid(connector) for _ in range(10)}
    assert len(pids) == 1  # one pooled connection, checked out ten times
    assert pings[0] == 1  # at its first checkout only


@pytest.mark.parametrize("connector", [0.0], indirect=True)
async def test_an_unused_connection_that_died_is_replaced_before_use(
    pings: list[int], connector: Any
) -> None:
    first = await _pid(connector)
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
    second = await _pid(connector)  # no error: the check found it dead
    assert second != first
    assert pings[0] >= 2
