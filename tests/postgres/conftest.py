"""PostgreSQL fixtures: one uniquely named database per test session, dropped at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from mlconnector.clock import FakeClock
from mlconnector.store import Store, open_store
from tests.dbutil import temporary_database


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of an empty, session-wide PostgreSQL database (skips, or fails under CI=true)."""
    with temporary_database() as url:
        yield url


@pytest.fixture
async def store(pg_url: str, fake_clock: FakeClock) -> AsyncIterator[Store]:
    """A store on the session's database, closed after the test."""
    the_store = await open_store(pg_url, clock=fake_clock)
    try:
        yield the_store
    finally:
        await the_store.close()
