"""The simulator's records and the field lists of the V1 order model.

Records keep aware UTC datetimes; :mod:`.render` turns them into the V1 wire form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from mlconnector.timezones import to_pacific_naive

JsonDict = dict[str, Any]

#: every status V1 accepts in ``orderStatus`` (list_orders / create_update_order)
ORDER_STATUSES = (
    "awaiting_payment",
    "awaiting_shipment",
    "pending_fulfillment",
    "shipped",
    "on_hold",
    "cancelled",
    "rejected_fulfillment",
)
#: statuses that can no longer be changed through createorder(s)
FROZEN_STATUSES = ("shipped", "cancelled")

#: client-settable order fields and their value when a createorder omits them (whole replacement)
ORDER_FIELDS: dict[str, Any] = {
    "orderNumber": None,
    "orderStatus": None,
    "customerId": None,
    "customerUsername": None,
    "customerEmail": None,
    "orderTotal": 0.0,
    "amountPaid": 0.0,
    "taxAmount": 0.0,
    "shippingAmount": 0.0,
    "customerNotes": None,
    "internalNotes": None,
    "gift": False,
    "giftMessage": None,
    "paymentMethod": None,
    "requestedShippingService": None,
    "carrierCode": None,
    "serviceCode": None,
    "packageCode": None,
    "confirmation": None,
    "weight": None,
    "dimensions": None,
    "insuranceOptions": None,
    "internationalOptions": None,
    "tagIds": None,
    "userId": None,
    "externallyFulfilled": False,
    "externallyFulfilledBy": None,
    "labelMessages": None,
}
#: order datetime fields given by the client (parsed from Pacific, stored as UTC)
ORDER_DATE_FIELDS = ("orderDate", "paymentDate", "shipByDate", "holdUntilDate")
#: nested order objects and the keys the real service always returns in them
NESTED_FIELDS: dict[str, tuple[str, ...]] = {
    "weight": ("value", "units", "WeightUnits"),
    "dimensions": ("length", "width", "height", "units"),
    "insuranceOptions": ("provider", "insureShipment", "insuredValue"),
    "internationalOptions": ("contents", "customsItems", "nonDelivery"),
}
ADDRESS_FIELDS = (
    "name",
    "company",
    "street1",
    "street2",
    "street3",
    "city",
    "state",
    "postalCode",
    "country",
    "phone",
    "residential",
)
ITEM_FIELDS: dict[str, Any] = {
    "lineItemKey": None,
    "sku": None,
    "name": None,
    "imageUrl": None,
    "weight": None,
    "quantity": 0,
    "unitPrice": 0.0,
    "taxAmount": None,
    "shippingAmount": None,
    "warehouseLocation": None,
    "options": [],
    "fulfillmentSku": None,
    "adjustment": False,
    "upc": None,
}
ADVANCED_FIELDS: dict[str, Any] = {
    "warehouseId": None,
    "nonMachinable": False,
    "saturdayDelivery": False,
    "containsAlcohol": False,
    "customField1": None,
    "customField2": None,
    "customField3": None,
    "source": None,
    "billToParty": None,
    "billToAccount": None,
    "billToPostalCode": None,
    "billToCountryCode": None,
    "billToMyOtherAccount": None,
}


@dataclass
class OrderItem:
    order_item_id: int
    fields: JsonDict
    product_id: int | None
    create_date: datetime
    modify_date: datetime


@dataclass
class Order:
    order_id: int
    order_key: str
    store_id: int
    fields: JsonDict
    dates: dict[str, datetime | None]
    advanced: JsonDict
    bill_to: JsonDict
    ship_to: JsonDict
    items: list[OrderItem]
    create_date: datetime
    modify_date: datetime
    import_batch: str | None = None
    ship_date: date | None = None
    active: bool = True

    @property
    def status(self) -> str:
        return str(self.fields["orderStatus"])

    @property
    def number(self) -> str:
        return str(self.fields["orderNumber"])


@dataclass
class ShipmentItem:
    order_item_id: int
    line_item_key: str | None
    sku: str | None
    name: str | None
    quantity: int
    unit_price: float
    product_id: int | None


@dataclass
class Shipment:
    shipment_id: int
    order_id: int
    order_key: str
    order_number: str
    batch_id: int
    create_date: datetime
    ship_date: date
    tracking_number: str
    carrier_code: str
    service_code: str | None
    warehouse_id: int | None
    ship_to: JsonDict
    items: list[ShipmentItem]
    shipment_cost: float = 0.0
    voided: bool = False
    void_date: datetime | None = None


@dataclass
class Fulfillment:
    fulfillment_id: int
    order_id: int
    order_number: str
    batch_id: int
    create_date: datetime
    ship_date: date
    tracking_number: str | None
    carrier_code: str
    customer_email: str | None
    ship_to: JsonDict
    voided: bool = False
    void_date: datetime | None = None


@dataclass
class Store:
    store_id: int
    name: str
    marketplace_id: int
    marketplace_name: str
    create_date: datetime
    active: bool = True


@dataclass
class Warehouse:
    warehouse_id: int
    name: str
    create_date: datetime
    is_default: bool
    origin: JsonDict


@dataclass
class Product:
    product_id: int
    sku: str
    name: str | None
    create_date: datetime
    modify_date: datetime
    price: float = 0.0
    active: bool = True


@dataclass
class V1Webhook:
    webhook_id: int
    hook_type: str
    url: str
    name: str | None
    store_id: int | None
    active: bool = True


@dataclass
class V2Webhook:
    webhook_id: str
    url: str
    event: str
    headers: list[JsonDict] = field(default_factory=list)


@dataclass
class InventoryWarehouse:
    inventory_warehouse_id: str
    name: str
    created_at: datetime
    updated_at: datetime


@dataclass
class InventoryLocation:
    inventory_location_id: str
    name: str
    inventory_warehouse_id: str
    created_at: datetime
    updated_at: datetime


@dataclass
class InventoryLevel:
    sku: str
    inventory_location_id: str
    on_hand: int = 0
    allocated: int = 0
    cost_amount: float = 0.0
    cost_currency: str = "usd"
    condition: str = "sellable"


def pacific_date(instant: datetime) -> date:
    """The US Pacific calendar date of an instant (what V1 shows as ``shipDate``)."""
    return to_pacific_naive(instant).date()
