"""Opening the state store for a command, with the home and database the configuration names.

The store's helpers find the home (and the master key file) from ``MLCONNECTOR_HOME``; the
configuration may also set ``home`` in the file, so every call here passes an environment in
which ``MLCONNECTOR_HOME`` is the configuration's resolved home. Both then agree.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from mlconnector.clock import Clock
from mlconnector.config import ENV_PREFIX, Config, ConnectionConfig

if TYPE_CHECKING:
    from mlconnector.store import Connection, Store

# The store (SQLAlchemy + Alembic) takes seconds to import; it is imported where it is used, so
# `--help` and `config check` stay fast.
HOME_ENV = f"{ENV_PREFIX}HOME"


def store_env(config: Config, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with ``MLCONNECTOR_HOME`` set to the configuration's home."""
    return {**env, HOME_ENV: str(config.home)}


@contextlib.asynccontextmanager
async def opened_store(
    config: Config, env: Mapping[str, str], clock: Clock, *, vault: bool = True
) -> AsyncIterator[Store]:
    """The migrated store (with the vault unless ``vault=False``), closed on exit.

    ``VaultError`` when the master key is missing or wrong; ``ConfigError`` when the database
    folder does not exist (run ``mlconnector init``).
    """
    from mlconnector.store import load_vault, open_store

    opened_vault = load_vault(store_env(config, env)) if vault else None
    store = await open_store(config.database_url, clock=clock, vault=opened_vault)
    try:
        yield store
    finally:
        await store.close()


async def ensure_connection_row(store: Store, name: str, settings: ConnectionConfig) -> Connection:
    """The store's row for a configured connection, created (or its tenant updated) as needed.

    The configuration file is the source of connection settings; the row exists so that the
    connection's state (credentials, cursors, outbox) has something to belong to.
    """
    pcn, tenant = settings.plex.pcn, settings.plex.tenant_id
    row = await store.get_connection(name)
    if row is None:
        return await store.create_connection(
            name, plex_pcn=pcn, plex_tenant=tenant, enabled=settings.enabled
        )
    if (row.plex_pcn, row.plex_tenant, row.enabled) != (pcn, tenant, settings.enabled):
        return await store.update_connection(
            name, plex_pcn=pcn, plex_tenant=tenant, enabled=settings.enabled
        )
    return row
