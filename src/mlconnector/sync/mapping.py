"""Plex open releases → ShipStation V1 orders (DESIGN §3, §3a). Pure: no I/O, no clock.

The unit is an **open release** (``quantity − quantityShipped > 0`` and not shipped/cancelled).
Releases are grouped per ``grouping``: ``ship_date`` (one ShipStation order per sales order,
ship-to and ship date) or ``order`` (one per sales order). Each group becomes a complete V1
:class:`~mlconnector.shipstation.Order` (V1 replaces the whole order on update), with a
deterministic ``orderKey`` and a **content hash** over the canonical JSON of what is sent
(``storeId`` excluded: it only counts at creation), so an unchanged group is never re-sent.

Quantities and partial shipments: a ShipStation item's quantity is what is still to ship **plus
what ShipStation itself already shipped** of that release (``shipped_in_shipstation``). When a
partial label is written back to Plex, Plex's open quantity drops by exactly what ShipStation
shipped, so the item (and the hash) stay the same and ShipStation's own "remaining" stays right.
Only quantities shipped outside ShipStation reduce the item.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from mlconnector.config import ConnectionConfig
from mlconnector.lenient import value_excerpt
from mlconnector.plex import Address, Customer, OrderLine, Part, Release, SalesOrder
from mlconnector.plex.models import ON_HOLD_STATUSES
from mlconnector.shipstation import Address as SSAddress
from mlconnector.shipstation import AdvancedOptions, Order, OrderItem

CANCELLED = frozenset({"canceled", "cancelled"})
MAX_ORDER_NUMBER = 50
#: fields left out of the content hash: ``storeId`` is honoured only at creation
HASH_EXCLUDED_ADVANCED = frozenset({"storeId"})

_COUNTRIES = {
    "usa": "US",
    "united states": "US",
    "united states of america": "US",
    "canada": "CA",
    "mexico": "MX",
    "méxico": "MX",
    "germany": "DE",
    "united kingdom": "GB",
    "china": "CN",
    "japan": "JP",
}


@dataclass(frozen=True)
class OrderBundle:
    """One Plex sales order with everything the mapping reads (loaded by the orders flow)."""

    order: SalesOrder
    customer: Customer | None
    lines: Sequence[OrderLine]
    releases: Sequence[Release]
    parts: Mapping[str, Part] = field(default_factory=dict)
    #: customer addresses by id (lower-case)
    addresses: Mapping[str, Address] = field(default_factory=dict)
    #: release id (lower-case) → quantity ShipStation labels already shipped (voids excluded)
    shipped_in_shipstation: Mapping[str, float] = field(default_factory=dict)

    def item_quantity(self, release: Release) -> float:
        """Open quantity + what ShipStation shipped of it (never above the release quantity)."""
        via = self.shipped_in_shipstation.get(release.id.lower(), 0.0)
        return min(release.quantity, release.open_quantity + via) if via else release.open_quantity

    def in_group(self, release: Release) -> bool:
        """Open, or (not cancelled and) partly shipped by ShipStation: still an item there."""
        status = (release.status or "").strip().lower()
        via = self.shipped_in_shipstation.get(release.id.lower(), 0.0)
        return is_open(release) or (via > 0 and status not in CANCELLED)


@dataclass(frozen=True)
class MappedOrder:
    """One release group, ready to send."""

    order_key: str
    group_key: str
    plex_order_id: str
    order: Order
    content_hash: str
    release_ids: tuple[str, ...]
    #: what an operator should know before it is sent (e.g. no warehouse mapped)
    warnings: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        return self.order.order_status or "awaiting_shipment"

    @property
    def order_number(self) -> str | None:
        return self.order.order_number


@dataclass(frozen=True)
class MappingSkip:
    """A group that cannot become a ShipStation order as it is (and why)."""

    order_key: str
    group_key: str
    plex_order_id: str
    reason: str
    release_ids: tuple[str, ...] = ()
    #: the FlowResult counter: ``skipped``, or ``failed`` when a setting refuses the order
    counter: str = "skipped"
    #: the Plex field that made it unmappable, and an excerpt of its value (for the quarantine)
    field: str = "(order)"
    value: str = ""
    #: the Plex order number, for people (the plan shows it)
    order_number: str | None = None


def is_open(release: Release) -> bool:
    """Open = something left to ship and a status that can still ship."""
    return release.open_quantity > 0 and not release.closed


def country_code(value: str | None) -> str | None:
    """A 2-letter ISO country code from what Plex holds (code or common English name)."""
    if not value:
        return None
    text = value.strip()
    if len(text) == 2 and text.isalpha():
        return text.upper()
    return _COUNTRIES.get(text.lower())


def group_of(release: Release, order: SalesOrder, grouping: str) -> str:
    """The group a release belongs to: ``YYYYMMDD-<ship-to digest>`` or ``order``."""
    if grouping == "order":
        return "order"
    ship_to = (release.ship_to_address_id or order.ship_to_address_id or "none").lower()
    digest = hashlib.sha256(ship_to.encode()).hexdigest()[:8]
    day = release.ship_date.strftime("%Y%m%d") if release.ship_date else "nodate"
    return f"{day}-{digest}"


def order_key(config: ConnectionConfig, order: SalesOrder, group: str) -> str:
    """The deterministic ``orderKey`` from ``order_key_template``."""
    return config.order_key_template.format(
        pcn=config.plex.pcn or "",
        order_id=order.id.lower(),
        order_number=order.order_number or "",
        group=group,
    )


def order_number(order: SalesOrder, grouping: str, ship_date: datetime | None) -> str:
    """Plex ``orderNumber`` (grouping ``order``) or ``orderNumber-YYMMDD``; ≤ 50 characters."""
    base = order.order_number or order.id
    if grouping == "order" or ship_date is None:
        return base[:MAX_ORDER_NUMBER]
    suffix = "-" + ship_date.strftime("%y%m%d")
    return base[: MAX_ORDER_NUMBER - len(suffix)] + suffix


def content_hash(order: Order) -> str:
    """SHA-256 of the canonical JSON of what is sent, without ``storeId``."""
    body = order.to_v1()
    advanced = body.get("advancedOptions")
    if isinstance(advanced, dict):
        body["advancedOptions"] = {
            k: v for k, v in advanced.items() if k not in HASH_EXCLUDED_ADVANCED
        }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _status(order: SalesOrder, releases: Sequence[Release]) -> str:
    status = (order.status or "").strip().lower()
    if status in CANCELLED:
        return "cancelled"
    if status in ON_HOLD_STATUSES or all(r.on_hold for r in releases):
        return "on_hold"
    return "awaiting_shipment"


def _address(address: Address | None, customer: Customer | None) -> SSAddress | None:
    if address is None:
        return None
    streets = [s.strip() for s in (address.address or "").splitlines() if s.strip()]
    values: dict[str, Any] = {
        "name": address.name or (customer.name if customer else None),
        "company": customer.name if customer else None,
        "street1": streets[0] if streets else None,
        "street2": streets[1] if len(streets) > 1 else None,
        "street3": ", ".join(streets[2:]) if len(streets) > 2 else None,
        "city": address.city,
        "state": address.state,
        "postal_code": address.zip,
        "country": country_code(address.country),
        "phone": address.phone or (customer.phone if customer else None),
    }
    return SSAddress(**{k: v for k, v in values.items() if v is not None})


def _building(bundle: OrderBundle, config: ConnectionConfig, parts: Sequence[Part]) -> int | None:
    """Warehouse by the order's building (id or code), else the first part's building code."""
    return warehouse_of(bundle, config, parts)[0]


def warehouse_of(
    bundle: OrderBundle, config: ConnectionConfig, parts: Sequence[Part]
) -> tuple[int | None, str | None]:
    """``(warehouseId, building)``: the first building candidate that is mapped, else
    ``(None, the building Plex names)`` (a code rather than an id, when it sends both)."""
    mapping = config.mappings.warehouses
    order = bundle.order
    code = (order.model_extra or {}).get("buildingCode")
    candidates = [order.building_id, code, *(p.building_code for p in parts)]
    for candidate in candidates:
        if candidate and str(candidate) in mapping:
            return mapping[str(candidate)], str(candidate)
    named = [str(c) for c in (code, *(p.building_code for p in parts), order.building_id) if c]
    return None, (named[0] if named else None)


def unmapped_warehouse(building: str | None) -> str:
    """Why an order has no warehouse, naming the building (or its absence)."""
    if building is None:
        return "the Plex order names no building, so no ShipStation warehouse is mapped"
    return f"Plex building {building!r} has no ShipStation warehouse in mappings.warehouses"


def _store(bundle: OrderBundle, config: ConnectionConfig) -> int | None:
    stores = config.mappings.stores
    code = bundle.customer.code if bundle.customer else None
    if code and code in stores.by_customer:
        return stores.by_customer[code]
    if bundle.order.type and bundle.order.type in stores.by_order_type:
        return stores.by_order_type[bundle.order.type]
    return stores.default


def _line_price(line: OrderLine | None) -> float | None:
    extra = (line.model_extra or {}) if line is not None else {}
    for name in ("price", "unitPrice"):
        value = extra.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _release_sort(release: Release, lines: Mapping[str, OrderLine]) -> tuple[str, str, str]:
    line = lines.get((release.order_line_id or "").lower())
    number = (line.line_number if line else None) or ""
    return (number.zfill(6), (release.release_number or "").zfill(12), release.id)


def _item(
    release: Release, quantity: float, line: OrderLine | None, part: Part | None
) -> OrderItem:
    sku = (part.number if part else None) or release.part_number or release.id
    values: dict[str, Any] = {
        "line_item_key": release.id.lower(),
        "sku": sku,
        "name": (part.name or part.description if part else None) or sku,
        "quantity": round(quantity),
        "unit_price": _line_price(line),
    }
    return OrderItem(**{k: v for k, v in values.items() if v is not None})


def map_group(
    bundle: OrderBundle, config: ConnectionConfig, group: str, releases: Sequence[Release]
) -> MappedOrder | MappingSkip:
    """One group of open releases → one complete V1 order (or why it cannot be one)."""
    order = bundle.order
    key = order_key(config, order, group)
    release_ids = tuple(r.id.lower() for r in releases)
    lines = {line.id.lower(): line for line in bundle.lines}

    def skip(reason: str, field: str, value: object) -> MappingSkip:
        return MappingSkip(
            key,
            group,
            order.id.lower(),
            reason,
            release_ids,
            field=field,
            value=value_excerpt(value),
            order_number=order.order_number,
        )

    quantities = {r.id: bundle.item_quantity(r) for r in releases}
    fractional = [rid for rid, q in quantities.items() if not math.isclose(q, round(q))]
    if fractional:
        return skip(
            f"release {fractional[0]} has a fractional open quantity; "
            "ShipStation takes whole units",
            f"release {fractional[0]} quantity",
            quantities[fractional[0]],
        )
    order_date = order.order_date or order.created_date
    if order_date is None:
        return skip("the Plex order has no orderDate or createdDate", "orderDate", None)
    ordered = sorted(releases, key=lambda r: _release_sort(r, lines))
    parts: list[Part] = []
    items: list[OrderItem] = []
    for release in ordered:
        line = lines.get((release.order_line_id or "").lower())
        part = bundle.parts.get((line.part_id or "").lower()) if line else None
        if part is not None:
            parts.append(part)
        items.append(_item(release, quantities[release.id], line, part))
    ship_dates = [r.ship_date for r in releases if r.ship_date is not None]
    ship_by = min(ship_dates) if ship_dates else None
    ship_to_id = (ordered[0].ship_to_address_id or order.ship_to_address_id or "").lower()
    ship_to = bundle.addresses.get(ship_to_id)
    if ship_to is None:
        return skip(
            f"the ship-to address {ship_to_id or '(none)'} is not among the customer's",
            "shipToAddressId",
            ship_to_id or None,
        )
    bill_to = bundle.addresses.get((order.bill_to_address_id or "").lower()) or ship_to
    customer = bundle.customer
    carrier = config.mappings.carriers.get(order.carrier or "")
    warehouse, building = warehouse_of(bundle, config, parts)
    warnings: tuple[str, ...] = ()
    if warehouse is None:
        why = unmapped_warehouse(building)
        if config.mappings.required:
            refused = skip(
                f"not sent: {why}, and mappings.required is true; map the building in "
                "mappings.warehouses (`mlconnector lookup` lists the ids) and run again",
                "building",
                building,
            )
            return replace(refused, counter="failed")
        warnings = (
            f"sent without a warehouse (warehouseId null): {why}; map it, or set "
            "mappings.required = true to refuse such orders",
        )
    advanced: dict[str, Any] = {
        "warehouse_id": warehouse,
        "store_id": _store(bundle, config),
        "custom_field1": order.po_number,
        "custom_field2": order.order_number,
        "custom_field3": order.id.lower(),
        "source": "plex",
    }
    values: dict[str, Any] = {
        "order_number": order_number(order, config.grouping, ship_by),
        "order_key": key,
        "order_date": order_date,
        "ship_by_date": ship_by,
        "order_status": _status(order, releases),
        "customer_username": customer.code if customer else None,
        "customer_email": ship_to.email or (customer.email if customer else None),
        "ship_to": _address(ship_to, customer),
        "bill_to": _address(bill_to, customer),
        "items": items,
        "internal_notes": order.note,
        "carrier_code": carrier.carrier_code if carrier else None,
        "service_code": carrier.service_code if carrier else None,
        "requested_shipping_service": carrier.requested_shipping_service if carrier else None,
        "advanced_options": AdvancedOptions(**{k: v for k, v in advanced.items() if v is not None}),
    }
    ss_order = Order(**{k: v for k, v in values.items() if v is not None})
    return MappedOrder(
        order_key=key,
        group_key=group,
        plex_order_id=order.id.lower(),
        order=ss_order,
        content_hash=content_hash(ss_order),
        release_ids=release_ids,
        warnings=warnings,
    )


def map_order(bundle: OrderBundle, config: ConnectionConfig) -> list[MappedOrder | MappingSkip]:
    """Every group with at least one open release, by group key. Empty when nothing is open."""
    line_ids = {line.id.lower() for line in bundle.lines}
    groups: dict[str, list[Release]] = {}
    for release in bundle.releases:
        if (release.order_line_id or "").lower() not in line_ids or not bundle.in_group(release):
            continue
        group = group_of(release, bundle.order, config.grouping)
        groups.setdefault(group, []).append(release)
    return [
        map_group(bundle, config, g, rs)
        for g, rs in sorted(groups.items())
        if any(is_open(r) for r in rs)
    ]
