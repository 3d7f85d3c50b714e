"""Database helpers shared by the store tests (owned by the store area).

PostgreSQL tests need the server at ``MLCONNECTOR_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``, trust auth). Each test session creates uniquely
named databases (``mlc_test_<random>``) and drops them at the end. When the server cannot be
reached the tests are skipped with the reason, unless ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

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
