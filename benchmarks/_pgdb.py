"""A throw-away PostgreSQL database for one benchmark run (shared by the benchmarks that take
``--postgres ADMIN_URL``): created with a unique ``mlc_bench_<hex>`` name, dropped at the end."""

from __future__ import annotations

import secrets

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

PREFIX = "mlc_bench_"


def create_database(admin_url: str) -> str:
    """Create an empty database through ``admin_url``; return its SQLAlchemy URL (psycopg 3)."""
    name = f"{PREFIX}{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(admin_url).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    """Drop a database made by :func:`create_database` (closing its leftover sessions)."""
    name = make_url(url).database
    if name is None or not name.startswith(PREFIX):
        raise ValueError(f"not a benchmark database: {name!r}")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
