"""The audit trail: append, redaction, search by every key, and append-only at the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, update
from sqlalchemy.exc import DBAPIError

from mlconnector.clock import FakeClock
from mlconnector.store import AuditEvent, AuditQuery, Store
from mlconnector.store.schema import audit_events


def _event(**fields: object) -> AuditEvent:
    base: dict[str, object] = {
        "connection": "acme",
        "flow": "orders",
        "direction": "plex->ss",
        "entity": "order",
        "action": "create",
        "outcome": "ok",
    }
    base.update(fields)
    return AuditEvent(**base)  # type: ignore[arg-type]


async def test_append_fills_id_and_time(store: Store, fake_clock: FakeClock) -> None:
    saved = await store.append_audit(
        _event(
            order_key="79870-100-a",
            http_status=200,
            request_id="req-1",
            idempotency_key="idem-1",
            entity_ids={"release_ids": ["r1", "r2"]},
            remote_ids={"orderId": 555},
            details={"note": "created"},
        )
    )
    assert saved.id is not None
    assert saved.at == fake_clock.now()
    (found,) = await store.search_audit(AuditQuery(order_key="79870-100-a"))
    assert found == saved
    assert found.entity_ids == {"release_ids": ["r1", "r2"]}
    assert found.remote_ids == {"orderId": 555}


async def test_details_are_redacted(store: Store, acme: str) -> None:
    await store.set_credential(acme, "plex_api_key", "plex-key-0123456789")
    saved = await store.append_audit(
        _event(details={"echo": "key plex-key-0123456789 rejected", "password": "hunter22"})
    )
    text = repr(saved.details)
    assert "plex-key-0123456789" not in text
    assert "hunter22" not in text
    (found,) = await store.search_audit(AuditQuery(connection="acme"))
    assert "plex-key-0123456789" not in repr(found.details)


async def test_search_by_each_key_and_time_range(store: Store, fake_clock: FakeClock) -> None:
    t0 = fake_clock.now()
    a = await store.append_audit(_event(plex_order_id="100", order_key="k-100", at=t0))
    b = await store.append_audit(
        _event(
            flow="shipments",
            direction="ss->plex",
            entity="shipment",
            ss_order_id="9001",
            ss_order_number="SO-100-260115",
            shipment_id="777",
            outcome="failed",
            at=t0 + timedelta(minutes=1),
        )
    )
    c = await store.append_audit(
        _event(connection="other", plex_order_id="100", at=t0 + timedelta(minutes=2))
    )

    async def ids(**query: object) -> list[int | None]:
        return [e.id for e in await store.search_audit(AuditQuery(**query))]  # type: ignore[arg-type]

    assert await ids(connection="acme") == [b.id, a.id]  # newest first
    assert await ids(plex_order_id="100") == [c.id, a.id]
    assert await ids(connection="acme", plex_order_id="100") == [a.id]
    assert await ids(order_key="k-100") == [a.id]
    assert await ids(ss_order_id="9001") == [b.id]
    assert await ids(ss_order_number="SO-100-260115") == [b.id]
    assert await ids(shipment_id="777") == [b.id]
    assert await ids(outcome="failed") == [b.id]
    assert await ids(flow="shipments") == [b.id]
    assert await ids(since=t0 + timedelta(minutes=1)) == [c.id, b.id]
    assert await ids(until=t0 + timedelta(minutes=1)) == [a.id]
    assert await ids(since=t0, until=t0 + timedelta(minutes=2)) == [b.id, a.id]
    assert await ids(limit=1) == [c.id]
    assert await ids(shipment_id="nothing") == []


async def test_audit_outlives_its_connection(store: Store, acme: str) -> None:
    await store.append_audit(_event(connection=acme))
    assert await store.delete_connection(acme) is True
    assert len(await store.search_audit(AuditQuery(connection=acme))) == 1


@pytest.mark.parametrize("statement", ["update", "delete"])
async def test_database_refuses_update_and_delete(store: Store, statement: str) -> None:
    await store.append_audit(_event())
    stmt = (
        update(audit_events).values(outcome="forged")
        if statement == "update"
        else delete(audit_events)
    )
    with pytest.raises(DBAPIError, match="append-only"):
        async with store.engine.begin() as conn:
            await conn.execute(stmt)
    (event,) = await store.search_audit(AuditQuery())
    assert event.outcome == "ok"


def test_store_has_no_audit_mutators() -> None:
    names = [n for n in dir(Store) if "audit" in n and not n.startswith("_")]
    assert sorted(names) == [
        "append_audit",
        "append_audits",
        "audit_page",
        "count_audit_events",
        "search_audit",
    ]
