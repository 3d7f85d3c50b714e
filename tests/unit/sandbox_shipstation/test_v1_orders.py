"""V1 order rules: upsert by orderKey, whole replacement, frozen orders, storeId, validation."""

from __future__ import annotations

from typing import Any

import httpx

from mlconnector.clock import FakeClock
from mlconnector.sandbox.shipstation import ShipStationSandbox

from .conftest import order_payload


async def create(v1: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await v1.post("/orders/createorder", json=body)


async def test_createorder_returns_the_full_order_with_ids_and_dates(
    v1: httpx.AsyncClient,
) -> None:
    response = await create(v1, order_payload())
    assert response.status_code == 200
    order = response.json()
    assert isinstance(order["orderId"], int)
    assert order["orderKey"] == "key-1"
    assert order["orderStatus"] == "awaiting_shipment"
    assert [i["sku"] for i in order["items"]] == ["PART-1", "PART-2"]
    assert all(isinstance(i["orderItemId"], int) for i in order["items"])
    # fake clock starts 2026-01-15 12:00 UTC = 04:00 PST
    assert order["createDate"] == "2026-01-15T04:00:00.0000000"
    assert order["modifyDate"] == order["createDate"]
    assert order["orderDate"] == "2026-01-15T08:00:00.0000000"
    assert (await v1.get(f"/orders/{order['orderId']}")).json() == order


async def test_upsert_by_order_key_updates_instead_of_duplicating(
    v1: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    first = (await create(v1, order_payload())).json()
    fake_clock.advance(90)
    second = (await create(v1, order_payload(internalNotes="changed"))).json()
    assert second["orderId"] == first["orderId"]
    assert second["internalNotes"] == "changed"
    assert second["createDate"] == first["createDate"]
    assert second["modifyDate"] == "2026-01-15T04:01:30.0000000"
    # the same line keeps its orderItemId across the replacement
    assert second["items"][0]["orderItemId"] == first["items"][0]["orderItemId"]
    listed = (await v1.get("/orders")).json()
    assert listed["total"] == 1


async def test_no_order_key_always_creates_a_new_order_with_a_generated_key(
    v1: httpx.AsyncClient,
) -> None:
    a = (await create(v1, order_payload(key=None))).json()
    b = (await create(v1, order_payload(key=None))).json()
    assert a["orderId"] != b["orderId"]
    assert a["orderKey"]
    assert b["orderKey"]
    assert a["orderKey"] != b["orderKey"]
    assert (await v1.get("/orders")).json()["total"] == 2


async def test_update_replaces_the_whole_order_and_blanks_omitted_fields(
    v1: httpx.AsyncClient,
) -> None:
    await create(v1, order_payload(customerNotes="fragile", gift=True))
    body = order_payload()
    body["items"] = body["items"][:1]
    del body["internalNotes"]
    updated = (await create(v1, body)).json()
    assert updated["customerNotes"] is None
    assert updated["internalNotes"] is None
    assert updated["gift"] is False
    assert [i["lineItemKey"] for i in updated["items"]] == ["L1"]


async def test_shipped_and_cancelled_orders_are_frozen(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox
) -> None:
    shipped = (await create(v1, order_payload("SO-1", "k-ship"))).json()
    cancelled = (await create(v1, order_payload("SO-2", "k-cancel"))).json()
    sandbox.create_label(shipped["orderId"])
    sandbox.cancel_order(cancelled["orderId"])
    refused = await create(v1, order_payload("SO-1", "k-ship", internalNotes="late edit"))
    assert refused.status_code == 400
    assert "shipped" in refused.json()["message"]
    assert "k-ship" in refused.json()["message"]
    batch = await v1.post(
        "/orders/createorders",
        json=[order_payload("SO-2", "k-cancel"), order_payload("SO-3", "k-new")],
    )
    result = batch.json()
    assert batch.status_code == 200
    assert result["hasErrors"] is True
    failed, ok = result["results"]
    assert failed["success"] is False
    assert "cancelled" in failed["errorMessage"]
    assert failed["orderKey"] == "k-cancel"
    assert ok["success"] is True
    assert ok["errorMessage"] is None
    assert ok["orderId"] > 0
    still = (await v1.get(f"/orders/{shipped['orderId']}")).json()
    assert still["internalNotes"] == "note"
    assert still["orderStatus"] == "shipped"


async def test_an_open_order_can_be_cancelled_by_upsert(v1: httpx.AsyncClient) -> None:
    await create(v1, order_payload())
    cancelled = await create(v1, order_payload(orderStatus="cancelled"))
    assert cancelled.json()["orderStatus"] == "cancelled"
    assert (await create(v1, order_payload())).status_code == 400


async def test_createorders_partial_failure_reports_each_order(v1: httpx.AsyncClient) -> None:
    bodies: list[Any] = [
        order_payload("OK-1", "a"),
        order_payload("", "b"),
        order_payload("X" * 51, "c"),
        order_payload("BAD-STATUS", "d", orderStatus="open"),
        order_payload("NO-DATE", "e", orderDate=None),
        order_payload("BAD-DATE", "f", orderDate="15/01/2026"),
        order_payload("NO-SKU", "g", items=[{"quantity": 1}]),
        order_payload("ZERO-QTY", "h", items=[{"sku": "S", "quantity": 0}]),
        "not an order",
        order_payload("OK-2", "i"),
    ]
    response = await v1.post("/orders/createorders", json=bodies)
    results = response.json()["results"]
    assert [r["success"] for r in results] == [True] + [False] * 8 + [True]
    messages = [r["errorMessage"] for r in results]
    assert "orderNumber" in messages[1]
    assert "50" in messages[2]
    assert "orderStatus" in messages[3]
    assert "orderDate" in messages[4]
    assert "orderDate" in messages[5]
    assert "sku" in messages[6]
    assert "quantity" in messages[7]
    assert (await v1.get("/orders")).json()["total"] == 2


async def test_createorders_refuses_more_than_100_and_non_arrays(v1: httpx.AsyncClient) -> None:
    too_many = [order_payload(f"N-{i}", f"k-{i}") for i in range(101)]
    response = await v1.post("/orders/createorders", json=too_many)
    assert response.status_code == 400
    assert "100" in response.json()["message"]
    assert (await v1.get("/orders")).json()["total"] == 0
    assert (await v1.post("/orders/createorders", json=order_payload())).status_code == 400
    exactly = [order_payload(f"N-{i}", f"k-{i}") for i in range(100)]
    assert (await v1.post("/orders/createorders", json=exactly)).json()["hasErrors"] is False


async def test_single_createorder_validation_is_400(v1: httpx.AsyncClient) -> None:
    response = await create(v1, order_payload(orderNumber=None))
    assert response.status_code == 400
    assert "orderNumber" in response.json()["message"]
    not_json = await v1.post("/orders/createorder", content=b"{oops")
    assert not_json.status_code == 400


async def test_store_id_is_honoured_only_at_creation(v1: httpx.AsyncClient) -> None:
    created = (await create(v1, order_payload(advancedOptions={"storeId": 101}))).json()
    assert created["advancedOptions"]["storeId"] == 101
    moved = (await create(v1, order_payload(advancedOptions={"storeId": 100}))).json()
    assert moved["advancedOptions"]["storeId"] == 101
    default = (await create(v1, order_payload("SO-9", "k9"))).json()
    assert default["advancedOptions"]["storeId"] == 100  # the manual store
    unknown = await create(v1, order_payload("SO-8", "k8", advancedOptions={"storeId": 999}))
    assert unknown.status_code == 400


async def test_delete_is_soft_and_get_of_unknown_is_404(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox
) -> None:
    order = (await create(v1, order_payload())).json()
    assert (await v1.delete(f"/orders/{order['orderId']}")).status_code == 200
    assert (await v1.get(f"/orders/{order['orderId']}")).status_code == 404
    assert (await v1.get("/orders")).json()["total"] == 0
    assert sandbox.counts()["orders_deleted"] == 1
    assert (await v1.delete(f"/orders/{order['orderId']}")).status_code == 404
    assert (await v1.get("/orders/abc")).status_code == 404


async def test_markasshipped_makes_a_fulfilment_not_a_shipment(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox
) -> None:
    order = (await create(v1, order_payload())).json()
    response = await v1.post(
        "/orders/markasshipped",
        json={
            "orderId": order["orderId"],
            "carrierCode": "ups",
            "shipDate": "2026-01-15",
            "trackingNumber": "1Z999",
        },
    )
    assert response.json() == {"orderId": order["orderId"], "orderNumber": "SO-1"}
    assert (await v1.get(f"/orders/{order['orderId']}")).json()["orderStatus"] == "shipped"
    assert (await v1.get("/shipments")).json()["total"] == 0
    fulfillments = (await v1.get("/fulfillments")).json()["fulfillments"]
    assert [f["trackingNumber"] for f in fulfillments] == ["1Z999"]
    again = await v1.post(
        "/orders/markasshipped", json={"orderId": order["orderId"], "carrierCode": "ups"}
    )
    assert again.status_code == 400
    missing = await v1.post("/orders/markasshipped", json={"orderId": 1, "carrierCode": "ups"})
    assert missing.status_code == 404
    assert (await v1.post("/orders/markasshipped", json={"orderId": 1})).status_code == 400
