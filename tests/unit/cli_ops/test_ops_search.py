"""``audit`` by every search key the issue names; ``sync --dry-run`` gives a reason per order."""

from __future__ import annotations

from mlconnector.store import AuditEvent, Store
from tests.unit.cli_ops.conftest import Ops


def test_a_dry_run_gives_a_reason_per_order_and_matches_the_real_run(ops: Ops) -> None:
    dry = ops("sync", "orders", "--once", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert ops.ss.all_orders() == []  # nothing was written
    rows = [line for line in dry.output.splitlines() if line.startswith("│ create")]
    assert rows
    assert all("│ new" in row for row in rows), rows  # each create says why
    assert ops("sync", "orders", "--once").exit_code == 0
    numbers = [str(o["orderNumber"]) for o in ops.ss.all_orders()]
    assert len(rows) == len(numbers)  # the plan was what the real run then did
    for number in numbers:  # the plan names each order by its number
        assert any(f"│ {number} " in row for row in rows), number


def test_audit_finds_by_plex_order_order_number_and_shipment(ops: Ops) -> None:
    assert ops("sync", "orders", "--once").exit_code == 0

    async def links(store: Store) -> list[tuple[str, str]]:
        return [(lk.order_key, lk.plex_order_id) for lk in await store.list_links("acme")]

    linked = ops.with_store(links)
    assert len(linked) >= 2
    key_a, plex_a = linked[0]
    # one Plex order may become several ShipStation orders (one per ship date): take another
    key_b = next(key for key, plex in linked if plex != plex_a)
    by_plex = ops("audit", "--plex-order", plex_a, "--limit", "500")
    assert by_plex.exit_code == 0, by_plex.output
    assert key_a in by_plex.output
    assert key_b not in by_plex.output

    number_a = next(str(o["orderNumber"]) for o in ops.ss.all_orders() if o["orderKey"] == key_a)
    by_number = ops("audit", "--order-number", number_a, "--limit", "500")
    assert by_number.exit_code == 0, by_number.output
    assert f"order={number_a}" in by_number.output
    assert key_b not in by_number.output

    # the shipments flow keys its events by the reference written to Plex (checked in
    # tests/e2e/test_fault_storms.py); the operator types the ShipStation id or the reference
    async def shipment_event(store: Store) -> None:
        await store.append_audit(
            AuditEvent(
                "acme",
                "shipments",
                "ss->plex",
                "shipment",
                "write_back",
                "ok",
                order_key=key_a,
                shipment_id="ss-shipment-700123",
            )
        )

    ops.with_store(shipment_event)
    for typed in ("700123", "ss-shipment-700123"):
        by_shipment = ops("audit", "--shipment", typed, "--limit", "500")
        assert by_shipment.exit_code == 0, by_shipment.output
        assert "audit (1 event(s)" in by_shipment.output, typed
        assert "shipment=ss-shipment-700123" in by_shipment.output
    for other in ("700124", "ss-fulfillment-700123"):
        nothing = ops("audit", "--shipment", other)
        assert nothing.exit_code == 0
        assert "audit (0 event(s)" in nothing.output, other
