"""SQLite through aiosqlite with **one** thread hand-off per statement.

aiosqlite runs every call of the ``sqlite3`` connection in its own thread and hands each result
back to the event loop (~55 µs of CPU a hand-off). SQLAlchemy's adapter makes four of them for a
``SELECT`` (make a cursor, execute, fetch the rows, close the cursor) and three for any other
statement. The cursor below does the four steps in one call on aiosqlite's thread and keeps what
SQLAlchemy reads afterwards (description, rows, row count, last row id); everything else
(connections, transactions, errors) is SQLAlchemy's ``sqlite+aiosqlite`` dialect unchanged.

Used through ``create_async_engine(url, module=OneHopDBAPI())`` (``store.engine``).

It subclasses SQLAlchemy 2.1's ``connectors.asyncio`` adapter classes and calls aiosqlite's
``Connection._execute``/``_conn``: ``pyproject.toml`` bounds both (``sqlalchemy <2.2``,
``aiosqlite <0.23``), and ``tests/unit/store/test_sqlite_round_trips.py`` fails if an upgrade
changes them.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT

#: what one statement leaves behind: description, rows, row count, last row id
_Outcome = tuple[Any, list[Any], int, int | None]


def _execute(
    connection: sqlite3.Connection, operation: str, parameters: Any, many: bool
) -> _Outcome:
    """Run on aiosqlite's thread: the whole life of one cursor."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statement runs in one hand-off (see the module doc)."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # no driver cursor is made here: each statement makes and closes its own in the thread
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass  # rows are all fetched at execute

    async def _async_soft_close(self) -> None:
        return  # the driver cursor is closed already

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._run(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Sequence[Any]) -> None:
        await self._run(operation, seq_of_parameters, many=True)

    async def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        driver: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        async with self._adapt_connection._execute_mutex:
            outcome: _Outcome = await driver._execute(  # type: ignore[no-untyped-call]
                _execute, driver._conn, operation, parameters, many
            )
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection adapter, handing out :class:`OneHopCursor`, whose
    rollback is skipped when no transaction is open."""

    __slots__ = ()
    _cursor_cls = OneHopCursor  # type: ignore[assignment]

    def rollback(self) -> None:
        # No transaction open (a reader's autocommit statements, the pool's reset after a
        # COMMIT): SQLite would do nothing, but aiosqlite still hands the call to its thread
        # and back. SQLAlchemy's ``skip_autocommit_rollback`` cannot tell: with the BEGIN
        # emitted by the store, the driver is always in autocommit mode. A closed connection
        # is left to the adapter (it skips that itself).
        driver: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        if driver._connection is not None and not driver.in_transaction:
            return
        super().rollback()


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DBAPI adapter, whose connections hand out :class:`OneHopCursor`."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        adapted = super().connect(*arg, **kw)
        return OneHopConnection(self, adapted._connection)
