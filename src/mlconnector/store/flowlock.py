"""Flow locks across processes, for the runs that are not engine jobs (``sync --once``, a
backfill, the embedded scheduler) — held while the run lasts, released when the process dies.

* **PostgreSQL**: a session advisory lock (``pg_try_advisory_lock``) on a connection of its own.
  A procrastinate job does not hold it (that would keep a connection per running job); it
  checks the lock is free *after* it is marked ``doing``, while a lock holder checks no job is
  ``doing`` *after* taking the lock — so one of the two always sees the other.
* **SQLite**: an exclusive ``flock`` on a file next to the database (one box, many processes);
  an in-memory database has only the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mlconnector.store.lane import Connects


def lock_id(connection: str, flow: str) -> int:
    """A signed 64-bit advisory lock id for (connection, flow)."""
    digest = hashlib.sha256(f"mlconnector:flow:{connection}:{flow}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_file(engine: AsyncEngine, connection: str, flow: str) -> Path | None:
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    name = hashlib.sha256(f"{connection}\0{flow}".encode()).hexdigest()[:16]
    return Path(f"{database}-flow-{name}.lock")


@contextlib.asynccontextmanager
async def flow_lock(engine: AsyncEngine, connection: str, flow: str) -> AsyncIterator[bool]:
    """Hold the cross-process lock of (connection, flow) for the block; yields whether it
    was taken (``False``: someone else holds it, nothing was taken)."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            key = {"k": lock_id(connection, flow)}
            got = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), key)).scalar())
            await conn.commit()
            try:
                yield got
            finally:
                if got:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), key)
                    await conn.commit()
        return
    path = _lock_file(engine, connection, flow)
    if path is None:
        yield True
        return
    # opened on the loop: a local file, microseconds (a thread hand-off cost more, every run)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


#: take the advisory lock and, when that worked, give it back, in one statement (CASE evaluates
#: its branches in order: the unlock runs only after a lock that was taken)
_LOCK_FREE = text(
    "SELECT CASE WHEN pg_try_advisory_lock(:k) THEN pg_advisory_unlock(:k) ELSE false END"
)


async def flow_lock_free(
    engine: AsyncEngine, connection: str, flow: str, *, autocommit: Connects
) -> bool:
    """Whether nobody holds the lock of (connection, flow) right now. On PostgreSQL one
    statement on ``autocommit`` (the store's lane; an engine job asks at each run): taking and
    releasing the lock with :func:`flow_lock` was six (two transactions)."""
    if engine.dialect.name == "postgresql":
        async with autocommit.connect() as conn:
            key = {"k": lock_id(connection, flow)}
            return bool((await conn.execute(_LOCK_FREE, key)).scalar())
    async with flow_lock(engine, connection, flow) as got:
        return got


async def flow_job_running(engine: AsyncEngine, connection: str, flow: str) -> bool:
    """PostgreSQL: whether an engine job of (connection, flow) is ``doing`` (procrastinate's
    jobs table, when it exists). Always ``False`` on SQLite."""
    if engine.dialect.name != "postgresql":
        return False
    async with engine.connect() as conn:
        if (await conn.execute(text("SELECT to_regclass('procrastinate_jobs')"))).scalar() is None:
            return False
        row = await conn.execute(
            text("SELECT 1 FROM procrastinate_jobs WHERE lock = :lock AND status = 'doing'"),
            {"lock": f"{connection}:{flow}"},
        )
        return row.first() is not None
