"""PostgreSQL: statements that are atomic on their own (every read, and writes of one
statement) run on a few pooled connections kept checked out in autocommit: the **lane**.

A checkout from SQLAlchemy's pool switched to autocommit costs more CPU than the statement run
on it (measured on one 2-core machine, 3,000 reads of one row in a row: ~520 µs of CPU for a
checkout, the read and the check-in, ~220 µs for the read on a connection already out, ~110 µs
on bare psycopg). An engine job runs ~20 statements, most of them alone, so it paid for ~20
checkouts, each with the isolation switch on the way out and back.

The lane keeps up to ``size`` connections out of the engine's own pool (so the process holds no
more connections than the pool allows) and lends one to each block that asks, most recently
used first. When all are lent, a block gets an ordinary checkout, as before the lane, so no
block waits for the lane. A connection unused for ``idle_after`` seconds is pinged before it
is lent, as the pool pings one idle that long at checkout
(:func:`mlconnector.store.engine.create_engine`), and dropped if the ping fails: a restarted
server or a dropped idle session is noticed before use, as without the lane. A block that
raises gives its connection back to the pool (its reset rolls back whatever the error left);
an invalidated one (a lost server) is not lent again.

The lane lends on the event loop that first used it; a block on another loop (tests that run
several) gets an ordinary checkout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from sqlalchemy import Connection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

#: connections a lane keeps out of the pool (SQLAlchemy's default pool holds 5 and 10 more)
LANE_SIZE = 4
#: a PostgreSQL connection idle this long (seconds) is pinged before use (see
#: :func:`mlconnector.store.engine.create_engine`); so is a lane connection idle this long
PING_IDLE_AFTER = 10.0


class AutocommitLane:
    """See the module doc. ``engine``: an engine (or a view of one) in ``AUTOCOMMIT``."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        size: int = LANE_SIZE,
        idle_after: float = PING_IDLE_AFTER,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._size = size
        self._idle_after = idle_after
        self._monotonic = monotonic
        self._free: list[tuple[AsyncConnection, float]] = []  # (connection, last given back)
        self._out = 0  # connections held by the lane, lent or free
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        #: blocks served by a lane connection / by an ordinary checkout (tests, benchmarks)
        self.lent = 0
        self.overflow = 0

    @property
    def held(self) -> int:
        """Connections the lane holds out of the pool right now (lent or free)."""
        return self._out

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection in autocommit for the block (the lane's, or an ordinary checkout)."""
        conn = await self._take()
        if conn is None:
            self.overflow += 1
            async with self._engine.connect() as plain:
                yield plain
            return
        self.lent += 1
        try:
            yield conn
        except BaseException:
            await self._give_back(conn)
            raise
        if self._closed or conn.invalidated or conn.closed:
            await self._give_back(conn)
        else:
            self._free.append((conn, self._monotonic()))

    async def _take(self) -> AsyncConnection | None:
        if self._closed:
            return None
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            return None
        now = self._monotonic()
        while self._free:
            conn, since = self._free.pop()
            if conn.invalidated or conn.closed:
                await self._give_back(conn)
            elif now - since < self._idle_after or await self._answers(conn):
                return conn
        if self._out >= self._size:
            return None
        self._out += 1
        try:
            return await self._engine.connect()
        except BaseException:
            self._out -= 1
            raise

    async def _answers(self, conn: AsyncConnection) -> bool:
        """Ping an idle connection (as the pool's checkout does); one that fails is dropped."""
        try:
            await conn.run_sync(_ping)
        except Exception:  # noqa: BLE001 - whatever the ping met, the connection is not usable
            await asyncio.shield(conn.invalidate())
            await self._give_back(conn)
            return False
        return True

    async def _give_back(self, conn: AsyncConnection) -> None:
        self._out -= 1
        await asyncio.shield(conn.close())

    async def aclose(self) -> None:
        """Give every free connection back to the pool (before the engine is disposed); the
        lent ones go back as their blocks end. Blocks after this get ordinary checkouts."""
        self._closed = True
        free, self._free = self._free, []
        on_its_loop = self._loop is None or asyncio.get_running_loop() is self._loop
        for conn, _ in free:
            if on_its_loop:
                await self._give_back(conn)
            else:  # its loop is another: the engine's dispose drops the pool's connections
                self._out -= 1


def _ping(conn: Connection) -> None:
    dbapi_connection = conn.connection.dbapi_connection
    if dbapi_connection is None or not conn.dialect.do_ping(dbapi_connection):
        raise DisconnectionError("the ping was not answered")


class Connects(Protocol):
    """What the store's readers use: an engine, or the lane."""

    def connect(self) -> AbstractAsyncContextManager[AsyncConnection]: ...
