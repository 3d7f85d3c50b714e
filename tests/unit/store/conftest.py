"""Store fixtures: the same tests run on SQLite and on PostgreSQL (``store`` is parametrized)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from mlconnector.clock import FakeClock
from mlconnector.store import Store, Vault, generate_key, open_store
from mlconnector.store.schema import metadata
from tests.dbutil import migrated_sqlite, temporary_database

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    """A session-wide PostgreSQL database for the dual-backend tests."""
    with temporary_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL on each backend: a fresh SQLite file, or the session PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'mlconnector.db'}"
    url: str = request.getfixturevalue("pg_session_url")
    return url


@pytest.fixture
def vault() -> Vault:
    return Vault([generate_key()], source="a test key")


@pytest.fixture
async def store(db_url: str, fake_clock: FakeClock, vault: Vault) -> AsyncIterator[Store]:
    """A migrated, empty store on each backend, with a vault and the fake clock."""
    if db_url.startswith("sqlite"):
        db_url = migrated_sqlite(Path(make_url(db_url).database or ""))
    store = await open_store(db_url, clock=fake_clock, vault=vault)
    if store.dialect == "postgresql":
        # The session database is shared: start every test from empty tables.
        names = ", ".join(t.name for t in metadata.sorted_tables)
        async with store.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def acme(store: Store) -> str:
    """A connection called ``acme``; returns its name."""
    await store.create_connection("acme", plex_pcn="79870", shipstation_account="acme-ss")
    return "acme"
