"""SQLite writers of one process take turns in the store instead of racing for the file lock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import mlconnector.store.engine as store_engine
from mlconnector.clock import FakeClock
from mlconnector.store import AuditEvent, open_store


async def test_concurrent_writers_never_wait_on_the_file_lock(
    tmp_path: Path, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a 1 ms busy timeout, any writer that has to wait for SQLite's lock fails at once
    # with "database is locked": the store's own writers must queue before they reach it
    # (a flow writing while the engine records runs, as `sync --once` does).
    monkeypatch.setattr(store_engine, "SQLITE_BUSY_TIMEOUT_MS", 1)
    store = await open_store(f"sqlite:///{tmp_path / 'x.db'}", clock=fake_clock)
    try:
        await store.create_connection("acme")

        async def flow(n: int) -> None:
            for i in range(20):
                await store.set_cursor("acme", f"flow-{n}", str(i))
                await store.append_audit(
                    AuditEvent(
                        connection="acme",
                        flow=f"flow-{n}",
                        direction="internal",
                        entity="test",
                        action="write",
                        outcome="ok",
                    )
                )

        async def keeper() -> None:
            for i in range(40):
                await store.set_cursor("acme", "orders.last_run", str(i))

        await asyncio.gather(keeper(), *(flow(n) for n in range(4)))
        assert await store.count_audit_events() == 80
        assert [c.value for c in await store.list_cursors("acme")] == ["19"] * 4 + ["39"]
    finally:
        await store.close()
