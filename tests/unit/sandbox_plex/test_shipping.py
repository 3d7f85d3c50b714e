"""Customer shippers and inventory shipments: shipping moves quantity out of inventory."""

from __future__ import annotations

from typing import Any

import httpx

from mlconnector.clock import FakeClock
from mlconnector.sandbox.plex import PlexSandbox
from mlconnector.sandbox.plex.model import Release
from mlconnector.sandbox.plex.state import TenantData
from mlconnector.timezones import format_utc_z

BETA = "/shipping/v1-beta1/customer-shippers"


def _open_release(data: TenantData, sandbox: PlexSandbox) -> Release:
    """An open, unshipped release of an open order whose part has enough shippable stock."""
    for release in data.releases.values():
        order = data.order_of_release(release)
        part = data.part_of_release(release)
        if (
            release.status == "Open"
            and release.quantity_shipped == 0
            and order.status == "Open"
            and sandbox.on_hand(part.id) >= release.quantity
        ):
            return release
    raise AssertionError("seed has no shippable release")


async def _create_shipper(client: httpx.AsyncClient, data: TenantData, release: Release) -> Any:
    order = data.order_of_release(release)
    response = await client.post(
        BETA,
        json={
            "customerId": order.customer_id,
            "customerAddressId": release.ship_to_address_id,
            "shipperNote": "ss-shipment-1001",
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_ship_shipper_reduces_on_hand_and_adds_quantity_shipped(
    client: httpx.AsyncClient, sandbox: PlexSandbox, fake_clock: FakeClock
) -> None:
    data = sandbox.tenant()
    release = _open_release(data, sandbox)
    part_id = data.part_of_release(release).id
    on_hand_before = sandbox.on_hand(part_id)
    shipper = await _create_shipper(client, data, release)
    assert shipper["status"] == "Open"

    scheduled = await client.post(
        f"{BETA}/{shipper['id']}/schedule-releases", json={"releaseId": release.id}
    )
    assert scheduled.status_code == 200
    (link,) = scheduled.json()
    assert link["releaseId"] == release.id
    loaded = await client.post(f"{BETA}/{shipper['id']}/lines/{link['shipperLineId']}/load-fifo")
    assert loaded.status_code == 200
    assert loaded.json()["quantity"] == release.quantity
    assert sandbox.on_hand(part_id) == on_hand_before  # loading alone does not ship

    fake_clock.advance(600)
    shipped = await client.post(f"{BETA}/{shipper['id']}/ship")
    assert shipped.status_code == 200
    assert shipped.json()["status"] == "Shipped"
    assert shipped.json()["shipDate"] == format_utc_z(fake_clock.now())
    assert sandbox.on_hand(part_id) == on_hand_before - release.quantity
    assert sandbox.quantity_shipped(release.id) == int(release.quantity)
    assert release.status == "Shipped"
    assert data.order_of_release(release).modified == fake_clock.now()

    again = await client.post(f"{BETA}/{shipper['id']}/ship")
    assert again.status_code == 400
    assert sandbox.on_hand(part_id) == on_hand_before - release.quantity


async def test_shipper_lines_and_loaded_containers_are_listed(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    data = sandbox.tenant()
    release = _open_release(data, sandbox)
    shipper = await _create_shipper(client, data, release)
    (link,) = (
        await client.post(
            f"{BETA}/{shipper['id']}/schedule-releases", json={"releaseId": release.id}
        )
    ).json()
    await client.post(f"{BETA}/{shipper['id']}/lines/{link['shipperLineId']}/load-fifo")
    lines = await client.get(f"/shipping/v1/customer-shippers/{shipper['id']}/lines")
    assert [line["releaseId"] for line in lines.json()] == [release.id]
    containers = await client.get(
        f"/shipping/v1/customer-shippers/{shipper['id']}/lines/{link['shipperLineId']}/containers"
    )
    assert sum(c["quantity"] for c in containers.json()) == release.quantity


async def test_partial_stock_cannot_load(client: httpx.AsyncClient, sandbox: PlexSandbox) -> None:
    data = sandbox.tenant()
    release = _open_release(data, sandbox)
    part_id = data.part_of_release(release).id
    for container in data.containers.values():
        if container.part_id == part_id:
            sandbox.adjust_container(container.serial_no, quantity=0)
    shipper = await _create_shipper(client, data, release)
    (link,) = (
        await client.post(
            f"{BETA}/{shipper['id']}/schedule-releases", json={"releaseId": release.id}
        )
    ).json()
    response = await client.post(f"{BETA}/{shipper['id']}/lines/{link['shipperLineId']}/load-fifo")
    assert response.status_code == 400
    assert response.json()["code"] == "INSUFFICIENT_INVENTORY"


async def test_put_shipper_sets_tracking_and_bumps_modified(
    client: httpx.AsyncClient, sandbox: PlexSandbox, fake_clock: FakeClock
) -> None:
    data = sandbox.tenant()
    shipper = await _create_shipper(client, data, _open_release(data, sandbox))
    fake_clock.advance(60)
    response = await client.put(
        f"{BETA}/{shipper['id']}",
        json={"trackingNumber": "1Z999", "shipperNote": "ss-shipment-42", "unknownField": 1},
    )
    assert response.status_code == 200
    assert response.json()["trackingNumber"] == "1Z999"
    assert response.json()["modifiedDate"] == format_utc_z(fake_clock.now())
    found = await client.get("/shipping/v1/customer-shippers", params={"trackingNumber": "1Z999"})
    assert [s["id"] for s in found.json()] == [shipper["id"]]


async def test_schedule_rejects_release_of_other_customer(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    data = sandbox.tenant()
    release = _open_release(data, sandbox)
    other = next(
        r
        for r in data.releases.values()
        if data.order_of_release(r).customer_id != data.order_of_release(release).customer_id
    )
    shipper = await _create_shipper(client, data, release)
    response = await client.post(
        f"{BETA}/{shipper['id']}/schedule-releases", json={"releaseId": other.id}
    )
    assert response.status_code == 400


async def test_inventory_shipment_ship_empties_staged_containers(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    data = sandbox.tenant()
    container = next(c for c in data.containers.values() if c.status == "OK")
    before, quantity = sandbox.on_hand(container.part_id), container.quantity
    created = await client.post(
        "/inventory/v1/inventory-shipping/shipments",
        json={"externalShipmentCode": "ss-fulfillment-77"},
    )
    assert created.status_code == 201
    shipment_id = created.json()["id"]
    staged = await client.post(
        f"/inventory/v1-beta1/inventory-shipping/shipments/{shipment_id}/stage",
        json={"serialNos": [container.serial_no]},
    )
    assert staged.status_code == 202
    assert sandbox.on_hand(container.part_id) == before
    shipped = await client.post(
        f"/inventory/v1-beta1/inventory-shipping/shipments/{shipment_id}/ship"
    )
    assert shipped.status_code == 202
    assert shipped.json()["shipmentStatus"] == "Shipped"
    assert sandbox.on_hand(container.part_id) == before - quantity
    assert container.quantity == 0
    listed = await client.get(
        "/inventory/v1/inventory-tracking/containers", params={"partId": container.part_id}
    )
    assert container.serial_no not in {c["serialNo"] for c in listed.json()}
    by_code = await client.get(
        "/inventory/v1/inventory-shipping/shipments",
        params={"externalShipmentCode": "ss-fulfillment-77"},
    )
    assert [s["id"] for s in by_code.json()] == [shipment_id]


async def test_inventory_shipment_unship_restores_and_unstage_releases(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    data = sandbox.tenant()
    first, second = [c for c in data.containers.values() if c.status == "OK"][:2]
    before, quantity = sandbox.on_hand(first.part_id), first.quantity
    base = "/inventory/v1-beta1/inventory-shipping/shipments"
    shipment = (
        await client.post(
            "/inventory/v1/inventory-shipping/shipments", json={"externalShipmentCode": "void-1"}
        )
    ).json()
    await client.post(
        f"{base}/{shipment['id']}/stage", json={"serialNos": [first.serial_no, second.serial_no]}
    )
    unstaged = await client.post(
        f"{base}/{shipment['id']}/unstage", json={"serialNos": [second.serial_no]}
    )
    assert [c["serialNo"] for c in unstaged.json()["containers"]] == [first.serial_no]
    await client.post(f"{base}/{shipment['id']}/ship")
    assert sandbox.on_hand(first.part_id) == before - quantity
    unshipped = await client.post(f"{base}/{shipment['id']}/unship")
    assert unshipped.status_code == 202
    assert sandbox.on_hand(first.part_id) == before
    assert (first.quantity, first.status) == (quantity, "OK")
    twice = await client.post(f"{base}/{shipment['id']}/unship")
    assert twice.status_code == 400
    assert sandbox.on_hand(first.part_id) == before
