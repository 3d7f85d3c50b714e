"""Many-row methods of the ``Store`` for the shipments write-back flow: a poll page (or a webhook
delivery) of shipments staged as operations in one transaction, one transaction per write-back
(its confirmation, lines, audit event and the claim of the next one), and the look-ups of a
whole page at once.

Kept apart from ``batch.py`` for size; the :class:`Store` inherits these methods and they follow
its rules (times from the injected clock, redacted errors and audit details, the same SQL on
SQLite and PostgreSQL, ``executemany`` for many rows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError

from mlconnector.store.batch import chunks, confirm_statement
from mlconnector.store.exceptions import StoreError, UnknownConnectionError
from mlconnector.store.lane import Connects
from mlconnector.store.records import (
    AuditEvent,
    Enqueued,
    Link,
    Operation,
    OperationState,
    StagedWrite,
)
from mlconnector.store.rows import to_link, to_operation
from mlconnector.store.schema import audit_events, operations, shipment_lines, webhook_inbox
from mlconnector.store.schema import links as links_table

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from mlconnector.http.redact import Redactor

_S = OperationState
#: what one bad row can raise: refused by the database (a constraint, a value out of range) or
#: by the driver before it is sent (a payload the JSON encoder cannot write)
_ROW_ERRORS = (StoreError, SQLAlchemyError, TypeError, ValueError)


class WritebackRepository:
    """Outbox, shipment lines, inbox and links for a page of shipments at once."""

    if TYPE_CHECKING:
        _reader: Connects
        _redactor: Redactor

        def _now(self, now: datetime | None) -> datetime: ...

        def _write(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _tx(
            self, connection: str | None = None
        ) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _insert(self, table: Any) -> Any: ...

        def _audit_values(self, event: AuditEvent) -> dict[str, Any]: ...

        async def _mark_sent(
            self,
            conn: AsyncConnection,
            op_ids: Sequence[int],
            now: datetime,
            states: Sequence[OperationState],
        ) -> list[Operation]: ...

    # --- look-ups ------------------------------------------------------------------------------
    async def operations_by_keys(self, idempotency_keys: Sequence[str]) -> dict[str, Operation]:
        """The operations with these idempotency keys (absent keys are left out), in one read."""
        found: dict[str, Operation] = {}
        async with self._reader.connect() as conn:
            for part in chunks(list(dict.fromkeys(idempotency_keys))):
                query = select(operations).where(operations.c.idempotency_key.in_(part))
                found.update(
                    (r.idempotency_key, to_operation(r)) for r in await conn.execute(query)
                )
        return found

    async def links_by_ss_order_ids(
        self, connection: str, ss_order_ids: Sequence[str]
    ) -> dict[str, Link]:
        """The link of each ShipStation orderId (absent ids are left out), in one read; of two
        links naming one orderId, the first by ``order_key`` (as ``find_links(...)[0]``)."""
        found: dict[str, Link] = {}
        t = links_table
        async with self._reader.connect() as conn:
            for part in chunks(list(dict.fromkeys(ss_order_ids))):
                query = (
                    select(t)
                    .where(t.c.connection == connection, t.c.ss_order_id.in_(part))
                    .order_by(t.c.order_key)
                )
                for row in await conn.execute(query):
                    found.setdefault(row.ss_order_id, to_link(row))
        return found

    # --- staging -------------------------------------------------------------------------------
    async def stage_batch(
        self,
        connection: str,
        flow: str,
        items: Sequence[StagedWrite],
        *,
        now: datetime | None = None,
    ) -> list[Enqueued | StoreError]:
        """``enqueue`` (insert-or-get by key) every item and record its shipment lines
        (insert-or-get, as ``record_shipment_line``) in **one** transaction, in the order given.

        If that transaction fails (one bad row fails a many-row statement), each item is staged
        again in its own transaction: the bad one comes back as a :class:`StoreError` in its
        place and the others are staged. An unknown ``connection`` is raised."""
        if not items:
            return []
        now = self._now(now)
        try:
            async with self._tx(connection) as conn:
                found = await self._stage(conn, connection, flow, items, now)
        except UnknownConnectionError:
            raise
        except _ROW_ERRORS:
            return [await self._stage_one(connection, flow, item, now) for item in items]
        created, ops = found
        return [
            Enqueued(ops[i.idempotency_key], created=i.idempotency_key in created) for i in items
        ]

    async def _stage_one(
        self, connection: str, flow: str, item: StagedWrite, now: datetime
    ) -> Enqueued | StoreError:
        try:
            async with self._tx(connection) as conn:
                created, ops = await self._stage(conn, connection, flow, [item], now)
        except UnknownConnectionError:
            raise
        except _ROW_ERRORS as exc:
            reason = self._redactor.text(str(getattr(exc, "orig", None) or exc))[:300]
            return StoreError(
                f"could not record operation {item.idempotency_key}: {reason}",
                record=item.idempotency_key,
            )
        key = item.idempotency_key
        return Enqueued(ops[key], created=key in created)

    async def _stage(
        self,
        conn: AsyncConnection,
        connection: str,
        flow: str,
        items: Sequence[StagedWrite],
        now: datetime,
    ) -> tuple[set[str], dict[str, Operation]]:
        rows = {
            i.idempotency_key: {
                "connection": connection,
                "flow": flow,
                "kind": i.kind,
                "idempotency_key": i.idempotency_key,
                "payload": dict(i.payload),
                "state": _S.PENDING.value,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for i in items
        }
        lines = {
            (line.source_id, line.line_key): {
                "connection": connection,
                "source_id": line.source_id,
                "line_key": line.line_key,
                "sku": line.sku,
                "quantity": line.quantity,
                "created_at": now,
            }
            for i in items
            for line in i.lines
        }
        insert = (
            self._insert(operations)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(operations.c.idempotency_key)
        )
        created = {r.idempotency_key for r in await conn.execute(insert, list(rows.values()))}
        if lines:
            insert_lines = self._insert(shipment_lines).on_conflict_do_nothing(
                index_elements=["connection", "source_id", "line_key"]
            )
            await conn.execute(insert_lines, list(lines.values()))
        ops: dict[str, Operation] = {}
        for part in chunks(list(rows)):
            query = select(operations).where(operations.c.idempotency_key.in_(part))
            ops.update((r.idempotency_key, to_operation(r)) for r in await conn.execute(query))
        return created, ops

    # --- one write-back settled, the next claimed ----------------------------------------------
    async def settle_and_claim(
        self,
        *,
        confirms: Sequence[tuple[int, str | None]] = (),
        lines_written: Sequence[tuple[str, str]] = (),
        events: Sequence[AuditEvent] = (),
        claim: Sequence[int] = (),
        now: datetime | None = None,
    ) -> tuple[list[Operation], list[Operation]]:
        """In **one** transaction: confirm ``(op_id, remote_ref)`` (as ``settle_batch``), stamp
        the lines of each ``(connection, source_id)`` not yet written back as written back now
        (as ``mark_line_written_back``), append the audit events, and mark the operations of
        ``claim`` that are ``pending`` or ``failed`` as ``sent`` (never one already ``sent``:
        call it just before they leave). Returns (confirmed, claimed), each by id."""
        now = self._now(now)
        refs = dict(confirms)
        confirmed: list[Operation] = []
        async with self._write() as conn:
            if len(refs) == 1:  # the usual case: one write-back, its row read back at once
                ((op_id, ref),) = refs.items()
                stmt = confirm_statement(now).returning(operations)
                confirmed = [
                    to_operation(r) for r in await conn.execute(stmt, {"op_id": op_id, "ref": ref})
                ]
            elif refs:
                await conn.execute(
                    confirm_statement(now), [{"op_id": i, "ref": r} for i, r in refs.items()]
                )
            if lines_written:
                stamp = (
                    update(shipment_lines)
                    .where(
                        shipment_lines.c.connection == bindparam("owner"),
                        shipment_lines.c.source_id == bindparam("source"),
                        shipment_lines.c.written_back_at.is_(None),
                    )
                    .values(written_back_at=now)
                )
                pairs = dict.fromkeys(lines_written)
                await conn.execute(stamp, [{"owner": c, "source": s} for c, s in pairs])
            if events:
                await conn.execute(audit_events.insert(), [self._audit_values(e) for e in events])
            claimed = await self._mark_sent(conn, claim, now, (_S.PENDING, _S.FAILED))
            # every operation of ``confirms`` now confirmed (also one that already was)
            for part in chunks([] if confirmed else list(refs)):
                query = select(operations).where(
                    operations.c.id.in_(part), operations.c.state == _S.CONFIRMED.value
                )
                confirmed += [to_operation(r) for r in await conn.execute(query)]
        return sorted(confirmed, key=lambda op: op.id), claimed

    # --- webhook inbox -------------------------------------------------------------------------
    async def finish_webhooks(
        self,
        outcomes: Mapping[int, str] | Sequence[tuple[int, str]],
        *,
        now: datetime | None = None,
    ) -> None:
        """``finish_webhook`` for many ``(item_id, outcome)`` in one statement (an unknown id is
        ignored)."""
        pairs = dict(outcomes)
        if not pairs:
            return
        inbox = webhook_inbox.c
        stmt = (
            update(webhook_inbox)
            .where(inbox.id == bindparam("item_id"))
            .values(
                attempts=inbox.attempts + 1,
                outcome=bindparam("result"),
                processed_at=self._now(now),
            )
        )
        async with self._write() as conn:
            await conn.execute(stmt, [{"item_id": i, "result": o} for i, o in pairs.items()])
