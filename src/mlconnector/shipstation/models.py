"""Typed models of the ShipStation V1 and V2 resources the connector reads and writes.

Two rules shape every model here:

* **Time.** V1 timestamps are US Pacific wall time without an offset. They become aware UTC on
  the way in (:func:`mlconnector.timezones.parse_pacific`) and Pacific again on the way out
  (:func:`mlconnector.timezones.format_pacific`); nothing inside ever sees Pacific. V2
  timestamps carry an offset and are kept as aware UTC.
* **Round trips keep what we don't know.** V1 ``createorder`` replaces the whole order, so a field
  the connector does not model must survive a read-modify-write. Every model therefore keeps
  unknown fields (``extra="allow"``), and :meth:`V1Model.to_v1` writes back exactly the fields
  that were read or set (``exclude_unset``), never inventing ``null`` for the others.

Python attribute names are snake_case; the wire names (camelCase on V1) are aliases.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from mlconnector.timezones import format_iso_utc, format_pacific, parse_iso_offset, parse_pacific

# --- datetime types ----------------------------------------------------------------------------


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        # A naive datetime inside the connector is a bug: we cannot know what it meant.
        raise ValueError("naive datetime; pass an aware datetime (UTC inside the connector)")
    return value.astimezone(UTC)


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _from_pacific(value: Any) -> Any:
    if isinstance(value, str):
        # Some V1 dates are calendar dates (a shipment's ``shipDate``): midnight Pacific.
        if _DATE_ONLY.match(value.strip()):
            return parse_pacific(value.strip() + "T00:00:00")
        return parse_pacific(value)
    if isinstance(value, datetime):
        return _aware_utc(value)
    return value


def _from_iso_offset(value: Any) -> Any:
    if isinstance(value, str):
        return parse_iso_offset(value)
    if isinstance(value, datetime):
        return _aware_utc(value)
    return value


#: A V1 timestamp: aware UTC in Python, naive US Pacific (7 fractional digits) on the wire.
PacificDateTime = Annotated[
    datetime,
    BeforeValidator(_from_pacific),
    PlainSerializer(format_pacific, return_type=str, when_used="json"),
]

#: A V2 timestamp: aware UTC in Python, ISO 8601 with ``Z`` on the wire.
IsoDateTime = Annotated[
    datetime,
    BeforeValidator(_from_iso_offset),
    PlainSerializer(format_iso_utc, return_type=str, when_used="json"),
]


# --- bases -------------------------------------------------------------------------------------


class V1Model(BaseModel):
    """A V1 resource: camelCase on the wire, unknown fields kept, Pacific time at the edge."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
    )

    def to_v1(self) -> dict[str, Any]:
        """The JSON body for ShipStation V1: wire names, Pacific times, unknown fields kept.

        Only fields that were read from ShipStation or set by the connector are written; a field
        never mentioned is omitted rather than sent as ``null``.
        """
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class V2Model(BaseModel):
    """A V2 resource: snake_case on the wire already, unknown fields kept."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    def to_v2(self) -> dict[str, Any]:
        """The JSON body for ShipStation V2 (only fields that were read or set)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


# --- V1: shared parts --------------------------------------------------------------------------


class Address(V1Model):
    name: str | None = None
    company: str | None = None
    street1: str | None = None
    street2: str | None = None
    street3: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    phone: str | None = None
    residential: bool | None = None
    #: read-only, e.g. "Address validation warning"
    address_verified: str | None = None


class Weight(V1Model):
    value: float | None = None
    units: str | None = None
    weight_units: int | None = Field(default=None, alias="WeightUnits")


class Dimensions(V1Model):
    length: float | None = None
    width: float | None = None
    height: float | None = None
    units: str | None = None


class ItemOption(V1Model):
    name: str | None = None
    value: str | None = None


class AdvancedOptions(V1Model):
    """``advancedOptions``; ``storeId`` is honoured only when the order is created."""

    warehouse_id: int | None = None
    non_machinable: bool | None = None
    saturday_delivery: bool | None = None
    contains_alcohol: bool | None = None
    store_id: int | None = None
    custom_field1: str | None = None
    custom_field2: str | None = None
    custom_field3: str | None = None
    source: str | None = None
    #: read-only
    merged_or_split: bool | None = None
    merged_ids: list[int] | None = None
    parent_id: int | None = None
    bill_to_party: str | None = None
    bill_to_account: str | None = None
    bill_to_postal_code: str | None = None
    bill_to_country_code: str | None = None
    bill_to_my_other_account: Any = None


class OrderItem(V1Model):
    order_item_id: int | None = None
    #: the connector puts the Plex release id here
    line_item_key: str | None = None
    sku: str | None = None
    name: str | None = None
    image_url: str | None = None
    weight: Weight | None = None
    quantity: int | None = None
    unit_price: float | None = None
    tax_amount: float | None = None
    shipping_amount: float | None = None
    warehouse_location: str | None = None
    options: list[ItemOption] | None = None
    product_id: int | None = None
    fulfillment_sku: str | None = None
    adjustment: bool | None = None
    upc: str | None = None
    create_date: PacificDateTime | None = None
    modify_date: PacificDateTime | None = None


class ShipmentItem(OrderItem):
    """One line of a shipment (``shipmentItems[]``); same shape as an order item."""


# --- V1: orders --------------------------------------------------------------------------------

#: order statuses that createorder may still update; the others are frozen
OPEN_STATUSES = frozenset(
    {"awaiting_payment", "awaiting_shipment", "pending_fulfillment", "on_hold"}
)
FROZEN_STATUSES = frozenset({"shipped", "cancelled"})


class Order(V1Model):
    order_id: int | None = None
    order_number: str | None = Field(default=None, max_length=50)
    order_key: str | None = None
    order_date: PacificDateTime | None = None
    create_date: PacificDateTime | None = None
    modify_date: PacificDateTime | None = None
    payment_date: PacificDateTime | None = None
    ship_by_date: PacificDateTime | None = None
    ship_date: PacificDateTime | None = None
    hold_until_date: PacificDateTime | None = None
    order_status: str | None = None
    customer_id: int | None = None
    customer_username: str | None = None
    customer_email: str | None = None
    bill_to: Address | None = None
    ship_to: Address | None = None
    items: list[OrderItem] | None = None
    order_total: float | None = None
    amount_paid: float | None = None
    tax_amount: float | None = None
    shipping_amount: float | None = None
    customer_notes: str | None = None
    internal_notes: str | None = None
    gift: bool | None = None
    gift_message: str | None = None
    payment_method: str | None = None
    requested_shipping_service: str | None = None
    carrier_code: str | None = None
    service_code: str | None = None
    package_code: str | None = None
    confirmation: str | None = None
    weight: Weight | None = None
    dimensions: Dimensions | None = None
    insurance_options: dict[str, Any] | None = None
    international_options: dict[str, Any] | None = None
    advanced_options: AdvancedOptions | None = None
    tag_ids: list[int] | None = None
    user_id: str | None = None
    externally_fulfilled: bool | None = None
    externally_fulfilled_by: str | None = None

    @property
    def is_frozen(self) -> bool:
        """Shipped and cancelled orders are read-only in ShipStation."""
        return self.order_status in FROZEN_STATUSES


class CreateOrderResult(V1Model):
    """One order's outcome in a ``createorders`` batch (in the caller's input order)."""

    order_id: int | None = None
    order_number: str | None = None
    order_key: str | None = None
    success: bool = False
    error_message: str | None = None
    #: True when the failure says the order is shipped/cancelled (read-only); set by the client
    frozen: bool = Field(default=False, exclude=True)


class MarkShippedResult(V1Model):
    order_id: int | None = None
    order_number: str | None = None


# --- V1: shipments and fulfillments ------------------------------------------------------------


class Shipment(V1Model):
    shipment_id: int | None = None
    order_id: int | None = None
    order_key: str | None = None
    user_id: str | None = None
    order_number: str | None = None
    create_date: PacificDateTime | None = None
    ship_date: PacificDateTime | None = None
    shipment_cost: float | None = None
    insurance_cost: float | None = None
    tracking_number: str | None = None
    is_return_label: bool | None = None
    batch_number: str | None = None
    carrier_code: str | None = None
    service_code: str | None = None
    package_code: str | None = None
    confirmation: str | None = None
    warehouse_id: int | None = None
    voided: bool | None = None
    void_date: PacificDateTime | None = None
    marketplace_notified: bool | None = None
    notify_error_message: str | None = None
    ship_to: Address | None = None
    weight: Weight | None = None
    dimensions: Dimensions | None = None
    insurance_options: dict[str, Any] | None = None
    advanced_options: AdvancedOptions | None = None
    #: ``null`` unless the list was fetched with ``includeShipmentItems=true``
    shipment_items: list[ShipmentItem] | None = None
    label_data: str | None = None
    form_data: str | None = None


class Fulfillment(V1Model):
    """An order shipped outside ShipStation label creation (fill provider, marked shipped)."""

    fulfillment_id: int | None = None
    order_id: int | None = None
    order_number: str | None = None
    user_id: str | None = None
    customer_email: str | None = None
    tracking_number: str | None = None
    create_date: PacificDateTime | None = None
    ship_date: PacificDateTime | None = None
    void_date: PacificDateTime | None = None
    delivery_date: PacificDateTime | None = None
    carrier_code: str | None = None
    seller_fill_provider_id: int | None = None
    seller_fill_provider_name: str | None = None
    fulfillment_provider_code: str | None = None
    fulfillment_service_code: str | None = None
    fulfillment_fee: float | None = None
    void_requested: bool | None = None
    voided: bool | None = None
    marketplace_notified: bool | None = None
    notify_error_message: str | None = None
    ship_to: Address | None = None


# --- V1: webhooks, stores, warehouses ----------------------------------------------------------


class V1Webhook(V1Model):
    """One entry of ``GET /webhooks`` (PascalCase on the wire)."""

    is_label_api_hook: bool | None = Field(default=None, alias="IsLabelAPIHook")
    webhook_id: int | None = Field(default=None, alias="WebHookID")
    seller_id: int | None = Field(default=None, alias="SellerID")
    store_id: int | None = Field(default=None, alias="StoreID")
    hook_type: str | None = Field(default=None, alias="HookType")
    message_format: str | None = Field(default=None, alias="MessageFormat")
    url: str | None = Field(default=None, alias="Url")
    name: str | None = Field(default=None, alias="Name")
    bulk_copy_batch_id: str | None = Field(default=None, alias="BulkCopyBatchID")
    bulk_copy_record_id: str | None = Field(default=None, alias="BulkCopyRecordID")
    active: bool | None = Field(default=None, alias="Active")


class Store(V1Model):
    store_id: int | None = None
    store_name: str | None = None
    marketplace_id: int | None = None
    marketplace_name: str | None = None
    account_name: str | None = None
    email: str | None = None
    integration_url: str | None = None
    active: bool | None = None
    company_name: str | None = None
    phone: str | None = None
    public_email: str | None = None
    website: str | None = None
    refresh_date: PacificDateTime | None = None
    last_refresh_attempt: PacificDateTime | None = None
    create_date: PacificDateTime | None = None
    modify_date: PacificDateTime | None = None
    auto_refresh: bool | None = None


class Warehouse(V1Model):
    """A V1 ship-from warehouse (not an inventory warehouse)."""

    warehouse_id: int | None = None
    warehouse_name: str | None = None
    origin_address: Address | None = None
    return_address: Address | None = None
    create_date: PacificDateTime | None = None
    is_default: bool | None = None


# --- V2 ----------------------------------------------------------------------------------------


class Money(V2Model):
    amount: float | None = None
    currency: str | None = None


class InventoryLevel(V2Model):
    sku: str
    on_hand: int | None = None
    allocated: int | None = None
    available: int | None = None
    average_cost: Money | None = None
    inventory_warehouse_id: str | None = None
    inventory_location_id: str | None = None


class InventoryWarehouse(V2Model):
    inventory_warehouse_id: str
    name: str | None = None
    created_at: IsoDateTime | None = None
    updated_at: IsoDateTime | None = None


class InventoryLocation(V2Model):
    inventory_location_id: str
    name: str | None = None
    inventory_warehouse_id: str | None = None
    created_at: IsoDateTime | None = None
    updated_at: IsoDateTime | None = None


class WebhookHeader(V2Model):
    key: str
    value: str


class V2Webhook(V2Model):
    webhook_id: str | None = None
    url: str | None = None
    event: str | None = None
    headers: list[WebhookHeader] | None = None
    name: str | None = None
    store_id: int | None = None


class InventoryChange(V2Model):
    """A ``POST /v2/inventory`` body (increment, decrement, adjust or modify)."""

    transaction_type: str
    sku: str
    inventory_location_id: str
    quantity: int
    cost: Money | None = None
    condition: str | None = None
    lot: str | None = None
    usable_start_date: IsoDateTime | None = None
    usable_end_date: IsoDateTime | None = None
    effective_at: IsoDateTime | None = None
    reason: str | None = None
    notes: str | None = None
    new_inventory_location_id: str | None = None
    new_cost: Money | None = None
    new_condition: str | None = None
