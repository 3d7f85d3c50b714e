"""Typed Plex Connect records (field names from the developers.plex.com scrape, camelCase).

Every model tolerates fields it does not know (Plex adds fields between versions) and every
timestamp is an aware UTC datetime, parsed from and written as ``YYYY-MM-DDThh:mm:ss.fffffffZ``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel

from mlconnector.timezones import TimeFormatError, format_utc_z, parse_iso_offset, parse_utc_z


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("Plex timestamps must be aware (UTC)")
        return value.astimezone(UTC)
    if isinstance(value, str):
        # Plex writes UTC with Z; an explicit offset is honoured, a naive time is refused.
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
    """Base: camelCase aliases, unknown fields kept, population by either name."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=False
    )


class SalesOrder(PlexModel):
    id: str
    customer_id: str | None = None
    order_number: str | None = None
    po_number: str | None = None
    status: str | None = None
    type: str | None = None
    category: str | None = None
    bill_to_address_id: str | None = None
    ship_to_address_id: str | None = None
    carrier_id: str | None = None
    carrier: str | None = None
    note: str | None = None
    building_id: str | None = None
    order_date: PlexDateTime | None = None
    created_date: PlexDateTime | None = None
    modified_date: PlexDateTime | None = None


class OrderLine(PlexModel):
    id: str
    order_id: str | None = None
    part_id: str | None = None
    customer_part_id: str | None = None
    line_number: str | None = None
    note: str | None = None
    active: bool | None = None
    created_date: PlexDateTime | None = None
    modified_date: PlexDateTime | None = None


#: release statuses that can no longer ship (case-insensitive); anything else counts as open.
#: Plex's status names come from tenant setup tables (reference: not published), so these are
#: the common spellings.
CLOSED_RELEASE_STATUSES = frozenset(
    {"shipped", "canceled", "cancelled", "closed", "complete", "completed", "void"}
)
#: release (and order) statuses meaning "on hold": open, but Plex will not ship it
ON_HOLD_STATUSES = frozenset({"hold", "on hold", "on_hold"})


class Release(PlexModel):
    id: str
    release_number: str | None = None
    order_line_id: str | None = None
    type: str | None = None
    ship_to_address_id: str | None = None
    ship_date: PlexDateTime | None = None
    due_date: PlexDateTime | None = None
    quantity: float = 0
    quantity_shipped: float = 0
    order_quantity: float | None = None
    status: str | None = None
    note: str | None = None
    part_number: str | None = None
    created_date: PlexDateTime | None = None
    modified_date: PlexDateTime | None = None

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
    id: str
    code: str | None = None
    name: str | None = None
    status: str | None = None
    type: str | None = None
    phone: str | None = None
    email: str | None = None
    modified_date: PlexDateTime | None = None


class Address(PlexModel):
    id: str
    code: str | None = None
    name: str | None = None
    address: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    phone: str | None = None
    email: str | None = None
    ship_to: bool | None = None
    bill_to: bool | None = None
    active: bool | None = None
    shipping_instructions: str | None = None
    modified_date: PlexDateTime | None = None


class Part(PlexModel):
    id: str
    number: str | None = None
    name: str | None = None
    revision: str | None = None
    description: str | None = None
    type: str | None = None
    status: str | None = None
    building_code: str | None = None
    modified_date: PlexDateTime | None = None


class Location(PlexModel):
    location_id: str
    location_code: str | None = None
    building_code: str | None = None
    building_name: str | None = None
    location_type: str | None = None
    inventory_location: bool | None = None


class Container(PlexModel):
    serial_no: str
    part_id: str | None = None
    part_no: str | None = None
    revision: str | None = None
    container_status: str | None = None
    location_id: str | None = None
    location: str | None = None
    quantity: float = 0
    add_date_time: PlexDateTime | None = None
    update_date_time: PlexDateTime | None = None


class Shipper(PlexModel):
    id: str
    shipper_number: str | None = None
    customer_id: str | None = None
    customer_address_id: str | None = None
    ship_date: PlexDateTime | None = None
    carrier_id: str | None = None
    status: str | None = None
    tracking_number: str | None = None
    note: str | None = None
    shipper_note: str | None = None
    bol_note: str | None = None
    scheduled_ship_date: PlexDateTime | None = None
    created_date: PlexDateTime | None = None
    modified_date: PlexDateTime | None = None

    def mentions(self, reference: str) -> bool:
        """Whether any of the shipper's notes carries ``reference``."""
        return any(reference in (n or "") for n in (self.shipper_note, self.note, self.bol_note))


class ShipperLine(PlexModel):
    id: str
    shipper_id: str | None = None
    part_id: str | None = None
    quantity: float = 0
    release_id: str | None = None
    shipper_line_note: str | None = None
    packing_complete: bool | None = None


class ScheduledRelease(PlexModel):
    release_id: str
    shipper_id: str | None = None
    shipper_line_id: str


class InventoryShipment(PlexModel):
    id: str
    external_shipment_code: str | None = None
    shipment_status: str | None = None
    containers: list[Any] = []
    created_date: PlexDateTime | None = None


@dataclass(frozen=True)
class OnHand:
    """Stock of one part in one location, summed over shippable containers."""

    part_id: str
    location_id: str | None
    quantity: float
    part_no: str | None = None
    location: str | None = None
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
    order_id: str | None = None
    customer_id: str | None = None
    customer_address_id: str | None = None
    #: the Plex shipper already holding these releases (datasource strategy), when known
    shipper_id: str | None = None

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
    shipper_id: str | None = None
    inventory_shipment_id: str | None = None
    already_done: bool = False
    resumed: bool = False
    details: dict[str, Any] = field(default_factory=dict)
