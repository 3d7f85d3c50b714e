"""Read-only aggregates for /healthz, /metrics and the dashboard: ping, audit and inbox counts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from mlconnector.clock import FakeClock
from mlconnector.store import AuditEvent, Store, StoreError, open_store
from mlconnector.store.engine import create_engine


def _event(connection: str) -> AuditEvent:
    return AuditEvent(
        connection=connection,
        flow="orders",
        direction="plex->ss",
        entity="order",
        action="create",
        outcome="ok",
    )


async def test_ping_answers(store: Store) -> None:
    await store.ping()


async def test_ping_on_an_unreachable_database_is_a_store_error(fake_clock: FakeClock) -> None:
    # nothing listens on port 1 of loopback: every connection attempt is refused at once
    broken = Store(create_engine("postgresql://ping-user@127.0.0.1:1/mlc"), clock=fake_clock)
    try:
        with pytest.raises(StoreError, match="did not answer") as caught:
            await broken.ping()
    finally:
        await broken.close()
    assert "ping-user" not in str(caught.value)  # the driver's text stays out of the message
    assert caught.value.__cause__ is not None


async def test_count_audit_events(store: Store, acme: str) -> None:
    assert await store.count_audit_events() == 0
    await store.create_connection("other")
    for name in (acme, acme, "other"):
        await store.append_audit(_event(name))
    assert await store.count_audit_events() == 3
    assert await store.count_audit_events(connection=acme) == 2
    assert await store.count_audit_events(connection="other") == 1
    assert await store.count_audit_events(connection="nobody") == 0


async def test_count_pending_webhooks_per_connection(store: Store, acme: str) -> None:
    assert await store.count_pending_webhooks() == {}
    await store.create_connection("other")
    await store.create_connection("quiet")
    a = (await store.receive_webhook(acme, b"a", {})).item
    await store.receive_webhook(acme, b"b", {})
    await store.receive_webhook(acme, b"b", {})  # a duplicate delivery is not counted twice
    await store.receive_webhook("other", b"a", {})
    await store.record_webhook_attempt(a.id, "fetch failed: HTTP 503")  # still pending
    assert await store.count_pending_webhooks() == {acme: 2, "other": 1}
    await store.finish_webhook(a.id, "ok")
    assert await store.count_pending_webhooks() == {acme: 1, "other": 1}  # "quiet" is absent


async def test_sqlite_aggregates_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        await store.create_connection("acme")
        await store.receive_webhook("acme", b"a", {})
        async with store.engine.begin() as writer:
            # This transaction holds SQLite's write lock (BEGIN IMMEDIATE) until the block ends.
            await writer.execute(text("UPDATE webhook_inbox SET outcome = 'x'"))
            # A hang guard, not a timing assertion: taking the write lock would wait 30 s.
            await asyncio.wait_for(store.ping(), 10)
            assert await asyncio.wait_for(store.count_audit_events(), 10) == 0
            assert await asyncio.wait_for(store.count_pending_webhooks(), 10) == {"acme": 1}
    finally:
        await store.close()
