"""SQLite only: what a store call costs in aiosqlite thread hand-offs. Readers open no
transaction (no BEGIN, no ROLLBACK: each statement reads its own snapshot, as on PostgreSQL);
a ROLLBACK is sent only when a transaction is open, so a failed write still rolls back; each
statement is one hand-off (``store/sqlite_driver.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from mlconnector.clock import FakeClock
from mlconnector.store import Store, open_store


@pytest.fixture
async def store(tmp_path: Path, fake_clock: FakeClock) -> AsyncIterator[Store]:
    the_store = await open_store(f"sqlite:///{tmp_path / 'x.db'}", clock=fake_clock)
    await the_store.create_connection("acme")
    try:
        yield the_store
    finally:
        await the_store.close()


@contextmanager
def driver_calls(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The SQL statements and the driver's commits and rollbacks inside the block."""
    seen: dict[str, Any] = {"sql": [], "commit": 0, "rollback": 0, "hand-offs": 0}
    hand_off = aiosqlite.Connection._execute

    async def counted_hand_off(self: aiosqlite.Connection, *args: Any, **kwargs: Any) -> Any:
        seen["hand-offs"] += 1
        return await hand_off(self, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted_hand_off)
    for name in ("commit", "rollback"):
        real = getattr(aiosqlite.Connection, name)

        async def counted(self: aiosqlite.Connection, _real: Any = real, _n: str = name) -> None:
            seen[_n] += 1
            await _real(self)

        monkeypatch.setattr(aiosqlite.Connection, name, counted)

    def statement(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        seen["sql"].append(sql.split()[0].upper())

    engine = store.engine.sync_engine
    event.listen(engine, "before_cursor_execute", statement)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        monkeypatch.undo()


async def test_a_read_sends_its_select_only(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    await store.set_cursor("acme", "orders", "x")
    with driver_calls(store, monkeypatch) as seen:
        cursor = await store.get_cursor("acme", "orders")
    assert cursor is not None
    assert seen == {"sql": ["SELECT"], "commit": 0, "rollback": 0, "hand-offs": 1}


async def test_a_write_is_one_transaction_without_a_rollback_after_its_commit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    with driver_calls(store, monkeypatch) as seen:
        await store.set_cursor("acme", "orders", "x")
    # BEGIN IMMEDIATE, the upsert, the commit
    assert seen == {"sql": ["BEGIN", "INSERT"], "commit": 1, "rollback": 0, "hand-offs": 3}


async def test_a_failed_write_is_rolled_back(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    async def failing_write() -> None:
        async with store._write() as conn:
            await conn.execute(text("UPDATE connections SET plex_pcn = '1'"))
            raise RuntimeError("the caller fails mid-transaction")

    with driver_calls(store, monkeypatch) as seen, pytest.raises(RuntimeError):
        await failing_write()
    assert (seen["commit"], seen["rollback"], seen["hand-offs"]) == (0, 1, 3)
    found = await store.get_connection("acme")
    assert found is not None
    assert found.plex_pcn is None
    await store.set_cursor("acme", "orders", "y")  # the lock was released
    assert (await store.get_cursor("acme", "orders")).value == "y"  # type: ignore[union-attr]


async def test_rows_counts_and_ids_come_back_from_the_one_hand_off(store: Store) -> None:
    async with store._write() as conn:
        inserted = await conn.execute(
            text(
                "INSERT INTO cursors (connection, flow, value, updated_at) VALUES (:c, :f, :v, :t)"
            ),
            [
                {"c": "acme", "f": f"f{i}", "v": str(i), "t": "2026-01-01 00:00:00"}
                for i in range(3)
            ],
        )
        assert inserted.rowcount == 3  # executemany
        one = await conn.execute(
            text(
                "INSERT INTO runs (connection, flow, started_at, finished_at, seconds, outcome,"
                " counts, error, owner) VALUES ('acme', 'x', '2026-01-01', '2026-01-01', 0, 'ok',"
                " '{}', NULL, 'w')"
            )
        )
        assert one.lastrowid == 1
        updated = await conn.execute(text("UPDATE cursors SET value = 'z' WHERE flow != 'f1'"))
        assert updated.rowcount == 2
    async with store._reader.connect() as conn:
        rows = (await conn.execute(text("SELECT flow, value FROM cursors ORDER BY flow"))).all()
        assert [tuple(r) for r in rows] == [("f0", "z"), ("f1", "1"), ("f2", "z")]
        first = (await conn.execute(text("SELECT flow FROM cursors ORDER BY flow"))).first()
        assert first is not None
        assert first.flow == "f0"
        with pytest.raises(OperationalError, match="no such table"):
            await conn.execute(text("SELECT * FROM nowhere"))
