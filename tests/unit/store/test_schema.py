"""The schema: a fresh ``create_all`` equals the Alembic-migrated one; engine and URL set-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection as SyncConnection
from sqlalchemy import inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from mlconnector.errors import ConfigError
from mlconnector.store import Store, create_engine, database_url, migrate, normalize_url, open_store
from mlconnector.store.engine import alembic_config
from mlconnector.store.schema import connections, metadata
from tests.dbutil import temporary_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty databases of the same backend."""
    if request.param == "sqlite":
        yield (
            f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}",
            f"sqlite+aiosqlite:///{tmp_path / 'migrated.db'}",
        )
        return
    with temporary_database() as fresh, temporary_database() as migrated:
        yield fresh, migrated


@asynccontextmanager
async def _engine(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


def _describe(conn: SyncConnection) -> dict[str, Any]:
    """Everything about the schema that matters, in a comparable form."""
    insp = inspect(conn)
    tables: dict[str, Any] = {}
    for name in sorted(insp.get_table_names()):
        if name == "alembic_version":
            continue
        tables[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("autoincrement"))
                for c in insp.get_columns(name)
            ],
            "pk": insp.get_pk_constraint(name)["constrained_columns"],
            "fks": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"], str(fk.get("options")))
                for fk in insp.get_foreign_keys(name)
            ),
            "indexes": sorted(
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                for ix in insp.get_indexes(name)
            ),
            "uniques": sorted(
                (tuple(uq["column_names"])) for uq in insp.get_unique_constraints(name)
            ),
        }
    if conn.dialect.name == "sqlite":
        triggers = conn.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
        ).all()
    else:
        triggers = conn.execute(
            text(
                "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
                "WHERE NOT tgisinternal ORDER BY tgname"
            )
        ).all()
    tables["<triggers>"] = [tuple(t) for t in triggers]
    return tables


def _diff(conn: SyncConnection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_fresh_schema_equals_migrated_schema(two_urls: tuple[str, str]) -> None:
    fresh_url, migrated_url = two_urls
    async with _engine(fresh_url) as fresh, _engine(migrated_url) as migrated:
        async with fresh.begin() as conn:
            await conn.run_sync(metadata.create_all)
        await migrate(migrated)
        async with fresh.connect() as a, migrated.connect() as b:
            fresh_schema = await a.run_sync(_describe)
            migrated_schema = await b.run_sync(_describe)
            assert set(fresh_schema) == {t.name for t in metadata.sorted_tables} | {"<triggers>"}
            assert len(fresh_schema["<triggers>"]) >= 1
            assert migrated_schema == fresh_schema
            assert await b.run_sync(_diff) == []
            assert await a.run_sync(_diff) == []


async def test_migrations_are_rerunnable_and_at_head(db_url: str) -> None:
    store = await open_store(db_url)
    await store.close()
    store = await open_store(db_url)  # already at head: a no-op
    try:
        async with store.engine.connect() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        # one head (concurrent migrations must be chained), and the database is at it
        heads = ScriptDirectory.from_config(alembic_config()).get_heads()
        assert len(heads) == 1
        assert version == heads[0]
    finally:
        await store.close()


async def test_datetimes_round_trip_as_aware_utc(store: Store) -> None:
    pacific = timezone(timedelta(hours=-8))
    await store.create_connection("acme")
    await store.set_cursor("acme", "orders", "x", now=datetime(2026, 3, 8, 1, 30, tzinfo=pacific))
    cursor = await store.get_cursor("acme", "orders")
    assert cursor is not None
    assert cursor.updated_at == datetime(2026, 3, 8, 9, 30, tzinfo=UTC)
    assert cursor.updated_at.utcoffset() == timedelta(0)


async def test_naive_datetimes_are_refused(store: Store) -> None:
    await store.create_connection("acme")
    with pytest.raises(Exception, match="naive datetime"):
        await store.set_cursor("acme", "orders", "x", now=datetime(2026, 1, 1))


async def test_sqlite_pragmas(tmp_path: Path) -> None:
    async with _engine(f"sqlite:///{tmp_path / 'x.db'}") as engine, engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 30000


def test_database_url_from_env(tmp_path: Path) -> None:
    home = {"MLCONNECTOR_HOME": str(tmp_path)}
    assert database_url(home) == f"sqlite+aiosqlite:///{tmp_path / 'mlconnector.db'}"
    pg = {**home, "MLCONNECTOR_DATABASE_URL": "postgresql://u@db:5432/mlc"}
    assert database_url(pg) == "postgresql+psycopg://u@db:5432/mlc"
    assert normalize_url("postgres://u@db/x") == "postgresql+psycopg://u@db/x"
    assert normalize_url("postgresql+psycopg://u@db/x") == "postgresql+psycopg://u@db/x"
    with pytest.raises(ConfigError, match="mysql"):
        normalize_url("mysql://u@db/x")


async def test_open_store_needs_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        await open_store(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")


async def test_foreign_keys_are_enforced(store: Store) -> None:
    # Direct insert bypassing the Store's checks: the database itself refuses orphans.
    from sqlalchemy.exc import IntegrityError

    from mlconnector.store.schema import cursors

    with pytest.raises(IntegrityError):
        async with store.engine.begin() as conn:
            await conn.execute(
                cursors.insert().values(
                    connection="ghost", flow="f", value="v", updated_at=datetime.now(UTC)
                )
            )
    async with store.engine.connect() as conn:
        assert (await conn.execute(select(connections))).all() == []


@pytest.mark.parametrize("url", ["sqlite://", "sqlite+aiosqlite:///:memory:"])
async def test_in_memory_sqlite_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="in-memory"):
        await open_store(url)


async def test_sqlite_readers_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        await store.create_connection("acme")
        async with store.engine.begin() as writer:
            # This transaction holds SQLite's write lock (BEGIN IMMEDIATE) until the block ends.
            await writer.execute(text("UPDATE connections SET plex_pcn = '1'"))
            # A hang guard, not a timing assertion: a reader taking the lock would wait 30 s.
            found = await asyncio.wait_for(store.get_connection("acme"), 10)
            assert found is not None
            assert found.plex_pcn is None  # the writer has not committed
        assert (await store.get_connection("acme")).plex_pcn == "1"  # type: ignore[union-attr]
    finally:
        await store.close()
