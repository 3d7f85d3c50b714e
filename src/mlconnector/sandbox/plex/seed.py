"""Deterministic seed data: a mid-sized automotive-parts supplier.

Same seed and same clock start give the same tenant, byte for byte: ids come from the tenant's
seeded random source and every time is an offset from ``clock.now()`` at seeding.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from mlconnector.clock import Clock
from mlconnector.sandbox.plex.model import (
    Address,
    Container,
    Customer,
    Location,
    Order,
    OrderLine,
    Part,
    Release,
    Tenant,
)
from mlconnector.sandbox.plex.state import TenantData


@dataclass(frozen=True)
class TenantSpec:
    """A tenant to create: PCN, company code and name; data sizes are adjustable for tests."""

    pcn: int
    code: str
    name: str
    customers: int = 12
    parts: int = 200
    orders: int = 40


DEFAULT_TENANTS = (
    TenantSpec(pcn=340884, code="mlauto", name="Midland Automotive Components"),
    TenantSpec(pcn=340885, code="mlautoca", name="Midland Automotive Canada", orders=12),
)

_CUSTOMERS = [
    ("GMX", "Great Lakes Motor Works", "OEM"),
    ("FRD", "Fordham Vehicle Assembly", "OEM"),
    ("STL", "Stellar Auto Group", "OEM"),
    ("HND", "Hondo Manufacturing of America", "OEM"),
    ("TYT", "Toyama Motor North America", "OEM"),
    ("MAG", "Magnus Seating Systems", "Tier 1"),
    ("LER", "Lear Road Interiors", "Tier 1"),
    ("DNA", "Danaher Axle & Driveline", "Tier 1"),
    ("ADV", "AutoParts Direct Distribution", "Aftermarket"),
    ("NAP", "National Auto Parts Supply", "Aftermarket"),
    ("RVN", "Rivian-Style EV Works", "OEM"),
    ("PAC", "Pacific Coach Builders", "OEM"),
    ("MTR", "Metro Transit Bus Co", "Fleet"),
    ("OKB", "Ozark Brake Rebuilders", "Aftermarket"),
]

_SITES = [
    ("Detroit", "MI", "48201", "USA"),
    ("Dearborn", "MI", "48120", "USA"),
    ("Toledo", "OH", "43604", "USA"),
    ("Georgetown", "KY", "40324", "USA"),
    ("Spring Hill", "TN", "37174", "USA"),
    ("Normal", "IL", "61761", "USA"),
    ("Fremont", "CA", "94538", "USA"),
    ("San Antonio", "TX", "78201", "USA"),
    ("Lafayette", "IN", "47905", "USA"),
    ("Smyrna", "TN", "37167", "USA"),
    ("Oakville", "ON", "L6J 5E4", "Canada"),
    ("Greer", "SC", "29651", "USA"),
]

_STREETS = ["Industrial Pkwy", "Assembly Dr", "Commerce Blvd", "Plant Rd", "Motor Ave", "Dock St"]

_BUILDINGS = [
    ("DET", "Detroit Plant & FC"),
    ("TOL", "Toledo Distribution Center"),
    ("LON", "London Ontario Warehouse"),
]

_PART_FAMILIES = [
    ("BRK", "Brake Caliper Bracket", "Stamping", 1.8),
    ("HNG", "Door Hinge Assembly", "Assembly", 0.9),
    ("SPR", "Coil Spring", "Spring", 2.4),
    ("BSH", "Control Arm Bushing", "Rubber", 0.3),
    ("MNT", "Engine Mount", "Assembly", 3.1),
    ("FLT", "Oil Filter Housing", "Casting", 1.2),
    ("SNS", "Wheel Speed Sensor", "Electrical", 0.2),
    ("HRN", "Wiring Harness", "Electrical", 1.5),
    ("BLT", "Flange Bolt M10", "Fastener", 0.05),
    ("GSK", "Exhaust Gasket", "Gasket", 0.1),
]


def seed_tenant(spec: TenantSpec, clock: Clock, seed: int) -> TenantData:
    """Build one tenant's data from a seed."""
    rng = random.Random(f"{seed}:{spec.pcn}")
    data = TenantData(
        tenant=Tenant(id="", code=spec.code, pcn=spec.pcn, name=spec.name), clock=clock, rng=rng
    )
    data.tenant.id = data.new_id()
    now = clock.now()
    _seed_customers(data, spec, now)
    _seed_sites(data)
    _seed_parts(data, spec, now)
    _seed_containers(data, now)
    _seed_orders(data, spec, now)
    return data


def _ago(rng: random.Random, now: datetime, max_days: float) -> datetime:
    """A random instant in the last ``max_days``, whole milliseconds."""
    delta = timedelta(seconds=round(rng.uniform(3600, max_days * 86400)))
    return (now - delta).replace(microsecond=rng.randrange(1000) * 1000)


def _seed_customers(data: TenantData, spec: TenantSpec, now: datetime) -> None:
    rng = data.rng
    for index in range(spec.customers):
        code, name, kind = _CUSTOMERS[index % len(_CUSTOMERS)]
        if index >= len(_CUSTOMERS):
            code, name = f"{code}{index}", f"{name} {index}"
        created = _ago(rng, now, 900)
        customer = Customer(
            id=data.new_id(),
            key=data.new_key(),
            code=code,
            name=name,
            type=kind,
            phone=f"313-555-{rng.randrange(10000):04d}",
            email=f"receiving@{code.lower()}.example.com",
            created=created,
            modified=_ago(rng, now, 60),
        )
        customer.addresses.append(_address(data, customer, "BILL", rng.choice(_SITES), True))
        for n in range(1 + rng.randrange(2)):
            site = _SITES[(index + n * 5) % len(_SITES)]
            customer.addresses.append(_address(data, customer, f"SHIP{n + 1}", site, False))
        data.customers[customer.id] = customer


def _address(
    data: TenantData, customer: Customer, code: str, site: tuple[str, str, str, str], bill: bool
) -> Address:
    rng = data.rng
    city, state, zip_code, country = site
    return Address(
        id=data.new_id(),
        key=data.new_key(),
        customer_id=customer.id,
        code=code,
        name=customer.name if bill else f"{customer.name} - {city}",
        address=f"{rng.randrange(100, 9999)} {rng.choice(_STREETS)}",
        city=city,
        state=state,
        zip=zip_code,
        country=country,
        phone=customer.phone,
        email=customer.email,
        ship_to=not bill,
        bill_to=bill,
        created=customer.created,
        modified=customer.modified,
        shipping_instructions=None if bill else "Dock hours 06:00-14:00",
    )


def _seed_sites(data: TenantData) -> None:
    for code, name in _BUILDINGS:
        data.buildings[data.new_id()] = code
        for loc_code, kind in [
            ("FG-01", "Finished Goods"),
            ("FG-02", "Finished Goods"),
            ("SHIP", "Shipping Dock"),
            ("QC", "Quality Hold"),
        ]:
            location = Location(
                id=data.new_id(),
                code=f"{code}-{loc_code}",
                building_code=code,
                building_name=name,
                type=kind,
            )
            data.locations[location.id] = location


def _seed_parts(data: TenantData, spec: TenantSpec, now: datetime) -> None:
    rng = data.rng
    for index in range(spec.parts):
        prefix, name, group, weight = _PART_FAMILIES[index % len(_PART_FAMILIES)]
        created = _ago(rng, now, 1500)
        part = Part(
            id=data.new_id(),
            key=data.new_key(),
            number=f"{prefix}-{10000 + index * 7}",
            revision=rng.choice(["A", "A", "B", "C", "01"]),
            name=f"{name} {index // len(_PART_FAMILIES) + 1}",
            type="Finished Good",
            group=group,
            building_code=rng.choice(_BUILDINGS)[0],
            unit_price=round(rng.uniform(0.4, 180.0), 2),
            unit_weight=round(weight * rng.uniform(0.7, 1.3), 3),
            created=created,
            modified=max(created, _ago(rng, now, 120)),
            status="Active" if rng.random() > 0.05 else "Inactive",
        )
        data.parts[part.id] = part


def _seed_containers(data: TenantData, now: datetime) -> None:
    rng = data.rng
    locations = list(data.locations.values())
    stock = [loc for loc in locations if loc.type == "Finished Goods"]
    hold = [loc for loc in locations if loc.type == "Quality Hold"]
    for part in data.parts.values():
        if part.status != "Active":
            continue
        for _ in range(rng.randrange(1, 5)):
            on_hold = rng.random() < 0.08
            location = rng.choice(hold if on_hold else stock)
            key = data.new_key()
            added = _ago(rng, now, 200)
            container = Container(
                serial_no=f"S{data.tenant.pcn % 1000:03d}{key:07d}",
                key=key,
                part_id=part.id,
                location_id=location.id,
                quantity=float(rng.choice([24, 48, 50, 100, 120, 200, 250, 500])),
                status="Hold" if on_hold else "OK",
                container_type=rng.choice(["Box", "Tote", "Pallet"]),
                added=added,
                updated=added,
            )
            data.containers[container.serial_no] = container


def _seed_orders(data: TenantData, spec: TenantSpec, now: datetime) -> None:
    rng = data.rng
    customers = list(data.customers.values())
    parts = [p for p in data.parts.values() if p.status == "Active"]
    building_ids = list(data.buildings)
    for index in range(spec.orders):
        customer = rng.choice(customers)
        bill_to = next(a for a in customer.addresses if a.bill_to)
        ship_to = rng.choice([a for a in customer.addresses if a.ship_to])
        created = _ago(rng, now, 45)
        roll = rng.random()
        status = "Hold" if roll < 0.08 else "Canceled" if roll < 0.13 else "Open"
        order = Order(
            id=data.new_id(),
            key=data.new_key(),
            customer_id=customer.id,
            order_number=f"{spec.pcn % 1000}{index + 1:05d}",
            po_number=f"PO-{customer.code}-{rng.randrange(100000, 999999)}",
            status=status,
            type=rng.choice(["Blanket", "Blanket", "Spot Buy"]),
            bill_to_address_id=bill_to.id,
            ship_to_address_id=ship_to.id,
            building_id=rng.choice(building_ids),
            carrier=rng.choice(["UPS", "FedEx", "Estes", None]),
            order_date=created,
            created=created,
            modified=created,
            note=rng.choice([None, "Call before delivery", "Use returnable racks"]),
        )
        data.orders[order.id] = order
        for line_number in range(1, rng.randrange(2, 5)):
            _seed_line(data, order, ship_to, rng.choice(parts), line_number, now)


def _seed_line(
    data: TenantData, order: Order, ship_to: Address, part: Part, line_number: int, now: datetime
) -> None:
    rng = data.rng
    line = OrderLine(
        id=data.new_id(),
        key=data.new_key(),
        order_id=order.id,
        part_id=part.id,
        line_number=line_number,
        price=part.unit_price,
        created=order.created,
        modified=order.created,
    )
    data.add_line(line)
    for release_number in range(1, rng.randrange(3, 6)):
        ship_date = (now + timedelta(days=rng.randrange(-3, 35))).replace(
            hour=14, minute=0, second=0, microsecond=0
        )
        quantity = float(rng.choice([24, 48, 50, 96, 100, 150, 200]))
        shipped = 0
        status = "Open"
        if order.status == "Canceled":
            status = "Canceled"
        elif order.status == "Hold":
            status = "Hold"
        elif ship_date < now and rng.random() < 0.7:
            shipped, status = int(quantity), "Shipped"
        elif rng.random() < 0.15:
            shipped = int(quantity // rng.choice([2, 3, 4]))
        modified = max(order.created, _ago(rng, now, 20))
        release = Release(
            id=data.new_id(),
            key=data.new_key(),
            order_line_id=line.id,
            release_number=f"{line_number}-{release_number}",
            ship_to_address_id=ship_to.id,
            ship_date=ship_date,
            due_date=ship_date + timedelta(days=2),
            quantity=quantity,
            quantity_shipped=shipped,
            status=status,
            created=order.created,
            modified=modified,
        )
        data.releases[release.id] = release
        order.modified = max(order.modified, modified)
