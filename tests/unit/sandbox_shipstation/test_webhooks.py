"""V1 thin webhooks: subscriptions, when they fire, and that resource_url returns the batch."""

from __future__ import annotations

import json

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.sandbox.shipstation import OperatorError, ShipStationSandbox

from .conftest import BASE, Receiver, order_payload


async def subscribe(v1: httpx.AsyncClient, event: str, **extra: object) -> int:
    body = {"target_url": f"https://hooks.test/{event.lower()}", "event": event, **extra}
    response = await v1.post("/webhooks/subscribe", json=body)
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def payloads(receiver: Receiver) -> list[dict[str, str]]:
    return [json.loads(r.content) for r in receiver.requests]


async def test_subscribe_list_and_unsubscribe(v1: httpx.AsyncClient) -> None:
    hook_id = await subscribe(v1, "SHIP_NOTIFY", store_id=101, friendly_name="Plex")
    hooks = (await v1.get("/webhooks")).json()["webhooks"]
    assert [
        (h["WebHookID"], h["HookType"], h["StoreID"], h["Name"], h["Active"]) for h in hooks
    ] == [(hook_id, "SHIP_NOTIFY", 101, "Plex", True)]
    assert hooks[0]["Url"] == "https://hooks.test/ship_notify"
    assert (await v1.delete(f"/webhooks/{hook_id}")).status_code == 200
    assert (await v1.get("/webhooks")).json()["webhooks"] == []
    assert (await v1.delete(f"/webhooks/{hook_id}")).status_code == 404
    bad = await v1.post("/webhooks/subscribe", json={"target_url": "x", "event": "SHIP_NOTIFY"})
    assert bad.status_code == 400
    bad = await v1.post(
        "/webhooks/subscribe", json={"target_url": "https://a.test", "event": "ORDER_UPDATED"}
    )
    assert bad.status_code == 400


async def test_order_notify_is_thin_and_its_url_returns_exactly_the_batch(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox, receiver: Receiver
) -> None:
    await v1.post("/orders/createorder", json=order_payload("OLD", "old"))
    await subscribe(v1, "ORDER_NOTIFY")
    await v1.post(
        "/orders/createorders", json=[order_payload("N1", "n1"), order_payload("N2", "n2")]
    )
    results = await sandbox.deliver_webhooks()
    assert [(r.status, r.resource_type) for r in results] == [(200, "ORDER_NOTIFY")]
    (body,) = payloads(receiver)
    assert set(body) == {"resource_url", "resource_type"}
    assert body["resource_type"] == "ORDER_NOTIFY"
    assert body["resource_url"].startswith(f"{BASE}/orders?importBatch=")
    followed = (await v1.get(body["resource_url"])).json()
    assert sorted(o["orderNumber"] for o in followed["orders"]) == ["N1", "N2"]
    assert await sandbox.deliver_webhooks() == []  # the queue is empty now


async def test_order_notify_rules_updates_and_awaiting_payment(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox, receiver: Receiver
) -> None:
    await subscribe(v1, "ORDER_NOTIFY")
    await v1.post("/orders/createorder", json=order_payload(orderStatus="awaiting_payment"))
    await v1.post(
        "/orders/createorder",
        json=order_payload(orderStatus="awaiting_payment", internalNotes="edit"),
    )
    order_id = sandbox.all_orders()[0]["orderId"]
    sandbox.edit_order(order_id, {"internalNotes": "UI edit"})
    assert await sandbox.deliver_webhooks() == []  # no event for updates, edits or unpaid orders
    await v1.post("/orders/createorder", json=order_payload())  # paid: awaiting_shipment
    (result,) = await sandbox.deliver_webhooks()
    followed = (await v1.get(result.resource_url)).json()
    assert [o["orderId"] for o in followed["orders"]] == [order_id]


async def test_store_scoped_hooks_fire_only_for_their_store(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox, receiver: Receiver
) -> None:
    await subscribe(v1, "ORDER_NOTIFY", store_id=101)
    await v1.post("/orders/createorder", json=order_payload("M", "m"))  # manual store
    assert await sandbox.deliver_webhooks() == []
    await v1.post(
        "/orders/createorder", json=order_payload("P", "p", advancedOptions={"storeId": 101})
    )
    assert len(await sandbox.deliver_webhooks()) == 1


async def test_ship_notify_url_returns_the_label_batch(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox, receiver: Receiver
) -> None:
    await subscribe(v1, "SHIP_NOTIFY")
    await subscribe(v1, "ITEM_SHIP_NOTIFY")
    order = (await v1.post("/orders/createorder", json=order_payload())).json()
    first = sandbox.create_label(order["orderId"], {"L1": 1})
    second = sandbox.create_label(order["orderId"], {"L1": 2})
    results = await sandbox.deliver_webhooks()
    assert [r.resource_type for r in results] == [
        "SHIP_NOTIFY",
        "ITEM_SHIP_NOTIFY",
        "SHIP_NOTIFY",
        "ITEM_SHIP_NOTIFY",
    ]
    url = results[2].resource_url
    assert url == f"{BASE}/shipments?batchId={second.batch_id}&includeShipmentItems=False"
    followed = (await v1.get(url)).json()
    assert [s["shipmentId"] for s in followed["shipments"]] == [second.shipment_id]
    assert followed["shipments"][0]["shipmentItems"] is None
    with_items = (await v1.get(url.replace("False", "True"))).json()["shipments"][0]
    assert [(i["lineItemKey"], i["quantity"]) for i in with_items["shipmentItems"]] == [("L1", 2)]
    assert first.shipment_id != second.shipment_id


async def test_markasshipped_fires_fulfillment_shipped_but_no_ship_notify(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox, receiver: Receiver
) -> None:
    await subscribe(v1, "SHIP_NOTIFY")
    await subscribe(v1, "FULFILLMENT_SHIPPED")
    order = (await v1.post("/orders/createorder", json=order_payload())).json()
    await v1.post(
        "/orders/markasshipped", json={"orderId": order["orderId"], "carrierCode": "fedex"}
    )
    (result,) = await sandbox.deliver_webhooks()
    assert result.resource_type == "FULFILLMENT_SHIPPED"
    followed = (await v1.get(result.resource_url)).json()
    assert [f["orderId"] for f in followed["fulfillments"]] == [order["orderId"]]


async def test_fulfillment_rejected(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox, receiver: Receiver
) -> None:
    await subscribe(v1, "FULFILLMENT_REJECTED")
    order = (await v1.post("/orders/createorder", json=order_payload())).json()
    sandbox.reject_fulfillment(order["orderId"])
    (result,) = await sandbox.deliver_webhooks()
    followed = (await v1.get(result.resource_url)).json()
    assert [o["orderStatus"] for o in followed["orders"]] == ["rejected_fulfillment"]


async def test_duplicate_and_reorder_faults_apply_to_deliveries(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox, receiver: Receiver
) -> None:
    await subscribe(v1, "ORDER_NOTIFY")
    sandbox.faults.configure(duplicate_webhooks=True)
    await v1.post("/orders/createorder", json=order_payload("A", "a"))
    results = await sandbox.deliver_webhooks()
    assert len(results) == 2
    assert results[0].resource_url == results[1].resource_url
    sandbox.faults.configure(reorder_webhooks=True, seed=3)
    for i in range(6):
        await v1.post("/orders/createorder", json=order_payload(f"R{i}", f"r{i}"))
    queued = [json.loads(d.body)["resource_url"] for d in sandbox.webhooks.pending]
    sent = [r.resource_url for r in await sandbox.deliver_webhooks()]
    assert sorted(sent) == sorted(queued)
    assert sent != queued


async def test_receiver_errors_are_reported_not_raised(
    fake_clock: FakeClock, v1: httpx.AsyncClient, sandbox: ShipStationSandbox, receiver: Receiver
) -> None:
    await subscribe(v1, "ORDER_NOTIFY")
    receiver.status = 503
    await v1.post("/orders/createorder", json=order_payload())
    (result,) = await sandbox.deliver_webhooks()
    assert result.status == 503

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    sandbox.webhooks.transport = httpx.MockTransport(refuse)
    await v1.post("/orders/createorder", json=order_payload("B", "b"))
    (failed,) = await sandbox.deliver_webhooks()
    assert failed.status is None
    assert failed.error
    assert "ConnectError" in failed.error


async def test_background_delivery_runs_on_the_injected_clock(
    fake_clock: FakeClock, v1: httpx.AsyncClient, sandbox: ShipStationSandbox, receiver: Receiver
) -> None:
    await subscribe(v1, "ORDER_NOTIFY")
    await v1.post("/orders/createorder", json=order_payload())
    sandbox.start_auto_delivery(interval=5)
    try:
        await fake_clock.sleep(4)  # virtual time: returns at once
        assert receiver.requests == []  # not before the first interval
        for _ in range(5):  # let the delivery task run once its 5 s are up
            await fake_clock.sleep(1)
            if receiver.requests:
                break
        assert len(receiver.requests) == 1
        assert sandbox.webhooks.pending == []
    finally:
        await sandbox.stop_auto_delivery()


async def test_ui_edits_are_silent_unless_an_unpaid_order_becomes_payable(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox, receiver: Receiver
) -> None:
    await subscribe(v1, "ORDER_NOTIFY")
    order = (
        await v1.post("/orders/createorder", json=order_payload(orderStatus="awaiting_payment"))
    ).json()
    sandbox.edit_order(order["orderId"], {"internalNotes": "called the customer"})
    assert await sandbox.deliver_webhooks() == []
    sandbox.edit_order(order["orderId"], {"orderStatus": "awaiting_shipment"})
    (result,) = await sandbox.deliver_webhooks()
    followed = (await v1.get(result.resource_url)).json()
    assert [o["orderId"] for o in followed["orders"]] == [order["orderId"]]
    sandbox.edit_order(order["orderId"], {"orderStatus": "on_hold"})
    assert await sandbox.deliver_webhooks() == []


async def test_a_refused_ui_edit_changes_nothing(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox
) -> None:
    order = (await v1.post("/orders/createorder", json=order_payload())).json()
    with pytest.raises(OperatorError, match="paymentDate"):
        sandbox.edit_order(order["orderId"], {"internalNotes": "x", "paymentDate": "soon"})
    assert (await v1.get(f"/orders/{order['orderId']}")).json() == order
