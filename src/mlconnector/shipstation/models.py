"""Typed models of the ShipStation V1 and V2 resources the connector reads and writes.

Two rules shape every model here:

* **Time.** V1 timestamps are US Pacific wall time without an offset. They become aware UTC on
  the way in (:func:`mlconnector.timezones.parse_pacific`) and Pacific again on the way out
  (:func:`mlconnector.timezones.format_pacific`); nothing inside ever sees Pacific. V2
  timestamps carry an offset and are kept as aware UTC.
* **Read what real servers send** (:mod:`mlconnector.lenient`). Optional values may be ``""``,
  ``null``, numbers as strings or unknown enum text (statuses are kept as text); ids and
  quantities stay strict, with an error naming the field. A date-only ``shipDate`` stays a
  :class:`~datetime.date` and is written back as the same date.
* **Round trips keep what we don't know.** V1 ``createorder`` replaces the whole order, so a field
  the connector does not model must survive a read-modify-write. Every model therefore keeps
  unknown fields (``extra="allow"``), and :meth:`V1Model.to_v1` writes back exactly the fields
  that were read or set (``exclude_unset``), never inventing ``null`` for the others.

Python attribute names are snake_case; the wire names (camelCase on V1) are aliases.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from mlconnector.lenient import Ident, Opt
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


def _from_pacific_day(value: Any) -> Any:
    if isinstance(value, str) and _DATE_ONLY.match(value.strip()):
        return date.fromisoformat(value.strip())
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    return _from_pacific(value)


def _to_pacific_day(value: datetime | date) -> str:
    if isinstance(value, datetime):
        return format_pacific(value)
    return value.isoformat()


#: A V1 ship date: a calendar :class:`~datetime.date` when ShipStation sent one (``"2026-07-04"``,
#: written back the same way), else a V1 timestamp like :data:`PacificDateTime`.
PacificDate = Annotated[
    datetime | date,
    BeforeValidator(_from_pacific_day),
    PlainSerializer(_to_pacific_day, return_type=str, when_used="json"),
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
        coerce_numbers_to_str=True,
    )

    def to_v1(self) -> dict[str, Any]:
        """The JSON body for ShipStation V1: wire names, Pacific times, unknown fields kept.

        Only fields that were read from ShipStation or set by the connector are written; a field
        never mentioned is omitted rather than sent as ``null``.
        """
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class V2Model(BaseModel):
    """A V2 resource: snake_case on the wire already, unknown fields kept."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", coerce_numbers_to_str=True)

    def to_v2(self) -> dict[str, Any]:
        """The JSON body for ShipStation V2 (only fields that were read or set)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


# --- V1: shared parts --------------------------------------------------------------------------


class Address(V1Model):
    name: Opt[str] = None
    company: Opt[str] = None
    street1: Opt[str] = None
    street2: Opt[str] = None
    street3: Opt[str] = None
    city: Opt[str] = None
    state: Opt[str] = None
    postal_code: Opt[str] = None
    country: Opt[str] = None
    phone: Opt[str] = None
    residential: Opt[bool] = None
    #: read-only, e.g. "Address validation warning"
    address_verified: Opt[str] = None


class Weight(V1Model):
    value: Opt[float] = None
    units: Opt[str] = None
    weight_units: Opt[int] = Field(default=None, alias="WeightUnits")


class Dimensions(V1Model):
    length: Opt[float] = None
    width: Opt[float] = None
    height: Opt[float] = None
    units: Opt[str] = None


class ItemOption(V1Model):
    name: Opt[str] = None
    value: Opt[str] = None


class AdvancedOptions(V1Model):
    """``advancedOptions``; ``storeId`` is honoured only when the order is created."""

    warehouse_id: Opt[int] = None
    non_machinable: Opt[bool] = None
    saturday_delivery: Opt[bool] = None
    contains_alcohol: Opt[bool] = None
    store_id: Opt[int] = None
    custom_field1: Opt[str] = None
    custom_field2: Opt[str] = None
    custom_field3: Opt[str] = None
    source: Opt[str] = None
    #: read-only
    merged_or_split: Opt[bool] = None
    merged_ids: Opt[list[int]] = None
    parent_id: Opt[int] = None
    bill_to_party: Opt[str] = None
    bill_to_account: Opt[str] = None
    bill_to_postal_code: Opt[str] = None
    bill_to_country_code: Opt[str] = None
    bill_to_my_other_account: Any = None


class OrderItem(V1Model):
    order_item_id: Opt[int] = None
    #: the connector puts the Plex release id here
    line_item_key: str | None = None
    sku: Opt[str] = None
    name: Opt[str] = None
    image_url: Opt[str] = None
    weight: Opt[Weight] = None
    quantity: int | None = None
    unit_price: Opt[float] = None
    tax_amount: Opt[float] = None
    shipping_amount: Opt[float] = None
    warehouse_location: Opt[str] = None
    options: Opt[list[ItemOption]] = None
    product_id: Opt[int] = None
    fulfillment_sku: Opt[str] = None
    adjustment: Opt[bool] = None
    upc: Opt[str] = None
    create_date: Opt[PacificDateTime] = None
    modify_date: Opt[PacificDateTime] = None


class ShipmentItem(OrderItem):
    """One line of a shipment (``shipmentItems[]``); same shape as an order item, but the
    shipped quantity is required: a line whose quantity cannot be read makes its shipment
    unreadable (quarantined) rather than written back as zero."""

    quantity: Annotated[int, Field(ge=0)]


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
    order_date: Opt[PacificDateTime] = None
    create_date: Opt[PacificDateTime] = None
    modify_date: Opt[PacificDateTime] = None
    payment_date: Opt[PacificDateTime] = None
    ship_by_date: Opt[PacificDate] = None
    ship_date: Opt[PacificDate] = None
    hold_until_date: Opt[PacificDate] = None
    order_status: Opt[str] = None
    customer_id: Opt[int] = None
    customer_username: Opt[str] = None
    customer_email: Opt[str] = None
    bill_to: Opt[Address] = None
    ship_to: Opt[Address] = None
    items: Opt[list[OrderItem]] = None
    order_total: Opt[float] = None
    amount_paid: Opt[float] = None
    tax_amount: Opt[float] = None
    shipping_amount: Opt[float] = None
    customer_notes: Opt[str] = None
    internal_notes: Opt[str] = None
    gift: Opt[bool] = None
    gift_message: Opt[str] = None
    payment_method: Opt[str] = None
    requested_shipping_service: Opt[str] = None
    carrier_code: Opt[str] = None
    service_code: Opt[str] = None
    package_code: Opt[str] = None
    confirmation: Opt[str] = None
    weight: Opt[Weight] = None
    dimensions: Opt[Dimensions] = None
    insurance_options: Opt[dict[str, Any]] = None
    international_options: Opt[dict[str, Any]] = None
    advanced_options: Opt[AdvancedOptions] = None
    tag_ids: Opt[list[int]] = None
    user_id: Opt[str] = None
    externally_fulfilled: Opt[bool] = None
    externally_fulfilled_by: Opt[str] = None

    @property
    def is_frozen(self) -> bool:
        """Shipped and cancelled orders are read-only in ShipStation."""
        return self.order_status in FROZEN_STATUSES


class CreateOrderResult(V1Model):
    """One order's outcome in a ``createorders`` batch (in the caller's input order)."""

    order_id: int | None = None
    order_number: Opt[str] = None
    order_key: str | None = None
    success: bool = False
    error_message: Opt[str] = None
    #: True when the failure says the order is shipped/cancelled (read-only); set by the client
    frozen: bool = Field(default=False, exclude=True)


class MarkShippedResult(V1Model):
    order_id: int | None = None
    order_number: Opt[str] = None


# --- V1: shipments and fulfillments ------------------------------------------------------------


class Shipment(V1Model):
    shipment_id: int | None = None
    order_id: int | None = None
    order_key: str | None = None
    user_id: Opt[str] = None
    order_number: Opt[str] = None
    create_date: Opt[PacificDateTime] = None
    ship_date: Opt[PacificDate] = None
    shipment_cost: Opt[float] = None
    insurance_cost: Opt[float] = None
    tracking_number: Opt[str] = None
    is_return_label: Opt[bool] = None
    batch_number: Opt[str] = None
    carrier_code: Opt[str] = None
    service_code: Opt[str] = None
    package_code: Opt[str] = None
    confirmation: Opt[str] = None
    warehouse_id: Opt[int] = None
    voided: Opt[bool] = None
    void_date: Opt[PacificDateTime] = None
    marketplace_notified: Opt[bool] = None
    notify_error_message: Opt[str] = None
    ship_to: Opt[Address] = None
    weight: Opt[Weight] = None
    dimensions: Opt[Dimensions] = None
    insurance_options: Opt[dict[str, Any]] = None
    advanced_options: Opt[AdvancedOptions] = None
    #: ``null`` unless the list was fetched with ``includeShipmentItems=true``
    shipment_items: Opt[list[ShipmentItem]] = None
    label_data: Opt[str] = None
    form_data: Opt[str] = None


class Fulfillment(V1Model):
    """An order shipped outside ShipStation label creation (fill provider, marked shipped)."""

    fulfillment_id: int | None = None
    order_id: int | None = None
    order_number: Opt[str] = None
    user_id: Opt[str] = None
    customer_email: Opt[str] = None
    tracking_number: Opt[str] = None
    create_date: Opt[PacificDateTime] = None
    ship_date: Opt[PacificDate] = None
    void_date: Opt[PacificDateTime] = None
    delivery_date: Opt[PacificDate] = None
    carrier_code: Opt[str] = None
    seller_fill_provider_id: Opt[int] = None
    seller_fill_provider_name: Opt[str] = None
    fulfillment_provider_code: Opt[str] = None
    fulfillment_service_code: Opt[str] = None
    fulfillment_fee: Opt[float] = None
    void_requested: Opt[bool] = None
    voided: Opt[bool] = None
    marketplace_notified: Opt[bool] = None
    notify_error_message: Opt[str] = None
    ship_to: Opt[Address] = None


# --- V1: webhooks, stores, warehouses ----------------------------------------------------------


class V1Webhook(V1Model):
    """One entry of ``GET /webhooks`` (PascalCase on the wire)."""

    is_label_api_hook: Opt[bool] = Field(default=None, alias="IsLabelAPIHook")
    webhook_id: int | None = Field(default=None, alias="WebHookID")
    seller_id: Opt[int] = Field(default=None, alias="SellerID")
    store_id: Opt[int] = Field(default=None, alias="StoreID")
    hook_type: Opt[str] = Field(default=None, alias="HookType")
    message_format: Opt[str] = Field(default=None, alias="MessageFormat")
    url: Opt[str] = Field(default=None, alias="Url")
    name: Opt[str] = Field(default=None, alias="Name")
    bulk_copy_batch_id: Opt[str] = Field(default=None, alias="BulkCopyBatchID")
    bulk_copy_record_id: Opt[str] = Field(default=None, alias="BulkCopyRecordID")
    active: Opt[bool] = Field(default=None, alias="Active")


class Store(V1Model):
    store_id: Opt[int] = None
    store_name: Opt[str] = None
    marketplace_id: Opt[int] = None
    marketplace_name: Opt[str] = None
    account_name: Opt[str] = None
    email: Opt[str] = None
    integration_url: Opt[str] = None
    active: Opt[bool] = None
    company_name: Opt[str] = None
    phone: Opt[str] = None
    public_email: Opt[str] = None
    website: Opt[str] = None
    refresh_date: Opt[PacificDateTime] = None
    last_refresh_attempt: Opt[PacificDateTime] = None
    create_date: Opt[PacificDateTime] = None
    modify_date: Opt[PacificDateTime] = None
    auto_refresh: Opt[bool] = None


class Warehouse(V1Model):
    """A V1 ship-from warehouse (not an inventory warehouse)."""

    warehouse_id: Opt[int] = None
    warehouse_name: Opt[str] = None
    origin_address: Opt[Address] = None
    return_address: Opt[Address] = None
    create_date: Opt[PacificDateTime] = None
    is_default: Opt[bool] = None


# --- V2 ----------------------------------------------------------------------------------------


class Money(V2Model):
    amount: Opt[float] = None
    currency: Opt[str] = None


class InventoryLevel(V2Model):
    sku: Ident
    on_hand: int | None = None
    allocated: int | None = None
    available: int | None = None
    average_cost: Opt[Money] = None
    inventory_warehouse_id: Opt[str] = None
    inventory_location_id: Opt[str] = None


class InventoryWarehouse(V2Model):
    inventory_warehouse_id: Ident
    name: Opt[str] = None
    created_at: Opt[IsoDateTime] = None
    updated_at: Opt[IsoDateTime] = None


class InventoryLocation(V2Model):
    inventory_location_id: Ident
    name: Opt[str] = None
    inventory_warehouse_id: Opt[str] = None
    created_at: Opt[IsoDateTime] = None
    updated_at: Opt[IsoDateTime] = None


class WebhookHeader(V2Model):
    key: str
    value: str


class V2Webhook(V2Model):
    webhook_id: str | None = None
    url: Opt[str] = None
    event: Opt[str] = None
    headers: Opt[list[WebhookHeader]] = None
    name: Opt[str] = None
    store_id: Opt[int] = None


class InventoryChange(V2Model):
    """A ``POST /v2/inventory`` body (increment, decrement, adjust or modify)."""

    transaction_type: str
    sku: str
    inventory_location_id: str
    quantity: int
    cost: Opt[Money] = None
    condition: Opt[str] = None
    lot: Opt[str] = None
    usable_start_date: Opt[IsoDateTime] = None
    usable_end_date: Opt[IsoDateTime] = None
    effective_at: Opt[IsoDateTime] = None
    reason: Opt[str] = None
    notes: Opt[str] = None
    new_inventory_location_id: Opt[str] = None
    new_cost: Opt[Money] = None
    new_condition: Opt[str] = None
