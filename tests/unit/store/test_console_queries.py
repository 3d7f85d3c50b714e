"""The operator console's queries: keyset pages, filters, error groups, dismissal, run history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from mlconnector.clock import FakeClock
from mlconnector.store import (
    AuditEvent,
    AuditQuery,
    OperationFilter,
    OperationState,
    Store,
    error_cause,
)
from mlconnector.store.engine import create_engine, migrate
from mlconnector.store.schema import connections, operations
from mlconnector.sync.runs import RunReport, record_run

_S = OperationState


async def _ops(
    store: Store, n: int, *, kind: str = "ss.order.upsert", flow: str = "orders"
) -> list[int]:
    ids = []
    for i in range(n):
        enq = await store.enqueue("acme", flow, kind, f"{flow}:acme:{kind}:{i}", {"i": i})
        ids.append(enq.operation.id)
    return ids


async def _fail(store: Store, op_id: int, error: str, *, dead: bool) -> None:
    now = store.clock.now()
    await store.fail(op_id, error, next_attempt_at=now, max_attempts=1 if dead else 9)


async def test_operations_page_through_every_row_both_ways(store: Store, acme: str) -> None:
    ids = await _ops(store, 120)
    everything = OperationFilter()
    first = await store.operations_page(everything, limit=50)
    assert [op.id for op in first.items] == sorted(ids, reverse=True)[:50]
    assert (first.has_newer, first.has_older) == (False, True)
    second = await store.operations_page(everything, before=first.items[-1].id, limit=50)
    third = await store.operations_page(everything, before=second.items[-1].id, limit=50)
    assert len(third.items) == 20
    assert (third.has_newer, third.has_older) == (True, False)
    seen = [op.id for page in (first, second, third) for op in page.items]
    assert seen == sorted(ids, reverse=True)  # every row once, in order
    # and back: the page newer than the third page is the second one
    back = await store.operations_page(everything, after=third.items[0].id, limit=50)
    assert [op.id for op in back.items] == [op.id for op in second.items]
    assert (back.has_newer, back.has_older) == (True, True)
    top = await store.operations_page(everything, after=second.items[0].id, limit=50)
    assert [op.id for op in top.items] == [op.id for op in first.items]
    assert top.has_newer is False


async def test_operation_filters(store: Store, acme: str, fake_clock: FakeClock) -> None:
    await store.create_connection("other")
    orders = await _ops(store, 3)
    fake_clock.advance(3600)
    inventory = await _ops(store, 2, kind="ss.inventory.adjust", flow="inventory")
    other = await store.enqueue("other", "orders", "ss.order.upsert", "orders:other:1", {})
    await _fail(store, orders[0], "ShipStation said 400: orderNumber too long", dead=True)
    await store.append_audit(
        AuditEvent(
            connection="acme",
            flow="orders",
            direction="plex->ss",
            entity="order",
            action="write",
            outcome="dead",
            ss_order_number="SO-77",
            idempotency_key="orders:acme:ss.order.upsert:1",
        )
    )

    async def ids(**kw: object) -> list[int]:
        page = await store.operations_page(OperationFilter(**kw), limit=100)  # type: ignore[arg-type]
        return sorted(op.id for op in page.items)

    assert await store.operation_facets() == {
        "flows": ["inventory", "orders"],
        "kinds": ["ss.inventory.adjust", "ss.order.upsert"],
    }
    assert await store.count_in_state(_S.DEAD) == 1
    assert await store.count_in_state(_S.DEAD, connection="other") == 0
    assert await ids(connection="other") == [other.operation.id]
    assert await ids(flow="inventory") == inventory
    assert await ids(kind="ss.inventory.adjust", connection="acme") == inventory
    assert await ids(states=(_S.DEAD,)) == [orders[0]]
    assert await ids(states=(_S.DEAD, _S.PENDING), flow="inventory") == inventory
    # date range on the last change: the inventory ops were made an hour later
    start = fake_clock.now()
    assert await ids(since=start) == sorted([*inventory, other.operation.id, orders[0]])
    assert await ids(until=start) == orders[1:]
    # text: the error, a piece of the idempotency key, the id, a record reference in the audit
    assert await ids(text="ORDERNUMBER too") == [orders[0]]  # case-insensitive
    assert await ids(text="inventory:acme") == inventory
    assert await ids(text=str(orders[2])) == [orders[2]]
    assert await ids(text="SO-77") == [orders[1]]
    assert await ids(text="100%_") == []  # LIKE wildcards are literal


def test_error_cause_takes_out_what_differs_between_records() -> None:
    a = error_cause("ShipStation said 400 for plex-79870-1001-2026-01-15: order 5512 is frozen")
    b = error_cause("ShipStation said 400 for plex-79870-2002-2026-02-01: order 99 is frozen")
    c = error_cause("ShipStation said 500 for plex-79870-1001-2026-01-15: order 5512 is frozen")
    assert a == b == "ShipStation said 400 for #: order # is frozen"
    assert c != a  # the HTTP status tells causes apart
    assert error_cause("sku 'AB-12' at 'loc 3' refused") == "sku '#' at '#' refused"
    assert error_cause("request 3f2a9c1e-0b7d-4c1a-9e2f-1a2b3c4d5e6f  timed out") == (
        "request # timed out"
    )
    assert error_cause(None) == "(no error recorded)"


async def test_errors_grouped_by_cause(store: Store, acme: str) -> None:
    ids = await _ops(store, 7)
    for n, op_id in enumerate(ids[:4]):
        await _fail(store, op_id, f"Plex 404: release {1000 + n} not found", dead=n % 2 == 0)
    await _fail(store, ids[4], "timeout after 30 s", dead=True)
    await _fail(store, ids[5], "timeout after 31 s", dead=False)
    await store.confirm(ids[6])

    groups = await store.error_groups(OperationFilter(connection="acme"))
    assert [(g.cause, g.failed, g.dead) for g in groups] == [
        ("Plex 404: release # not found", 2, 2),
        ("timeout after # s", 1, 1),
    ]
    assert groups[0].sample.startswith("Plex 404: release 10")
    assert await store.operations_in_group(OperationFilter(), groups[0].cause) == ids[:4]
    dead_only = OperationFilter(states=(_S.DEAD,))
    assert await store.operations_in_group(dead_only, groups[1].cause) == [ids[4]]
    # a confirmed filter has no group (groups are failed and dead operations only)
    only_confirmed = OperationFilter(states=(_S.CONFIRMED,))
    assert [g.count for g in await store.error_groups(only_confirmed)] == [4, 2]


async def test_dismiss_dead_operations_with_a_reason(store: Store, acme: str) -> None:
    dead, failed = await _ops(store, 2)
    await _fail(store, dead, "order deleted in ShipStation", dead=True)
    await _fail(store, failed, "timeout", dead=False)
    with pytest.raises(ValueError, match="reason"):
        await store.dismiss([dead], reason="  ", actor="ann")

    done = await store.dismiss([dead, failed], reason="order was cancelled by phone", actor="ann")
    assert [op.id for op in done] == [dead]
    assert (await store.get_operation(dead)).state is _S.DISMISSED  # type: ignore[union-attr]
    assert (await store.get_operation(failed)).state is _S.FAILED  # type: ignore[union-attr]
    counts = await store.count_operations(connection="acme")
    assert (counts[_S.DEAD], counts[_S.DISMISSED]) == (0, 1)
    assert await store.replay([dead]) == []  # dismissed is final
    (event,) = await store.search_audit(AuditQuery(connection="acme"))
    assert (event.action, event.idempotency_key) == ("dismiss", done[0].idempotency_key)
    assert event.details["reason"] == "order was cancelled by phone"
    assert event.details["by"] == "ann"
    assert event.details["last_error"] == "order deleted in ShipStation"


def _event(flow: str, outcome: str, **refs: object) -> AuditEvent:
    return AuditEvent(
        connection="acme",
        flow=flow,
        direction="plex->ss",
        entity="inventory" if flow == "inventory" else "order",
        action="write",
        outcome=outcome,
        **refs,  # type: ignore[arg-type]
    )


async def test_audit_page_filters_and_pages_across_equal_times(
    store: Store, acme: str, fake_clock: FakeClock
) -> None:
    start = fake_clock.now()
    for n in range(25):  # five events per instant: the (at, id) key settles the ties
        if n % 5 == 0:
            fake_clock.advance(60)
        flow = "inventory" if n % 2 else "orders"
        details = {"sku": f"SKU-{n % 3}", "location": "A"} if flow == "inventory" else {}
        await store.append_audit(_event(flow, "failed" if n % 4 == 0 else "ok", details=details))

    query = AuditQuery(connection="acme", limit=10)
    pages = [await store.audit_page(query)]
    while pages[-1].has_older:
        last = pages[-1].items[-1]
        assert last.at is not None
        assert last.id is not None
        pages.append(await store.audit_page(query, before=(last.at, last.id)))
    seen = [e.id for p in pages for e in p.items]
    assert seen == list(range(25, 0, -1))
    assert [len(p.items) for p in pages] == [10, 10, 5]
    first_of_last = pages[2].items[0]
    assert first_of_last.at is not None
    assert first_of_last.id is not None
    newer = await store.audit_page(query, after=(first_of_last.at, first_of_last.id))
    assert [e.id for e in newer.items] == [e.id for e in pages[1].items]

    async def ids(**kw: object) -> list[int]:
        page = await store.audit_page(AuditQuery(limit=100, **kw))  # type: ignore[arg-type]
        return sorted(e.id for e in page.items if e.id is not None)

    assert await ids(flow="inventory") == list(range(2, 26, 2))
    assert await ids(outcome="failed") == [1, 5, 9, 13, 17, 21, 25]
    assert await ids(flow="inventory", sku="SKU-1") == [2, 8, 14, 20]  # n = 1, 7, 13, 19
    assert await ids(since=start + timedelta(minutes=5)) == [21, 22, 23, 24, 25]
    assert await ids(until=start + timedelta(minutes=2)) == [1, 2, 3, 4, 5]


async def test_record_run_writes_the_history(
    store: Store, acme: str, fake_clock: FakeClock
) -> None:
    at = fake_clock.now()
    ok = RunReport(connection="acme", flow="orders")
    failed = RunReport(connection="acme", flow="orders", error="Plex 401: not subscribed")
    await record_run(store, ok, at=at, seconds=2.5, owner="w1")
    await record_run(store, failed, at=at + timedelta(minutes=5), seconds=0.25, owner="w2")
    await store.add_run(
        "acme",
        "inventory",
        started_at=at,
        finished_at=at + timedelta(seconds=1),
        outcome="partial",
        counts={"adjusted": 3, "failed": 1, "skipped": 0},
        error=None,
        owner="w1",
    )
    assert await store.run_flows() == [("acme", "inventory"), ("acme", "orders")]
    page = await store.runs_page("acme", "orders", limit=1)
    (latest,) = page.items
    assert (latest.outcome, latest.error, latest.owner) == (
        "failed",
        "Plex 401: not subscribed",
        "w2",
    )
    assert latest.finished_at - latest.started_at == timedelta(seconds=0.25)
    assert page.has_older
    older = await store.runs_page("acme", "orders", before=latest.id, limit=1)
    assert [(r.outcome, r.seconds) for r in older.items] == [("ok", 2.5)]
    assert not older.has_older
    (inventory,) = (await store.runs_page("acme", "inventory")).items
    assert inventory.counts == {"adjusted": 3, "failed": 1}


async def test_causes_stored_by_fail_and_computed_for_older_rows_group_together(
    store: Store, acme: str
) -> None:
    stored = await _ops(store, 2)
    for n, op_id in enumerate(stored):
        await _fail(store, op_id, f"Plex 404: release {100 + n} not found", dead=True)
    # a row written without a cause (before migration 0006, or by a direct insert)
    older = (await _ops(store, 1, flow="inventory"))[0]
    async with store.engine.begin() as conn:
        await conn.execute(
            update(operations)
            .where(operations.c.id == older)
            .values(state="dead", last_error="Plex 404: release 7 not found", error_cause=None)
        )
    groups = await store.error_groups(OperationFilter())
    (group,) = groups
    assert (group.cause, group.dead) == ("Plex 404: release # not found", 3)
    assert await store.operations_in_group(OperationFilter(), group.cause) == [*stored, older]


async def test_migration_0006_fills_the_cause_of_existing_failures(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await migrate(engine, "0005")
        now = datetime(2026, 1, 1, tzinfo=UTC)
        async with engine.begin() as conn:
            await conn.execute(
                connections.insert().values(
                    name="acme", settings={}, created_at=now, updated_at=now
                )
            )
            for n, (state, error) in enumerate(
                [
                    ("dead", "timeout after 31 s"),
                    ("failed", "timeout after 9 s"),
                    ("confirmed", None),
                ]
            ):
                await conn.execute(
                    text(
                        "INSERT INTO operations (connection, flow, kind, idempotency_key, payload, "
                        "state, attempts, last_error, created_at, updated_at) VALUES ('acme', 'f', "
                        "'k', :key, '{}', :state, 1, :error, '2026-01-01', '2026-01-01')"
                    ),
                    {"key": f"k{n}", "state": state, "error": error},
                )
        await migrate(engine)
        async with engine.connect() as conn:
            causes = (
                (await conn.execute(select(operations.c.error_cause).order_by(operations.c.id)))
                .scalars()
                .all()
            )
        assert causes == ["timeout after # s", "timeout after # s", None]
    finally:
        await engine.dispose()
