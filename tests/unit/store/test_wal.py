"""SQLite's WAL checkpointed off the commit path (``Store.checkpoint_wal``, ``store.wal``), with
the commits' own checkpoint kept as the cap that bounds the log."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mlconnector.clock import FakeClock
from mlconnector.store import Store, StoreError, Vault, WalCheckpoint, open_store
from mlconnector.store.wal import checkpoint_periodically, checkpointing
from tests.dbutil import migrated_sqlite

PAGE = 4096


def delivery(i: int) -> tuple[str, bytes, dict[str, str]]:
    url = f"https://ssapi.shipstation.com/shipments?batchId={i}"
    return "acme", json.dumps({"resource_url": url, "resource_type": "SHIP_NOTIFY"}).encode(), {}


async def sqlite_store(
    tmp_path: Path, clock: FakeClock, vault: Vault, **options: int
) -> AsyncIterator[Store]:
    url = migrated_sqlite(tmp_path / "mlconnector.db")
    store = await open_store(url, clock=clock, vault=vault, **options)
    await store.create_connection("acme")
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def store(tmp_path: Path, fake_clock: FakeClock, vault: Vault) -> AsyncIterator[Store]:
    async for opened in sqlite_store(tmp_path, fake_clock, vault):
        yield opened


async def write(store: Store, commits: int, start: int = 0) -> None:
    for i in range(start, start + commits):
        await store.receive_webhooks([delivery(i)])


def wal_bytes(store: Store) -> int:
    return Path(f"{store.engine.url.database}-wal").stat().st_size


async def test_commits_leave_the_log_to_the_checkpoint_below_the_cap(store: Store) -> None:
    await write(store, 400)
    done = await store.checkpoint_wal()
    assert done is not None
    # past SQLite's default of 1,000 pages no commit checkpointed: this is the first
    assert done.wal_frames > 1000
    assert done == WalCheckpoint(
        busy=False, wal_frames=done.wal_frames, checkpointed=done.wal_frames
    )
    assert len(await store.list_webhooks(connection="acme", limit=1000)) == 400


async def test_a_checkpoint_lets_the_log_start_again_from_its_beginning(store: Store) -> None:
    await write(store, 30)
    first = await store.checkpoint_wal()
    assert first is not None
    assert first.checkpointed == first.wal_frames > 0
    size = wal_bytes(store)
    for round_ in range(5):
        await write(store, 30, start=1000 * (round_ + 1))
        again = await store.checkpoint_wal()
        assert again is not None
        assert again.checkpointed == again.wal_frames
    # each round wrote as much as the first: the file was reused, not grown
    assert wal_bytes(store) <= size * 1.5


async def test_the_cap_bounds_the_log_when_no_checkpoint_task_runs(
    tmp_path: Path, fake_clock: FakeClock, vault: Vault
) -> None:
    async for capped in sqlite_store(tmp_path, fake_clock, vault, wal_autocheckpoint=50):
        await write(capped, 300)
        # ~3 pages a commit: ~1,000 frames without the cap; with it, the log is reused once it
        # reaches 50 pages (plus the transaction that crossed it)
        assert wal_bytes(capped) < 100 * (PAGE + 24)
        assert len(await capped.list_webhooks(connection="acme", limit=500)) == 300


async def test_the_task_checkpoints_every_interval(
    store: Store, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    done: list[tuple[float, WalCheckpoint | None]] = []
    three = asyncio.Event()
    real = store.checkpoint_wal

    async def counted() -> WalCheckpoint | None:
        result = await real()
        done.append((fake_clock.monotonic(), result))
        if len(done) == 3:
            three.set()
        return result

    monkeypatch.setattr(store, "checkpoint_wal", counted)
    await write(store, 20)
    started = fake_clock.monotonic()
    async with checkpointing(store, fake_clock, interval=1.0):
        await asyncio.wait_for(three.wait(), 10)
    first = done[0][1]
    assert first is not None
    assert first.checkpointed == first.wal_frames > 0  # the 20 commits, now in the file
    # one interval before the first and between the others (the clock jumps while idle)
    times = [started] + [at for at, _ in done[:3]]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))
    count = len(done)
    await fake_clock.sleep(5.0)
    assert len(done) == count  # stopped with the block


async def test_a_failed_checkpoint_does_not_stop_the_task(
    store: Store,
    fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[WalCheckpoint | None] = []
    second = asyncio.Event()
    real = store.checkpoint_wal

    async def fails_first() -> WalCheckpoint | None:
        if not calls:
            calls.append(None)
            raise StoreError("disk I/O error")
        calls.append(await real())
        second.set()
        return calls[-1]

    monkeypatch.setattr(store, "checkpoint_wal", fails_first)
    await write(store, 5)
    async with checkpointing(store, fake_clock, interval=1.0):
        await asyncio.wait_for(second.wait(), 10)
    after = calls[1]
    assert after is not None
    assert after.checkpointed == after.wal_frames > 0  # the next one did the work
    assert "WAL checkpoint failed (StoreError)" in caplog.text


@pytest.mark.postgres
async def test_postgresql_has_nothing_to_checkpoint(
    pg_session_url: str, fake_clock: FakeClock
) -> None:
    store = await open_store(pg_session_url, clock=fake_clock)
    try:
        assert await store.checkpoint_wal() is None
        await checkpoint_periodically(store, fake_clock)  # returns: no task to run
    finally:
        await store.close()
