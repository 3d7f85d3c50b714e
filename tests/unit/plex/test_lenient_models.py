"""Every model that reads a Plex answer takes what real tenants send (``""``, ``null``, numbers as
strings, unknown enum values, unknown fields, date-only dates) in its optional fields, and still
refuses an unreadable id or quantity with an error naming the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from mlconnector.clock import FakeClock
from mlconnector.lenient import UnreadableRecordError
from mlconnector.plex import PlexSettings
from mlconnector.plex.models import (
    Address,
    Container,
    Customer,
    InventoryShipment,
    Location,
    OrderLine,
    Part,
    Release,
    SalesOrder,
    ScheduledRelease,
    Shipper,
    ShipperLine,
)
from tests.unit.lenient_cases import (
    BAD_IDS,
    BAD_QUANTITIES,
    Cases,
    lenient_model_tests,
)
from tests.unit.plex.conftest import plex_client

STAMP = "2026-01-15T12:00:00.1234567Z"
ORDER = {
    "id": "9b0a-order",
    "customerId": "c-1",
    "orderNumber": "SO-1001",
    "poNumber": "PO-9",
    "status": "Open",
    "type": "Blanket",
    "category": "Production",
    "billToAddressId": "a-bill",
    "shipToAddressId": "a-ship",
    "carrierId": None,
    "carrier": "UPS",
    "note": "",
    "buildingId": "b-1",
    "orderDate": STAMP,
    "createdDate": STAMP,
    "modifiedDate": STAMP,
}
LINE = {
    "id": "l-1",
    "orderId": "9b0a-order",
    "partId": "p-1",
    "customerPartId": None,
    "lineNumber": "1",
    "note": None,
    "active": True,
    "createdDate": STAMP,
    "modifiedDate": STAMP,
}
RELEASE = {
    "id": "r-1",
    "releaseNumber": "1",
    "orderLineId": "l-1",
    "type": "Firm",
    "shipToAddressId": "a-ship",
    "shipDate": "2026-01-20T00:00:00Z",
    "dueDate": "2026-01-21",
    "quantity": 100,
    "quantityShipped": 0,
    "orderQuantity": 100,
    "status": "Open",
    "note": None,
    "partNumber": "BRKT-100",
    "createdDate": STAMP,
    "modifiedDate": STAMP,
}
CUSTOMER = {
    "id": "c-1",
    "code": "ACME",
    "name": "Acme Stamping",
    "status": "Active",
    "type": "OEM",
    "phone": "555-0100",
    "email": "",
    "modifiedDate": STAMP,
}
ADDRESS = {
    "id": "a-ship",
    "code": "DOCK4",
    "name": "Dock 4",
    "address": "12 Press Rd",
    "city": "Dayton",
    "state": "OH",
    "zip": "45402",
    "country": "USA",
    "phone": None,
    "email": None,
    "shipTo": True,
    "billTo": False,
    "active": True,
    "shippingInstructions": "",
    "modifiedDate": STAMP,
}
PART = {
    "id": "p-1",
    "number": "BRKT-100",
    "name": "Bracket",
    "revision": "A",
    "description": None,
    "type": "Finished Good",
    "status": "Production",
    "buildingCode": "B1",
    "modifiedDate": STAMP,
}
LOCATION = {
    "locationId": "loc-1",
    "locationCode": "FG-01",
    "buildingCode": "B1",
    "buildingName": "Plant 1",
    "locationType": "Finished Goods",
    "inventoryLocation": True,
}
CONTAINER = {
    "serialNo": "S100234",
    "partId": "p-1",
    "partNo": "BRKT-100",
    "revision": "A",
    "containerStatus": "OK",
    "locationId": "loc-1",
    "location": "FG-01",
    "quantity": 100,
    "addDateTime": STAMP,
    "updateDateTime": STAMP,
}
SHIPPER = {
    "id": "sh-1",
    "shipperNumber": "SH-1",
    "customerId": "c-1",
    "customerAddressId": "a-ship",
    "shipDate": None,
    "carrierId": None,
    "status": "Open",
    "trackingNumber": None,
    "note": None,
    "shipperNote": "",
    "bolNote": "",
    "scheduledShipDate": STAMP,
    "createdDate": STAMP,
    "modifiedDate": STAMP,
}
SHIPPER_LINE = {
    "id": "sl-1",
    "shipperId": "sh-1",
    "partId": "p-1",
    "quantity": 5,
    "releaseId": "r-1",
    "shipperLineNote": None,
    "packingComplete": False,
}
SCHEDULED = {"releaseId": "r-1", "shipperId": "sh-1", "shipperLineId": "sl-1"}
INVENTORY_SHIPMENT = {
    "id": "is-1",
    "externalShipmentCode": "ss-shipment-8801",
    "shipmentStatus": "Open",
    "containers": [],
    "createdDate": STAMP,
}

#: model → (realistic payload, {strict field: values that must make the record unreadable})
CASES: Cases = {
    SalesOrder: (ORDER, {"id": BAD_IDS}),
    OrderLine: (LINE, {"id": BAD_IDS}),
    Release: (
        RELEASE,
        {"id": BAD_IDS, "quantity": BAD_QUANTITIES, "quantityShipped": BAD_QUANTITIES},
    ),
    Customer: (CUSTOMER, {"id": BAD_IDS}),
    Address: (ADDRESS, {"id": BAD_IDS}),
    Part: (PART, {"id": BAD_IDS}),
    Location: (LOCATION, {"locationId": BAD_IDS}),
    Container: (CONTAINER, {"serialNo": BAD_IDS, "quantity": BAD_QUANTITIES}),
    Shipper: (SHIPPER, {"id": BAD_IDS}),
    ShipperLine: (SHIPPER_LINE, {"id": BAD_IDS, "quantity": BAD_QUANTITIES}),
    ScheduledRelease: (SCHEDULED, {"releaseId": BAD_IDS, "shipperLineId": BAD_IDS}),
    InventoryShipment: (INVENTORY_SHIPMENT, {"id": BAD_IDS}),
}
#: fields that are not lenient on purpose: ``containers`` is a raw list kept as Plex sent it
NOT_MUTATED: dict[type[BaseModel], set[str]] = {InventoryShipment: {"containers"}}
(
    test_every_realistic_payload_parses_as_it_is,
    test_a_page_parses_whatever_an_optional_field_holds,
    test_an_unreadable_id_or_quantity_fails_naming_the_field,
) = lenient_model_tests(CASES, NOT_MUTATED)


def test_date_only_dates_are_utc_midnight_and_numbers_become_text() -> None:
    release = Release.model_validate({**RELEASE, "shipDate": "2026-01-20", "releaseNumber": 7})
    assert release.ship_date == datetime(2026, 1, 20, tzinfo=UTC)
    assert release.due_date == datetime(2026, 1, 21, tzinfo=UTC)
    assert release.release_number == "7"
    assert Release.model_validate({**RELEASE, "quantity": "12"}).quantity == 12.0


async def test_one_unreadable_line_is_reported_with_its_field_and_the_rest_kept(
    http_factory: Any, settings: PlexSettings, fake_clock: FakeClock
) -> None:
    bad_line = {**LINE, "id": "l-2", "lineNumber": 2, "partId": "p-2", "quantity": 1}
    lines = [LINE, {**bad_line, "id": ""}]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=lines)

    client = plex_client(http_factory(handler), settings, fake_clock)
    with pytest.raises(UnreadableRecordError) as caught:
        await client.list_order_lines("9b0a-order")
    problem = caught.value.problems[0]
    assert problem.kind == "Plex OrderLine"
    assert problem.field == "id"
    assert problem.value == "''"
    assert problem.ref("orderId") == "9b0a-order"
    assert "sales/v1/orders/9b0a-order/lines" in problem.where
    assert "correct id of Plex OrderLine" in (caught.value.hint or "")
    reported: list[Any] = []
    good = await client.get_list(
        "sales/v1/orders/9b0a-order/lines", OrderLine, on_unreadable=reported.append
    )
    assert [line.id for line in good] == ["l-1"]
    # no readable id: named by a digest of the record, the same whichever answer carried it
    [unnamed] = reported
    assert unnamed.record_id.startswith("#")
    assert len(unnamed.record_id) == 13
    assert unnamed.record_id == caught.value.problems[0].record_id
