"""Many-row methods of the ``Store``: a whole ``createorders`` batch (or a shipment or inventory
batch) in one or two transactions instead of several per record.

Kept apart from ``repository.py`` for size; the :class:`Store` inherits these methods and they
follow its rules (times from the injected clock, redacted errors and audit details, the same SQL
on SQLite and PostgreSQL). Each statement runs once for many rows (``executemany``, which
SQLAlchemy sends as multi-row ``INSERT … VALUES`` where the driver allows), so a batch of 100
costs a handful of statements and one hand-off to the database per statement.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, and_, bindparam, func, or_, select, update

from mlconnector.store.lane import Connects
from mlconnector.store.queries import INSERT_AUDIT
from mlconnector.store.records import (
    AuditEvent,
    Enqueued,
    Link,
    Operation,
    OperationState,
    Received,
)
from mlconnector.store.rows import to_inbox, to_link, to_operation
from mlconnector.store.schema import (
    audit_events,
    inventory_snapshot,
    operations,
    webhook_inbox,
)
from mlconnector.store.schema import links as links_table

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from mlconnector.http.redact import Redactor

_S = OperationState
#: rows per ``IN (…)`` list (far below SQLite's 32,766 bound variables)
_IN_CHUNK = 500
#: the link columns an upsert replaces (all but the key)
_LINK_FIELDS = (
    "plex_order_id",
    "group_key",
    "ss_order_id",
    "content_hash",
    "ss_status",
    "frozen_reason",
    "release_ids",
    "updated_at",
)


def chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def confirm_statement(now: datetime) -> Any:
    """``confirm`` for many operations (``executemany`` with ``op_id`` and ``ref``): from any
    state but ``confirmed``/``dead``, ``last_error`` cleared; a ``None`` ref keeps the stored
    one."""
    return (
        update(operations)
        .where(
            operations.c.id == bindparam("op_id"),
            operations.c.state != _S.CONFIRMED.value,
            operations.c.state != _S.DEAD.value,
        )
        .values(
            state=_S.CONFIRMED.value,
            next_attempt_at=None,
            last_error=None,
            updated_at=now,
            remote_ref=func.coalesce(bindparam("ref", type_=String), operations.c.remote_ref),
        )
    )


def link_values(link: Link, now: datetime) -> dict[str, Any]:
    """The row of a link (all fields), as ``save_link`` writes it."""
    return {
        "connection": link.connection,
        "order_key": link.order_key,
        "plex_order_id": link.plex_order_id,
        "group_key": link.group_key,
        "ss_order_id": link.ss_order_id,
        "content_hash": link.content_hash,
        "ss_status": link.ss_status,
        "frozen_reason": link.frozen_reason,
        "release_ids": list(link.release_ids),
        "updated_at": now,
    }


class BatchRepository:
    """Outbox, links and audit for many records at once (the flows' batches)."""

    if TYPE_CHECKING:
        _reader: Connects
        _redactor: Redactor

        def _now(self, now: datetime | None) -> datetime: ...

        def _write(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _one_statement(
            self, connection: str | None = None
        ) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _tx(
            self, connection: str | None = None
        ) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _insert(self, table: Any) -> Any: ...

        def _audit_values(self, event: AuditEvent) -> dict[str, Any]: ...

    # --- outbox --------------------------------------------------------------------------------
    async def enqueue_many(
        self,
        connection: str,
        flow: str,
        items: Sequence[tuple[str, str, Mapping[str, Any]]],
        *,
        claim: bool = False,
        now: datetime | None = None,
    ) -> list[Enqueued]:
        """:meth:`enqueue` for many ``(kind, idempotency_key, payload)`` in one transaction, in
        the order given (a key given twice gets the same operation). With ``claim``, the
        operations ready to send (``pending``, or ``failed`` and due) are marked ``sent`` in the
        same transaction (``Enqueued.claimed``): call it when the batch leaves now."""
        if not items:
            return []
        now = self._now(now)
        rows = {
            key: {
                "connection": connection,
                "flow": flow,
                "kind": kind,
                "idempotency_key": key,
                "payload": dict(payload),
                "state": _S.PENDING.value,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for kind, key, payload in items
        }
        keys = list(rows)
        insert = (
            self._insert(operations)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(operations.c.idempotency_key)
        )
        async with self._tx(connection) as conn:
            created = {r.idempotency_key for r in await conn.execute(insert, list(rows.values()))}
            found: dict[str, Operation] = {}
            for part in chunks(keys):
                query = select(operations).where(operations.c.idempotency_key.in_(part))
                found.update(
                    (r.idempotency_key, to_operation(r)) for r in await conn.execute(query)
                )
            claimed: set[int] = set()
            if claim:
                ready = [op.id for op in found.values() if _ready(op, now)]
                # not from ``sent``: of two concurrent claimers, only one gets each operation
                for op in await self._mark_sent(conn, ready, now, (_S.PENDING, _S.FAILED)):
                    found[op.idempotency_key] = op
                    claimed.add(op.id)
        return [
            Enqueued(found[key], created=key in created, claimed=found[key].id in claimed)
            for _, key, _ in items
        ]

    async def mark_sent_many(
        self, op_ids: Sequence[int], *, now: datetime | None = None
    ) -> list[Operation]:
        """:meth:`mark_sent` for many operations in one statement: those ``pending``, ``failed``
        or ``sent`` become ``sent`` (returned, by id); any other is left alone and omitted."""
        if not op_ids:
            return []
        async with self._write() as conn:
            return await self._mark_sent(
                conn, op_ids, self._now(now), (_S.PENDING, _S.FAILED, _S.SENT)
            )

    async def _mark_sent(
        self,
        conn: AsyncConnection,
        op_ids: Sequence[int],
        now: datetime,
        states: Sequence[OperationState],
    ) -> list[Operation]:
        done: list[Operation] = []
        for part in chunks(list(op_ids)):
            stmt = (
                update(operations)
                .where(
                    operations.c.id.in_(part),
                    operations.c.state.in_([state.value for state in states]),
                )
                .values(state=_S.SENT.value, updated_at=now)
                .returning(operations)
            )
            done += [to_operation(r) for r in await conn.execute(stmt)]
        return sorted(done, key=lambda op: op.id)

    async def settle_batch(
        self,
        *,
        confirms: Sequence[tuple[int, str | None]] = (),
        links: Sequence[Link] = (),
        events: Sequence[AuditEvent] = (),
        inventory: tuple[str, Mapping[tuple[str, str], int]] | None = None,
        now: datetime | None = None,
    ) -> list[Operation]:
        """The outcome of a batch in one transaction: confirm ``(op_id, remote_ref)`` (as
        :meth:`confirm`: from ``pending``/``sent``/``failed``, ``last_error`` cleared, a
        ``None`` ref keeps the stored one; an operation already confirmed is unchanged), save
        the links (as :meth:`save_link`), append the audit events and record the inventory levels
        pushed (``(connection, {(sku, location): quantity})``, as :meth:`record_inventory_pushed`).
        Returns the confirmed operations, by id."""
        now = self._now(now)
        refs = dict(confirms)
        connection = links[0].connection if links else inventory[0] if inventory else None
        async with self._tx(connection) as conn:
            if refs:
                await conn.execute(
                    confirm_statement(now), [{"op_id": i, "ref": r} for i, r in refs.items()]
                )
            if links:
                await conn.execute(self._upsert_links(), [link_values(x, now) for x in links])
            if events:
                rows = [self._audit_values(e) for e in events]
                await conn.execute(audit_events.insert(), rows)
            if inventory and inventory[1]:
                owner, levels = inventory
                pushed = [
                    {"connection": owner, "sku": s, "location": x, "quantity": q, "pushed_at": now}
                    for (s, x), q in levels.items()
                ]
                stmt = self._insert(inventory_snapshot)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["connection", "sku", "location"],
                    set_={"quantity": stmt.excluded.quantity, "pushed_at": stmt.excluded.pushed_at},
                )
                await conn.execute(stmt, pushed)
            confirmed: list[Operation] = []
            for part in chunks(list(refs)):
                query = select(operations).where(
                    operations.c.id.in_(part), operations.c.state == _S.CONFIRMED.value
                )
                confirmed += [to_operation(r) for r in await conn.execute(query)]
        return sorted(confirmed, key=lambda op: op.id)

    def _upsert_links(self) -> Any:
        stmt = self._insert(links_table)
        return stmt.on_conflict_do_update(
            index_elements=["connection", "order_key"],
            set_={c: stmt.excluded[c] for c in _LINK_FIELDS},
        )

    async def append_audits(self, events: Sequence[AuditEvent]) -> None:
        """:meth:`append_audit` for one or many events, in one statement of one transaction
        (details redacted; one event: a write of one statement, in autocommit on PostgreSQL);
        their ids are not read back."""
        if not events:
            return
        rows = [self._audit_values(e) for e in events]
        if len(rows) == 1:
            async with self._one_statement() as conn:
                await conn.execute(INSERT_AUDIT, rows[0])
            return
        async with self._write() as conn:
            await conn.execute(INSERT_AUDIT, rows)

    # --- webhook inbox -------------------------------------------------------------------------
    async def receive_webhooks(
        self, deliveries: Sequence[tuple[str, bytes, Mapping[str, str]]]
    ) -> list[Received]:
        """:meth:`receive_webhook` for many ``(connection, body, headers)`` in **one**
        transaction (the receiver's group commit), in the order given: each is durable when this
        returns. A body already stored for its connection (or given twice) is not stored again
        (``created=False``, same item)."""
        if not deliveries:
            return []
        now = self._now(None)
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        keys: list[tuple[str, str]] = []
        for connection, body, headers in deliveries:
            key = (connection, hashlib.sha256(body).hexdigest())
            keys.append(key)
            rows.setdefault(
                key,
                {
                    "connection": connection,
                    "body": body,
                    "headers": self._redactor.headers(headers),
                    "dedupe_key": key[1],
                    "received_at": now,
                    "attempts": 0,
                },
            )
        insert = (
            self._insert(webhook_inbox)
            .on_conflict_do_nothing(index_elements=["connection", "dedupe_key"])
            .returning(webhook_inbox)
        )
        inbox = webhook_inbox.c
        async with self._tx(deliveries[0][0] if len(rows) == 1 else None) as conn:
            created = {
                (r.connection, r.dedupe_key): to_inbox(r)
                for r in await conn.execute(insert, list(rows.values()))
            }
            found = dict(created)
            missing = [k for k in rows if k not in found]
            for part in chunks(missing):
                query = select(webhook_inbox).where(
                    or_(*(and_(inbox.connection == c, inbox.dedupe_key == d) for c, d in part))
                )
                found.update(
                    ((r.connection, r.dedupe_key), to_inbox(r)) for r in await conn.execute(query)
                )
        first: set[tuple[str, str]] = set()
        received: list[Received] = []
        for key in keys:
            received.append(Received(found[key], created=key in created and key not in first))
            first.add(key)
        return received

    # --- links ---------------------------------------------------------------------------------
    async def links_of_orders(
        self, connection: str, plex_order_ids: Sequence[str]
    ) -> dict[str, list[Link]]:
        """The links of each Plex order (by ``order_key``), for many orders in one read; an
        order without links maps to an empty list."""
        found: dict[str, list[Link]] = {order_id: [] for order_id in plex_order_ids}
        async with self._reader.connect() as conn:
            for part in chunks(list(found)):
                t = links_table
                query = (
                    select(t)
                    .where(t.c.connection == connection, t.c.plex_order_id.in_(part))
                    .order_by(t.c.order_key)
                )
                for row in await conn.execute(query):
                    found.setdefault(row.plex_order_id, []).append(to_link(row))
        return found

    async def get_links(self, connection: str, order_keys: Sequence[str]) -> dict[str, Link]:
        """The links with these ``orderKey``s (absent keys are left out), in one read."""
        found: dict[str, Link] = {}
        async with self._reader.connect() as conn:
            for part in chunks(list(dict.fromkeys(order_keys))):
                t = links_table
                query = select(t).where(t.c.connection == connection, t.c.order_key.in_(part))
                found.update((r.order_key, to_link(r)) for r in await conn.execute(query))
        return found


def _ready(op: Operation, now: datetime) -> bool:
    """Ready to send: ``pending``, or ``failed`` and due (as ``Outbox.ready``)."""
    if op.state is _S.PENDING:
        return True
    return op.state is _S.FAILED and (op.next_attempt_at is None or op.next_attempt_at <= now)
