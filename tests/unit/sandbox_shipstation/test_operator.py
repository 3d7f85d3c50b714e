"""The HTTP operator surface, UI edits, reset, and a real loopback run with public_url."""

from __future__ import annotations

import httpx

from mlconnector.clock import FakeClock
from mlconnector.sandbox.server import serve
from mlconnector.sandbox.shipstation import ShipStationSandbox, create_shipstation_sandbox

from .conftest import V1_AUTH, Receiver, order_payload


async def test_operator_http_actions(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox, fake_clock: FakeClock, receiver: Receiver
) -> None:
    await v1.post(
        "/webhooks/subscribe", json={"target_url": "https://hooks.test/s", "event": "SHIP_NOTIFY"}
    )
    order = (await v1.post("/orders/createorder", json=order_payload())).json()
    oid = order["orderId"]
    fake_clock.advance(10)
    edited = (await v1.post(f"/_operator/orders/{oid}/edit", json={"internalNotes": "UI"})).json()
    assert edited["internalNotes"] == "UI"
    assert edited["modifyDate"] > order["modifyDate"]
    refused = await v1.post(f"/_operator/orders/{oid}/edit", json={"orderId": 5})
    assert refused.status_code == 400
    assert "orderId" in refused.json()["error"]
    label = await v1.post(
        f"/_operator/orders/{oid}/labels", json={"quantities": {"L1": 1}, "trackingNumber": "T-1"}
    )
    assert label.json()["trackingNumber"] == "T-1"
    assert label.json()["shipmentItems"][0]["quantity"] == 1
    pending = (await v1.get("/_operator/webhooks/pending")).json()
    assert [p["resource_type"] for p in pending] == ["SHIP_NOTIFY"]
    delivered = (await v1.post("/_operator/webhooks/deliver")).json()
    assert [d["status"] for d in delivered] == [200]
    void = await v1.post(f"/_operator/shipments/{label.json()['shipmentId']}/void")
    assert void.json()["voided"] is True
    shipped = await v1.post(f"/_operator/orders/{oid}/mark-shipped", json={"carrierCode": "ups"})
    assert shipped.json()["orderId"] == oid
    counts = (await v1.get("/_operator/counts")).json()
    assert counts["shipments_voided"] == 1
    assert counts["fulfillments"] == 1
    assert counts["orders_shipped"] == 1
    cancel = await v1.post(f"/_operator/orders/{oid}/cancel")
    assert cancel.status_code == 400  # shipped orders cannot be cancelled
    faults = await v1.post("/_operator/faults", json={"error_rate": 1.0})
    assert faults.json()["error_rate"] == 1.0
    assert (await v1.get("/orders")).status_code == 500
    assert (await v1.post("/_operator/reset")).json() == {"reset": True}
    assert (await v1.get("/orders")).json()["total"] == 0
    assert sandbox.counts()["orders"] == 0


async def test_ui_edit_bumps_modify_date_and_is_seen_by_the_modify_filter(
    v1: httpx.AsyncClient, sandbox: ShipStationSandbox, fake_clock: FakeClock
) -> None:
    order = (await v1.post("/orders/createorder", json=order_payload())).json()
    fake_clock.advance(7200)
    sandbox.edit_order(
        order["orderId"], {"shipByDate": "2026-01-20 00:00:00", "shipTo": {"city": "Dallas"}}
    )
    since = await v1.get("/orders", params={"modifyDateStart": "2026-01-15 06:00:00"})
    (changed,) = since.json()["orders"]
    assert changed["modifyDate"] == "2026-01-15T06:00:00.0000000"
    assert changed["shipTo"]["city"] == "Dallas"
    assert changed["shipTo"]["name"] == "Ada"
    assert changed["shipByDate"] == "2026-01-20T00:00:00.0000000"
    assert sandbox.order_by_key("key-1") == changed


async def test_served_on_loopback_resource_urls_point_back(fake_clock: FakeClock) -> None:
    receiver = Receiver()
    sandbox = create_shipstation_sandbox(
        fake_clock, webhook_transport=httpx.MockTransport(receiver)
    )
    async with serve(sandbox.app) as base_url:
        sandbox.public_url = base_url
        async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": V1_AUTH}) as c:
            await c.post(
                "/webhooks/subscribe",
                json={"target_url": "https://hooks.test/o", "event": "ORDER_NOTIFY"},
            )
            await c.post("/orders/createorder", json=order_payload())
            (result,) = await sandbox.deliver_webhooks()
            assert result.resource_url.startswith(f"{base_url}/orders?importBatch=")
            followed = await c.get(result.resource_url)
            assert followed.json()["orders"][0]["orderKey"] == "key-1"
