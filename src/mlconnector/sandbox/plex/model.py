"""Records of a simulated Plex tenant and their JSON forms (field names from the Plex spec).

Every record has a REST ``id`` (lower-case UUID) and, where Plex's datasources know it, an integer
``key`` (``Shipper_Key``, ``Part_Key``…): REST and the Data Source API use different ids, and the
simulator keeps both so the connector's mapping between them can be tested.

Unset optional fields are sent as JSON ``null`` (the spec scrape records no nullability; a client
must cope with both a missing field and a ``null``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlconnector.timezones import format_utc_z

Json = dict[str, Any]


def ts(value: datetime | None) -> str | None:
    """A datetime in Plex's wire form (UTC, 7 fractional digits, ``Z``), or ``None``."""
    return format_utc_z(value) if value is not None else None


@dataclass
class Tenant:
    id: str
    code: str
    pcn: int
    name: str

    def to_json(self) -> Json:
        return {"id": self.id, "code": self.code}


@dataclass
class Address:
    id: str
    key: int
    customer_id: str
    code: str
    name: str
    address: str
    city: str
    state: str
    zip: str
    country: str
    phone: str
    email: str
    ship_to: bool
    bill_to: bool
    created: datetime
    modified: datetime
    active: bool = True
    residential: bool = False
    shipping_instructions: str | None = None

    def to_json(self) -> Json:
        return {
            "id": self.id,
            "code": self.code,
            "note": None,
            "quoteTo": False,
            "shipTo": self.ship_to,
            "billTo": self.bill_to,
            "billToAddressId": None,
            "remitTo": False,
            "thirdPartyShipTo": False,
            "pool": False,
            "active": self.active,
            "phone": self.phone,
            "fax": None,
            "email": self.email,
            "name": self.name,
            "address": self.address,
            "city": self.city,
            "state": self.state,
            "zip": self.zip,
            "country": self.country,
            "region": None,
            "county": None,
            "shippingInstructions": self.shipping_instructions,
            "transportationLeadTime": 2,
            "defaultCarrierIds": [],
            "freightTerms": "Prepaid",
            "soldTo": self.bill_to,
            "terms": "Net 30",
            "incoTerms": None,
            "createdDate": ts(self.created),
            "modifiedDate": ts(self.modified),
        }


@dataclass
class Customer:
    id: str
    key: int
    code: str
    name: str
    type: str
    phone: str
    email: str
    created: datetime
    modified: datetime
    status: str = "Active"
    addresses: list[Address] = field(default_factory=list)

    def to_json(self) -> Json:
        return {
            "id": self.id,
            "code": self.code,
            "name": self.name,
            "status": self.status,
            "type": self.type,
            "note": None,
            "supplierCode": f"V{self.key:05d}",
            "industries": ["Automotive"],
            "defaultCarrierIds": [],
            "region": None,
            "category": "OEM" if self.type == "OEM" else "Aftermarket",
            "phone": self.phone,
            "fax": None,
            "email": self.email,
            "multipleOrdersPerShipper": False,
            "newShipperPerReleaseNo": False,
            "defaultBackOrder": "Yes",
            "createdDate": ts(self.created),
            "modifiedDate": ts(self.modified),
        }


@dataclass
class Location:
    id: str
    code: str
    building_code: str
    building_name: str
    type: str
    inventory: bool = True

    def to_json(self) -> Json:
        return {
            "locationId": self.id,
            "locationCode": self.code,
            "buildingName": self.building_name,
            "buildingCode": self.building_code,
            "locationType": self.type,
            "inventoryLocation": self.inventory,
            "supplyLocation": False,
            "tankSilo": False,
        }


@dataclass
class Part:
    id: str
    key: int
    number: str
    revision: str
    name: str
    type: str
    group: str
    building_code: str
    unit_price: float
    unit_weight: float
    created: datetime
    modified: datetime
    status: str = "Active"
    source: str = "Manufactured"

    @property
    def number_revision(self) -> str:
        return f"{self.number}-{self.revision}" if self.revision else self.number

    def to_json(self) -> Json:
        return {
            "id": self.id,
            "number": self.number,
            "name": self.name,
            "revision": self.revision,
            "description": self.name,
            "type": self.type,
            "group": self.group,
            "source": self.source,
            "productType": "Automotive",
            "status": self.status,
            "note": None,
            "leadTimeDays": 10.0,
            "buildingCode": self.building_code,
            "createdDate": ts(self.created),
            "modifiedDate": ts(self.modified),
            "allergens": [],
        }

    def to_inventory_json(self) -> Json:
        return {
            "partId": self.id,
            "partNumber": self.number,
            "revision": self.revision,
            "partNumberRevision": self.number_revision,
            "type": self.type,
            "source": self.source,
            "status": self.status,
            "lotRequired": False,
        }


@dataclass
class Container:
    serial_no: str
    key: int
    part_id: str
    location_id: str
    quantity: float
    status: str
    container_type: str
    added: datetime
    updated: datetime

    def to_json(self, part: Part, location: Location) -> Json:
        return {
            "serialNo": self.serial_no,
            "partId": self.part_id,
            "partNo": part.number,
            "revision": part.revision,
            "partNoRevision": part.number_revision,
            "partName": part.name,
            "operationNo": 100,
            "operationCode": "Final",
            "containerStatus": self.status,
            "locationId": self.location_id,
            "location": location.code,
            "quantity": float(self.quantity),
            "quantityInventoryUnit": "Ea",
            "grossWeight": round(self.quantity * part.unit_weight + 2.0, 3),
            "netWeight": round(self.quantity * part.unit_weight, 3),
            "tareWeight": 2.0,
            "containerType": self.container_type,
            "trackingNo": None,
            "addDateTime": ts(self.added),
            "updateDateTime": ts(self.updated),
            "masterUnitId": None,
            "masterUnitNo": None,
            "lotId": None,
            "lotNo": None,
            "eun": None,
            "inventoryType": "Finished Goods",
        }


@dataclass
class Order:
    id: str
    key: int
    customer_id: str
    order_number: str
    po_number: str
    status: str
    type: str
    bill_to_address_id: str
    ship_to_address_id: str
    building_id: str
    carrier: str | None
    order_date: datetime
    created: datetime
    modified: datetime
    note: str | None = None
    freight_terms: str = "Prepaid"

    def to_json(self) -> Json:
        return {
            "id": self.id,
            "customerId": self.customer_id,
            "orderNumber": self.order_number,
            "poNumber": self.po_number,
            "status": self.status,
            "type": self.type,
            "category": "Production",
            "terms": "Net 30",
            "incoTerms": None,
            "fob": "Origin",
            "freightTerms": self.freight_terms,
            "poNumberRevision": "0",
            "orderDate": ts(self.order_date),
            "expirationDate": None,
            "billToAddressId": self.bill_to_address_id,
            "shipToAddressId": self.ship_to_address_id,
            "contactId": None,
            "carrierId": None,
            "carrier": self.carrier,
            "note": self.note,
            "invoiceInternalNote": None,
            "invoicePrintedNote": None,
            "outsideSalesIds": [],
            "buildingId": self.building_id,
            "commissionable": False,
            "createdDate": ts(self.created),
            "modifiedDate": ts(self.modified),
            "multipleDocksPerShipper": False,
            "multiplePOPerShipper": False,
        }


@dataclass
class OrderLine:
    id: str
    key: int
    order_id: str
    part_id: str
    line_number: int
    price: float
    created: datetime
    modified: datetime
    active: bool = True

    def to_json(self) -> Json:
        return {
            "id": self.id,
            "orderId": self.order_id,
            "partId": self.part_id,
            "customerPartId": None,
            "note": None,
            "lineNumber": str(self.line_number),
            "containerType": "Box",
            "standardPackQuantity": 50.0,
            "active": self.active,
            "createdDate": ts(self.created),
            "modifiedDate": ts(self.modified),
            "transportationAdjustmentDays": 0,
        }


@dataclass
class Release:
    id: str
    key: int
    order_line_id: str
    release_number: str
    ship_to_address_id: str
    ship_date: datetime
    due_date: datetime
    quantity: float
    quantity_shipped: int
    status: str
    created: datetime
    modified: datetime
    type: str = "Ship Schedule"
    note: str | None = None

    def to_json(self, part_number: str) -> Json:
        return {
            "id": self.id,
            "releaseNumber": self.release_number,
            "orderLineId": self.order_line_id,
            "type": self.type,
            "shipToAddressId": self.ship_to_address_id,
            "shipDate": ts(self.ship_date),
            "dueDate": ts(self.due_date),
            "quantity": float(self.quantity),
            "status": self.status,
            "source": "Manual",
            "note": self.note,
            "scheduleNo": None,
            "scheduleDate": None,
            "quantityShipped": int(self.quantity_shipped),
            "orderQuantity": float(self.quantity),
            "createdDate": ts(self.created),
            "modifiedDate": ts(self.modified),
            "shipFrom": None,
            "partNumber": part_number,
            "packagingNote": None,
        }


@dataclass
class LoadedContainer:
    serial_no: str
    quantity: float
    loaded: datetime


@dataclass
class ShipperLine:
    id: str
    key: int
    shipper_id: str
    part_id: str
    release_id: str
    price: float
    loaded: list[LoadedContainer] = field(default_factory=list)

    @property
    def quantity(self) -> float:
        return float(sum(item.quantity for item in self.loaded))

    def to_json(self) -> Json:
        return {
            "id": self.id,
            "shipperId": self.shipper_id,
            "partId": self.part_id,
            "quantity": self.quantity,
            "releaseId": self.release_id,
            "price": self.price,
            "customerPartId": None,
            "priceId": None,
            "grossWeight": None,
            "netWeight": None,
            "tareWeight": None,
            "shipperLineNote": None,
            "packingComplete": bool(self.loaded),
            "conversion": 1.0,
        }


#: writable shipper fields: JSON name -> attribute name
SHIPPER_WRITABLE = {
    "carrierId": "carrier_id",
    "freightTerms": "freight_terms",
    "status": "status",
    "trackingNumber": "tracking_number",
    "trailerNumber": "trailer_number",
    "scheduledShipDate": "scheduled_ship_date",
    "shipperNote": "shipper_note",
    "note": "note",
    "bolNote": "bol_note",
    "freightAmount": "freight_amount",
    "pallets": "pallets",
}


@dataclass
class Shipper:
    id: str
    key: int
    shipper_number: str
    customer_id: str
    customer_address_id: str
    created: datetime
    modified: datetime
    status: str = "Open"
    carrier_id: str | None = None
    freight_terms: str | None = "Prepaid"
    tracking_number: str | None = None
    trailer_number: str | None = None
    scheduled_ship_date: datetime | None = None
    ship_date: datetime | None = None
    shipper_note: str | None = None
    note: str | None = None
    bol_note: str | None = None
    freight_amount: float | None = None
    pallets: int | None = None
    ship_from_code: str | None = None
    lines: list[ShipperLine] = field(default_factory=list)

    def to_json(self) -> Json:
        return {
            "id": self.id,
            "shipperNumber": self.shipper_number,
            "customerId": self.customer_id,
            "customerAddressId": self.customer_address_id,
            "shipDate": ts(self.ship_date),
            "shippedById": None,
            "carrierId": self.carrier_id,
            "freightTerms": self.freight_terms,
            "status": self.status,
            "trackingNumber": self.tracking_number,
            "trailerNumber": self.trailer_number,
            "note": self.note,
            "scheduledShipDate": ts(self.scheduled_ship_date),
            "createdDate": ts(self.created),
            "modifiedDate": ts(self.modified),
            "shipperNote": self.shipper_note,
            "truckId": None,
            "shipFromCode": self.ship_from_code,
            "freightAmount": self.freight_amount,
            "bolNote": self.bol_note,
            "pallets": self.pallets,
            "shipperWeight": None,
        }


@dataclass
class StagedContainer:
    serial_no: str
    created: datetime
    #: quantity taken out of inventory when the shipment shipped (restored by unship)
    shipped_quantity: float = 0.0


@dataclass
class InventoryShipment:
    id: str
    external_code: str
    created: datetime
    status: str = "Open"
    containers: list[StagedContainer] = field(default_factory=list)

    def to_json(self) -> Json:
        return {
            "id": self.id,
            "externalShipmentCode": self.external_code,
            "shipmentStatus": self.status,
            "containers": [
                {"serialNo": c.serial_no, "createdDate": ts(c.created), "eun": None, "lotNo": None}
                for c in self.containers
            ],
            "createdDate": ts(self.created),
        }
