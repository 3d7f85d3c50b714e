"""Data for the UI tests (unit and browser): operations in every interesting state, audit events
(one with HTML in its details), a cursor, a link and a pending webhook."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from mlconnector.store import AuditEvent, CredentialKind, Link, Store
from mlconnector.sync.runs import LastRun, last_run_cursor

XSS = '<script>alert("x")</script>'


@dataclass(frozen=True)
class Seeded:
    dead_id: int
    failed_id: int
    confirmed_id: int
    pending_id: int


async def seed(store: Store, connection: str = "acme") -> Seeded:
    """Fill ``store`` for ``connection`` (which must exist)."""
    now = store.clock.now()
    ops = []
    for n in range(4):
        enq = await store.enqueue(
            connection, "orders", "create_order", f"{connection}-order-{n}", {"n": n}
        )
        ops.append(enq.operation.id)
    dead, failed, confirmed, pending = ops
    await store.fail(
        dead,
        f"ShipStation said 400 {XSS}",
        next_attempt_at=now + timedelta(minutes=5),
        max_attempts=1,
    )
    await store.fail(
        failed,
        "timeout talking to ShipStation",
        next_attempt_at=now + timedelta(minutes=5),
        max_attempts=5,
    )
    await store.confirm(confirmed, remote_ref="4242")
    await store.append_audit(
        AuditEvent(
            connection=connection,
            flow="orders",
            direction="plex->ss",
            entity="order",
            action="create",
            outcome="ok",
            plex_order_id="PO-1001",
            order_key="plex-79870-1001-2026-01-15",
            ss_order_number="SO-5001",
            ss_order_id="4242",
            http_status=200,
            details={"note": XSS},
        )
    )
    await store.append_audit(
        AuditEvent(
            connection=connection,
            flow="shipments",
            direction="ss->plex",
            entity="shipment",
            action="write_back",
            outcome="ok",
            plex_order_id="PO-2002",
            shipment_id="77001",
            at=now + timedelta(seconds=1),
        )
    )
    await store.set_cursor(connection, "orders", "2026-01-15T11:00:00Z")
    # the engine's last-run records: orders ran fine, shipments failed
    orders_run = LastRun("orders", now, True, 1.25, "worker-1@host", "orders@acme: created=2")
    failed_run = LastRun("shipments", now, False, 0.5, "worker-2@host", error=f"Plex refused {XSS}")
    for run in (orders_run, failed_run):
        await store.set_cursor(connection, last_run_cursor(run.flow), run.to_json())
    await store.save_link(
        Link(
            connection=connection,
            order_key="plex-79870-1001-2026-01-15",
            plex_order_id="PO-1001",
            group_key="2026-01-15",
            ss_order_id="4242",
            ss_status="awaiting_shipment",
        )
    )
    await store.set_credential(connection, CredentialKind.SS_V1_KEY, "abcdefghijklmnop-v1key")
    await store.receive_webhook(
        connection,
        b'{"resource_url": "http://ss.test/shipments?batchId=1", "resource_type": "SHIP_NOTIFY"}',
        {"content-type": "application/json"},
    )
    return Seeded(dead, failed, confirmed, pending)
