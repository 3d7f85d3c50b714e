"""The many-row store methods (a createorders batch in one or two transactions), on SQLite and
PostgreSQL: the same outcomes as the one-row methods, in a bounded number of statements."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from mlconnector.clock import FakeClock
from mlconnector.http.redact import Redactor
from mlconnector.store import (
    AuditEvent,
    AuditQuery,
    Link,
    OperationState,
    Store,
    UnknownConnectionError,
)

S = OperationState


@contextmanager
def counted(store: Store) -> Iterator[dict[str, int]]:
    """Statements and commits run on the store's engine inside the block."""
    counts = {"statements": 0, "commits": 0}

    def statement(*_: Any) -> None:
        counts["statements"] += 1

    def commit(*_: Any) -> None:
        counts["commits"] += 1

    engine = store.engine.sync_engine
    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    try:
        yield counts
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)


def _items(n: int, prefix: str = "k") -> list[tuple[str, str, dict[str, Any]]]:
    return [("ss.order.upsert", f"{prefix}{i}", {"n": i}) for i in range(n)]


async def test_enqueue_many_is_insert_or_get_in_order(store: Store, acme: str) -> None:
    first = await store.enqueue_many(acme, "orders", _items(3))
    assert [e.created for e in first] == [True, True, True]
    assert [e.operation.idempotency_key for e in first] == ["k0", "k1", "k2"]
    assert all(e.operation.state is S.PENDING and not e.claimed for e in first)
    again = await store.enqueue_many(acme, "orders", [*_items(4), ("ss.order.upsert", "k1", {})])
    assert [e.created for e in again] == [False, False, False, True, False]
    assert [e.operation.id for e in again[:3]] == [e.operation.id for e in first]
    assert again[1].operation.payload == {"n": 1}  # the first payload stays
    assert again[4].operation.id == again[1].operation.id  # a key given twice: one operation
    assert await store.enqueue_many(acme, "orders", []) == []


async def test_enqueue_many_claims_only_what_is_ready(
    store: Store, acme: str, fake_clock: FakeClock
) -> None:
    ops = [e.operation for e in await store.enqueue_many(acme, "orders", _items(5))]
    await store.confirm(ops[0].id, remote_ref="ss-1")
    await store.fail(
        ops[1].id, "503", next_attempt_at=fake_clock.now() + timedelta(hours=1), max_attempts=5
    )
    await store.fail(ops[2].id, "503", next_attempt_at=fake_clock.now(), max_attempts=5)
    await store.fail(ops[3].id, "refused", next_attempt_at=fake_clock.now(), max_attempts=1)
    fake_clock.advance(1)
    with counted(store) as counts:
        got = await store.enqueue_many(acme, "orders", _items(6), claim=True)
    assert counts["commits"] == 1  # one transaction for enqueue + mark sent
    states = [(e.operation.state, e.claimed) for e in got]
    assert states == [
        (S.CONFIRMED, False),
        (S.FAILED, False),  # not due yet
        (S.SENT, True),  # failed and due
        (S.DEAD, False),
        (S.SENT, True),  # pending
        (S.SENT, True),  # new
    ]
    assert got[4].operation.updated_at == fake_clock.now()
    stored = await store.get_operation(got[5].operation.id)
    assert stored is not None
    assert stored.state is S.SENT


async def test_enqueue_many_refuses_an_unknown_connection(store: Store) -> None:
    with pytest.raises(UnknownConnectionError):
        await store.enqueue_many("nobody", "orders", _items(2))


async def test_concurrent_enqueue_many_creates_each_key_once(store: Store, acme: str) -> None:
    results = await asyncio.gather(
        *(store.enqueue_many(acme, "orders", _items(20)) for _ in range(4))
    )
    for i in range(20):
        ids = {r[i].operation.id for r in results}
        assert len(ids) == 1
        assert sum(r[i].created for r in results) == 1
    assert len(await store.list_operations(connection=acme, limit=100)) == 20


async def test_mark_sent_many_leaves_confirmed_and_dead_alone(store: Store, acme: str) -> None:
    ops = [e.operation for e in await store.enqueue_many(acme, "orders", _items(3))]
    await store.confirm(ops[0].id)
    await store.fail(ops[1].id, "x", next_attempt_at=store.clock.now(), max_attempts=1)
    sent = await store.mark_sent_many([op.id for op in ops])
    assert [op.id for op in sent] == [ops[2].id]
    assert sent[0].state is S.SENT
    assert await store.mark_sent_many([]) == []


async def test_settle_batch_confirms_links_and_audits_in_one_transaction(
    store: Store, acme: str
) -> None:
    ops = [e.operation for e in await store.enqueue_many(acme, "orders", _items(100), claim=True)]
    await store.confirm(ops[0].id, remote_ref="kept")
    await store.fail(ops[1].id, "gone", next_attempt_at=store.clock.now(), max_attempts=1)
    await store.save_link(Link(acme, "key-5", "plex-5", "g", ss_order_id="old", content_hash="h0"))
    links = [
        Link(acme, f"key-{i}", f"plex-{i}", "g", ss_order_id=str(i), content_hash=f"h{i}")
        for i in range(100)
    ]
    events = [
        AuditEvent(acme, "orders", "plex->ss", "order", "create", "ok", order_key=f"key-{i}")
        for i in range(100)
    ]
    confirms = [(op.id, None if i in (0, 2) else f"ss-{i}") for i, op in enumerate(ops)]
    with counted(store) as counts:
        done = await store.settle_batch(confirms=confirms, links=links, events=events)
    assert counts["commits"] == 1
    assert counts["statements"] <= 5  # confirm, links, audit, read back: not 100 × each
    by_id = {op.id: op for op in done}
    assert ops[1].id not in by_id  # dead stays dead
    assert len(done) == 99
    assert by_id[ops[0].id].remote_ref == "kept"  # already confirmed: unchanged
    assert by_id[ops[2].id].remote_ref is None  # a None ref keeps what was stored (nothing)
    assert by_id[ops[3].id].remote_ref == "ss-3"
    assert all(op.state is S.CONFIRMED and op.last_error is None for op in done)
    dead = await store.get_operation(ops[1].id)
    assert dead is not None
    assert dead.state is S.DEAD
    link5 = await store.get_link(acme, "key-5")
    assert link5 is not None
    assert (link5.ss_order_id, link5.content_hash) == ("5", "h5")  # upserted
    assert len(await store.list_links(acme)) == 100
    assert await store.count_audit_events(connection=acme) == 100


async def test_settle_batch_is_all_or_nothing(store: Store, acme: str) -> None:
    ops = [e.operation for e in await store.enqueue_many(acme, "orders", _items(3), claim=True)]
    bad = [Link("nobody", "a", "p", "g"), Link("nobody", "b", "p", "g")]
    with pytest.raises(UnknownConnectionError):
        await store.settle_batch(confirms=[(op.id, "x") for op in ops], links=bad)
    for op in ops:
        still = await store.get_operation(op.id)
        assert still is not None
        assert still.state is S.SENT  # nothing confirmed when the links could not be saved
    assert await store.list_links(acme) == []


async def test_append_audits_redacts_like_append_audit(store: Store, acme: str) -> None:
    redactor = Redactor()
    redactor.add("s3cr3t-value-123456")
    redacting = Store(store.engine, clock=store.clock, redactor=redactor)
    await redacting.append_audits(
        [
            AuditEvent(acme, "orders", "plex->ss", "order", "write", "failed", details={"e": m})
            for m in ("token s3cr3t-value-123456 refused", "fine")
        ]
    )
    found = await store.search_audit(AuditQuery(connection=acme))
    assert sorted(e.details["e"] for e in found) == ["fine", "token *** refused"]


async def test_links_of_orders_and_get_links(store: Store, acme: str) -> None:
    await store.settle_batch(
        links=[
            Link(acme, "k1", "p1", "g1"),
            Link(acme, "k2", "p1", "g2"),
            Link(acme, "k3", "p2", "g1"),
        ]
    )
    found = await store.links_of_orders(acme, ["p1", "p2", "p3"])
    assert {k: [x.order_key for x in v] for k, v in found.items()} == {
        "p1": ["k1", "k2"],
        "p2": ["k3"],
        "p3": [],
    }
    got = await store.get_links(acme, ["k3", "k1", "missing", "k1"])
    assert sorted(got) == ["k1", "k3"]
    assert got["k3"].plex_order_id == "p2"


async def test_receive_webhooks_stores_many_in_one_transaction(store: Store, acme: str) -> None:
    await store.receive_webhook(acme, b"old", {})
    deliveries = [(acme, b"b%d" % i, {"user-agent": "ss"}) for i in range(50)]
    deliveries += [(acme, b"old", {}), (acme, b"b7", {})]
    with counted(store) as counts:
        got = await store.receive_webhooks(deliveries)
    assert counts["commits"] == 1
    assert counts["statements"] <= 4
    assert [r.created for r in got[:50]] == [True] * 50
    assert (got[50].created, got[51].created) == (False, False)  # stored before; twice here
    assert got[51].item.id == got[7].item.id
    assert got[0].item.headers == {"user-agent": "ss"}
    pending = await store.pending_webhooks(connection=acme, limit=100)
    assert len(pending) == 51
    assert await store.receive_webhooks([]) == []


async def test_receive_webhooks_refuses_an_unknown_connection(store: Store) -> None:
    with pytest.raises(UnknownConnectionError):
        await store.receive_webhooks([("nobody", b"x", {})])
