"""Database helpers shared by the store tests (owned by the store area).

PostgreSQL tests need the server at ``MLCONNECTOR_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``, trust auth). Each test session creates uniquely
named databases (``mlc_test_<random>``) and drops them at the end. When the server cannot be
reached the tests are skipped with the reason, unless ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import secrets
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

ADMIN_URL = os.environ.get("MLCONNECTOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin_conninfo() -> str:
    return ADMIN_URL


def require_postgres() -> None:
    """Skip (or, under ``CI=true``, fail) when PostgreSQL is unreachable."""
    try:
        with psycopg.connect(_admin_conninfo(), connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL unreachable at {ADMIN_URL}: {exc}".strip()
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(reason)


def create_database() -> str:
    """Create an empty database with a unique name; return its SQLAlchemy URL (psycopg 3)."""
    name = f"mlc_test_{secrets.token_hex(6)}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(ADMIN_URL).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop a database made by :func:`create_database` (closing leftover sessions)."""
    name = make_url(url).database
    assert name is not None
    assert name.startswith("mlc_test_")
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def temporary_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the duration of the block."""
    require_postgres()
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


_template_lock = threading.Lock()
_template: Path | None = None


def _migrated_template() -> Path:
    """This process's SQLite database migrated to head (made on first use, removed at exit)."""
    global _template
    with _template_lock:
        if _template is None:
            folder = Path(tempfile.mkdtemp(prefix="mlc-template-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            path = folder / "migrated.db"

            async def build() -> None:
                # imported here: tests/dbutil.py is imported by conftests before any test runs
                from mlconnector.store import open_store

                store = await open_store(f"sqlite+aiosqlite:///{path}")
                await store.close()

            # A fixture calling this runs inside an event loop: migrate on a thread's own loop.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, build()).result()
            _template = path
        return _template


def migrated_sqlite(path: Path) -> str:
    """The SQLite URL of ``path``, which starts as a copy of a database already migrated to head.

    Alembic's upgrade from empty costs ~60 ms of CPU per database; the fixtures that only need a
    migrated store (not the migration tests, which use their own empty files) copy one migrated
    file instead (sqlite3's backup API: a consistent copy). ``open_store`` still runs the
    migrations on it, finding the schema at head. An existing file is left as it is.
    """
    if not path.exists():
        source = sqlite3.connect(_migrated_template())
        target = sqlite3.connect(path)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
    return f"sqlite+aiosqlite:///{path}"
