"""Typed Plex Connect records (field names from the developers.plex.com scrape, camelCase).

Every model keeps fields it does not know (Plex adds fields between versions) and reads what
real tenants send (:mod:`mlconnector.lenient`): optional values may be ``""``, ``null``, numbers
as strings or unknown enum text; ids and quantities are strict, with an error naming the field.
Every timestamp is an aware UTC datetime, parsed from and written as
``YYYY-MM-DDThh:mm:ss.fffffffZ``; a date-only value (``2026-07-04``) is that day's UTC midnight,
the same instant as Plex's own ``2026-07-04T00:00:00Z``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel

from mlconnector.lenient import Ident, Opt, Quantity
from mlconnector.timezones import TimeFormatError, format_utc_z, parse_iso_offset, parse_utc_z

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("Plex timestamps must be aware (UTC)")
        return value.astimezone(UTC)
    if isinstance(value, str):
        # Plex writes UTC with Z; an explicit offset is honoured, a naive time is refused.
        if _DATE_ONLY.match(value.strip()):
            return datetime.fromisoformat(value.strip()).replace(tzinfo=UTC)
        try:
            return parse_utc_z(value) if value.rstrip().endswith("Z") else parse_iso_offset(value)
        except TimeFormatError as exc:
            raise ValueError(f"Plex timestamps must be UTC with 'Z': {value!r}") from exc
    return value


PlexDateTime = Annotated[
    datetime,
    BeforeValidator(_utc),
    PlainSerializer(format_utc_z, return_type=str, when_used="json"),
]


class PlexModel(BaseModel):
    """Base: camelCase aliases, unknown fields kept, population by either name, numbers
    accepted where text is expected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        frozen=False,
        coerce_numbers_to_str=True,
    )


class SalesOrder(PlexModel):
    id: Ident
    customer_id: Opt[str] = None
    order_number: Opt[str] = None
    po_number: Opt[str] = None
    status: Opt[str] = None
    type: Opt[str] = None
    category: Opt[str] = None
    bill_to_address_id: Opt[str] = None
    ship_to_address_id: Opt[str] = None
    carrier_id: Opt[str] = None
    carrier: Opt[str] = None
    note: Opt[str] = None
    building_id: Opt[str] = None
    order_date: Opt[PlexDateTime] = None
    created_date: Opt[PlexDateTime] = None
    modified_date: Opt[PlexDateTime] = None


class OrderLine(PlexModel):
    id: Ident
    order_id: Opt[str] = None
    part_id: Opt[str] = None
    customer_part_id: Opt[str] = None
    line_number: Opt[str] = None
    note: Opt[str] = None
    active: Opt[bool] = None
    created_date: Opt[PlexDateTime] = None
    modified_date: Opt[PlexDateTime] = None


#: release statuses that can no longer ship (case-insensitive); anything else counts as open.
#: Plex's status names come from tenant setup tables (reference: not published), so these are
#: the common spellings.
CLOSED_RELEASE_STATUSES = frozenset(
    {"shipped", "canceled", "cancelled", "closed", "complete", "completed", "void"}
)
#: release (and order) statuses meaning "on hold": open, but Plex will not ship it
ON_HOLD_STATUSES = frozenset({"hold", "on hold", "on_hold"})


class Release(PlexModel):
    id: Ident
    release_number: Opt[str] = None
    order_line_id: Opt[str] = None
    type: Opt[str] = None
    ship_to_address_id: Opt[str] = None
    ship_date: Opt[PlexDateTime] = None
    due_date: Opt[PlexDateTime] = None
    quantity: Quantity = 0
    quantity_shipped: Quantity = 0
    order_quantity: Opt[float] = None
    status: Opt[str] = None
    note: Opt[str] = None
    part_number: Opt[str] = None
    created_date: Opt[PlexDateTime] = None
    modified_date: Opt[PlexDateTime] = None

    @property
    def open_quantity(self) -> float:
        """What is still to ship."""
        return max(0.0, self.quantity - self.quantity_shipped)

    @property
    def status_key(self) -> str:
        """The status, trimmed and lower-cased (``""`` when Plex sent none)."""
        return (self.status or "").strip().lower()

    @property
    def on_hold(self) -> bool:
        return self.status_key in ON_HOLD_STATUSES

    @property
    def closed(self) -> bool:
        return self.status_key in CLOSED_RELEASE_STATUSES


class Customer(PlexModel):
    id: Ident
    code: Opt[str] = None
    name: Opt[str] = None
    status: Opt[str] = None
    type: Opt[str] = None
    phone: Opt[str] = None
    email: Opt[str] = None
    modified_date: Opt[PlexDateTime] = None


class Address(PlexModel):
    id: Ident
    code: Opt[str] = None
    name: Opt[str] = None
    address: Opt[str] = None
    city: Opt[str] = None
    state: Opt[str] = None
    zip: Opt[str] = None
    country: Opt[str] = None
    phone: Opt[str] = None
    email: Opt[str] = None
    ship_to: Opt[bool] = None
    bill_to: Opt[bool] = None
    active: Opt[bool] = None
    shipping_instructions: Opt[str] = None
    modified_date: Opt[PlexDateTime] = None


class Part(PlexModel):
    id: Ident
    number: Opt[str] = None
    name: Opt[str] = None
    revision: Opt[str] = None
    description: Opt[str] = None
    type: Opt[str] = None
    status: Opt[str] = None
    building_code: Opt[str] = None
    modified_date: Opt[PlexDateTime] = None


class Location(PlexModel):
    location_id: Ident
    location_code: Opt[str] = None
    building_code: Opt[str] = None
    building_name: Opt[str] = None
    location_type: Opt[str] = None
    inventory_location: Opt[bool] = None


class Container(PlexModel):
    serial_no: Ident
    part_id: Opt[str] = None
    part_no: Opt[str] = None
    revision: Opt[str] = None
    container_status: Opt[str] = None
    location_id: Opt[str] = None
    location: Opt[str] = None
    quantity: Quantity = 0
    add_date_time: Opt[PlexDateTime] = None
    update_date_time: Opt[PlexDateTime] = None


class Shipper(PlexModel):
    id: Ident
    shipper_number: Opt[str] = None
    customer_id: Opt[str] = None
    customer_address_id: Opt[str] = None
    ship_date: Opt[PlexDateTime] = None
    carrier_id: Opt[str] = None
    status: Opt[str] = None
    tracking_number: Opt[str] = None
    note: Opt[str] = None
    shipper_note: Opt[str] = None
    bol_note: Opt[str] = None
    scheduled_ship_date: Opt[PlexDateTime] = None
    created_date: Opt[PlexDateTime] = None
    modified_date: Opt[PlexDateTime] = None

    def mentions(self, reference: str) -> bool:
        """Whether any of the shipper's notes carries ``reference``."""
        return any(reference in (n or "") for n in (self.shipper_note, self.note, self.bol_note))


class ShipperLine(PlexModel):
    id: Ident
    shipper_id: Opt[str] = None
    part_id: Opt[str] = None
    quantity: Quantity = 0
    release_id: Opt[str] = None
    shipper_line_note: Opt[str] = None
    packing_complete: Opt[bool] = None


class LoadedContainer(PlexModel):
    """A container loaded on a shipper line (``…/lines/{lineId}/containers``)."""

    serial_number: Ident
    quantity: Quantity = 0
    release_id: Opt[str] = None


class ScheduledRelease(PlexModel):
    release_id: Ident
    shipper_id: Opt[str] = None
    shipper_line_id: Ident


class InventoryShipment(PlexModel):
    id: Ident
    external_shipment_code: Opt[str] = None
    shipment_status: Opt[str] = None
    containers: list[Any] = []
    created_date: Opt[PlexDateTime] = None


@dataclass(frozen=True)
class OnHand:
    """Stock of one part in one location, summed over shippable containers."""

    part_id: str
    location_id: str | None
    quantity: float
    part_no: Opt[str] = None
    location: Opt[str] = None
    containers: int = 0


@dataclass(frozen=True)
class ShipmentLine:
    """One shipped quantity of one release."""

    release_id: str
    part_id: str
    quantity: float


@dataclass(frozen=True)
class ShipmentWrite:
    """A ShipStation shipment to record in Plex (input of the write strategies)."""

    reference: str  # e.g. "ss-shipment-123"; written into the Plex record's note
    carrier: str | None
    service: str | None
    tracking_number: str | None
    ship_date: datetime
    lines: tuple[ShipmentLine, ...] = field(default_factory=tuple)
    carrier_id: str | None = None  # Plex supplier uuid of the carrier, when mapped
    #: where the shipper goes: the Plex order (its customer and ship-to), or both ids directly
    order_id: Opt[str] = None
    customer_id: Opt[str] = None
    customer_address_id: Opt[str] = None
    #: the Plex shipper already holding these releases (datasource strategy), when known
    shipper_id: Opt[str] = None

    def __post_init__(self) -> None:
        if self.ship_date.tzinfo is None:
            raise ValueError("ShipmentWrite.ship_date must be an aware UTC datetime")

    def quantities(self) -> dict[str, float]:
        """Shipped quantity per release id (lower-case)."""
        totals: dict[str, float] = {}
        for line in self.lines:
            key = line.release_id.lower()
            totals[key] = totals.get(key, 0) + line.quantity
        return totals

    def part_of(self, release_id: str) -> str:
        """The part shipped on ``release_id``."""
        for line in self.lines:
            if line.release_id.lower() == release_id.lower():
                return line.part_id
        raise KeyError(release_id)

    def note(self) -> str:
        """The note written into Plex: the reference first, so it survives truncation."""
        parts = [self.reference]
        if self.carrier or self.service:
            parts.append(" ".join(p for p in (self.carrier, self.service) if p))
        if self.tracking_number:
            parts.append(f"tracking {self.tracking_number}")
        parts.append(f"shipped {format_utc_z(self.ship_date)}")
        return "ShipStation " + "; ".join(parts)


@dataclass(frozen=True)
class WriteResult:
    """What a write strategy did (or found already done)."""

    reference: str
    strategy: str
    shipper_id: Opt[str] = None
    inventory_shipment_id: Opt[str] = None
    already_done: bool = False
    resumed: bool = False
    details: dict[str, Any] = field(default_factory=dict)
