"""The quarantine: records a flow could not read or map, set aside so the pass goes on.

A mixin of :class:`~mlconnector.store.repository.Store` (same rules: one short transaction per
method, the same SQL on SQLite and PostgreSQL). One row per ``(connection, flow, kind, record
id)``: seen again, it counts another attempt; it becomes ``resolved`` when the flow reads it
(and then processes it), ``dismissed`` when an operator says so. Opening, resolving and
dismissing are audited; a further failed attempt only bumps ``attempts`` and ``last_seen`` (one
event per pass per record would drown the trail).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from mlconnector.store.lane import Connects
from mlconnector.store.records import (
    AuditEvent,
    Quarantined,
    QuarantineEntry,
    QuarantineState,
)
from mlconnector.store.schema import quarantine

_Q = QuarantineState
#: the open records of one flow (every run reads them: built once)
_OPEN_OF_FLOW = (
    select(quarantine)
    .where(
        quarantine.c.connection == bindparam("connection"),
        quarantine.c.flow == bindparam("flow"),
        quarantine.c.state == _Q.OPEN.value,
    )
    .order_by(quarantine.c.id)
)
#: indexed audit columns naming a record: ``plex_order_id``, ``shipment_id``, ``sku``
AuditRefs = Mapping[str, str | None]
#: longest excerpt / error text kept in a row
_TEXT_LIMIT = 500


def _to_quarantined(row: Any) -> Quarantined:
    return Quarantined(
        id=row.id,
        connection=row.connection,
        flow=row.flow,
        record_kind=row.record_kind,
        record_id=row.record_id,
        retry_key=row.retry_key,
        field=row.field,
        value_excerpt=row.value_excerpt,
        error=row.error,
        what_to_do=row.what_to_do,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        attempts=row.attempts,
        state=_Q(row.state),
        resolved_at=row.resolved_at,
        dismissed_by=row.dismissed_by,
        dismissed_reason=row.dismissed_reason,
    )


class QuarantineRepository:
    """The quarantine's part of :class:`~mlconnector.store.repository.Store`."""

    if TYPE_CHECKING:
        _reader: Connects

        def _write(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _now(self, now: datetime | None) -> datetime: ...

        async def append_audit(self, event: AuditEvent) -> AuditEvent: ...

    async def quarantine(
        self, connection: str, flow: str, entry: QuarantineEntry, *, now: datetime | None = None
    ) -> Quarantined:
        """Set ``entry`` aside (or count another attempt of a record already there).

        A new record, or one that had been resolved and fails again, is ``open`` and audited
        (``quarantine``/``quarantined``). A dismissed record stays dismissed (the operator chose
        to let it be) but its attempts are still counted.
        """
        when = self._now(now)
        q = quarantine.c
        values = {
            "retry_key": entry.retry_key,
            "field": entry.field[:200],
            "value_excerpt": entry.value_excerpt[:_TEXT_LIMIT],
            "error": entry.error[:_TEXT_LIMIT],
            "what_to_do": entry.what_to_do[:_TEXT_LIMIT],
            "last_seen": when,
        }
        key = and_(
            q.connection == connection,
            q.flow == flow,
            q.record_kind == entry.record_kind,
            q.record_id == entry.record_id,
        )
        async with self._write() as conn:
            old = (await conn.execute(select(quarantine).where(key))).first()
            if old is None:
                stmt = insert(quarantine).values(
                    connection=connection,
                    flow=flow,
                    record_kind=entry.record_kind,
                    record_id=entry.record_id,
                    first_seen=when,
                    attempts=1,
                    state=_Q.OPEN.value,
                    **values,
                )
                await conn.execute(stmt)
            else:
                state = _Q.DISMISSED.value if old.state == _Q.DISMISSED.value else _Q.OPEN.value
                await conn.execute(
                    update(quarantine)
                    .where(q.id == old.id)
                    .values(attempts=q.attempts + 1, state=state, resolved_at=None, **values)
                )
            row = _to_quarantined((await conn.execute(select(quarantine).where(key))).one())
        if old is None or old.state == _Q.RESOLVED.value:
            await self._audit_quarantine(row, "quarantine", "quarantined", entry=entry, at=when)
        return row

    async def resolve_quarantined(
        self,
        connection: str,
        flow: str,
        *,
        retry_keys: Iterable[str] = (),
        records: Iterable[tuple[str, str]] = (),
        keep: Iterable[tuple[str, str]] = (),
        refs: AuditRefs | None = None,
        now: datetime | None = None,
    ) -> list[Quarantined]:
        """Mark open records ``resolved`` (they read now): those retried through one of
        ``retry_keys``, and the ``(kind, record id)`` pairs of ``records``, except the pairs in
        ``keep`` (still unreadable this pass). Each is audited (with ``refs``, the indexed audit
        columns naming the record: ``plex_order_id``, ``shipment_id``, ``sku``)."""
        keys = sorted(set(retry_keys))
        pairs = sorted(set(records))
        if not keys and not pairs:
            return []
        when = self._now(now)
        q = quarantine.c
        which: list[ColumnElement[bool]] = [q.retry_key.in_(keys)] if keys else []
        which += [and_(q.record_kind == kind, q.record_id == rid) for kind, rid in pairs]
        kept = [and_(q.record_kind == kind, q.record_id == rid) for kind, rid in sorted(set(keep))]
        stmt = (
            update(quarantine)
            .where(
                q.connection == connection,
                q.flow == flow,
                q.state == _Q.OPEN.value,
                or_(*which),
                *([~or_(*kept)] if kept else []),
            )
            .values(state=_Q.RESOLVED.value, resolved_at=when, last_seen=when)
            .returning(quarantine)
        )
        async with self._write() as conn:
            resolved = sorted((_to_quarantined(r) for r in await conn.execute(stmt)), key=_by_id)
        for row in resolved:
            await self._audit_quarantine(row, "resolve", "ok", at=when, refs=refs)
        return resolved

    async def dismiss_quarantined(
        self, quarantine_id: int, *, reason: str, actor: str, now: datetime | None = None
    ) -> Quarantined | None:
        """``open`` → ``dismissed`` (no longer retried nor counted), audited with who and why.
        ``None`` when there is no such record; a record already resolved or dismissed is
        returned unchanged."""
        reason = reason.strip()
        if not reason:
            raise ValueError("a dismissal needs a reason (it is kept in the audit trail)")
        when = self._now(now)
        q = quarantine.c
        async with self._write() as conn:
            changed = (
                await conn.execute(
                    update(quarantine)
                    .where(q.id == quarantine_id, q.state == _Q.OPEN.value)
                    .values(
                        state=_Q.DISMISSED.value,
                        dismissed_by=actor[:200],
                        dismissed_reason=reason[:_TEXT_LIMIT],
                        last_seen=when,
                    )
                    .returning(quarantine)
                )
            ).first()
            if changed is None:
                row = (await conn.execute(select(quarantine).where(q.id == quarantine_id))).first()
                return _to_quarantined(row) if row is not None else None
        dismissed = _to_quarantined(changed)
        await self._audit_quarantine(
            dismissed, "dismiss", "ok", at=when, extra={"reason": reason[:500], "by": actor}
        )
        return dismissed

    async def get_quarantined(self, quarantine_id: int) -> Quarantined | None:
        """One quarantine row by id."""
        async with self._reader.connect() as conn:
            row = (
                await conn.execute(select(quarantine).where(quarantine.c.id == quarantine_id))
            ).first()
        return _to_quarantined(row) if row is not None else None

    async def list_quarantined(
        self,
        *,
        connection: str | None = None,
        flow: str | None = None,
        state: QuarantineState | None = None,
        limit: int = 200,
    ) -> list[Quarantined]:
        """Quarantine rows matching the filters, most recently seen first."""
        q = quarantine.c
        query = select(quarantine)
        if connection is not None:
            query = query.where(q.connection == connection)
        if flow is not None:
            query = query.where(q.flow == flow)
        if state is not None:
            query = query.where(q.state == state.value)
        query = query.order_by(q.last_seen.desc(), q.id.desc()).limit(limit)
        async with self._reader.connect() as conn:
            return [_to_quarantined(r) for r in await conn.execute(query)]

    async def open_quarantined(self, connection: str, flow: str) -> list[Quarantined]:
        """Every open record of one flow: what the flow retries this pass (oldest first)."""
        params = {"connection": connection, "flow": flow}
        async with self._reader.connect() as conn:
            return [_to_quarantined(r) for r in await conn.execute(_OPEN_OF_FLOW, params)]

    async def count_open_quarantined(
        self, *, connection: str | None = None
    ) -> dict[tuple[str, str], int]:
        """Open records per ``(connection, flow)`` (for ``/metrics`` and the dashboard)."""
        q = quarantine.c
        query = (
            select(q.connection, q.flow, func.count())
            .where(q.state == _Q.OPEN.value)
            .group_by(q.connection, q.flow)
        )
        if connection is not None:
            query = query.where(q.connection == connection)
        async with self._reader.connect() as conn:
            return {(r[0], r[1]): int(r[2]) for r in await conn.execute(query)}

    async def _audit_quarantine(
        self,
        row: Quarantined,
        action: str,
        outcome: str,
        *,
        at: datetime,
        entry: QuarantineEntry | None = None,
        refs: AuditRefs | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if entry is not None:
            refs = {
                "plex_order_id": entry.plex_order_id,
                "shipment_id": entry.shipment_id,
                "sku": entry.sku,
            }
        refs = refs or {}
        await self.append_audit(
            AuditEvent(
                connection=row.connection,
                flow=row.flow,
                direction="internal",
                entity="quarantine",
                action=action,
                outcome=outcome,
                plex_order_id=refs.get("plex_order_id"),
                shipment_id=refs.get("shipment_id"),
                sku=refs.get("sku"),
                entity_ids={
                    "quarantine_id": row.id,
                    "record_kind": row.record_kind,
                    "record_id": row.record_id,
                    **({"retry_key": row.retry_key} if row.retry_key else {}),
                },
                details={
                    "record": f"{row.record_kind} {row.record_id}",
                    "field": row.field,
                    "value": row.value_excerpt,
                    "error": row.error,
                    "what_to_do": row.what_to_do,
                    "attempts": row.attempts,
                    **(extra or {}),
                },
                at=at,
            )
        )


def _by_id(row: Quarantined) -> int:
    return row.id
