"""Opening the database: URL from the environment, engine set-up per backend, migrations to head.

Alembic runs programmatically from the ``migrations`` directory shipped inside the package; no
``alembic.ini`` is needed at runtime.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection as SyncConnection
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from mlconnector.clock import Clock, SystemClock
from mlconnector.errors import ConfigError
from mlconnector.http.redact import Redactor
from mlconnector.store.lane import PING_IDLE_AFTER
from mlconnector.store.repository import READ_ONLY_OPTION, Store
from mlconnector.store.sqlite_driver import OneHopDBAPI
from mlconnector.store.vault import Vault, home_dir

if TYPE_CHECKING:
    # Alembic is imported when a database is migrated, not when the CLI starts (~0.1 s).
    from alembic.config import Config

DATABASE_URL_ENV = "MLCONNECTOR_DATABASE_URL"
DB_FILE = "mlconnector.db"
MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: WAL pages after which a commit checkpoints the log itself (SQLite's default is 1,000). Long-
#: running commands checkpoint every second off the commit path (:mod:`mlconnector.store.wal`),
#: so this is only the cap that bounds the log (~40 MiB) when they fall behind or do not run
WAL_AUTOCHECKPOINT_PAGES = 10_000
_IDLE_SINCE = "mlconnector_idle_since"
#: PostgreSQL advisory lock id held while migrating ("mlcmigr" in ASCII)
MIGRATION_LOCK = 0x6D6C636D69677200


def database_url(env: Mapping[str, str]) -> str:
    """``MLCONNECTOR_DATABASE_URL``, else the SQLite file ``{home}/mlconnector.db``."""
    if env.get(DATABASE_URL_ENV):
        return normalize_url(env[DATABASE_URL_ENV])
    return f"sqlite+aiosqlite:///{home_dir(env) / DB_FILE}"


def normalize_url(url: str) -> str:
    """Pick the async driver for a plain URL (``postgresql://`` → psycopg 3, ``sqlite://`` →
    aiosqlite); other backends are refused."""
    for prefix, driver in (
        ("postgres://", "postgresql+psycopg://"),
        ("postgresql://", "postgresql+psycopg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(prefix):
            return driver + url[len(prefix) :]
    if url.startswith(("postgresql+psycopg://", "sqlite+aiosqlite://")):
        return url
    scheme = url.split(":", 1)[0]
    raise ConfigError(
        f"unsupported database URL scheme {scheme!r} in {DATABASE_URL_ENV}",
        hint="use postgresql://user@host/db or sqlite:////path/to/file.db",
    )


def create_engine(
    url: str,
    *,
    ping_idle_after: float = PING_IDLE_AFTER,
    wal_autocheckpoint: int = WAL_AUTOCHECKPOINT_PAGES,
) -> AsyncEngine:
    """An async engine; on SQLite with WAL, a busy timeout, foreign keys on and write transactions
    that take the lock at BEGIN (so read-then-write never fails halfway with "database locked");
    connections carrying the ``READ_ONLY_OPTION`` execution option open no transaction: each
    statement reads its own snapshot, as the store's readers do on PostgreSQL (a BEGIN costs
    three thread hand-offs of aiosqlite: ~0.15 ms CPU per read).

    On PostgreSQL a pooled connection idle for ``ping_idle_after`` seconds or more is pinged when
    checked out, and replaced if the ping fails (a restarted server, a dropped idle session);
    one checked in since is used as it is. (SQLAlchemy's ``pool_pre_ping`` pings at every
    checkout: ~20 of the ~100 statements of a worker's no-change run were those pings.)

    On SQLite a commit checkpoints the WAL itself only past ``wal_autocheckpoint`` pages: a
    checkpoint syncs the log and the database file, tens of milliseconds on a busy disk that
    every delivery waiting for that commit would wait too."""
    url = normalize_url(url)
    if not url.startswith("sqlite"):
        engine = create_async_engine(url)
        _ping_when_idle(engine, ping_idle_after)
        return engine
    engine = create_async_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        # one aiosqlite thread hand-off per statement (was three or four)
        module=OneHopDBAPI(),
    )
    database = make_url(url).database
    in_memory = database in (None, "", ":memory:")

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (the driver's implicit transactions are unreliable).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: SyncConnection) -> None:
        # Readers (marked by the store) run in autocommit (the driver's isolation_level None):
        # no lock under WAL, one snapshot per statement. Writers take the lock up front.
        if not conn.get_execution_options().get(READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _ping_when_idle(engine: AsyncEngine, after: float) -> None:
    """Ping a connection on checkout when it has been idle ``after`` seconds or more; a failed
    ping raises ``DisconnectionError``, on which the pool drops it and takes another (up to
    three tries), as ``pool_pre_ping`` does."""
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get(_IDLE_SINCE, 0.0) < after:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"idle connection failed its ping: {exc}") from exc
        record.info[_IDLE_SINCE] = time.monotonic()


def _check_sqlite_file(url: str) -> None:
    """SQLite needs a real file in an existing folder: an in-memory database would be a different
    empty database on every pooled connection."""
    if not url.startswith("sqlite"):
        return
    database = make_url(url).database
    if database in (None, "", ":memory:") or (database or "").startswith("file::memory:"):
        raise ConfigError(
            "an in-memory SQLite database cannot hold the connector's state",
            hint="use a file, e.g. sqlite:////path/to/mlconnector.db (tests: under tmp_path)",
        )
    if not Path(str(database)).parent.is_dir():
        raise ConfigError(
            f"the folder for the database {database} does not exist",
            hint="run `mlconnector init` or create the folder",
        )


def alembic_config() -> Config:
    """An Alembic configuration pointing at the packaged migrations (no ini file)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return config


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (default: the latest)."""

    def upgrade(sync_connection: SyncConnection) -> None:
        from alembic import command

        config = alembic_config()
        config.attributes["connection"] = sync_connection
        command.upgrade(config, revision)

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Workers starting together must not run the same migration twice: the first one
            # migrates, the others wait here and then find the schema at head.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        await conn.run_sync(upgrade)


async def autogenerate_revision(url: str, message: str, rev_id: str) -> None:
    """Developer tool: write a new migration in ``migrations/versions`` from the difference between
    ``schema.py`` and the database at ``url`` (migrate a scratch database to head first)."""
    engine = create_engine(url)

    def revision(sync_connection: SyncConnection) -> None:
        from alembic import command

        config = alembic_config()
        config.attributes["connection"] = sync_connection
        command.revision(config, message=message, autogenerate=True, rev_id=rev_id)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(revision)
    finally:
        await engine.dispose()


async def open_store(
    url: str,
    *,
    clock: Clock | None = None,
    vault: Vault | None = None,
    redactor: Redactor | None = None,
    run_migrations: bool = True,
    wal_autocheckpoint: int = WAL_AUTOCHECKPOINT_PAGES,
) -> Store:
    """Connect to ``url``, migrate it to head, and return the :class:`Store`.

    For SQLite the parent folder of the file must exist (``init_home`` creates the default one);
    ``wal_autocheckpoint`` as in :func:`create_engine`.
    """
    _check_sqlite_file(normalize_url(url))
    engine = create_engine(url, wal_autocheckpoint=wal_autocheckpoint)
    if run_migrations:
        try:
            await migrate(engine)
        except BaseException:
            await engine.dispose()
            raise
    return Store(engine, clock=clock or SystemClock(), vault=vault, redactor=redactor)
