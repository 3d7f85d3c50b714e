"""Plex releases → ShipStation orders: grouping, keys, hashes, quantities, mappings."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mlconnector.config import (
    CarrierMapping,
    ConnectionConfig,
    Mappings,
    PlexSettings,
    StoreMapping,
)
from mlconnector.plex import Address, Customer, OrderLine, Part, Release, SalesOrder
from mlconnector.sync.mapping import (
    MappedOrder,
    MappingSkip,
    OrderBundle,
    country_code,
    map_order,
)
from mlconnector.sync.order_links import Decision

DAY1 = datetime(2026, 2, 3, 14, 0, tzinfo=UTC)
DAY2 = datetime(2026, 2, 10, 14, 0, tzinfo=UTC)
ORDER_ID = "0a1b2c3d-0000-4000-8000-000000000001"


def config(**changes: Any) -> ConnectionConfig:
    return ConnectionConfig(plex=PlexSettings(pcn="79870"), **changes)


def release(
    rid: str, *, line: str = "l1", qty: float = 10, shipped: float = 0, **kw: Any
) -> Release:
    values: dict[str, Any] = {
        "id": rid,
        "order_line_id": line,
        "release_number": kw.pop("number", "1-1"),
        "ship_to_address_id": kw.pop("ship_to", "a-ship"),
        "ship_date": kw.pop("ship_date", DAY1),
        "quantity": qty,
        "quantity_shipped": shipped,
        "status": kw.pop("status", "Open"),
        "modified_date": kw.pop("modified", DAY1 - timedelta(days=9)),
    }
    return Release(**values, **kw)


def bundle(releases: list[Release], **order_kw: Any) -> OrderBundle:
    order = SalesOrder(
        id=ORDER_ID,
        customer_id="c1",
        order_number=order_kw.pop("order_number", "8840001"),
        po_number="PO-77",
        status=order_kw.pop("status", "Open"),
        type=order_kw.pop("type", "Blanket"),
        bill_to_address_id="a-bill",
        ship_to_address_id="a-ship",
        building_id=order_kw.pop("building_id", "b-1"),
        carrier=order_kw.pop("carrier", "UPS"),
        note=order_kw.pop("note", "Call before delivery"),
        order_date=datetime(2026, 1, 20, 9, 30, tzinfo=UTC),
    )
    addresses = {
        "a-ship": Address(
            id="a-ship",
            name="Dock 4",
            address="1 Plant Rd\nGate B",
            city="Dearborn",
            state="MI",
            zip="48120",
            country="USA",
            phone="313-555-0100",
            email="dock@x.example",
        ),
        "a-ship2": Address(id="a-ship2", name="Dock 9", address="9 Other Rd", country="Canada"),
        "a-bill": Address(id="a-bill", name="AP", address="2 Money St", country="US"),
    }
    return OrderBundle(
        order=order,
        customer=Customer(id="c1", code="FRD", name="Fordham Assembly", email="ap@x.example"),
        lines=[
            OrderLine(id="l1", order_id=ORDER_ID, part_id="p1", line_number="1", price=2.5),
            OrderLine(id="l2", order_id=ORDER_ID, part_id="p2", line_number="2"),
        ],
        releases=releases,
        parts={
            "p1": Part(id="p1", number="BRK-1", name="Bracket", building_code="MAIN"),
            "p2": Part(id="p2", number="FLT-2", name="Filter", building_code="WEST"),
        },
        addresses=addresses,
    )


def mapped(result: list[MappedOrder | MappingSkip]) -> list[MappedOrder]:
    assert all(isinstance(m, MappedOrder) for m in result), result
    return [m for m in result if isinstance(m, MappedOrder)]


def test_ship_date_grouping_splits_by_date_and_ship_to() -> None:
    rels = [
        release("r1", ship_date=DAY1),
        release("r2", line="l2", ship_date=DAY1 + timedelta(hours=3)),  # same day
        release("r3", ship_date=DAY2),
        release("r4", ship_date=DAY2, ship_to="a-ship2"),
    ]
    groups = mapped(map_order(bundle(rels), config()))
    assert sorted(g.release_ids for g in groups) == [("r1", "r2"), ("r3",), ("r4",)]
    by_release = {g.release_ids[0]: g for g in groups}
    assert by_release["r1"].order.order_number == "8840001-260203"
    assert by_release["r3"].order.order_number == by_release["r4"].order.order_number
    assert by_release["r3"].order_key != by_release["r4"].order_key
    assert by_release["r4"].order.ship_to is not None
    assert by_release["r4"].order.ship_to.country == "CA"
    one = mapped(map_order(bundle(rels), config(grouping="order")))
    assert len(one) == 1
    assert one[0].order.order_number == "8840001"
    assert one[0].order_key == f"plex-79870-{ORDER_ID}-order"
    assert one[0].order.ship_by_date == DAY1


def test_complete_order_fields() -> None:
    conf = config(
        mappings=Mappings(
            warehouses={"b-1": 501},
            stores=StoreMapping(by_customer={"FRD": 77}, default=1),
            carriers={"UPS": CarrierMapping(carrier_code="ups", service_code="ups_ground")},
        )
    )
    (group,) = mapped(map_order(bundle([release("r1", qty=12, shipped=4)]), conf))
    order = group.order
    assert order.order_key == f"plex-79870-{ORDER_ID}-20260203-" + group.group_key[-8:]
    assert order.order_status == "awaiting_shipment"
    assert order.order_date == datetime(2026, 1, 20, 9, 30, tzinfo=UTC)
    assert order.ship_by_date == DAY1
    assert order.internal_notes == "Call before delivery"
    assert (order.carrier_code, order.service_code) == ("ups", "ups_ground")
    assert order.ship_to is not None
    assert order.ship_to.company == "Fordham Assembly"
    assert (order.ship_to.street1, order.ship_to.street2) == ("1 Plant Rd", "Gate B")
    assert order.ship_to.country == "US"
    assert order.bill_to is not None
    assert order.bill_to.street1 == "2 Money St"
    assert order.items is not None
    (item,) = order.items
    assert (item.line_item_key, item.sku, item.name, item.quantity) == ("r1", "BRK-1", "Bracket", 8)
    assert item.unit_price == 2.5
    adv = order.advanced_options
    assert adv is not None
    assert (adv.warehouse_id, adv.store_id, adv.source) == (501, 77, "plex")
    assert (adv.custom_field1, adv.custom_field2, adv.custom_field3) == (
        "PO-77",
        "8840001",
        ORDER_ID,
    )
    body = order.to_v1()
    assert body["shipByDate"] == "2026-02-03T06:00:00.0000000"  # UTC → Pacific for V1
    assert "orderId" not in body  # never invented


def test_store_falls_back_to_order_type_then_default_and_warehouse_to_part_building() -> None:
    stores = StoreMapping(by_order_type={"Blanket": 5}, default=9)
    conf = config(mappings=Mappings(stores=stores, warehouses={"MAIN": 600}))
    (group,) = mapped(map_order(bundle([release("r1")]), conf))
    assert group.order.advanced_options is not None
    assert group.order.advanced_options.store_id == 5
    assert group.order.advanced_options.warehouse_id == 600
    (group,) = mapped(map_order(bundle([release("r1")], type="Spot Buy"), conf))
    assert group.order.advanced_options is not None
    assert group.order.advanced_options.store_id == 9


def test_only_open_releases_with_open_quantity() -> None:
    rels = [
        release("open", qty=10, shipped=3),
        release("done", qty=10, shipped=10),
        release("over", qty=10, shipped=12),
        release("shipped", status="Shipped"),
        release("cancelled", status="Canceled"),
        release("foreign", line="not-this-order"),
    ]
    (group,) = mapped(map_order(bundle(rels), config()))
    assert group.release_ids == ("open",)
    assert group.order.items is not None
    assert group.order.items[0].quantity == 7
    assert map_order(bundle([release("done", qty=5, shipped=5)]), config()) == []


def test_fractional_quantity_is_a_skip_with_reason() -> None:
    (skip,) = map_order(bundle([release("r1", qty=2.5)]), config())
    assert isinstance(skip, MappingSkip)
    assert "fractional" in skip.reason
    assert skip.release_ids == ("r1",)


def test_statuses() -> None:
    (hold,) = mapped(map_order(bundle([release("r1", status="Hold")], status="Hold"), config()))
    assert hold.status == "on_hold"
    (cancelled,) = mapped(map_order(bundle([release("r1")], status="Canceled"), config()))
    assert cancelled.status == "cancelled"


def test_hash_ignores_store_and_volatile_fields_but_sees_content() -> None:
    base = mapped(map_order(bundle([release("r1")]), config()))[0]
    other_store = config(mappings=Mappings(stores=StoreMapping(default=42)))
    assert (
        mapped(map_order(bundle([release("r1")]), other_store))[0].content_hash == base.content_hash
    )
    touched = release("r1", modified=DAY2)  # modifiedDate alone is not content
    assert mapped(map_order(bundle([touched]), config()))[0].content_hash == base.content_hash
    for changed in (
        bundle([release("r1", qty=11)]),
        bundle([release("r1")], note="Use racks"),
        bundle([release("r1")], status="Hold"),
        bundle([release("r1", ship_date=DAY1 + timedelta(hours=1))]),
    ):
        assert mapped(map_order(changed, config()))[0].content_hash != base.content_hash


def test_update_payload_never_moves_store() -> None:
    conf = config(mappings=Mappings(stores=StoreMapping(default=42)))
    (group,) = mapped(map_order(bundle([release("r1")]), conf))
    args = (group.order_key, group.plex_order_id, group.group_key, group.content_hash)
    create = Decision("create", *args, group.release_ids, group.order).payload()
    update = Decision("update", *args, group.release_ids, group.order).payload()
    assert create["order"]["advancedOptions"]["storeId"] == 42
    assert "storeId" not in update["order"]["advancedOptions"]
    assert group.order.advanced_options is not None
    assert group.order.advanced_options.store_id == 42  # the model itself is untouched


release_specs = st.lists(
    st.tuples(
        st.sampled_from(["l1", "l2"]),
        st.integers(min_value=0, max_value=3),  # ship day offset
        st.sampled_from(["a-ship", "a-ship2"]),
        st.integers(min_value=1, max_value=500),
        st.integers(min_value=0, max_value=500),
    ),
    min_size=1,
    max_size=8,
)


@given(specs=release_specs, data=st.data())
def test_keys_and_hashes_are_stable_under_reordering(
    specs: list[tuple[str, int, str, int, int]], data: st.DataObject
) -> None:
    rels = [
        release(
            f"r{i}",
            line=line,
            ship_date=DAY1 + timedelta(days=day),
            ship_to=to,
            qty=qty,
            shipped=shipped,
            number=f"1-{i}",
        )
        for i, (line, day, to, qty, shipped) in enumerate(specs)
    ]
    first = mapped(map_order(bundle(rels), config()))
    shuffled = data.draw(st.permutations(rels))
    second = mapped(map_order(bundle(list(shuffled)), config()))
    assert [(m.order_key, m.content_hash) for m in first] == [
        (m.order_key, m.content_hash) for m in second
    ]
    open_qty = {
        r.id: int(r.quantity - r.quantity_shipped) for r in rels if r.quantity > r.quantity_shipped
    }
    sent = {i.line_item_key: i.quantity for m in first for i in m.order.items or []}
    assert sent == open_qty
    assert len({m.order_key for m in first}) == len(first)


@given(number=st.text(alphabet="ABC0123456789-", min_size=1, max_size=80))
def test_order_number_at_most_50_characters(number: str) -> None:
    for grouping in ("ship_date", "order"):
        (group,) = mapped(
            map_order(bundle([release("r1")], order_number=number), config(grouping=grouping))
        )
        assert group.order.order_number is not None
        assert 1 <= len(group.order.order_number) <= 50


def test_country_codes() -> None:
    assert country_code("usa") == "US"
    assert country_code("ca") == "CA"
    assert country_code("Atlantis") is None
    assert country_code(None) is None


def test_what_shipstation_shipped_stays_in_the_item() -> None:
    """A partial ShipStation label written back to Plex must not shrink the ShipStation item."""
    before = mapped(map_order(bundle([release("r1", qty=10, shipped=0)]), config()))[0]
    after_writeback = replace(
        bundle([release("r1", qty=10, shipped=4)]), shipped_in_shipstation={"r1": 4}
    )
    (same,) = mapped(map_order(after_writeback, config()))
    assert same.order.items is not None
    assert same.order.items[0].quantity == 10
    assert same.content_hash == before.content_hash  # nothing to send
    # shipped outside ShipStation (in Plex directly): the item shrinks
    outside = replace(bundle([release("r1", qty=10, shipped=6)]), shipped_in_shipstation={"r1": 4})
    (smaller,) = mapped(map_order(outside, config()))
    assert smaller.order.items is not None
    assert smaller.order.items[0].quantity == 8
    # a release fully shipped by ShipStation stays an item while its group has open releases
    rels = [release("r1", qty=10, shipped=10, status="Shipped"), release("r2", line="l2")]
    full = replace(bundle(rels), shipped_in_shipstation={"r1": 10})
    (group,) = mapped(map_order(full, config()))
    assert group.release_ids == ("r1", "r2")
    # ... but a group with nothing open left is gone
    done = replace(bundle([rels[0]]), shipped_in_shipstation={"r1": 10})
    assert map_order(done, config()) == []
