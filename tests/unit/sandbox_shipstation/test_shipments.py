"""Labels made by the operator: shipments, split shipments, voids, includeShipmentItems."""

from __future__ import annotations

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.sandbox.shipstation import LabelRequest, OperatorError, ShipStationSandbox

from .conftest import order_payload


async def new_order(v1: httpx.AsyncClient, number: str = "SO-1", key: str = "k-1") -> int:
    response = await v1.post("/orders/createorder", json=order_payload(number, key))
    return int(response.json()["orderId"])


async def test_shipment_items_are_null_unless_requested(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox
) -> None:
    order_id = await new_order(v1)
    shipment = sandbox.create_label(order_id, tracking_number="TRK1", carrier_code="ups")
    plain = (await v1.get("/shipments")).json()["shipments"][0]
    assert plain["shipmentItems"] is None
    assert plain["shipmentId"] == shipment.shipment_id
    assert (plain["orderKey"], plain["orderNumber"], plain["trackingNumber"]) == (
        "k-1",
        "SO-1",
        "TRK1",
    )
    assert plain["shipDate"] == "2026-01-15"  # a date, Pacific
    assert plain["voided"] is False
    assert plain["voidDate"] is None
    full = (await v1.get("/shipments", params={"includeShipmentItems": "true"})).json()
    items = full["shipments"][0]["shipmentItems"]
    assert [(i["lineItemKey"], i["sku"], i["quantity"]) for i in items] == [
        ("L1", "PART-1", 3),
        ("L2", "PART-2", 1),
    ]
    assert all(isinstance(i["orderItemId"], int) for i in items)
    bad = await v1.get("/shipments", params={"includeShipmentItems": "maybe"})
    assert bad.status_code == 400


async def test_split_shipments_ship_the_order_when_all_items_are_out(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox, fake_clock: FakeClock
) -> None:
    order_id = await new_order(v1)
    before = (await v1.get(f"/orders/{order_id}")).json()["modifyDate"]
    fake_clock.advance(60)
    sandbox.create_label(order_id, {"L1": 2})
    partial = (await v1.get(f"/orders/{order_id}")).json()
    assert partial["orderStatus"] == "awaiting_shipment"
    assert partial["modifyDate"] > before
    with pytest.raises(OperatorError, match="only 1 left"):
        sandbox.create_label(order_id, {"L1": 2})
    sandbox.create_label(order_id, {"PART-1": 1, "L2": 1})
    done = (await v1.get(f"/orders/{order_id}")).json()
    assert done["orderStatus"] == "shipped"
    assert done["shipDate"] == "2026-01-15"
    listed = (await v1.get("/shipments", params={"orderId": order_id})).json()
    assert listed["total"] == 2
    with pytest.raises(OperatorError, match="shipped"):
        sandbox.create_label(order_id)


async def test_void_keeps_the_label_listed_and_reopens_the_order(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox, fake_clock: FakeClock
) -> None:
    order_id = await new_order(v1)
    shipment = sandbox.create_label(order_id)
    fake_clock.advance(3600)
    sandbox.void_label(shipment.shipment_id)
    listed = (await v1.get("/shipments")).json()["shipments"]
    assert listed[0]["voided"] is True
    assert listed[0]["voidDate"] == "2026-01-15T05:00:00.0000000"
    voided = await v1.get("/shipments", params={"voidDateStart": "2026-01-15 05:00:00"})
    assert voided.json()["total"] == 1
    order = (await v1.get(f"/orders/{order_id}")).json()
    assert order["orderStatus"] == "awaiting_shipment"
    with pytest.raises(OperatorError, match="already voided"):
        sandbox.void_label(shipment.shipment_id)
    # the whole order can be shipped again after the void
    sandbox.create_label(order_id)
    assert (await v1.get(f"/orders/{order_id}")).json()["orderStatus"] == "shipped"


async def test_shipment_filters(v1: httpx.AsyncClient, sandbox: ShipStationSandbox) -> None:
    a = await new_order(v1, "A-1", "a")
    b = await new_order(v1, "B-1", "b")
    first, second = sandbox.create_labels([LabelRequest(a), LabelRequest(b)])
    assert first.batch_id == second.batch_id

    async def ids(**params: str | int) -> list[int]:
        body = (await v1.get("/shipments", params=params)).json()
        return [s["shipmentId"] for s in body["shipments"]]

    assert await ids(orderNumber="B-1") == [second.shipment_id]
    assert await ids(trackingNumber=first.tracking_number) == [first.shipment_id]
    assert await ids(batchId=first.batch_id) == [first.shipment_id, second.shipment_id]
    assert await ids(shipDateStart="2026-01-16 00:00:00") == []
    assert await ids(createDateStart="2026-01-15 04:00:00") == [
        first.shipment_id,
        second.shipment_id,
    ]
    assert (await v1.get("/shipments", params={"shipDateStart": "nope"})).status_code == 400


async def test_operator_refuses_impossible_labels(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox
) -> None:
    order_id = await new_order(v1)
    with pytest.raises(OperatorError, match="no line"):
        sandbox.create_label(order_id, {"NOPE": 1})
    with pytest.raises(OperatorError, match="does not exist"):
        sandbox.create_label(999)
    sandbox.cancel_order(order_id)
    with pytest.raises(OperatorError, match="cancelled"):
        sandbox.create_label(order_id)


async def test_a_label_batch_is_all_or_nothing(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox
) -> None:
    a = await new_order(v1, "A-1", "a")
    b = await new_order(v1, "B-1", "b")
    sandbox.cancel_order(b)
    with pytest.raises(OperatorError, match="cancelled"):
        sandbox.create_labels([LabelRequest(a), LabelRequest(b)])
    with pytest.raises(OperatorError, match="one label per order"):
        sandbox.create_labels([LabelRequest(a, {"L1": 3}), LabelRequest(a, {"L1": 3})])
    assert sandbox.counts()["shipments"] == 0
    assert (await v1.get(f"/orders/{a}")).json()["orderStatus"] == "awaiting_shipment"
