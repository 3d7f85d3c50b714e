"""End to end over real loopback HTTP: Plex containers → InventoryFlow → ShipStation V2 inventory.

Expected levels are computed from the Plex simulator's own containers (status ``OK``, mapped
locations, part number as SKU) and compared with the ShipStation simulator's V2 levels; V2 writes
are counted on the recorder in front of the ShipStation simulator.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlconnector.config import Mappings
from mlconnector.store import OperationState
from mlconnector.sync import ConnectionRuntime, retry_due
from mlconnector.sync.inventory import InventoryFlow
from mlconnector.sync.shipments import ShipmentsFlow
from tests.conftest import FAKE_START
from tests.e2e.shipping_env import CONNECTION, PCN, ShipEnv, ship_env

UNMAPPED = "LON-FG-02"


@dataclass
class Inv:
    env: ShipEnv
    rt: ConnectionRuntime
    #: Plex location code → ShipStation inventory location id
    mapping: dict[str, str]

    def expected(self, minus: dict[str, int] | None = None) -> dict[tuple[str, str], int]:
        """What ShipStation should show, from the Plex simulator's containers."""
        data = self.env.plex.tenant(PCN)
        levels: dict[tuple[str, str], float] = defaultdict(float)
        for c in data.containers.values():
            code = data.locations[c.location_id].code
            if c.status == "OK" and c.quantity > 0 and code in self.mapping:
                levels[(data.parts[c.part_id].number, self.mapping[code])] += c.quantity
        result = {k: int(v) for k, v in levels.items()}
        for sku, qty in (minus or {}).items():
            # the documented rule: taken from the SKU's largest location first
            for key in sorted((k for k in result if k[0] == sku), key=lambda k: (-result[k], k[1])):
                take = min(qty, result[key])
                result[key] -= take
                qty -= take
        return result

    def shown(self) -> dict[tuple[str, str], int]:
        return {k: lv.on_hand for k, lv in self.env.ss.inventory.levels.items()}

    def v2_writes(self) -> int:
        return self.env.ss_rec.count("POST", "/v2/inventory")


@pytest.fixture
async def inv(tmp_path: Path) -> AsyncIterator[Inv]:
    async with ship_env(tmp_path, FAKE_START) as env:
        setup = await env.runtime()
        warehouse = await setup.ss_v2.create_inventory_warehouse("Detroit")
        det = await setup.ss_v2.create_inventory_location("DET", warehouse.inventory_warehouse_id)
        tol = await setup.ss_v2.create_inventory_location("TOL", warehouse.inventory_warehouse_id)
        lon = await setup.ss_v2.create_inventory_location("LON", warehouse.inventory_warehouse_id)
        mapping = {
            # two Plex locations into one ShipStation location: their stock adds up
            "DET-FG-01": det.inventory_location_id,
            "DET-FG-02": det.inventory_location_id,
            "TOL-FG-01": tol.inventory_location_id,
            "TOL-FG-02": tol.inventory_location_id,
            "LON-FG-01": lon.inventory_location_id,
        }
        rt = await env.runtime(mappings=Mappings(inventory_locations=mapping))
        yield Inv(env, rt, mapping)


async def test_first_run_adjusts_every_mapped_sku_then_nothing(inv: Inv) -> None:
    flow = InventoryFlow()
    expected = inv.expected()
    assert expected
    dry = await flow.run(inv.rt, dry_run=True)
    assert dry.adjusted == len(expected)
    assert inv.v2_writes() == 0  # a dry run sends nothing...
    assert await inv.env.store.get_inventory_snapshot(CONNECTION) == {}  # ...nor records
    result = await flow.run(inv.rt)
    assert result.failed == 0, result.errors
    assert result.adjusted == len(expected)
    assert inv.v2_writes() == len(expected)
    assert inv.shown() == expected
    assert await inv.env.store.get_inventory_snapshot(CONNECTION) == expected
    # the unmapped location is reported once, not once per part
    unmapped = [i for i in result.plan if i.key == f"plex-location {UNMAPPED}"]
    assert len(unmapped) == 1
    assert unmapped[0].details["parts"] >= 1
    inv.env.step()
    again = await flow.run(inv.rt)
    assert again.adjusted == 0
    assert again.unchanged == len(expected)
    assert inv.v2_writes() == len(expected)  # no V2 request at all


async def test_a_container_change_sends_one_adjust(inv: Inv) -> None:
    flow = InventoryFlow()
    await flow.run(inv.rt)
    writes = inv.v2_writes()
    data = inv.env.plex.tenant(PCN)
    container = next(
        c
        for c in data.containers.values()
        if c.status == "OK" and data.locations[c.location_id].code == "TOL-FG-01"
    )
    inv.env.plex.adjust_container(container.serial_no, quantity=container.quantity + 5, tenant=PCN)
    inv.env.step()
    result = await flow.run(inv.rt)
    assert result.adjusted == 1
    assert inv.v2_writes() == writes + 1
    assert inv.shown() == inv.expected()
    # a container put on hold leaves stock: the level goes down (to 0 if it was the only one)
    inv.env.plex.adjust_container(container.serial_no, status="Hold", tenant=PCN)
    inv.env.step()
    assert (await flow.run(inv.rt)).adjusted == 1
    shown = inv.shown()
    assert {k: v for k, v in shown.items() if v} == {k: v for k, v in inv.expected().items() if v}


async def test_shipped_not_yet_written_back_is_subtracted_and_the_flows_never_fight(
    inv: Inv,
) -> None:
    env, rt = inv.env, inv.rt
    links = await env.link_orders(rt)
    link = links[0]
    inventory = InventoryFlow()
    await inventory.run(rt)
    env.step()
    label = env.ss.create_label(int(link.ss_order_id or 0))
    shipped: dict[str, int] = defaultdict(int)
    for item in label.items:
        shipped[item.sku or ""] += item.quantity
    # Plex is down while the shipment is seen: the write-back fails, its lines stay unwritten
    env.plex.faults.configure(error_rate=1.0, error_status=503)
    env.step()
    ship = ShipmentsFlow()
    failed = await ship.run(rt)
    assert failed.written_back == 0
    assert await env.store.unwritten_quantities(CONNECTION) == dict(shipped)
    env.plex.faults.configure()
    before_write_back = inv.expected(minus=dict(shipped))
    env.step()
    await inventory.run(rt)
    assert inv.shown() == before_write_back  # on-hand − shipped-not-written-back
    # the write-back lands: Plex on-hand drops by the same units, nothing is left unwritten
    env.step(7200)
    retried = await retry_due(rt, [ship])
    assert [p.reason for p in retried.plan] == [OperationState.CONFIRMED.value]
    assert await env.store.unwritten_quantities(CONNECTION) == {}
    writes = inv.v2_writes()
    env.step()
    after = await inventory.run(rt)
    # Plex on-hand now already lacks the shipped units: the target did not move
    assert inv.shown() == inv.expected() == before_write_back
    assert after.adjusted == 0
    assert inv.v2_writes() == writes


async def test_an_unreadable_container_holds_its_part_back_and_is_quarantined(inv: Inv) -> None:
    flow = InventoryFlow()
    await flow.run(inv.rt)
    data = inv.env.plex.tenant(PCN)
    container = next(
        c
        for c in data.containers.values()
        if c.status == "OK" and data.locations[c.location_id].code == "TOL-FG-01"
    )
    sku = data.parts[container.part_id].number
    before = inv.shown()
    # the container grows by 7 but Plex sends its quantity as text: its part is held back
    inv.env.plex.adjust_container(container.serial_no, quantity=container.quantity + 7, tenant=PCN)
    inv.env.plex.set_raw_field(container.serial_no, "quantity", "7 pcs", tenant=PCN)
    other = next(
        c
        for c in data.containers.values()
        if c.status == "OK"
        and c.part_id != container.part_id
        and data.locations[c.location_id].code in inv.mapping
    )
    inv.env.plex.adjust_container(other.serial_no, quantity=other.quantity + 3, tenant=PCN)
    inv.env.step()
    result = await flow.run(inv.rt)
    assert (result.quarantined, result.adjusted, result.failed) == (1, 1, 0), result.errors
    shown = inv.shown()
    assert {k: v for k, v in shown.items() if k[0] == sku} == {
        k: v for k, v in before.items() if k[0] == sku
    }  # neither lowered (container missing) nor raised: held
    expected = inv.expected()
    assert {k: v for k, v in shown.items() if k[0] != sku} == {
        k: v for k, v in expected.items() if k[0] != sku
    }
    [row] = await inv.env.store.list_quarantined(connection=CONNECTION, flow="inventory")
    assert (row.record_kind, row.record_id, row.field) == (
        "Plex Container",
        container.serial_no,
        "quantity",
    )
    assert row.value_excerpt == "'7 pcs'"
    inv.env.plex.clear_raw_fields(container.serial_no, tenant=PCN)
    inv.env.step()
    fixed = await flow.run(inv.rt)
    assert (fixed.quarantined, fixed.adjusted) == (0, 1)
    assert inv.shown() == inv.expected()
    [row] = await inv.env.store.list_quarantined(connection=CONNECTION, state=None)
    assert row.state.value == "resolved"
