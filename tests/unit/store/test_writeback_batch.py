"""The shipments write-back batch methods, on SQLite and PostgreSQL: a page staged in one
transaction (per row when a row is bad), one transaction per write-back (settled and the next
claimed), and the page look-ups."""

from __future__ import annotations

from typing import Any

from mlconnector.clock import FakeClock
from mlconnector.store import (
    AuditEvent,
    AuditQuery,
    Enqueued,
    Link,
    OperationState,
    StagedLine,
    StagedWrite,
    Store,
    StoreError,
)
from tests.unit.store.test_batch import counted

S = OperationState
KIND = "plex.shipment.write_back"


def _write(n: int, **payload: Any) -> StagedWrite:
    source = f"ss-shipment-{n}"
    lines = (StagedLine(source, f"r{n}a", 2, sku="A"), StagedLine(source, f"r{n}b", 1))
    return StagedWrite(KIND, f"shipments:acme:{source}", {"n": n, **payload}, lines)


def _ok(staged: list[Enqueued | StoreError]) -> list[Enqueued]:
    assert all(isinstance(s, Enqueued) for s in staged)
    return [s for s in staged if isinstance(s, Enqueued)]


async def test_stage_batch_enqueues_and_records_lines_in_one_transaction(
    store: Store, acme: str
) -> None:
    with counted(store) as counts:
        staged = _ok(await store.stage_batch(acme, "shipments", [_write(i) for i in range(50)]))
    assert counts["commits"] == 1
    assert counts["statements"] <= 4  # operations, lines, one read back (+ BEGIN on SQLite)
    assert [s.created for s in staged] == [True] * 50
    assert all(s.operation.state is S.PENDING and not s.claimed for s in staged)
    assert [s.operation.payload["n"] for s in staged] == list(range(50))
    lines = await store.get_shipment_lines(acme, "ss-shipment-7")
    assert [(x.line_key, x.quantity, x.sku, x.written_back_at) for x in lines] == [
        ("r7a", 2, "A", None),
        ("r7b", 1, None, None),
    ]
    assert await store.unwritten_quantities(acme) == {"A": 100}


async def test_stage_batch_is_insert_or_get(store: Store, acme: str) -> None:
    first = _ok(await store.stage_batch(acme, "shipments", [_write(1)]))
    again = _ok(
        await store.stage_batch(acme, "shipments", [_write(1, extra=9), _write(2), _write(1)])
    )
    assert [s.created for s in again] == [False, True, False]
    assert again[0].operation.id == first[0].operation.id == again[2].operation.id
    assert again[0].operation.payload == {"n": 1}  # the first payload is kept
    assert len(await store.get_shipment_lines(acme, "ss-shipment-1")) == 2
    assert await store.unwritten_quantities(acme) == {"A": 4}


async def test_one_bad_row_fails_alone(store: Store, acme: str) -> None:
    source = "ss-shipment-2"
    no_quantity = StagedLine(source, "r2", None)  # type: ignore[arg-type]
    bad = StagedWrite(KIND, f"shipments:acme:{source}", {"n": 2}, (no_quantity,))
    not_json = _write(4, oops=object())
    staged = await store.stage_batch(acme, "shipments", [_write(1), bad, _write(3), not_json])
    assert isinstance(staged[1], StoreError)
    assert "shipments:acme:ss-shipment-2" in str(staged[1])
    assert isinstance(staged[3], StoreError)
    good = [s for s in staged if isinstance(s, Enqueued)]
    assert [s.operation.payload["n"] for s in good] == [1, 3]
    assert all(s.created for s in good)
    for key in ("shipments:acme:ss-shipment-2", "shipments:acme:ss-shipment-4"):
        assert await store.get_operation_by_key(key) is None
    assert await store.get_shipment_lines(acme, "ss-shipment-4") == []
    assert len(await store.get_shipment_lines(acme, "ss-shipment-3")) == 2


async def test_settle_and_claim_confirms_stamps_audits_and_claims_in_one_transaction(
    store: Store, acme: str, fake_clock: FakeClock
) -> None:
    staged = _ok(await store.stage_batch(acme, "shipments", [_write(i) for i in range(3)]))
    ops = [s.operation for s in staged]
    confirmed, claimed = await store.settle_and_claim(claim=[ops[0].id])
    assert confirmed == []
    assert [(o.id, o.state) for o in claimed] == [(ops[0].id, S.SENT)]
    event = AuditEvent(
        acme, "shipments", "ss->plex", "shipment", "write_back", "ok", shipment_id="1"
    )
    fake_clock.advance(5)
    with counted(store) as counts:
        confirmed, claimed = await store.settle_and_claim(
            confirms=[(ops[0].id, "plex-1")],
            lines_written=[(acme, "ss-shipment-0"), (acme, "ss-shipment-0")],
            events=[event],
            claim=[ops[1].id],
        )
    assert counts["commits"] == 1
    assert [(o.id, o.state, o.remote_ref) for o in confirmed] == [
        (ops[0].id, S.CONFIRMED, "plex-1")
    ]
    assert [(o.id, o.state) for o in claimed] == [(ops[1].id, S.SENT)]
    stamped = fake_clock.now()
    lines = await store.get_shipment_lines(acme, "ss-shipment-0")
    assert [x.written_back_at for x in lines] == [stamped] * 2
    assert all(
        x.written_back_at is None for x in await store.get_shipment_lines(acme, "ss-shipment-1")
    )
    events = await store.search_audit(AuditQuery(connection=acme, shipment_id="1"))
    assert [e.shipment_id for e in events] == ["1"]
    # never claimed twice (a sent one is left alone), a confirmed one is not claimed, and a
    # line written back keeps its first stamp
    fake_clock.advance(5)
    confirmed, claimed = await store.settle_and_claim(
        lines_written=[(acme, "ss-shipment-0")], claim=[ops[0].id, ops[1].id, ops[2].id]
    )
    assert [o.id for o in claimed] == [ops[2].id]
    lines = await store.get_shipment_lines(acme, "ss-shipment-0")
    assert [x.written_back_at for x in lines] == [stamped] * 2


async def test_settle_and_claim_claims_a_failed_operation(store: Store, acme: str) -> None:
    op = _ok(await store.stage_batch(acme, "shipments", [_write(1)]))[0].operation
    await store.mark_sent(op.id)
    await store.fail(op.id, "503", next_attempt_at=store.clock.now(), max_attempts=5)
    _, claimed = await store.settle_and_claim(claim=[op.id])
    assert [(o.state, o.attempts) for o in claimed] == [(S.SENT, 1)]


async def test_finish_webhooks_in_one_statement(store: Store, acme: str) -> None:
    items = [(await store.receive_webhook(acme, f"b{i}".encode(), {})).item for i in range(4)]
    with counted(store) as counts:
        await store.finish_webhooks([(items[0].id, "ok: 1 record(s)"), (items[2].id, "ignored")])
    assert counts["commits"] == 1
    pending = await store.pending_webhooks(connection=acme)
    assert [p.id for p in pending] == [items[1].id, items[3].id]
    done = await store.get_webhook(items[2].id)
    assert done is not None
    assert (done.outcome, done.attempts, done.processed_at) == ("ignored", 1, store.clock.now())
    await store.finish_webhooks([])


async def test_operations_by_keys(store: Store, acme: str) -> None:
    staged = _ok(await store.stage_batch(acme, "shipments", [_write(i) for i in range(3)]))
    found = await store.operations_by_keys(
        ["shipments:acme:ss-shipment-2", "nope", "shipments:acme:ss-shipment-0"]
    )
    assert {k: o.id for k, o in found.items()} == {
        "shipments:acme:ss-shipment-2": staged[2].operation.id,
        "shipments:acme:ss-shipment-0": staged[0].operation.id,
    }
    assert await store.operations_by_keys([]) == {}


async def test_links_by_ss_order_ids(store: Store, acme: str) -> None:
    await store.settle_batch(
        links=[
            Link(acme, "k-b", "p1", "g", ss_order_id="10"),
            Link(acme, "k-a", "p1", "g", ss_order_id="10"),
            Link(acme, "k-c", "p2", "g", ss_order_id="11"),
            Link(acme, "k-d", "p3", "g"),
        ]
    )
    await store.create_connection("other")
    await store.save_link(Link("other", "k-x", "p9", "g", ss_order_id="12"))
    found = await store.links_by_ss_order_ids(acme, ["10", "11", "12", "13"])
    assert {k: v.order_key for k, v in found.items()} == {"10": "k-a", "11": "k-c"}
    assert found["10"] == (await store.find_links(acme, ss_order_id="10"))[0]


async def test_settle_and_claim_returns_an_operation_already_confirmed(
    store: Store, acme: str
) -> None:
    ops = [
        s.operation for s in _ok(await store.stage_batch(acme, "shipments", [_write(1), _write(2)]))
    ]
    for op in ops:
        await store.confirm(op.id, remote_ref=f"first-{op.id}")
    for confirms in ([(ops[0].id, "again")], [(ops[0].id, None), (ops[1].id, "again")]):
        confirmed, claimed = await store.settle_and_claim(confirms=confirms)
        assert [(o.id, o.remote_ref) for o in confirmed] == [
            (op.id, f"first-{op.id}") for op in ops[: len(confirms)]
        ]
        assert claimed == []
