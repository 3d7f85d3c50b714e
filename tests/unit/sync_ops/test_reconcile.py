"""Reconcile against both simulators in-process: a synced state is clean; each kind of drift,
made deliberately, is reported with its record."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from mlconnector.config import Mappings
from mlconnector.sync import ConnectionRuntime
from mlconnector.sync.inventory import InventoryFlow
from mlconnector.sync.orders import OrdersFlow
from mlconnector.sync.reconcile import KINDS, ReconcileReport, reconcile
from mlconnector.sync.shipments import ShipmentsFlow
from tests.unit.sync_ops.conftest import PCN, OpsEnv, close_env, make_env

STEP = 600.0  # past the flows' 2-minute safety lag


@dataclass
class Synced:
    env: OpsEnv
    rt: ConnectionRuntime
    mapping: dict[str, str]

    async def check(self) -> ReconcileReport:
        now = self.env.clock.now()
        return await reconcile(self.rt, now - timedelta(days=60), now)

    def ss_order(self) -> dict[str, object]:
        """An open ShipStation order the connector created."""
        return next(o for o in self.env.ss.all_orders() if o["orderStatus"] == "awaiting_shipment")


@pytest.fixture
async def synced(tmp_path: Path) -> AsyncIterator[Synced]:
    env = await make_env(tmp_path, orders=10)
    try:
        setup = await env.runtime()
        warehouse = await setup.ss_v2.create_inventory_warehouse("Detroit")
        det = await setup.ss_v2.create_inventory_location("DET", warehouse.inventory_warehouse_id)
        mapping = {"DET-FG-01": det.inventory_location_id, "DET-FG-02": det.inventory_location_id}
        rt = await env.runtime(mappings=Mappings(inventory_locations=mapping))
        assert (await OrdersFlow().run(rt)).created > 0
        assert (await InventoryFlow().run(rt)).adjusted > 0
        env.clock.advance(STEP)
        yield Synced(env, rt, mapping)
    finally:
        await close_env(env)


def kinds(report: ReconcileReport) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {k: [] for k in KINDS}
    for drift in report.drifts:
        found[drift.kind].append(drift.key)
    return found


async def test_a_synced_state_is_clean(synced: Synced) -> None:
    report = await synced.check()
    assert report.clean, report.drifts
    assert report.checked["groups"] > 0
    assert report.checked["inventory_levels"] > 0
    assert report.to_dict()["clean"] is True


async def test_a_deleted_shipstation_order_is_missing(synced: Synced) -> None:
    order = synced.ss_order()
    await synced.rt.ss_v1.delete_order(int(str(order["orderId"])))
    report = await synced.check()
    assert kinds(report)["missing_order"] == [order["orderKey"]]
    assert "gone" in report.drifts[0].detail


async def test_a_plex_edit_not_synced_yet_is_stale(synced: Synced) -> None:
    order = synced.ss_order()
    items = order["items"]
    assert isinstance(items, list)
    release_id = items[0]["lineItemKey"]
    synced.env.plex.edit_release(release_id, quantity=items[0]["quantity"] + 7, tenant=PCN)
    report = await synced.check()
    assert kinds(report)["stale_order"] == [order["orderKey"]]
    drift = report.drifts[0]
    assert drift.plex["items"] != drift.shipstation["items"]
    # the orders flow fixes it; then it is clean again
    synced.env.clock.advance(STEP)
    await OrdersFlow().run(synced.rt)
    assert kinds(await synced.check())["stale_order"] == []


async def test_a_label_without_write_back_is_reported(synced: Synced) -> None:
    order = synced.ss_order()
    shipment = synced.env.ss.create_label(int(str(order["orderId"])))
    synced.env.clock.advance(60)
    report = await synced.check()
    reference = f"ss-shipment-{shipment.shipment_id}"
    assert kinds(report)["not_written_back"] == [reference]
    assert kinds(report)["missing_order"] == []
    assert kinds(report)["stale_order"] == []


async def test_a_written_back_shipment_whose_plex_shipper_vanished(synced: Synced) -> None:
    env = synced.env
    order = synced.ss_order()
    shipment = env.ss.create_label(int(str(order["orderId"])))
    env.clock.advance(STEP)
    done = await ShipmentsFlow().run(synced.rt)
    assert done.written_back == 1, done.errors
    reference = f"ss-shipment-{shipment.shipment_id}"
    before = kinds(await synced.check())
    assert before["not_written_back"] == []
    assert before["shipper_missing"] == []

    data = env.plex.tenant(PCN)
    for key, shipper in list(data.shippers.items()):
        if reference in (shipper.shipper_note or "") or reference in (shipper.note or ""):
            del data.shippers[key]
    after = await synced.check()
    assert kinds(after)["shipper_missing"] == [reference]


async def test_a_plex_on_hand_change_is_an_inventory_difference(synced: Synced) -> None:
    data = synced.env.plex.tenant(PCN)
    location = next(loc for loc in data.locations.values() if loc.code == "DET-FG-01")
    container = next(
        c
        for c in data.containers.values()
        if c.location_id == location.id and c.status == "OK" and c.quantity >= 5
    )
    sku = data.parts[container.part_id].number
    synced.env.plex.adjust_container(
        container.serial_no, quantity=container.quantity - 5, tenant=PCN
    )
    report = await synced.check()
    assert kinds(report)["inventory"] == [f"{sku}@{synced.mapping['DET-FG-01']}"]
    drift = report.drifts[0]
    assert drift.plex["expected"] == drift.shipstation["on_hand"] - 5
    synced.env.clock.advance(STEP)
    await InventoryFlow().run(synced.rt)
    assert (await synced.check()).clean
