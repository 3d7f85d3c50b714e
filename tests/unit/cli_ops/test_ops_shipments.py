"""``sync shipments --once`` through the CLI: a label made with the ShipStation simulator's
operator surface is written back to Plex once; ``--dry-run`` prints the plan and writes nothing.

The CLI runs share the simulators' virtual timeline (see the fixture's doc), so the label lies
inside the poll window of the next run, as it would with real clocks.
"""

from __future__ import annotations

from typing import Any

import httpx

from mlconnector.store import AuditEvent, AuditQuery, Link, Store
from tests.unit.cli_ops.conftest import PCN, Ops

TRACKING = "1ZCLI0000000000001"


def _linked(ops: Ops) -> Link:
    """Orders synced by ``sync orders --once``; one linked ShipStation order."""
    result = ops("sync", "orders", "--once")
    assert result.exit_code == 0, result.output

    async def links(store: Store) -> list[Link]:
        return [lk for lk in await store.list_links("acme") if lk.ss_order_id]

    linked: list[Link] = ops.with_store(links)
    assert linked, result.output
    return linked[0]


def _part(ops: Ops, release_id: str) -> str:
    data = ops.plex.tenant(PCN)
    return data.lines[data.releases[release_id].order_line_id].part_id


def _on_hand(ops: Ops, link: Link) -> float:
    parts = {_part(ops, rid) for rid in link.release_ids}
    return sum(ops.plex.on_hand(p, tenant=PCN) for p in parts)


def _shippers(ops: Ops, reference: str) -> list[Any]:
    return [
        s
        for s in ops.plex.shippers(tenant=PCN)
        if reference in (s.shipper_note or "") or reference in (s.note or "")
    ]


def _events(ops: Ops, reference: str) -> list[AuditEvent]:
    async def search(store: Store) -> list[AuditEvent]:
        return list(await store.search_audit(AuditQuery(connection="acme", shipment_id=reference)))

    events: list[AuditEvent] = ops.with_store(search)
    return events


def _ship(ops: Ops, link: Link) -> tuple[int, dict[str, float]]:
    """Enough stock for every open release of the link, then a label for the whole order made
    through ``POST /_operator/orders/{id}/labels``; the shipment id and the open quantities."""
    location = next(iter(ops.plex.tenant(PCN).containers.values())).location_id
    open_qty: dict[str, float] = {}
    for rid in link.release_ids:
        release = ops.plex.release(rid, tenant=PCN)
        open_qty[rid] = release.quantity - release.quantity_shipped
        ops.plex.add_container(_part(ops, rid), location, open_qty[rid], tenant=PCN)
    assert sum(open_qty.values()) > 0
    ops.step()
    response = httpx.post(
        f"{ops.ss_url}/_operator/orders/{link.ss_order_id}/labels",
        json={"trackingNumber": TRACKING},
    )
    assert response.status_code == 200, response.text
    ops.step()  # past the flow's safety lag: the next run's poll window covers the label
    return int(response.json()["shipmentId"]), open_qty


def test_sync_shipments_once_writes_the_label_back_to_plex_once(ops: Ops) -> None:
    link = _linked(ops)
    shipment_id, open_qty = _ship(ops, link)
    reference = f"ss-shipment-{shipment_id}"
    stock_before = _on_hand(ops, link)

    first = ops("sync", "shipments", "--once")
    assert first.exit_code == 0, first.output
    assert "written_back=1" in first.output
    assert "what was done" in first.output
    assert reference in first.output
    shippers = _shippers(ops, reference)
    assert len(shippers) == 1
    assert shippers[0].tracking_number == TRACKING
    assert shippers[0].status == "Shipped"
    shipped = sum(open_qty.values())
    assert stock_before - _on_hand(ops, link) == shipped
    for rid in open_qty:
        release = ops.plex.release(rid, tenant=PCN)
        assert release.quantity - release.quantity_shipped == 0
    writes = [e for e in _events(ops, reference) if e.action == "write_back"]
    assert [(e.flow, e.outcome, e.order_key) for e in writes] == [
        ("shipments", "ok", link.order_key)
    ]
    # the operator finds it by the ShipStation shipment id
    found = ops("audit", "--shipment", str(shipment_id))
    assert found.exit_code == 0, found.output
    assert f"shipment={reference}" in found.output
    assert "write_back" in found.output

    ops.step()
    second = ops("sync", "shipments", "--once")
    assert second.exit_code == 0, second.output
    assert "written_back=" not in second.output
    assert len(_shippers(ops, reference)) == 1
    assert stock_before - _on_hand(ops, link) == shipped
    again = [e for e in _events(ops, reference) if e.action == "write_back"]
    assert len(again) == 1


def test_sync_shipments_dry_run_prints_the_plan_and_writes_nothing(ops: Ops) -> None:
    link = _linked(ops)
    shipment_id, _ = _ship(ops, link)
    reference = f"ss-shipment-{shipment_id}"
    stock_before = _on_hand(ops, link)
    shippers_before = len(ops.plex.shippers(tenant=PCN))

    async def cursor(store: Store) -> Any:
        return await store.get_cursor("acme", "shipments")

    dry = ops("sync", "shipments", "--once", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "plan (dry run: nothing was written)" in dry.output
    rows = [line for line in dry.output.splitlines() if reference in line]
    assert len(rows) == 1, dry.output
    assert rows[0].startswith("│ write_back"), dry.output
    assert len(ops.plex.shippers(tenant=PCN)) == shippers_before
    assert _shippers(ops, reference) == []
    assert _on_hand(ops, link) == stock_before
    assert _events(ops, reference) == []
    assert ops.with_store(cursor) is None  # the poll window was not moved on

    # the plan was what the real run then does
    real = ops("sync", "shipments", "--once")
    assert real.exit_code == 0, real.output
    assert "written_back=1" in real.output
    assert len(_shippers(ops, reference)) == 1
