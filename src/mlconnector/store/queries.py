"""The operator console's queries: keyset pages of operations, audit events and runs, errors
grouped by cause, dismissal, and the run history.

A mixin of :class:`~mlconnector.store.repository.Store` (so ``repository.py`` stays readable);
the same rules hold: one short transaction per method, the same SQL on SQLite and PostgreSQL.
Pages are keyset pages, never ``OFFSET``: a page reads ``limit + 1`` rows from an index position
(the id, or ``(at, id)`` for the audit trail), so page 500 costs what page 1 costs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import Select, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from mlconnector.store.lane import Connects
from mlconnector.store.records import (
    AuditEvent,
    AuditQuery,
    Operation,
    OperationState,
    Run,
)
from mlconnector.store.rows import to_audit, to_operation, to_run
from mlconnector.store.schema import audit_events, cursors, operations, runs

T = TypeVar("T")
_S = OperationState
#: the states an error group is made of (what Replay acts on)
GROUP_STATES = (_S.FAILED, _S.DEAD)
_MAX_GROUP_SCAN = 200_000


def _cursor_upsert(insert_into: Any, values: dict[str, Any] | None = None) -> Any:
    stmt = insert_into(cursors)
    if values is not None:
        stmt = stmt.values(values)
    return stmt.on_conflict_do_update(
        index_elements=["connection", "flow"],
        set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
    )


# Built once: a statement built per call costs its construction and its cache key (~0.1 ms
# each) on every run; these are executed with their values as parameters.
#: insert-or-replace one cursor, per dialect (parameters: connection, flow, value, updated_at)
UPSERT_CURSOR = {"sqlite": _cursor_upsert(sqlite_insert), "postgresql": _cursor_upsert(pg_insert)}
_INSERT_RUN = insert(runs)
#: one audit event (parameters: ``Store._audit_values``), without RETURNING
INSERT_AUDIT = insert(audit_events)


@functools.cache
def _finish_run_pg(
    cursor_keys: tuple[str, ...], run_keys: tuple[str, ...], audit_keys: tuple[str, ...]
) -> Any:
    """PostgreSQL: :meth:`ConsoleQueries.finish_run`'s three inserts as **one** statement (two
    of them in ``WITH``: a statement's data-modifying CTEs commit or fail with it), so it runs
    in autocommit; its parameters are the three rows' values prefixed ``c_``, ``r_`` and
    ``a_``. Built once per set of keys."""

    def values(table: Any, prefix: str, keys: tuple[str, ...]) -> dict[str, Any]:
        return {k: bindparam(prefix + k, type_=table.c[k].type) for k in keys}

    cursor = _cursor_upsert(pg_insert, values(cursors, "c_", cursor_keys))
    history = insert(runs).values(values(runs, "r_", run_keys))
    event = insert(audit_events).values(values(audit_events, "a_", audit_keys))
    return event.add_cte(cursor.cte("last_run"), history.cte("history"))


_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_QUOTED = re.compile(r"'[^']*\d[^']*'|\"[^\"]*\d[^\"]*\"")
#: a "word" with a digit in it: ids, order keys, dates, times, SKUs, amounts
_WITH_DIGIT = re.compile(r"[\w.:@/#+-]*\d[\w.:@/#+-]*")
_HTTP_STATUS = re.compile(r"[1-5]\d\d")
_SPACES = re.compile(r"\s+")
#: the words after which a 1xx-5xx number is an HTTP status (kept), not an id
_STATUS_WORDS = frozenset(
    {"http", "status", "said", "returned", "answered", "code", "error", "plex", "shipstation"}
)


def error_cause(message: str | None) -> str:
    """The cause of an error message, with what differs between records taken out: every word
    holding a digit (ids, keys, dates, quantities) becomes ``#``, except an HTTP status right
    after ``HTTP``, ``status``, ``said``, ``Plex``, ``ShipStation`` … (``Plex 404``), which tells
    causes apart. Identical causes give identical text."""
    if not message:
        return "(no error recorded)"
    text = _UUID.sub("#", message)
    text = _QUOTED.sub("'#'", text)

    def word(match: re.Match[str]) -> str:
        found = match.group(0)
        core = found.rstrip(".:")  # sentence punctuation after an id is not part of it
        before = match.string[max(0, match.start() - 40) : match.start()].split()
        after_status_word = bool(before) and before[-1].strip("(:,").lower() in _STATUS_WORDS
        if _HTTP_STATUS.fullmatch(core) and after_status_word:
            return found
        return "#" + found[len(core) :]

    text = _WITH_DIGIT.sub(word, text)
    return _SPACES.sub(" ", text).strip()[:300]


@dataclass(frozen=True, slots=True)
class OperationFilter:
    """What the Operations page filters on; every field set must match."""

    connection: str | None = None
    flow: str | None = None
    kind: str | None = None
    states: tuple[OperationState, ...] = ()
    since: datetime | None = None  # last change, inclusive
    until: datetime | None = None  # last change, exclusive
    #: an operation id, a record reference (orderKey, Plex order id, ShipStation order number or
    #: id, shipment id, SKU), or a piece of the idempotency key or of the last error
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One keyset page, newest first, and whether there is more on either side."""

    items: list[T]
    has_newer: bool
    has_older: bool


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    """Failed and dead operations whose errors have the same cause."""

    cause: str
    sample: str
    failed: int
    dead: int
    last_at: datetime

    @property
    def count(self) -> int:
        return self.failed + self.dead


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _keyset(rows: Sequence[T], limit: int, *, backwards: bool, from_cursor: bool) -> Page[T]:
    """``limit + 1`` rows read from a cursor position → the page and its neighbours."""
    more = len(rows) > limit
    items = list(rows[:limit])
    if backwards:
        items.reverse()
        return Page(items, has_newer=more, has_older=True)
    return Page(items, has_newer=from_cursor, has_older=more)


AUDIT_EQUALITY_FILTERS = (
    "connection",
    "flow",
    "plex_order_id",
    "order_key",
    "ss_order_id",
    "ss_order_number",
    "shipment_id",
    "idempotency_key",
    "outcome",
    "sku",
)


def audit_filters(stmt: Select[Any], query: AuditQuery) -> Select[Any]:
    """``stmt`` narrowed to the audit events matching every filter set in ``query``."""
    for name in AUDIT_EQUALITY_FILTERS:
        value = getattr(query, name)
        if value is not None:
            stmt = stmt.where(audit_events.c[name] == value)
    if query.since is not None:
        stmt = stmt.where(audit_events.c.at >= query.since)
    if query.until is not None:
        stmt = stmt.where(audit_events.c.at < query.until)
    return stmt


class ConsoleQueries:
    """The operator console's part of :class:`~mlconnector.store.repository.Store`."""

    if TYPE_CHECKING:
        _reader: Connects

        def _write(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _tx(
            self, connection: str | None = None
        ) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _one_statement(
            self, connection: str | None = None
        ) -> AbstractAsyncContextManager[AsyncConnection]: ...

        @property
        def dialect(self) -> str: ...

        def _now(self, now: datetime | None) -> datetime: ...

        def _audit_values(self, event: AuditEvent) -> dict[str, Any]: ...

        async def append_audit(self, event: AuditEvent) -> AuditEvent: ...

    # --- operations ----------------------------------------------------------------------------
    @staticmethod
    def _operation_filter(query: Select[Any], f: OperationFilter) -> Select[Any]:
        c = operations.c
        if f.connection is not None:
            query = query.where(c.connection == f.connection)
        if f.flow is not None:
            query = query.where(c.flow == f.flow)
        if f.kind is not None:
            query = query.where(c.kind == f.kind)
        if f.states:
            query = query.where(c.state.in_([s.value for s in f.states]))
        if f.since is not None:
            query = query.where(c.updated_at >= f.since)
        if f.until is not None:
            query = query.where(c.updated_at < f.until)
        if f.text:
            text = f.text
            a = audit_events.c
            # a record reference finds its operations through the audit trail's indexed columns
            by_reference = select(a.idempotency_key).where(
                a.idempotency_key.is_not(None),
                or_(
                    a.order_key == text,
                    a.plex_order_id == text,
                    a.ss_order_number == text,
                    a.ss_order_id == text,
                    a.shipment_id == text,
                    a.sku == text,
                ),
            )
            matches = [
                c.idempotency_key.ilike(_like(text), escape="\\"),
                c.last_error.ilike(_like(text), escape="\\"),
                c.remote_ref == text,
                c.idempotency_key.in_(by_reference),
            ]
            if text.isdigit() and len(text) < 19:
                matches.append(c.id == int(text))
            query = query.where(or_(*matches))
        return query

    async def operations_page(
        self,
        f: OperationFilter,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> Page[Operation]:
        """A page of operations matching ``f``, newest (highest id) first: the first page, the
        page of ids below ``before`` (older), or the page of ids above ``after`` (newer)."""
        query = self._operation_filter(select(operations), f)
        if after is not None:
            query = query.where(operations.c.id > after).order_by(operations.c.id.asc())
        else:
            if before is not None:
                query = query.where(operations.c.id < before)
            query = query.order_by(operations.c.id.desc())
        async with self._reader.connect() as conn:
            rows = [to_operation(r) for r in await conn.execute(query.limit(limit + 1))]
        return _keyset(rows, limit, backwards=after is not None, from_cursor=before is not None)

    async def operation_facets(self) -> dict[str, list[str]]:
        """The flows and kinds that occur in the outbox (for the filter menus)."""
        c = operations.c
        # a loose index scan of (kind, id): one index probe per distinct kind, not a table scan
        step = select(func.min(c.kind)).scalar_subquery()
        kinds_cte = select(step.label("kind")).cte("kinds", recursive=True)
        following = select(func.min(c.kind)).where(c.kind > kinds_cte.c.kind).scalar_subquery()
        kinds_cte = kinds_cte.union_all(select(following).where(kinds_cte.c.kind.is_not(None)))
        async with self._reader.connect() as conn:
            kinds = [k for k in (await conn.execute(select(kinds_cte.c.kind))).scalars() if k]
            flows = set()
            for kind in kinds:  # every flow owns its kinds: one row of each kind names it
                found = await conn.execute(select(c.flow).where(c.kind == kind).limit(1))
                flows.add(found.scalar_one())
        return {"flows": sorted(flows), "kinds": sorted(kinds)}

    async def count_in_state(self, state: OperationState, *, connection: str | None = None) -> int:
        """How many operations are in ``state`` (of ``connection``): from the state indexes."""
        query = (
            select(func.count()).select_from(operations).where(operations.c.state == state.value)
        )
        if connection is not None:
            query = query.where(operations.c.connection == connection)
        async with self._reader.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    def _group_scope(self, f: OperationFilter) -> OperationFilter:
        wanted = tuple(s for s in (f.states or GROUP_STATES) if s in GROUP_STATES)
        return OperationFilter(
            connection=f.connection,
            flow=f.flow,
            kind=f.kind,
            states=wanted or GROUP_STATES,
            since=f.since,
            until=f.until,
            text=f.text,
        )

    async def error_groups(self, f: OperationFilter) -> list[ErrorGroup]:
        """The failed and dead operations matching ``f``, grouped by :func:`error_cause`,
        largest group first. The cause is stored by ``fail`` (``error_cause``); rows written
        without one (older versions, direct inserts) are grouped from their ``last_error``."""
        c = operations.c
        scope = self._group_scope(f)
        # counts from the (state, error_cause, updated_at) index alone; a sample message each
        # (the newest) read afterwards by id
        stored = self._operation_filter(
            select(c.error_cause, c.state, func.count(), func.max(c.updated_at), func.max(c.id)),
            scope,
        ).where(c.error_cause.is_not(None))
        unstored = self._operation_filter(
            select(c.last_error, c.state, func.count(), func.max(c.updated_at), c.last_error),
            scope,
        ).where(c.error_cause.is_(None))
        groups: dict[str, dict[str, Any]] = {}
        async with self._reader.connect() as conn:
            counted = (await conn.execute(stored.group_by(c.error_cause, c.state))).all()
            samples = dict(
                (
                    await conn.execute(
                        select(c.id, c.last_error).where(c.id.in_([row[4] for row in counted]))
                    )
                ).all()
            )
            found = [
                *(
                    (cause, state, n, last, samples.get(op_id))
                    for cause, state, n, last, op_id in counted
                ),
                *[
                    (error_cause(message), *rest)
                    for message, *rest in await conn.execute(
                        unstored.group_by(c.last_error, c.state)
                    )
                ],
            ]
        for cause, state, count, last, sample in found:
            group = groups.setdefault(
                cause, {"sample": sample or "", "failed": 0, "dead": 0, "last": last}
            )
            group[state] += count
            group["last"] = max(group["last"], last)
        groups_found = [
            ErrorGroup(cause, g["sample"], g["failed"], g["dead"], g["last"])
            for cause, g in groups.items()
        ]
        return sorted(groups_found, key=lambda g: (-g.count, g.cause))

    async def operations_in_group(self, f: OperationFilter, cause: str) -> list[int]:
        """The ids of the failed and dead operations matching ``f`` whose cause is ``cause``."""
        c = operations.c
        scope = self._group_scope(f)
        stored = self._operation_filter(select(c.id), scope).where(c.error_cause == cause)
        unstored = self._operation_filter(select(c.id, c.last_error), scope).where(
            c.error_cause.is_(None)
        )
        async with self._reader.connect() as conn:
            ids = list((await conn.execute(stored)).scalars())
            rows = (await conn.execute(unstored.limit(_MAX_GROUP_SCAN))).all()
        ids += [op_id for op_id, message in rows if error_cause(message) == cause]
        return sorted(ids)

    async def dismiss(
        self, ids: Sequence[int], *, reason: str, actor: str, now: datetime | None = None
    ) -> list[Operation]:
        """``dead`` → ``dismissed`` (final: never sent, never replayed), each audited with the
        reason, who dismissed it and the error it had. Operations in other states are left
        alone. Returns the operations dismissed."""
        reason = reason.strip()
        if not reason:
            raise ValueError("a dismissal needs a reason (it is kept in the audit trail)")
        if not ids:
            return []
        when = self._now(now)
        stmt = (
            update(operations)
            .where(operations.c.id.in_(list(ids)), operations.c.state == _S.DEAD.value)
            .values(state=_S.DISMISSED.value, next_attempt_at=None, updated_at=when)
            .returning(operations)
        )
        async with self._write() as conn:
            dismissed = sorted((to_operation(r) for r in await conn.execute(stmt)), key=_op_id)
        for op in dismissed:
            await self.append_audit(
                AuditEvent(
                    connection=op.connection,
                    flow=op.flow,
                    direction="internal",
                    entity="operation",
                    action="dismiss",
                    outcome="ok",
                    idempotency_key=op.idempotency_key,
                    at=when,
                    details={
                        "operation_id": op.id,
                        "kind": op.kind,
                        "reason": reason[:500],
                        "by": actor,
                        "last_error": op.last_error,
                    },
                )
            )
        return dismissed

    # --- audit ---------------------------------------------------------------------------------
    async def audit_page(
        self,
        query: AuditQuery,
        *,
        before: tuple[datetime, int] | None = None,
        after: tuple[datetime, int] | None = None,
    ) -> Page[AuditEvent]:
        """A page of events matching ``query`` (``query.limit`` of them), newest first by
        ``(at, id)``: the first page, the page older than ``before`` or newer than ``after``."""
        a = audit_events.c
        stmt = audit_filters(select(audit_events), query)
        if after is not None:
            at, op_id = after
            # "at >= x" first: an index range the planner can use; the OR settles the ties
            stmt = stmt.where(a.at >= at, or_(a.at > at, a.id > op_id))
            stmt = stmt.order_by(a.at.asc(), a.id.asc())
        else:
            if before is not None:
                at, op_id = before
                stmt = stmt.where(a.at <= at, or_(a.at < at, and_(a.at == at, a.id < op_id)))
            stmt = stmt.order_by(a.at.desc(), a.id.desc())
        async with self._reader.connect() as conn:
            rows = [to_audit(r) for r in await conn.execute(stmt.limit(query.limit + 1))]
        return _keyset(
            rows, query.limit, backwards=after is not None, from_cursor=before is not None
        )

    # --- run history ---------------------------------------------------------------------------
    async def add_run(
        self,
        connection: str,
        flow: str,
        *,
        started_at: datetime,
        finished_at: datetime,
        outcome: str,
        counts: dict[str, int],
        error: str | None,
        owner: str,
    ) -> Run:
        """Append one run to the history."""
        values = _run_values(
            connection, flow, started_at, finished_at, outcome, counts, error, owner
        )
        async with self._write() as conn:
            row = (await conn.execute(insert(runs).values(values).returning(runs))).one()
        return to_run(row)

    async def finish_run(
        self,
        connection: str,
        flow: str,
        *,
        last_run: tuple[str, str],
        started_at: datetime,
        finished_at: datetime,
        outcome: str,
        counts: dict[str, int],
        error: str | None,
        owner: str,
        event: AuditEvent,
    ) -> None:
        """Record a finished run in **one** write transaction: the cursor ``last_run``
        (``(name, value)``: the flow's last run), the run history row (as :meth:`add_run`) and
        the run's audit ``event`` (as :meth:`append_audit`). On PostgreSQL one statement in
        autocommit; on SQLite three in one transaction."""
        name, value = last_run
        now = self._now(None)
        cursor = {"connection": connection, "flow": name, "value": value, "updated_at": now}
        history = _run_values(
            connection, flow, started_at, finished_at, outcome, counts, error, owner
        )
        audit = self._audit_values(event)
        if self.dialect == "postgresql":  # one statement, in autocommit
            stmt = _finish_run_pg(tuple(cursor), tuple(history), tuple(audit))
            params = {f"c_{k}": v for k, v in cursor.items()}
            params.update((f"r_{k}", v) for k, v in history.items())
            params.update((f"a_{k}", v) for k, v in audit.items())
            async with self._one_statement(connection) as conn:
                await conn.execute(stmt, params)
            return
        async with self._tx(connection) as conn:
            await conn.execute(UPSERT_CURSOR[conn.dialect.name], cursor)
            await conn.execute(_INSERT_RUN, history)
            await conn.execute(INSERT_AUDIT, audit)

    async def runs_page(
        self,
        connection: str,
        flow: str,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> Page[Run]:
        """A page of the runs of one flow of one connection, newest first (keyset by id)."""
        r = runs.c
        query = select(runs).where(r.connection == connection, r.flow == flow)
        if after is not None:
            query = query.where(r.id > after).order_by(r.id.asc())
        else:
            if before is not None:
                query = query.where(r.id < before)
            query = query.order_by(r.id.desc())
        async with self._reader.connect() as conn:
            rows = [to_run(row) for row in await conn.execute(query.limit(limit + 1))]
        return _keyset(rows, limit, backwards=after is not None, from_cursor=before is not None)

    async def run_flows(self, connection: str | None = None) -> list[tuple[str, str]]:
        """Every (connection, flow) with a recorded run."""
        query = select(runs.c.connection, runs.c.flow).distinct()
        if connection is not None:
            query = query.where(runs.c.connection == connection)
        async with self._reader.connect() as conn:
            return sorted((row[0], row[1]) for row in await conn.execute(query))


def _run_values(
    connection: str,
    flow: str,
    started_at: datetime,
    finished_at: datetime,
    outcome: str,
    counts: dict[str, int],
    error: str | None,
    owner: str,
) -> dict[str, Any]:
    """The row of one run of the history."""
    return {
        "connection": connection,
        "flow": flow,
        "started_at": started_at,
        "finished_at": finished_at,
        "seconds": max(0.0, (finished_at - started_at).total_seconds()),
        "outcome": outcome,
        "counts": {k: int(v) for k, v in counts.items() if v},
        "error": error[:4000] if error else None,
        "owner": owner[:200],
    }


def _op_id(op: Operation) -> int:
    return op.id
