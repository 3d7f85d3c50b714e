"""Alembic environment: migrations run on a connection handed over by ``engine.migrate``."""

from __future__ import annotations

from alembic import context

from mlconnector.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through mlconnector.store.engine.migrate() (it passes the connection)"
    )
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
