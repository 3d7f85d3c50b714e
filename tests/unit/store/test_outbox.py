"""The idempotent outbox: insert-or-get, the state machine, dead after the budget, replay."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from mlconnector.clock import FakeClock
from mlconnector.store import OperationState, OperationStateError, Store, UnknownConnectionError
from mlconnector.store.schema import operations

S = OperationState


async def _count(store: Store) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(operations))).scalar_one())


async def test_enqueue_creates_pending_operation(store: Store, acme: str) -> None:
    result = await store.enqueue(acme, "orders", "create_order", "acme:order:1", {"n": 1})
    op = result.operation
    assert result.created is True
    assert (op.state, op.attempts, op.payload) == (S.PENDING, 0, {"n": 1})
    assert (op.connection, op.flow, op.kind, op.idempotency_key) == (
        acme,
        "orders",
        "create_order",
        "acme:order:1",
    )
    assert op.created_at.tzinfo is not None
    assert await store.get_operation(op.id) == op
    assert await store.get_operation_by_key("acme:order:1") == op


async def test_enqueue_same_key_returns_existing(store: Store, acme: str) -> None:
    first = await store.enqueue(acme, "orders", "create_order", "k", {"v": 1})
    await store.mark_sent(first.operation.id)
    again = await store.enqueue(acme, "orders", "create_order", "k", {"v": 2})
    assert again.created is False
    assert again.operation.id == first.operation.id
    assert again.operation.payload == {"v": 1}  # the key wins; the first payload is kept
    assert again.operation.state is S.SENT
    assert await _count(store) == 1


async def test_concurrent_enqueue_same_key_creates_one(store: Store, acme: str) -> None:
    results = await asyncio.gather(
        *(store.enqueue(acme, "orders", "create", "same-key", {"i": i}) for i in range(8))
    )
    assert sum(r.created for r in results) == 1
    assert len({r.operation.id for r in results}) == 1
    assert await _count(store) == 1


async def test_enqueue_unknown_connection_is_clear(store: Store) -> None:
    with pytest.raises(UnknownConnectionError, match="nowhere"):
        await store.enqueue("nowhere", "orders", "create", "k", {})


async def test_happy_path_pending_sent_confirmed(store: Store, acme: str) -> None:
    op = (await store.enqueue(acme, "orders", "create", "k", {})).operation
    sent = await store.mark_sent(op.id)
    assert sent.state is S.SENT
    confirmed = await store.confirm(op.id, remote_ref="ss-order-42")
    assert (confirmed.state, confirmed.remote_ref) == (S.CONFIRMED, "ss-order-42")
    # Confirming twice is harmless and keeps the reference.
    assert (await store.confirm(op.id)).remote_ref == "ss-order-42"
    with pytest.raises(OperationStateError, match="confirmed"):
        await store.mark_sent(op.id)
    with pytest.raises(OperationStateError, match="confirmed"):
        await store.fail(op.id, "boom", next_attempt_at=op.created_at, max_attempts=3)


async def test_fail_then_dead_after_budget(store: Store, acme: str, fake_clock: FakeClock) -> None:
    op = (await store.enqueue(acme, "orders", "create", "k", {})).operation
    retry_at = fake_clock.now() + timedelta(minutes=5)
    for attempt in (1, 2):
        await store.mark_sent(op.id)
        failed = await store.fail(
            op.id, f"HTTP 500 #{attempt}", next_attempt_at=retry_at, max_attempts=3
        )
        assert (failed.state, failed.attempts, failed.next_attempt_at) == (
            S.FAILED,
            attempt,
            retry_at,
        )
        assert failed.last_error == f"HTTP 500 #{attempt}"
    await store.mark_sent(op.id)
    dead = await store.fail(op.id, "HTTP 500 #3", next_attempt_at=retry_at, max_attempts=3)
    assert (dead.state, dead.attempts, dead.next_attempt_at) == (S.DEAD, 3, None)
    with pytest.raises(OperationStateError, match="dead"):
        await store.mark_sent(op.id)
    with pytest.raises(OperationStateError, match="dead"):
        await store.confirm(op.id)


async def test_fail_redacts_known_secrets(store: Store, acme: str) -> None:
    await store.set_credential(acme, "ss_v1_secret", "very-secret-api-value")
    op = (await store.enqueue(acme, "orders", "create", "k", {})).operation
    failed = await store.fail(
        op.id,
        "401 for key very-secret-api-value",
        next_attempt_at=op.created_at,
        max_attempts=5,
    )
    assert failed.last_error is not None
    assert "very-secret-api-value" not in failed.last_error
    assert "***" in failed.last_error


async def test_unknown_operation(store: Store) -> None:
    with pytest.raises(OperationStateError, match="no such operation"):
        await store.mark_sent(999)
    assert await store.get_operation(999) is None


async def test_due_returns_pending_and_failed_when_due(
    store: Store, acme: str, fake_clock: FakeClock
) -> None:
    now = fake_clock.now()
    pending = (await store.enqueue(acme, "orders", "create", "p", {})).operation
    later = (await store.enqueue(acme, "orders", "create", "f", {})).operation
    await store.fail(later.id, "x", next_attempt_at=now + timedelta(minutes=10), max_attempts=5)
    sent = (await store.enqueue(acme, "orders", "create", "s", {})).operation
    await store.mark_sent(sent.id)
    other_flow = (await store.enqueue(acme, "inventory", "adjust", "i", {})).operation

    assert [op.id for op in await store.due(acme, "orders", now=now)] == [pending.id]
    due_later = await store.due(acme, "orders", now=now + timedelta(minutes=10))
    assert [op.id for op in due_later] == [pending.id, later.id]
    assert [op.id for op in await store.due(acme, "inventory", now=now)] == [other_flow.id]
    assert await store.due(acme, "orders", now=now, limit=0) == []


async def test_left_sent_for_crash_recovery(store: Store, acme: str, fake_clock: FakeClock) -> None:
    old = (await store.enqueue(acme, "orders", "create", "old", {})).operation
    await store.mark_sent(old.id)
    fake_clock.advance(600)
    recent = (await store.enqueue(acme, "orders", "create", "recent", {})).operation
    await store.mark_sent(recent.id)
    cutoff = fake_clock.now() - timedelta(minutes=5)
    assert [op.id for op in await store.left_sent(older_than=cutoff)] == [old.id]
    assert [op.id for op in await store.left_sent(older_than=fake_clock.now(), flow="orders")] == [
        old.id,
        recent.id,
    ]
    assert await store.left_sent(older_than=fake_clock.now(), connection="other") == []
    # A crash-recovered operation may be sent again, then confirmed.
    assert (await store.mark_sent(old.id)).state is S.SENT


async def test_replay_moves_failed_and_dead_back_without_duplicating(
    store: Store, acme: str, fake_clock: FakeClock
) -> None:
    now = fake_clock.now()
    dead = (await store.enqueue(acme, "orders", "create", "dead", {})).operation
    await store.fail(dead.id, "e", next_attempt_at=now, max_attempts=1)
    failed = (await store.enqueue(acme, "orders", "create", "failed", {})).operation
    await store.fail(failed.id, "e", next_attempt_at=now + timedelta(hours=1), max_attempts=5)
    done = (await store.enqueue(acme, "orders", "create", "done", {})).operation
    await store.confirm(done.id)
    before = await _count(store)

    replayed = await store.replay([dead.id, failed.id, done.id])
    assert [op.id for op in replayed] == [dead.id, failed.id]
    assert all(op.state is S.PENDING and op.attempts == 0 for op in replayed)
    assert all(op.next_attempt_at is None for op in replayed)
    assert (await store.get_operation(done.id)).state is S.CONFIRMED  # type: ignore[union-attr]
    # Replaying again does nothing; enqueueing the same key again still finds the same row.
    assert await store.replay([dead.id, failed.id]) == []
    assert (await store.enqueue(acme, "orders", "create", "dead", {})).created is False
    assert await _count(store) == before
    assert {op.id for op in await store.due(acme, "orders", now=now)} == {dead.id, failed.id}


async def test_a_replayed_operation_that_lands_has_no_last_error(
    store: Store, acme: str, fake_clock: FakeClock
) -> None:
    op = (await store.enqueue(acme, "orders", "create", "again", {})).operation
    dead = await store.fail(op.id, "HTTP 503", next_attempt_at=fake_clock.now(), max_attempts=1)
    assert (dead.state, dead.last_error) == (S.DEAD, "HTTP 503")
    (replayed,) = await store.replay([op.id])
    assert replayed.last_error == "HTTP 503"  # still shown while it waits to be sent
    await store.mark_sent(op.id)
    done = await store.confirm(op.id, remote_ref="ss-1")
    assert (done.state, done.last_error, done.remote_ref) == (S.CONFIRMED, None, "ss-1")
    assert await store.get_operation(op.id) == done
    # a failed retry that lands (look-before-send confirms from failed) is cleared as well
    other = (await store.enqueue(acme, "orders", "create", "retry", {})).operation
    await store.fail(other.id, "timeout", next_attempt_at=fake_clock.now(), max_attempts=5)
    assert (await store.confirm(other.id)).last_error is None


async def test_replay_by_filter(store: Store, acme: str, fake_clock: FakeClock) -> None:
    await store.create_connection("other")
    now = fake_clock.now()
    ids = {}
    for conn, flow in [(acme, "orders"), (acme, "inventory"), ("other", "orders")]:
        op = (await store.enqueue(conn, flow, "k", f"{conn}-{flow}", {})).operation
        await store.fail(op.id, "e", next_attempt_at=now, max_attempts=1)
        ids[(conn, flow)] = op.id
    assert [op.id for op in await store.replay(connection=acme, flow="orders")] == [
        ids[(acme, "orders")]
    ]
    only_dead = await store.replay(connection=acme, states=[S.DEAD])
    assert [op.id for op in only_dead] == [ids[(acme, "inventory")]]
    assert [op.id for op in await store.replay()] == [ids[("other", "orders")]]
    with pytest.raises(ValueError, match="only failed or dead"):
        await store.replay(states=[S.CONFIRMED])


async def test_list_and_count_operations(store: Store, acme: str, fake_clock: FakeClock) -> None:
    a = (await store.enqueue(acme, "orders", "create", "a", {})).operation
    fake_clock.advance(1)
    b = (await store.enqueue(acme, "orders", "create", "b", {})).operation
    fake_clock.advance(1)
    await store.confirm(a.id)
    listed = await store.list_operations(connection=acme)
    assert [op.id for op in listed] == [a.id, b.id]  # most recently updated first
    assert [op.id for op in await store.list_operations(states=[S.PENDING])] == [b.id]
    counts = await store.count_operations(connection=acme)
    assert counts[S.PENDING] == 1
    assert counts[S.CONFIRMED] == 1
    assert counts[S.DEAD] == 0
