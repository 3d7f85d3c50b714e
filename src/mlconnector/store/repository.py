"""``Store``: the one interface to the connector's state. All SQL lives in this module (and, for
the web UI's accounts and sessions, in ``accounts.py``, and for the flows' many-row batches, in
``batch.py``, whose methods the store inherits).

Every method is a coroutine running one short transaction, so a caller never holds a database
transaction across a network call. Times come from the injected clock unless a method takes an
explicit ``now`` (the engine passes the instant it decided on). The same code runs on SQLite
(embedded) and PostgreSQL (scale-out); where they differ (``INSERT … ON CONFLICT`` dialects, ``FOR
UPDATE SKIP LOCKED``) the difference is handled here and nowhere else.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self, TypeVar

from sqlalchemy import Select, and_, bindparam, case, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mlconnector.clock import Clock
from mlconnector.errors import VaultError
from mlconnector.http.ratelimit import BudgetState
from mlconnector.http.redact import Redactor
from mlconnector.store import flowlock
from mlconnector.store.accounts import AccountsRepository
from mlconnector.store.batch import BatchRepository, link_values
from mlconnector.store.budgets import SharedBudgets
from mlconnector.store.exceptions import OperationStateError, StoreError, UnknownConnectionError
from mlconnector.store.lane import AutocommitLane, Connects
from mlconnector.store.quarantine import QuarantineRepository
from mlconnector.store.queries import UPSERT_CURSOR, ConsoleQueries, audit_filters, error_cause
from mlconnector.store.records import (
    AuditEvent,
    AuditQuery,
    Connection,
    CredentialInfo,
    Cursor,
    Enqueued,
    InboxItem,
    Link,
    Operation,
    OperationState,
    Received,
    ShipmentLine,
    WalCheckpoint,
)
from mlconnector.store.rows import (
    mask,
    to_audit,
    to_connection,
    to_inbox,
    to_link,
    to_operation,
    to_shipment_line,
)
from mlconnector.store.schema import (
    audit_events,
    connections,
    credentials,
    cursors,
    inventory_snapshot,
    links,
    operations,
    shipment_lines,
    webhook_inbox,
)
from mlconnector.store.writeback import WritebackRepository

if TYPE_CHECKING:
    from mlconnector.store.vault import Vault

#: execution option marking the store's read-only engine view (SQLite then begins deferred)
READ_ONLY_OPTION = "mlconnector_read_only"
_KIND = re.compile(r"^[a-z0-9_]{1,64}$")
_MAX_ERROR = 4000
_S = OperationState
_T = TypeVar("_T")

#: one audit event, the row back (parameters: ``Store._audit_values``)
_APPEND_AUDIT = audit_events.insert().returning(audit_events)
# The reads of every scheduled run, built once and executed with their values as parameters
# (a statement built per call costs its construction and its cache key on every run).
_GET_CURSOR = select(cursors).where(
    cursors.c.connection == bindparam("connection"), cursors.c.flow == bindparam("flow")
)
_DUE = (
    select(operations)
    .where(
        operations.c.connection == bindparam("connection"),
        operations.c.flow == bindparam("flow"),
        or_(
            operations.c.state == _S.PENDING.value,
            and_(
                operations.c.state == _S.FAILED.value,
                operations.c.next_attempt_at <= bindparam("now"),
            ),
        ),
    )
    .order_by(operations.c.id)
    .limit(bindparam("limit"))
)
_PENDING_ANY = (
    select(webhook_inbox)
    .where(webhook_inbox.c.processed_at.is_(None))
    .order_by(webhook_inbox.c.received_at, webhook_inbox.c.id)
    .limit(bindparam("limit"))
)
_PENDING_OF_CONNECTION = _PENDING_ANY.where(webhook_inbox.c.connection == bindparam("connection"))
_INVENTORY_SNAPSHOT = select(
    inventory_snapshot.c.sku, inventory_snapshot.c.location, inventory_snapshot.c.quantity
).where(inventory_snapshot.c.connection == bindparam("connection"))
_UNWRITTEN = (
    select(shipment_lines.c.sku, func.sum(shipment_lines.c.quantity))
    .where(
        shipment_lines.c.connection == bindparam("connection"),
        shipment_lines.c.written_back_at.is_(None),
        shipment_lines.c.sku.is_not(None),
    )
    .group_by(shipment_lines.c.sku)
)


class _Writers:
    """The queue of one process's SQLite writers (one ``asyncio.Lock`` per event loop).

    SQLite lets one connection write at a time. Two pooled connections of the same process that
    both ``BEGIN IMMEDIATE`` (the flow's writes and the engine's run records, or the webhook
    receiver) would otherwise meet at the file lock, where the loser polls with growing sleeps
    (the busy timeout) while a writer that commits and begins again at once can hold it on
    every poll until the timeout ends in "database is locked". Queued here, they take turns in
    order; other processes still wait on the busy timeout.
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock


class Store(
    AccountsRepository,
    ConsoleQueries,
    BatchRepository,
    WritebackRepository,
    QuarantineRepository,
):
    """The connector's state: connections, credentials, cursors, links, the idempotent outbox,
    the audit trail, the webhook inbox, rate budgets, flow locks, the inventory snapshot, shipment
    write-backs, the quarantine of unreadable records, and the web UI's operator accounts and
    sessions.

    Build one with :func:`mlconnector.store.open_store`; close it with :meth:`close` (or use it as
    an async context manager). ``vault`` is needed only by the credential methods; ``redactor``
    masks known secrets in audit details, operation errors and webhook headers, and learns every
    secret that passes through the credential methods.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock,
        vault: Vault | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self._engine = engine
        # The same pool, marked read-only: on SQLite these transactions take no write lock.
        self._reader: Connects = engine.execution_options(**{READ_ONLY_OPTION: True})
        self._postgres = engine.dialect.name == "postgresql"
        self._lane: AutocommitLane | None = None
        if self._postgres:
            # Read Committed takes a snapshot per statement, in a transaction or not: readers
            # run without one, saving the BEGIN and ROLLBACK round trips of each read, on
            # connections kept out of the pool (store/lane.py), as do writes of one statement
            self._lane = AutocommitLane(engine.execution_options(isolation_level="AUTOCOMMIT"))
            self._reader = self._lane
        self._clock = clock
        self._vault = vault
        self._redactor = redactor or Redactor()
        self._writers = None if self._postgres else _Writers()
        self._budgets = SharedBudgets(engine, self._reader, clock.now) if self._postgres else None

    # --- lifecycle -----------------------------------------------------------------------------
    @property
    def engine(self) -> AsyncEngine:
        """The underlying engine (for tests and diagnostics; use the methods, not raw SQL)."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    @property
    def clock(self) -> Clock:
        """The clock stamping every write that is not given an explicit ``now``."""
        return self._clock

    @property
    def vault(self) -> Vault | None:
        """The vault used by the credential methods, if any."""
        return self._vault

    def with_vault(self, vault: Vault) -> Store:
        """A store sharing this engine but encrypting credentials with ``vault``. Closing either
        store disposes of the shared engine."""
        store = Store(self._engine, clock=self._clock, vault=vault, redactor=self._redactor)
        store._writers = self._writers  # one engine, one queue of writers
        store._lane = self._lane  # one lane of autocommit connections
        store._reader = self._reader
        store._budgets = self._budgets  # and one view of the shared budgets
        return store

    async def close(self) -> None:
        """Dispose of the connection pool."""
        if self._lane is not None:
            await self._lane.aclose()
        await self._engine.dispose()

    async def checkpoint_wal(self) -> WalCheckpoint | None:
        """SQLite: copy the committed pages of the write-ahead log into the database file and
        sync both (``PRAGMA wal_checkpoint(PASSIVE)``: it waits for no reader and no writer, so
        commits go on meanwhile); ``None`` on PostgreSQL. Run off the commit path by
        :func:`mlconnector.store.wal.checkpoint_periodically`."""
        if self._postgres:
            return None
        async with self._engine.connect() as conn:
            # on the driver's connection, outside any transaction: SQLAlchemy's BEGIN (and ours,
            # IMMEDIATE) would make SQLite refuse the checkpoint ("database table is locked")
            driver: Any = (await conn.get_raw_connection()).driver_connection
            cursor = await driver.execute("PRAGMA wal_checkpoint(PASSIVE)")
            busy, frames, checkpointed = await cursor.fetchone()
            await cursor.close()
        return WalCheckpoint(busy=bool(busy), wal_frames=frames, checkpointed=checkpointed)

    async def ping(self) -> None:
        """Raise :class:`StoreError` unless the database answers a trivial query. Read-only: on
        SQLite it takes no write lock, so a health probe never waits on a writer."""
        try:
            async with self._reader.connect() as conn:
                await conn.execute(select(literal(1)))
        except (SQLAlchemyError, OSError) as exc:
            # the driver's message can name the host and user; the type is enough to act on
            raise StoreError(
                f"the database did not answer ({type(exc).__name__})",
                hint="check that the database server is running and reachable",
            ) from exc

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- helpers -------------------------------------------------------------------------------
    def _now(self, now: datetime | None) -> datetime:
        return now if now is not None else self._clock.now()

    def _insert(self, table: Any) -> Any:
        """An INSERT supporting ``on_conflict_do_nothing/update`` for the current dialect."""
        return pg_insert(table) if self._postgres else sqlite_insert(table)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction; on SQLite after this process's earlier writers (see
        :class:`_Writers`). Never nest: a write inside another would wait for itself."""
        if self._writers is None:
            async with self._engine.begin() as conn:
                yield conn
            return
        async with self._writers.lock(), self._engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _tx(self, connection: str | None = None) -> AsyncIterator[AsyncConnection]:
        """One transaction; a foreign-key failure on ``connection`` becomes a clear error."""
        try:
            async with self._write() as conn:
                yield conn
        except IntegrityError as exc:
            raise await self._refused(exc, connection) from exc

    @asynccontextmanager
    async def _one_statement(self, connection: str | None = None) -> AsyncIterator[AsyncConnection]:
        """A write of **one** statement (atomic by itself): on PostgreSQL in autocommit on the
        lane (no checkout, ``BEGIN`` or ``COMMIT`` of its own); on SQLite a write transaction
        (:meth:`_tx`). A foreign-key failure on ``connection`` becomes a clear error."""
        if self._lane is None:
            async with self._tx(connection) as conn:
                yield conn
            return
        try:
            async with self._lane.connect() as conn:
                yield conn
        except IntegrityError as exc:
            raise await self._refused(exc, connection) from exc

    async def _refused(self, exc: IntegrityError, connection: str | None) -> StoreError:
        if connection is not None and await self.get_connection(connection) is None:
            return UnknownConnectionError(connection)
        return StoreError(f"the database refused the write: {exc.orig}")

    # --- connections ---------------------------------------------------------------------------
    async def create_connection(
        self,
        name: str,
        *,
        plex_tenant: str | None = None,
        plex_pcn: str | None = None,
        shipstation_account: str | None = None,
        settings: Mapping[str, Any] | None = None,
        enabled: bool = True,
    ) -> Connection:
        """Create a connection; :class:`StoreError` if the name is taken."""
        now = self._clock.now()
        values = {
            "name": name,
            "plex_tenant": plex_tenant,
            "plex_pcn": plex_pcn,
            "shipstation_account": shipstation_account,
            "settings": dict(settings or {}),
            "enabled": enabled,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self._write() as conn:
                row = (
                    await conn.execute(connections.insert().values(values).returning(connections))
                ).one()
        except IntegrityError as exc:
            raise StoreError(
                f"a connection named {name!r} already exists",
                hint="choose another name or update the existing connection",
            ) from exc
        return to_connection(row)

    async def get_connection(self, name: str) -> Connection | None:
        """The connection called ``name``, or ``None``."""
        async with self._reader.connect() as conn:
            row = (
                await conn.execute(select(connections).where(connections.c.name == name))
            ).first()
        return to_connection(row) if row else None

    async def list_connections(self, *, enabled_only: bool = False) -> list[Connection]:
        """Every connection, by name."""
        query = select(connections).order_by(connections.c.name)
        if enabled_only:
            query = query.where(connections.c.enabled.is_(True))
        async with self._reader.connect() as conn:
            return [to_connection(r) for r in await conn.execute(query)]

    async def update_connection(
        self,
        name: str,
        *,
        plex_tenant: str | None = None,
        plex_pcn: str | None = None,
        shipstation_account: str | None = None,
        settings: Mapping[str, Any] | None = None,
        enabled: bool | None = None,
    ) -> Connection:
        """Change the fields given (``None`` leaves a field as it is); ``settings`` is replaced."""
        values: dict[str, Any] = {"updated_at": self._clock.now()}
        for key, value in (
            ("plex_tenant", plex_tenant),
            ("plex_pcn", plex_pcn),
            ("shipstation_account", shipstation_account),
            ("enabled", enabled),
        ):
            if value is not None:
                values[key] = value
        if settings is not None:
            values["settings"] = dict(settings)
        async with self._write() as conn:
            row = (
                await conn.execute(
                    update(connections)
                    .where(connections.c.name == name)
                    .values(values)
                    .returning(connections)
                )
            ).first()
        if row is None:
            raise UnknownConnectionError(name)
        return to_connection(row)

    async def delete_connection(self, name: str) -> bool:
        """Delete a connection and (by cascade) all its state except the audit trail."""
        async with self._write() as conn:
            result = await conn.execute(delete(connections).where(connections.c.name == name))
        return result.rowcount > 0

    # --- credentials ---------------------------------------------------------------------------
    def _require_vault(self) -> Vault:
        if self._vault is None:
            raise VaultError(
                "this store was opened without a vault; credentials cannot be read or written",
                hint="open the store with vault=load_vault(env)",
            )
        return self._vault

    async def set_credential(
        self, connection: str, kind: str, secret: str, *, now: datetime | None = None
    ) -> CredentialInfo:
        """Encrypt ``secret`` and store it (replacing any previous one); only ciphertext is kept."""
        if not _KIND.match(kind):
            raise StoreError(f"invalid credential kind {kind!r}", hint="use lowercase [a-z0-9_]")
        if not secret:
            raise StoreError(f"empty secret for {connection}/{kind}", hint="give a non-empty value")
        vault = self._require_vault()
        self._redactor.add(secret)
        token = vault.encrypt(secret)
        now = self._now(now)
        values = {
            "connection": connection,
            "kind": kind,
            "ciphertext": token,
            "key_version": vault.key_version,
            "updated_at": now,
        }
        stmt = self._insert(credentials).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["connection", "kind"],
            set_={k: stmt.excluded[k] for k in ("ciphertext", "key_version", "updated_at")},
        )
        async with self._tx(connection) as conn:
            await conn.execute(stmt)
        return CredentialInfo(connection, kind, mask(secret), vault.key_version, now)

    async def get_credential(self, connection: str, kind: str) -> str | None:
        """The secret in clear, or ``None`` if not set. :class:`VaultError` on a wrong key."""
        vault = self._require_vault()
        async with self._reader.connect() as conn:
            row = (
                await conn.execute(
                    select(credentials.c.ciphertext, credentials.c.key_version).where(
                        credentials.c.connection == connection, credentials.c.kind == kind
                    )
                )
            ).first()
        if row is None:
            return None
        secret = vault.decrypt(row.ciphertext, record=f"credential {connection}/{kind}")
        self._redactor.add(secret)
        return secret

    async def get_credentials(self, connection: str) -> dict[str, str]:
        """Every secret of ``connection`` in clear, by kind, in one statement (what building a
        connection's runtime reads: one ``SELECT`` per kind was nine). :class:`VaultError` on
        a wrong key, naming the credential."""
        vault = self._require_vault()
        async with self._reader.connect() as conn:
            rows = (
                await conn.execute(
                    select(credentials.c.kind, credentials.c.ciphertext).where(
                        credentials.c.connection == connection
                    )
                )
            ).all()
        found: dict[str, str] = {}
        for row in rows:
            secret = vault.decrypt(row.ciphertext, record=f"credential {connection}/{row.kind}")
            self._redactor.add(secret)
            found[row.kind] = secret
        return found

    async def list_credentials_masked(self, connection: str) -> list[CredentialInfo]:
        """The credentials of a connection, masked (at most the last 4 characters shown)."""
        vault = self._require_vault()
        async with self._reader.connect() as conn:
            rows = (
                await conn.execute(
                    select(credentials)
                    .where(credentials.c.connection == connection)
                    .order_by(credentials.c.kind)
                )
            ).all()
        infos = []
        for row in rows:
            secret = vault.decrypt(row.ciphertext, record=f"credential {connection}/{row.kind}")
            self._redactor.add(secret)
            infos.append(
                CredentialInfo(connection, row.kind, mask(secret), row.key_version, row.updated_at)
            )
        return infos

    async def delete_credential(self, connection: str, kind: str) -> bool:
        """Forget a credential; ``True`` if there was one."""
        async with self._write() as conn:
            result = await conn.execute(
                delete(credentials).where(
                    credentials.c.connection == connection, credentials.c.kind == kind
                )
            )
        return result.rowcount > 0

    async def verify_credentials(self, vault: Vault | None = None) -> int:
        """Decrypt every stored credential with ``vault`` (default: this store's) and return how
        many there are; :class:`VaultError` naming the first one that does not open."""
        vault = vault or self._require_vault()
        async with self._reader.connect() as conn:
            rows = (await conn.execute(select(credentials))).all()
        for row in rows:
            vault.decrypt(row.ciphertext, record=f"credential {row.connection}/{row.kind}")
        return len(rows)

    async def reencrypt_credentials(
        self, reencrypt: Callable[[str, str], tuple[str, str]], *, now: datetime | None = None
    ) -> int:
        """Replace every credential's ciphertext with ``reencrypt(ciphertext, record)`` →
        ``(new_ciphertext, key_version)``, all in one transaction: if any call raises, nothing is
        written. Returns the number of credentials. Used by :func:`vault.rotate_keys`."""
        now = self._now(now)
        async with self._write() as conn:
            rows = (await conn.execute(select(credentials))).all()
            # Compute every new value before the first write: a failure leaves the table untouched.
            new = [
                (row, *reencrypt(row.ciphertext, f"credential {row.connection}/{row.kind}"))
                for row in rows
            ]
            for row, token, version in new:
                await conn.execute(
                    update(credentials)
                    .where(
                        credentials.c.connection == row.connection,
                        credentials.c.kind == row.kind,
                    )
                    .values(ciphertext=token, key_version=version, updated_at=now)
                )
        return len(new)

    # --- cursors -------------------------------------------------------------------------------
    async def get_cursor(self, connection: str, flow: str) -> Cursor | None:
        """The stored position of ``flow`` for ``connection``, or ``None`` before the first run."""
        async with self._reader.connect() as conn:
            params = {"connection": connection, "flow": flow}
            row = (await conn.execute(_GET_CURSOR, params)).first()
        return Cursor(row.connection, row.flow, row.value, row.updated_at) if row else None

    async def set_cursor(
        self, connection: str, flow: str, value: str, *, now: datetime | None = None
    ) -> Cursor:
        """Store the position of ``flow`` (call only after the batch it covers is committed)."""
        now = self._now(now)
        values = {"connection": connection, "flow": flow, "value": value, "updated_at": now}
        async with self._one_statement(connection) as conn:
            await conn.execute(UPSERT_CURSOR[self.dialect], values)
        return Cursor(connection, flow, value, now)

    async def list_cursors(self, connection: str) -> list[Cursor]:
        """Every cursor of a connection, by flow."""
        async with self._reader.connect() as conn:
            rows = await conn.execute(
                select(cursors).where(cursors.c.connection == connection).order_by(cursors.c.flow)
            )
            return [Cursor(r.connection, r.flow, r.value, r.updated_at) for r in rows]

    async def cursors_named(self, suffix: str) -> list[Cursor]:
        """Every cursor, of every connection, whose flow name ends with ``suffix`` (one
        statement: how the scheduler learns every flow's last run at start)."""
        async with self._reader.connect() as conn:
            rows = await conn.execute(
                select(cursors).where(cursors.c.flow.endswith(suffix, autoescape=True))
            )
            return [Cursor(r.connection, r.flow, r.value, r.updated_at) for r in rows]

    # --- links ---------------------------------------------------------------------------------
    async def save_link(self, link: Link, *, now: datetime | None = None) -> Link:
        """Insert or replace the link for ``(link.connection, link.order_key)`` (all fields)."""
        now = self._now(now)
        values = link_values(link, now)
        stmt = self._insert(links).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["connection", "order_key"],
            set_={k: stmt.excluded[k] for k in values if k not in ("connection", "order_key")},
        ).returning(links)
        async with self._tx(link.connection) as conn:
            row = (await conn.execute(stmt)).one()
        return to_link(row)

    async def get_link(self, connection: str, order_key: str) -> Link | None:
        """The link with this ``orderKey``, or ``None``."""
        async with self._reader.connect() as conn:
            row = (
                await conn.execute(
                    select(links).where(
                        links.c.connection == connection, links.c.order_key == order_key
                    )
                )
            ).first()
        return to_link(row) if row else None

    async def find_links(
        self,
        connection: str,
        *,
        plex_order_id: str | None = None,
        ss_order_id: str | None = None,
        limit: int = 1000,
    ) -> list[Link]:
        """Links of a connection, filtered by Plex order id and/or ShipStation orderId."""
        query = select(links).where(links.c.connection == connection)
        if plex_order_id is not None:
            query = query.where(links.c.plex_order_id == plex_order_id)
        if ss_order_id is not None:
            query = query.where(links.c.ss_order_id == ss_order_id)
        async with self._reader.connect() as conn:
            rows = await conn.execute(query.order_by(links.c.order_key).limit(limit))
            return [to_link(r) for r in rows]

    async def list_links(
        self,
        connection: str,
        *,
        frozen: bool | None = None,
        after_order_key: str | None = None,
        limit: int = 1000,
    ) -> list[Link]:
        """Links by ``order_key`` (page with ``after_order_key``); ``frozen`` filters on
        whether a ``frozen_reason`` is set."""
        query = select(links).where(links.c.connection == connection)
        if frozen is True:
            query = query.where(links.c.frozen_reason.is_not(None))
        elif frozen is False:
            query = query.where(links.c.frozen_reason.is_(None))
        if after_order_key is not None:
            query = query.where(links.c.order_key > after_order_key)
        async with self._reader.connect() as conn:
            rows = await conn.execute(query.order_by(links.c.order_key).limit(limit))
            return [to_link(r) for r in rows]

    async def set_link_status(
        self,
        connection: str,
        order_key: str,
        ss_status: str,
        *,
        frozen_reason: str | None = None,
        now: datetime | None = None,
    ) -> Link | None:
        """Record the last known ShipStation status (and why the order is frozen, if it is).
        ``None`` when there is no such link."""
        async with self._write() as conn:
            row = (
                await conn.execute(
                    update(links)
                    .where(links.c.connection == connection, links.c.order_key == order_key)
                    .values(
                        ss_status=ss_status, frozen_reason=frozen_reason, updated_at=self._now(now)
                    )
                    .returning(links)
                )
            ).first()
        return to_link(row) if row else None

    # --- outbox --------------------------------------------------------------------------------
    async def enqueue(
        self,
        connection: str,
        flow: str,
        kind: str,
        idempotency_key: str,
        payload: Mapping[str, Any],
        *,
        now: datetime | None = None,
    ) -> Enqueued:
        """Record an outbound write before it is sent. Insert-or-get by ``idempotency_key``: a
        second call with the same key returns the existing operation (whatever its state and
        payload) with ``created=False`` and never creates another."""
        now = self._now(now)
        stmt = (
            self._insert(operations)
            .values(
                connection=connection,
                flow=flow,
                kind=kind,
                idempotency_key=idempotency_key,
                payload=dict(payload),
                state=_S.PENDING.value,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(operations)
        )
        async with self._tx(connection) as conn:
            row = (await conn.execute(stmt)).first()
            if row is not None:
                return Enqueued(to_operation(row), created=True)
            existing = (
                await conn.execute(
                    select(operations).where(operations.c.idempotency_key == idempotency_key)
                )
            ).one()
        return Enqueued(to_operation(existing), created=False)

    async def get_operation(self, op_id: int) -> Operation | None:
        """The operation with this id, or ``None``."""
        return await self._one_operation(operations.c.id == op_id)

    async def get_operation_by_key(self, idempotency_key: str) -> Operation | None:
        """The operation with this idempotency key, or ``None``."""
        return await self._one_operation(operations.c.idempotency_key == idempotency_key)

    async def _one_operation(self, where: Any) -> Operation | None:
        async with self._reader.connect() as conn:
            row = (await conn.execute(select(operations).where(where))).first()
        return to_operation(row) if row else None

    async def _transition(
        self, op_id: int, allowed: Sequence[OperationState], values: Mapping[str, Any], action: str
    ) -> Operation:
        """A guarded state change: applied only if the operation is in an ``allowed`` state."""
        async with self._write() as conn:
            row = (
                await conn.execute(
                    update(operations)
                    .where(
                        operations.c.id == op_id,
                        operations.c.state.in_([s.value for s in allowed]),
                    )
                    .values(dict(values))
                    .returning(operations)
                )
            ).first()
            if row is not None:
                return to_operation(row)
            current = (
                await conn.execute(select(operations.c.state).where(operations.c.id == op_id))
            ).first()
        if current is None:
            raise OperationStateError(f"cannot {action} operation {op_id}: no such operation")
        raise OperationStateError(
            f"cannot {action} operation {op_id}: it is {current.state}",
            record=f"operation {op_id}",
            hint="replay it first if it is dead" if current.state == _S.DEAD else None,
        )

    async def mark_sent(self, op_id: int, *, now: datetime | None = None) -> Operation:
        """``pending``/``failed`` (or ``sent`` again, when re-sending after a crash) → ``sent``.
        Call just before the request leaves."""
        return await self._transition(
            op_id,
            (_S.PENDING, _S.FAILED, _S.SENT),
            {"state": _S.SENT.value, "updated_at": self._now(now)},
            "mark as sent",
        )

    async def confirm(
        self, op_id: int, *, remote_ref: str | None = None, now: datetime | None = None
    ) -> Operation:
        """→ ``confirmed`` (from ``pending``, ``sent`` or ``failed``, e.g. when a look-before-send
        found the remote record), with ``last_error`` cleared: an earlier failure (of a retry or
        a replayed operation) stays in the audit trail, not on a write that landed. Confirming a
        confirmed operation returns it unchanged."""
        values: dict[str, Any] = {
            "state": _S.CONFIRMED.value,
            "next_attempt_at": None,
            "last_error": None,
            "updated_at": self._now(now),
        }
        if remote_ref is not None:
            values["remote_ref"] = remote_ref
        try:
            return await self._transition(
                op_id, (_S.PENDING, _S.SENT, _S.FAILED), values, "confirm"
            )
        except OperationStateError:
            op = await self.get_operation(op_id)
            if op is not None and op.state is _S.CONFIRMED:
                return op
            raise

    async def fail(
        self,
        op_id: int,
        error: str,
        *,
        next_attempt_at: datetime,
        max_attempts: int,
        now: datetime | None = None,
    ) -> Operation:
        """Count a failed attempt. → ``failed`` (due again at ``next_attempt_at``), or ``dead``
        when this attempt reaches ``max_attempts``. ``error`` is redacted and truncated."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        exhausted = operations.c.attempts + 1 >= max_attempts
        values = {
            "attempts": operations.c.attempts + 1,
            "state": case((exhausted, _S.DEAD.value), else_=_S.FAILED.value),
            "next_attempt_at": case((exhausted, None), else_=next_attempt_at),
            "last_error": (message := self._redactor.text(error)[:_MAX_ERROR]),
            "error_cause": error_cause(message),
            "updated_at": self._now(now),
        }
        return await self._transition(op_id, (_S.PENDING, _S.SENT, _S.FAILED), values, "fail")

    async def due(
        self, connection: str, flow: str, *, now: datetime | None = None, limit: int = 100
    ) -> list[Operation]:
        """Operations to send now: ``pending``, and ``failed`` whose ``next_attempt_at`` has
        come, oldest first."""
        params = {"connection": connection, "flow": flow, "now": self._now(now), "limit": limit}
        async with self._reader.connect() as conn:
            return [to_operation(r) for r in await conn.execute(_DUE, params)]

    async def due_flows(self, *, now: datetime | None = None) -> set[tuple[str, str]]:
        """Every (connection, flow) with an operation to send now (``pending``, or ``failed``
        whose backoff has passed): the one statement of an idle scheduler tick."""
        now = self._now(now)
        query = (
            select(operations.c.connection, operations.c.flow)
            .where(
                or_(
                    operations.c.state == _S.PENDING.value,
                    and_(
                        operations.c.state == _S.FAILED.value,
                        operations.c.next_attempt_at <= now,
                    ),
                )
            )
            .group_by(operations.c.connection, operations.c.flow)
        )
        async with self._reader.connect() as conn:
            return {(r.connection, r.flow) for r in await conn.execute(query)}

    async def left_sent(
        self,
        *,
        older_than: datetime,
        connection: str | None = None,
        flow: str | None = None,
        limit: int = 100,
    ) -> list[Operation]:
        """Crash recovery: operations still ``sent`` since before ``older_than``. Their outcome is
        unknown; look the remote record up before re-sending."""
        query = select(operations).where(
            operations.c.state == _S.SENT.value, operations.c.updated_at <= older_than
        )
        if connection is not None:
            query = query.where(operations.c.connection == connection)
        if flow is not None:
            query = query.where(operations.c.flow == flow)
        return await self._operations(query.order_by(operations.c.id).limit(limit))

    async def replay(
        self,
        ids: Sequence[int] | None = None,
        *,
        connection: str | None = None,
        flow: str | None = None,
        states: Sequence[OperationState] = (_S.FAILED, _S.DEAD),
        now: datetime | None = None,
    ) -> list[Operation]:
        """Move ``failed``/``dead`` operations (by ids and/or filter) back to ``pending`` with a
        fresh attempt budget. Updates in place: never creates an operation; operations in any
        other state are left alone. Returns the operations replayed."""
        bad = [s for s in states if s not in (_S.FAILED, _S.DEAD)]
        if bad:
            raise ValueError(f"only failed or dead operations can be replayed, not {bad}")
        stmt = update(operations).where(operations.c.state.in_([s.value for s in states]))
        if ids is not None:
            stmt = stmt.where(operations.c.id.in_(list(ids)))
        if connection is not None:
            stmt = stmt.where(operations.c.connection == connection)
        if flow is not None:
            stmt = stmt.where(operations.c.flow == flow)
        stmt = stmt.values(
            state=_S.PENDING.value, attempts=0, next_attempt_at=None, updated_at=self._now(now)
        ).returning(operations)
        async with self._write() as conn:
            rows = (await conn.execute(stmt)).all()
        return sorted((to_operation(r) for r in rows), key=lambda op: op.id)

    async def list_operations(
        self,
        *,
        connection: str | None = None,
        flow: str | None = None,
        states: Sequence[OperationState] | None = None,
        limit: int = 100,
    ) -> list[Operation]:
        """Operations, most recently updated first (for the CLI and the UI)."""
        query = select(operations)
        if connection is not None:
            query = query.where(operations.c.connection == connection)
        if flow is not None:
            query = query.where(operations.c.flow == flow)
        if states is not None:
            query = query.where(operations.c.state.in_([s.value for s in states]))
        order = (operations.c.updated_at.desc(), operations.c.id.desc())
        return await self._operations(query.order_by(*order).limit(limit))

    async def count_operations(self, *, connection: str | None = None) -> dict[OperationState, int]:
        """How many operations are in each state (every state present, zero included)."""
        query = select(operations.c.state, func.count()).group_by(operations.c.state)
        if connection is not None:
            query = query.where(operations.c.connection == connection)
        counts = dict.fromkeys(OperationState, 0)
        async with self._reader.connect() as conn:
            for state, count in await conn.execute(query):
                counts[OperationState(state)] = count
        return counts

    async def _operations(self, query: Select[Any]) -> list[Operation]:
        async with self._reader.connect() as conn:
            return [to_operation(r) for r in await conn.execute(query)]

    # --- audit ---------------------------------------------------------------------------------
    async def append_audit(self, event: AuditEvent) -> AuditEvent:
        """Append one event (``at`` defaults to the clock). Details are redacted. There is no
        update or delete: the database refuses both."""
        values = self._audit_values(event)
        async with self._one_statement() as conn:
            row = (await conn.execute(_APPEND_AUDIT, values)).one()
        return to_audit(row)

    def _audit_values(self, event: AuditEvent) -> dict[str, Any]:
        """The row of an audit event: ``at`` from the clock if unset, details redacted."""
        return {
            "at": self._now(event.at),
            "connection": event.connection,
            "flow": event.flow,
            "direction": event.direction,
            "entity": event.entity,
            "action": event.action,
            "outcome": event.outcome,
            "plex_order_id": event.plex_order_id,
            "order_key": event.order_key,
            "ss_order_id": event.ss_order_id,
            "ss_order_number": event.ss_order_number,
            "shipment_id": event.shipment_id,
            "entity_ids": self._redact_json(event.entity_ids),
            "remote_ids": self._redact_json(event.remote_ids),
            "http_status": event.http_status,
            "request_id": event.request_id,
            "idempotency_key": event.idempotency_key,
            "details": self._redact_json(event.details),
            "sku": event.sku or _sku_of(event.details),
        }

    async def search_audit(self, query: AuditQuery) -> list[AuditEvent]:
        """Events matching every filter set in ``query``, newest first, at most ``query.limit``."""
        stmt = audit_filters(select(audit_events), query)
        stmt = stmt.order_by(audit_events.c.at.desc(), audit_events.c.id.desc()).limit(query.limit)
        async with self._reader.connect() as conn:
            return [to_audit(r) for r in await conn.execute(stmt)]

    async def count_audit_events(self, *, connection: str | None = None) -> int:
        """How many audit events there are (of ``connection``, or of every connection)."""
        query = select(func.count()).select_from(audit_events)
        if connection is not None:
            query = query.where(audit_events.c.connection == connection)
        async with self._reader.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    def _redact_json(self, value: Mapping[str, Any]) -> dict[str, Any]:
        if not value:
            return {}  # "{}" holds no secret (they are 4 characters or more)
        text = self._redactor.text(json.dumps(value, default=str))
        try:
            redacted = json.loads(text)
        except ValueError:
            # Masking broke the JSON (a secret inside an escape sequence): keep the masked text.
            return {"redacted": text}
        return redacted if isinstance(redacted, dict) else {"value": redacted}

    # --- webhook inbox -------------------------------------------------------------------------
    async def receive_webhook(
        self,
        connection: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        now: datetime | None = None,
    ) -> Received:
        """Persist a delivery (headers redacted) before it is acknowledged. A body already
        received for this connection is not stored again: ``created=False``, same item."""
        dedupe_key = hashlib.sha256(body).hexdigest()
        stmt = (
            self._insert(webhook_inbox)
            .values(
                connection=connection,
                body=body,
                headers=self._redactor.headers(headers),
                dedupe_key=dedupe_key,
                received_at=self._now(now),
                attempts=0,
            )
            .on_conflict_do_nothing(index_elements=["connection", "dedupe_key"])
            .returning(webhook_inbox)
        )
        async with self._tx(connection) as conn:
            row = (await conn.execute(stmt)).first()
            if row is not None:
                return Received(to_inbox(row), created=True)
            existing = (
                await conn.execute(
                    select(webhook_inbox).where(
                        webhook_inbox.c.connection == connection,
                        webhook_inbox.c.dedupe_key == dedupe_key,
                    )
                )
            ).one()
        return Received(to_inbox(existing), created=False)

    async def get_webhook(self, item_id: int) -> InboxItem | None:
        """One inbox item by id."""
        async with self._reader.connect() as conn:
            row = (
                await conn.execute(select(webhook_inbox).where(webhook_inbox.c.id == item_id))
            ).first()
        return to_inbox(row) if row else None

    async def pending_webhooks(
        self, *, connection: str | None = None, limit: int = 100
    ) -> list[InboxItem]:
        """Deliveries not yet processed, oldest first."""
        if connection is not None:
            query, params = _PENDING_OF_CONNECTION, {"connection": connection, "limit": limit}
        else:
            query, params = _PENDING_ANY, {"limit": limit}
        async with self._reader.connect() as conn:
            return [to_inbox(r) for r in await conn.execute(query, params)]

    async def count_pending_webhooks(self, *, connection: str | None = None) -> dict[str, int]:
        """Deliveries not yet processed, per connection (a connection with none is absent);
        only ``connection``'s when given."""
        query = (
            select(webhook_inbox.c.connection, func.count())
            .where(webhook_inbox.c.processed_at.is_(None))
            .group_by(webhook_inbox.c.connection)
        )
        if connection is not None:
            query = query.where(webhook_inbox.c.connection == connection)
        async with self._reader.connect() as conn:
            return {name: int(n) for name, n in await conn.execute(query)}

    async def list_webhooks(
        self, *, connection: str | None = None, limit: int = 100
    ) -> list[InboxItem]:
        """Deliveries, newest first, processed or not (for the UI)."""
        query = select(webhook_inbox)
        if connection is not None:
            query = query.where(webhook_inbox.c.connection == connection)
        query = query.order_by(webhook_inbox.c.received_at.desc(), webhook_inbox.c.id.desc())
        async with self._reader.connect() as conn:
            return [to_inbox(r) for r in await conn.execute(query.limit(limit))]

    async def record_webhook_attempt(self, item_id: int, outcome: str) -> InboxItem:
        """Count an unsuccessful processing attempt; the item stays pending."""
        return await self._update_inbox(
            item_id, {"attempts": webhook_inbox.c.attempts + 1, "outcome": outcome}
        )

    async def finish_webhook(
        self, item_id: int, outcome: str, *, now: datetime | None = None
    ) -> InboxItem:
        """Mark a delivery processed (whatever the outcome: ``"ok"``, ``"ignored: …"``)."""
        return await self._update_inbox(
            item_id,
            {
                "attempts": webhook_inbox.c.attempts + 1,
                "outcome": outcome,
                "processed_at": self._now(now),
            },
        )

    async def _update_inbox(self, item_id: int, values: Mapping[str, Any]) -> InboxItem:
        async with self._write() as conn:
            row = (
                await conn.execute(
                    update(webhook_inbox)
                    .where(webhook_inbox.c.id == item_id)
                    .values(dict(values))
                    .returning(webhook_inbox)
                )
            ).first()
        if row is None:
            raise StoreError(f"no webhook inbox item {item_id}")
        return to_inbox(row)

    # --- flow locks (runs that are not engine jobs) -------------------------------------------
    @asynccontextmanager
    async def flow_lock(self, connection: str, flow: str) -> AsyncIterator[bool]:
        """Hold the cross-process lock of (connection, flow) for the block, yielding whether
        it was taken; on PostgreSQL also refused while an engine job of it is running
        (:mod:`mlconnector.store.flowlock`)."""
        async with flowlock.flow_lock(self._engine, connection, flow) as got:
            if got and await flowlock.flow_job_running(self._engine, connection, flow):
                got = False
            yield got

    async def flow_lock_free(self, connection: str, flow: str) -> bool:
        """Whether no one-off run or backfill holds the lock of (connection, flow) (what an
        engine job checks once it is ``doing``)."""
        return await flowlock.flow_lock_free(
            self._engine, connection, flow, autocommit=self._reader
        )

    # --- shared rate budgets ----------------------------------------------------------------
    def shared_budgets(self) -> Store | None:
        """This store as the :class:`~mlconnector.http.ratelimit.BudgetBackend` of every process
        on PostgreSQL; ``None`` on SQLite (one box: the budget stays in the process)."""
        return self if self._postgres else None

    async def step_budget(
        self, key: str, initial: BudgetState, step: Callable[[BudgetState], _T]
    ) -> _T:
        """Apply ``step`` to the rate budget ``key`` (created from ``initial`` when missing) and
        save it; concurrent steps of any process take turns, none is lost (PostgreSQL only:
        :mod:`mlconnector.store.budgets`)."""
        if self._budgets is None:
            raise TypeError("shared rate budgets live on PostgreSQL; SQLite keeps them in-process")
        return await self._budgets.step(key, initial, step)

    # --- inventory snapshot --------------------------------------------------------------------
    async def get_inventory_snapshot(self, connection: str) -> dict[tuple[str, str], int]:
        """Last quantity pushed to ShipStation per ``(sku, location)``."""
        async with self._reader.connect() as conn:
            rows = await conn.execute(_INVENTORY_SNAPSHOT, {"connection": connection})
            return {(r.sku, r.location): r.quantity for r in rows}

    async def inventory_baseline(
        self, connection: str
    ) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
        """:meth:`get_inventory_snapshot` and :meth:`unwritten_quantities` in one read (what
        the inventory flow compares Plex on-hand with)."""
        params = {"connection": connection}
        async with self._reader.connect() as conn:
            snapshot = {
                (r.sku, r.location): r.quantity
                for r in await conn.execute(_INVENTORY_SNAPSHOT, params)
            }
            unwritten = {sku: int(n) for sku, n in await conn.execute(_UNWRITTEN, params)}
        return snapshot, unwritten

    async def record_inventory_pushed(
        self,
        connection: str,
        levels: Mapping[tuple[str, str], int],
        *,
        now: datetime | None = None,
    ) -> None:
        """Remember the quantities just pushed, per ``(sku, location)`` (upsert)."""
        if not levels:
            return
        now = self._now(now)
        rows = [
            {"connection": connection, "sku": s, "location": loc, "quantity": q, "pushed_at": now}
            for (s, loc), q in levels.items()
        ]
        stmt = self._insert(inventory_snapshot)
        stmt = stmt.on_conflict_do_update(
            index_elements=["connection", "sku", "location"],
            set_={"quantity": stmt.excluded.quantity, "pushed_at": stmt.excluded.pushed_at},
        )
        async with self._tx(connection) as conn:
            await conn.execute(stmt, rows)

    # --- shipment write-backs ------------------------------------------------------------------
    async def record_shipment_line(
        self,
        connection: str,
        source_id: str,
        line_key: str,
        quantity: int,
        *,
        sku: str | None = None,
        now: datetime | None = None,
    ) -> ShipmentLine:
        """Insert-or-get the line ``(source_id, line_key)``. Write it back to Plex only while
        ``written_back_at`` is ``None``, and gate the write with :meth:`mark_line_written_back`."""
        stmt = (
            self._insert(shipment_lines)
            .values(
                connection=connection,
                source_id=source_id,
                line_key=line_key,
                sku=sku,
                quantity=quantity,
                created_at=self._now(now),
            )
            .on_conflict_do_nothing(index_elements=["connection", "source_id", "line_key"])
        )
        async with self._tx(connection) as conn:
            await conn.execute(stmt)
            row = (
                await conn.execute(
                    select(shipment_lines).where(_line_key(connection, source_id, line_key))
                )
            ).one()
        return to_shipment_line(row)

    async def mark_line_written_back(
        self, connection: str, source_id: str, line_key: str, *, now: datetime | None = None
    ) -> bool:
        """``True`` the first time only: a line is reduced in Plex exactly once."""
        return await self._stamp_line(
            connection,
            source_id,
            line_key,
            shipment_lines.c.written_back_at.is_(None),
            {"written_back_at": self._now(now)},
        )

    async def mark_line_reversed(
        self, connection: str, source_id: str, line_key: str, *, now: datetime | None = None
    ) -> bool:
        """``True`` the first time a written-back line is reversed (voided label); ``False`` if it
        was never written back or is already reversed."""
        return await self._stamp_line(
            connection,
            source_id,
            line_key,
            and_(
                shipment_lines.c.written_back_at.is_not(None),
                shipment_lines.c.reversed_at.is_(None),
            ),
            {"reversed_at": self._now(now)},
        )

    async def _stamp_line(
        self,
        connection: str,
        source_id: str,
        line_key: str,
        condition: Any,
        values: Mapping[str, Any],
    ) -> bool:
        async with self._write() as conn:
            result = await conn.execute(
                update(shipment_lines)
                .where(_line_key(connection, source_id, line_key), condition)
                .values(dict(values))
            )
        return result.rowcount > 0

    async def get_shipment_lines(self, connection: str, source_id: str) -> list[ShipmentLine]:
        """The lines recorded for one ShipStation shipment or fulfilment, by line key."""
        async with self._reader.connect() as conn:
            rows = await conn.execute(
                select(shipment_lines)
                .where(
                    shipment_lines.c.connection == connection,
                    shipment_lines.c.source_id == source_id,
                )
                .order_by(shipment_lines.c.line_key)
            )
            return [to_shipment_line(r) for r in rows]

    async def unwritten_quantities(self, connection: str) -> dict[str, int]:
        """Quantity per SKU shipped in ShipStation but not yet written back to Plex (for the
        inventory flow: ``on_hand − this``). Lines without a SKU are not counted."""
        async with self._reader.connect() as conn:
            rows = await conn.execute(_UNWRITTEN, {"connection": connection})
            return {sku: int(total) for sku, total in rows}


def _sku_of(details: Mapping[str, Any]) -> str | None:
    sku = details.get("sku")
    return sku[:200] if isinstance(sku, str) and sku else None


def _line_key(connection: str, source_id: str, line_key: str) -> Any:
    return and_(
        shipment_lines.c.connection == connection,
        shipment_lines.c.source_id == source_id,
        shipment_lines.c.line_key == line_key,
    )
