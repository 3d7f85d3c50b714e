"""The data of simulated Plex tenants and the business rules that change it.

Rules kept here (not in the routes) so the REST, Data Source and operator surfaces agree:

* every change to a release bumps ``modifiedDate`` of the release **and** of its sales order;
* on-hand is the sum of ``quantity`` over containers in a shippable status (``OK``) per part and
  location; containers emptied by a shipment leave the active list;
* shipping a customer shipper removes its loaded quantity from the containers and adds the line
  quantity to each release's ``quantityShipped`` (a fully shipped release becomes ``Shipped``);
* shipping an inventory shipment empties the staged containers;
* splitting a container moves part of its quantity into a **new** container (new serial, same
  part, location, status and type); the remainder keeps its serial with its quantity reduced.
  A split must leave a remainder, and may not take what is loaded on an unshipped shipper or
  staged on an unshipped inventory shipment.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlconnector.clock import Clock
from mlconnector.sandbox.plex.errors import PlexApiError, not_found, validation_failed
from mlconnector.sandbox.plex.model import (
    Container,
    Customer,
    InventoryShipment,
    LoadedContainer,
    Location,
    Order,
    OrderLine,
    Part,
    Release,
    Shipper,
    ShipperLine,
    StagedContainer,
    Tenant,
)

#: container statuses that count as on-hand and may be loaded or staged
SHIPPABLE_STATUSES = frozenset({"OK"})
#: release statuses that can still ship
OPEN_RELEASE_STATUSES = frozenset({"Open", "Scheduled"})


@dataclass
class TenantData:
    """Everything one Plex tenant (PCN) holds. Ids are lower-case UUID strings."""

    tenant: Tenant
    clock: Clock
    rng: random.Random
    customers: dict[str, Customer] = field(default_factory=dict)
    locations: dict[str, Location] = field(default_factory=dict)
    buildings: dict[str, str] = field(default_factory=dict)  # building id -> code
    parts: dict[str, Part] = field(default_factory=dict)
    containers: dict[str, Container] = field(default_factory=dict)  # by serial number
    orders: dict[str, Order] = field(default_factory=dict)
    lines: dict[str, OrderLine] = field(default_factory=dict)
    releases: dict[str, Release] = field(default_factory=dict)
    shippers: dict[str, Shipper] = field(default_factory=dict)
    inventory_shipments: dict[str, InventoryShipment] = field(default_factory=dict)
    #: record id (or container serial) -> field -> the value sent instead of the real one: the
    #: operator's way to make Plex answer what a real tenant may (a malformed field)
    raw_fields: dict[str, dict[str, object]] = field(default_factory=dict)
    #: order id -> ids of its lines (kept by :meth:`add_line`; lines are never deleted)
    _lines_of_order: dict[str, list[str]] = field(default_factory=dict)
    _next_key: int = 100_000

    # -- ids ---------------------------------------------------------------------------------

    def new_id(self) -> str:
        """A deterministic UUID4 from the tenant's seeded random source."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def new_key(self) -> int:
        """A fresh integer key, as the Data Source API uses."""
        self._next_key += 1
        return self._next_key

    def now(self) -> datetime:
        return self.clock.now()

    def add_line(self, line: OrderLine) -> None:
        """Store a sales-order line and index it under its order."""
        self.lines[line.id] = line
        self._lines_of_order.setdefault(line.order_id, []).append(line.id)

    # -- look-ups ----------------------------------------------------------------------------

    def order_lines(self, order_id: str) -> list[OrderLine]:
        """The lines of one order (an index: a scan of every line per request made the
        simulator, not the connector, the bottleneck of a 100k-order benchmark)."""
        return [self.lines[i] for i in self._lines_of_order.get(order_id, [])]

    def order_of_release(self, release: Release) -> Order:
        return self.orders[self.lines[release.order_line_id].order_id]

    def part_of_release(self, release: Release) -> Part:
        return self.parts[self.lines[release.order_line_id].part_id]

    def release_json(self, release: Release) -> dict[str, object]:
        return self.raw(release.id, release.to_json(self.part_of_release(release).number_revision))

    def raw(self, record_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """``payload`` as sent, with the operator's raw field values (see :attr:`raw_fields`)."""
        changed = self.raw_fields.get(record_id)
        return {**payload, **changed} if changed else payload

    def shipper(self, ident: str) -> Shipper:
        found = self.shippers.get(ident.lower())
        if found is None:
            raise not_found(f"Customer shipper '{ident}'")
        return found

    def shipper_by_key(self, key: int) -> Shipper | None:
        return next((s for s in self.shippers.values() if s.key == key), None)

    def release(self, ident: str) -> Release:
        found = self.releases.get(ident.lower())
        if found is None:
            raise not_found(f"Release '{ident}'")
        return found

    def order(self, ident: str) -> Order:
        found = self.orders.get(ident.lower())
        if found is None:
            raise not_found(f"Sales order '{ident}'")
        return found

    def active_containers(self) -> list[Container]:
        return [c for c in self.containers.values() if c.quantity > 0]

    def on_hand(self, part_id: str, location_id: str | None = None) -> float:
        """On-hand of a part (optionally at one location): shippable containers' quantities."""
        return float(
            sum(
                c.quantity
                for c in self.containers.values()
                if c.part_id == part_id
                and c.status in SHIPPABLE_STATUSES
                and (location_id is None or c.location_id == location_id)
            )
        )

    # -- modification ------------------------------------------------------------------------

    def touch_release(self, release: Release) -> None:
        """Bump the release's and its order's ``modifiedDate`` (Plex does both)."""
        now = self.now()
        release.modified = now
        self.order_of_release(release).modified = now

    def touch_order(self, order: Order) -> None:
        order.modified = self.now()

    def edit_release(
        self,
        release: Release,
        *,
        quantity: float | None = None,
        ship_date: datetime | None = None,
        due_date: datetime | None = None,
        status: str | None = None,
        note: str | None = None,
        quantity_shipped: int | None = None,
    ) -> Release:
        """Change a release and bump the modified dates."""
        if quantity is not None:
            if quantity < 0:
                raise validation_failed("quantity must not be negative")
            release.quantity = quantity
        if ship_date is not None:
            release.ship_date = ship_date
        if due_date is not None:
            release.due_date = due_date
        if status is not None:
            release.status = status
        if note is not None:
            release.note = note
        if quantity_shipped is not None:
            release.quantity_shipped = quantity_shipped
        self.touch_release(release)
        return release

    def cancel_order(self, order: Order) -> Order:
        """Cancel a sales order and its unshipped releases."""
        order.status = "Canceled"
        for release in self.releases_of_order(order):
            if release.status in OPEN_RELEASE_STATUSES or release.status == "Hold":
                release.status = "Canceled"
                self.touch_release(release)
        self.touch_order(order)
        return order

    def set_order_status(self, order: Order, status: str) -> Order:
        """Change an order's status; a hold (or its release) carries over to open releases."""
        if status == "Canceled":
            return self.cancel_order(order)
        mirrored = {"Hold": ("Open", "Hold"), "Open": ("Hold", "Open")}.get(status)
        if mirrored is not None:
            before, after = mirrored
            for release in self.releases_of_order(order):
                if release.status == before:
                    release.status = after
                    self.touch_release(release)
        order.status = status
        self.touch_order(order)
        return order

    def releases_of_order(self, order: Order) -> list[Release]:
        line_ids = set(self._lines_of_order.get(order.id, []))
        return [r for r in self.releases.values() if r.order_line_id in line_ids]

    def adjust_container(
        self, serial_no: str, *, quantity: float | None = None, status: str | None = None
    ) -> Container:
        """Set a container's quantity and/or status (an operator adjustment)."""
        container = self.containers.get(serial_no)
        if container is None:
            raise not_found(f"Container '{serial_no}'")
        if quantity is not None:
            if quantity < 0:
                raise validation_failed("quantity must not be negative")
            container.quantity = quantity
        if status is not None:
            container.status = status
        container.updated = self.now()
        return container

    def add_container(
        self, part_id: str, location_id: str, quantity: float, *, status: str = "OK"
    ) -> Container:
        """Put a new container of a part at a location."""
        if part_id not in self.parts:
            raise not_found(f"Part '{part_id}'")
        if location_id not in self.locations:
            raise not_found(f"Location '{location_id}'")
        key = self.new_key()
        now = self.now()
        container = Container(
            serial_no=f"S{self.tenant.pcn % 1000:03d}{key:07d}",
            key=key,
            part_id=part_id,
            location_id=location_id,
            quantity=quantity,
            status=status,
            container_type="Box",
            added=now,
            updated=now,
        )
        self.containers[container.serial_no] = container
        return container

    def split_container(self, serial_no: str, quantity: float) -> Container:
        """Split ``quantity`` off container ``serial_no`` into a new container; the new one."""
        source = self.containers.get(serial_no)
        if source is None or source.quantity <= 0:
            raise validation_failed(f"container '{serial_no}' is not active")
        if quantity <= 0:
            raise validation_failed("the split quantity must be positive")
        if quantity >= source.quantity:
            raise validation_failed(
                f"container '{serial_no}' holds {source.quantity:g}: a split must leave a remainder"
            )
        staged = any(
            c.serial_no == serial_no
            for s in self.inventory_shipments.values()
            if s.status != "Shipped"
            for c in s.containers
        )
        free = source.quantity - self.reserved_quantity(serial_no)
        if staged or quantity > free:
            raise validation_failed(
                f"container '{serial_no}' is loaded on an open shipper or staged; unload it first"
            )
        split = self.add_container(
            source.part_id, source.location_id, quantity, status=source.status
        )
        split.container_type = source.container_type
        source.quantity -= quantity
        source.updated = split.updated
        return split

    # -- customer shippers -------------------------------------------------------------------

    def create_shipper(
        self, customer_id: str, address_id: str, fields: dict[str, object]
    ) -> Shipper:
        """Create an open shipper for a customer ship-to address."""
        customer = self.customers.get(customer_id.lower())
        if customer is None:
            raise validation_failed(f"customerId '{customer_id}' does not exist")
        if not any(a.id == address_id.lower() and a.ship_to for a in customer.addresses):
            raise validation_failed(
                f"customerAddressId '{address_id}' is not a ship-to address of the customer"
            )
        key = self.new_key()
        now = self.now()
        shipper = Shipper(
            id=self.new_id(),
            key=key,
            shipper_number=f"SH{key}",
            customer_id=customer.id,
            customer_address_id=address_id.lower(),
            created=now,
            modified=now,
        )
        for attr, value in fields.items():
            setattr(shipper, attr, value)
        self.shippers[shipper.id] = shipper
        return shipper

    def schedule_release(
        self, shipper: Shipper, release_id: str, force_new_line: bool
    ) -> ShipperLine:
        """Put a release on an open shipper (one line per release unless ``force_new_line``)."""
        self._require_open(shipper)
        release = self.releases.get(release_id.lower())
        if release is None:
            raise validation_failed(f"releaseId '{release_id}' does not exist")
        if release.status not in OPEN_RELEASE_STATUSES:
            raise validation_failed(f"release '{release.id}' has status {release.status!r}")
        order = self.order_of_release(release)
        if order.customer_id != shipper.customer_id:
            raise validation_failed("the release belongs to another customer than the shipper")
        if order.status != "Open":
            raise validation_failed(f"sales order {order.order_number} is {order.status}")
        if not force_new_line:
            for line in shipper.lines:
                if line.release_id == release.id:
                    return line
        order_line = self.lines[release.order_line_id]
        line = ShipperLine(
            id=self.new_id(),
            key=self.new_key(),
            shipper_id=shipper.id,
            part_id=order_line.part_id,
            release_id=release.id,
            price=order_line.price,
        )
        shipper.lines.append(line)
        shipper.modified = self.now()
        return line

    def reserved_quantity(self, serial_no: str) -> float:
        """Quantity of a container already loaded on shippers that have not shipped yet."""
        return float(
            sum(
                item.quantity
                for s in self.shippers.values()
                if s.status != "Shipped"
                for line in s.lines
                for item in line.loaded
                if item.serial_no == serial_no
            )
        )

    def load_fifo(self, shipper: Shipper, line_id: str) -> ShipperLine:
        """Load the line's open release quantity from the oldest shippable containers."""
        self._require_open(shipper)
        line = next((x for x in shipper.lines if x.id == line_id.lower()), None)
        if line is None:
            raise not_found(f"Shipper line '{line_id}'")
        release = self.releases[line.release_id]
        needed = release.quantity - release.quantity_shipped - line.quantity
        candidates = sorted(
            (
                c
                for c in self.containers.values()
                if c.part_id == line.part_id and c.status in SHIPPABLE_STATUSES
            ),
            key=lambda c: (c.added, c.serial_no),
        )
        now = self.now()
        for container in candidates:
            if needed <= 0:
                break
            free = container.quantity - self.reserved_quantity(container.serial_no)
            take = min(free, needed)
            if take > 0:
                line.loaded.append(LoadedContainer(container.serial_no, take, now))
                needed -= take
        if needed > 0:
            raise PlexApiError(
                400,
                "INSUFFICIENT_INVENTORY",
                "Not enough inventory to load the shipper line.",
                [{"code": "INSUFFICIENT_INVENTORY", "message": f"{needed:g} short on the line"}],
            )
        shipper.modified = now
        return line

    def load_container(self, shipper: Shipper, line_id: str, serial_no: str) -> Container:
        """Load one whole container onto a shipper line."""
        self._require_open(shipper)
        line = next((x for x in shipper.lines if x.id == line_id.lower()), None)
        if line is None:
            raise not_found(f"Shipper line '{line_id}'")
        container = self.containers.get(serial_no)
        if container is None or container.quantity <= 0:
            raise validation_failed(f"container '{serial_no}' is not active")
        if container.part_id != line.part_id:
            raise validation_failed(f"container '{serial_no}' holds another part than the line")
        if container.status not in SHIPPABLE_STATUSES:
            raise validation_failed(f"container '{serial_no}' has status {container.status!r}")
        free = container.quantity - self.reserved_quantity(serial_no)
        if free <= 0:
            raise validation_failed(f"container '{serial_no}' is already loaded")
        line.loaded.append(LoadedContainer(serial_no, free, self.now()))
        shipper.modified = self.now()
        return container

    def ship_shipper(self, shipper: Shipper) -> Shipper:
        """Ship: take loaded quantities out of inventory and add them to the releases."""
        self._require_open(shipper)
        if not any(line.loaded for line in shipper.lines):
            raise validation_failed("the shipper has no loaded containers")
        now = self.now()
        for line in shipper.lines:
            for item in line.loaded:
                container = self.containers[item.serial_no]
                container.quantity = max(0.0, container.quantity - item.quantity)
                container.updated = now
            release = self.releases[line.release_id]
            release.quantity_shipped += round(line.quantity)
            if release.quantity_shipped >= release.quantity:
                release.status = "Shipped"
            self.touch_release(release)
        shipper.status = "Shipped"
        shipper.ship_date = now
        shipper.modified = now
        return shipper

    def update_shipper(self, shipper: Shipper, fields: dict[str, object]) -> Shipper:
        for attr, value in fields.items():
            setattr(shipper, attr, value)
        shipper.modified = self.now()
        return shipper

    @staticmethod
    def _require_open(shipper: Shipper) -> None:
        if shipper.status == "Shipped":
            raise validation_failed(f"shipper {shipper.shipper_number} has already shipped")

    # -- inventory shipments -----------------------------------------------------------------

    def create_inventory_shipment(self, code: str) -> InventoryShipment:
        if not code or len(code) > 50:
            raise validation_failed("externalShipmentCode must be 1-50 characters")
        shipment = InventoryShipment(id=self.new_id(), external_code=code, created=self.now())
        self.inventory_shipments[shipment.id] = shipment
        return shipment

    def stage(self, shipment: InventoryShipment, serial_nos: list[str]) -> InventoryShipment:
        """Stage whole containers on an open inventory shipment."""
        if shipment.status == "Shipped":
            raise validation_failed("the inventory shipment has already shipped")
        staged = {c.serial_no for s in self.inventory_shipments.values() for c in s.containers}
        for serial_no in serial_nos:
            container = self.containers.get(serial_no)
            if container is None or container.quantity <= 0:
                raise validation_failed(f"container '{serial_no}' is not active")
            if container.status not in SHIPPABLE_STATUSES:
                raise validation_failed(f"container '{serial_no}' has status {container.status!r}")
            if serial_no in staged:
                raise validation_failed(f"container '{serial_no}' is already staged")
            shipment.containers.append(StagedContainer(serial_no, self.now()))
            staged.add(serial_no)
        shipment.status = "Staged"
        return shipment

    def ship_inventory(self, shipment: InventoryShipment) -> InventoryShipment:
        """Ship the staged containers: their whole quantity leaves inventory."""
        if shipment.status == "Shipped":
            raise validation_failed("the inventory shipment has already shipped")
        if not shipment.containers:
            raise validation_failed("no containers are staged on the inventory shipment")
        now = self.now()
        for staged in shipment.containers:
            container = self.containers[staged.serial_no]
            staged.shipped_quantity = container.quantity
            container.quantity = 0.0
            container.status = "Shipped"
            container.updated = now
        shipment.status = "Shipped"
        return shipment

    def unship_inventory(self, shipment: InventoryShipment) -> InventoryShipment:
        """Reverse a shipped inventory shipment: the containers come back with their quantity."""
        if shipment.status != "Shipped":
            raise validation_failed("only a shipped inventory shipment can be unshipped")
        now = self.now()
        for staged in shipment.containers:
            container = self.containers[staged.serial_no]
            container.quantity += staged.shipped_quantity
            container.status = "OK"
            container.updated = now
            staged.shipped_quantity = 0.0
        shipment.status = "Staged"
        return shipment

    def unstage(self, shipment: InventoryShipment, serial_nos: list[str]) -> InventoryShipment:
        """Take containers off an inventory shipment that has not shipped."""
        if shipment.status == "Shipped":
            raise validation_failed("unship the inventory shipment before unstaging containers")
        staged = {c.serial_no for c in shipment.containers}
        missing = [s for s in serial_nos if s not in staged]
        if missing:
            raise validation_failed(f"containers {missing} are not staged on this shipment")
        shipment.containers = [c for c in shipment.containers if c.serial_no not in serial_nos]
        shipment.status = "Staged" if shipment.containers else "Open"
        return shipment


@dataclass
class PlexState:
    """All tenants of a simulated Plex, by tenant id."""

    tenants: dict[str, TenantData]

    def by_pcn(self, pcn: int) -> TenantData | None:
        return next((t for t in self.tenants.values() if t.tenant.pcn == pcn), None)

    def tenant(self, ref: str | int | None = None) -> TenantData:
        """A tenant by id, PCN or code; the first tenant when ``ref`` is ``None``."""
        if ref is None:
            return next(iter(self.tenants.values()))
        for data in self.tenants.values():
            t = data.tenant
            if str(ref).lower() in {t.id, str(t.pcn), t.code.lower()}:
                return data
        raise KeyError(f"no simulated Plex tenant {ref!r}")
