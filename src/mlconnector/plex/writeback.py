"""Recording a ShipStation shipment in Plex: two strategies, both crash-safe by look-before-send.

* ``shipper`` (Plex's own accounting): create a customer shipper for the shipped releases, put the
  releases on it, load containers FIFO, ship it (Plex's ship reduces on-hand), with carrier,
  tracking and a note carrying the ShipStation reference.
* ``datasource``: update the tracking number and note of the Plex shipper that already holds the
  releases through the Data Source API, and reduce on-hand with an inventory shipment
  (create → stage → ship) whose ``externalShipmentCode`` is the ShipStation reference.

Every write carries the reference (``ss-shipment-{id}``) from its very first request, and
:meth:`write_shipment` calls :meth:`find_existing` first, so a retry after a crash resumes or
confirms the earlier attempt instead of writing a second shipment. The one exception is a caller
that can *prove* there was no earlier attempt (``first_attempt=True``: the outbox row carrying the
reference was inserted by this very call, and every Plex write happens after that row is marked
sent), which saves the look-up on the common path; every retry, replay and crash recovery looks.

Request budget of a first ``shipper`` write (no earlier attempt, every release loaded FIFO, the
caller passing the releases it just read): create, schedule and load per release, ship; the
loaded quantities are checked from the ``load-fifo`` answers, not by reading the lines back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from mlconnector.errors import (
    ConfigError,
    OperationFatalError,
    RemoteValidationError,
    SkipRecordError,
)
from mlconnector.plex.client import PlexClient
from mlconnector.plex.datasources import PlexDataSourceClient
from mlconnector.plex.models import (
    Container,
    InventoryShipment,
    Release,
    ShipmentWrite,
    Shipper,
    ShipperLine,
    WriteResult,
)
from mlconnector.plex.windows import FilterIgnoredError, windows
from mlconnector.timezones import format_utc_z

log = logging.getLogger("mlconnector.plex.writeback")

SHIPPED_SHIPPER = frozenset({"shipped", "closed", "complete", "completed"})
SHIPPED_INVENTORY = frozenset({"shipped"})


class ReversalNotSupportedError(OperationFatalError):
    """Plex's public API cannot un-ship a customer shipper; a person must reverse it in Plex."""


@dataclass(frozen=True)
class ExistingWrite:
    """What an earlier attempt left in Plex for one reference."""

    shipper: Shipper | None = None
    inventory_shipment: InventoryShipment | None = None

    @property
    def found(self) -> bool:
        return self.shipper is not None or self.inventory_shipment is not None


def shipper_is_shipped(shipper: Shipper) -> bool:
    return (shipper.status or "").lower() in SHIPPED_SHIPPER


#: containers searched for an exact combination when oldest-first greedy picking misses
EXACT_SEARCH_LIMIT = 40


def pick_whole_containers(
    containers: list[Container], quantity: float, part_id: str, ref: str
) -> list[str]:
    """Serials of whole containers summing exactly to ``quantity``, oldest first (or skip).

    Plex inventory shipments and ``load-container`` move whole containers; the public API has
    no container split, so a quantity that no set of whole containers matches is refused.
    Oldest-first greedy picking is tried first; if it misses, the oldest containers are
    searched for an exact combination.
    """
    fifo = [
        c
        for c in sorted(
            containers, key=lambda c: (c.add_date_time is None, c.add_date_time, c.serial_no)
        )
        if c.quantity > 0
    ]
    remaining = quantity
    picked: list[str] = []
    for container in fifo:
        if container.quantity <= remaining:
            picked.append(container.serial_no)
            remaining -= container.quantity
        if remaining == 0:
            return picked
    exact = _exact_subset(fifo[:EXACT_SEARCH_LIMIT], quantity)
    if exact is not None:
        return exact
    raise SkipRecordError(
        f"cannot move exactly {quantity:g} of part {part_id} for {ref} with whole "
        f"containers (on hand in shippable containers: {sum(c.quantity for c in fifo):g}; "
        f"{describe_stock(fifo)})",
        record=ref,
        hint="split a container in Plex to the shipped quantity, then replay the operation",
    )


async def releases_by_id(
    plex: PlexClient, wanted: Iterable[str], known: Sequence[Release] | None
) -> dict[str, Release]:
    """The ``wanted`` releases by id (lower-case): those in ``known`` (read by the caller just
    now) as they are, the others read from Plex."""
    ids = {i.lower() for i in wanted}
    found = {r.id.lower(): r for r in known or () if r.id.lower() in ids}
    missing = sorted(ids - found.keys())
    if missing:
        found.update({r.id.lower(): r for r in await plex.list_releases(missing)})
    return found


def describe_stock(containers: list[Container]) -> str:
    """``shippable on hand: 12 (FG-01: 8, FG-02: 4)`` — by Plex location, for messages."""
    by_location: dict[str, float] = {}
    for c in containers:
        where = c.location or c.location_id or "no location"
        by_location[where] = by_location.get(where, 0) + c.quantity
    if not by_location:
        return "no shippable stock in any Plex location"
    places = ", ".join(f"{where}: {qty:g}" for where, qty in sorted(by_location.items()))
    return f"shippable on hand: {sum(by_location.values()):g} ({places})"


def _exact_subset(containers: list[Container], quantity: float) -> list[str] | None:
    """A combination of ``containers`` summing to ``quantity``, preferring older ones."""
    dead: set[tuple[int, float]] = set()

    def search(index: int, remaining: float) -> list[str] | None:
        if remaining == 0:
            return []
        if index == len(containers) or remaining < 0 or (index, remaining) in dead:
            return None
        container = containers[index]
        rest = search(index + 1, remaining - container.quantity)
        if rest is not None:
            return [container.serial_no, *rest]
        rest = search(index + 1, remaining)
        if rest is None:
            dead.add((index, remaining))
        return rest

    return search(0, quantity)


class WriteStrategy:
    """Shared look-up logic of both strategies."""

    name = "base"

    def __init__(self, plex: PlexClient) -> None:
        self.plex = plex
        # Writes are sent once: a lost answer may hide a write Plex did apply, so the retry is
        # the whole write_shipment again, which looks (find_existing) before it re-sends.
        self.writes = plex.single_shot()

    def check_reference(self, reference: str) -> None:
        limit = self.plex.settings.max_reference_length
        if not reference or len(reference) > limit:
            raise ConfigError(
                f"the external reference {reference!r} must be 1..{limit} characters "
                "(Plex externalShipmentCode limit)",
                record=reference,
            )

    async def find_existing(
        self,
        reference: str,
        *,
        tracking_number: str | None = None,
        since: datetime | None = None,
    ) -> ExistingWrite:
        """Look in Plex for a shipper or inventory shipment an earlier attempt wrote."""
        self.check_reference(reference)
        shipments = await self.plex.find_inventory_shipments(reference)
        shipper = await self.find_shipper(reference, tracking_number=tracking_number, since=since)
        return ExistingWrite(
            shipper=shipper, inventory_shipment=shipments[0] if shipments else None
        )

    async def find_shipper(
        self,
        reference: str,
        *,
        tracking_number: str | None = None,
        since: datetime | None = None,
    ) -> Shipper | None:
        """A shipper whose notes carry ``reference``: by tracking number, else by creation date.

        The creation-date walk covers ``since`` (default: now minus ``find_existing_lookback``)
        to now, newest window first.
        """
        if tracking_number:
            found = await self.plex.list_shippers([("trackingNumber", tracking_number)])
            if any((s.tracking_number or "") != tracking_number for s in found):
                raise FilterIgnoredError(
                    "filter ignored: Plex returned shippers with another tracking number; "
                    "refusing a silent full-table sync (customer shippers, trackingNumber)",
                    record=reference,
                )
            for shipper in found:
                if shipper.mentions(reference):
                    return shipper
        return await self._find_recent_shipper(reference, since)

    async def _find_recent_shipper(self, reference: str, since: datetime | None) -> Shipper | None:
        now = self.plex.clock.now()
        start = since or now - self.plex.settings.find_existing_lookback
        # Newest first: an earlier attempt is most likely recent.
        spans = list(windows(start, now + timedelta(minutes=5), self.plex.settings.window))
        for low, high in reversed(spans):
            found = await self.plex.list_shippers(
                [("createdDateBegin", format_utc_z(low)), ("createdDateEnd", format_utc_z(high))]
            )
            for shipper in found:
                created = shipper.created_date
                if created is not None and not low <= created <= high:
                    raise FilterIgnoredError(
                        "filter ignored: Plex returned records outside the window; refusing a "
                        "silent full-table sync (customer shippers, createdDateBegin/End)",
                        record=shipper.id,
                    )
                if shipper.mentions(reference):
                    return shipper
        return None

    async def write_shipment(
        self,
        shipment: ShipmentWrite,
        *,
        first_attempt: bool = False,
        releases: Sequence[Release] | None = None,
    ) -> WriteResult:
        """Record ``shipment`` in Plex, unless an earlier attempt already did.

        ``first_attempt``: the caller proves no earlier attempt under this reference can exist
        (skips :meth:`find_existing`); ``releases``: the shipped releases, read just before by the
        caller (saves reading them again).
        """
        raise NotImplementedError


class ShipperStrategy(WriteStrategy):
    """Create, load and ship a customer shipper (Plex's ship reduces on-hand)."""

    name = "shipper"

    async def find_existing(
        self,
        reference: str,
        *,
        tracking_number: str | None = None,
        since: datetime | None = None,
    ) -> ExistingWrite:
        """A shipper whose notes carry ``reference``; no inventory shipment here."""
        self.check_reference(reference)
        shipper = await self.find_shipper(reference, tracking_number=tracking_number, since=since)
        return ExistingWrite(shipper=shipper)

    async def write_shipment(
        self,
        shipment: ShipmentWrite,
        *,
        first_attempt: bool = False,
        releases: Sequence[Release] | None = None,
    ) -> WriteResult:
        """Create (or resume) the shipper for ``shipment`` and ship it."""
        existing = ExistingWrite()
        if not first_attempt:
            # The shipper is created after the label, so look from the ship date (less a window).
            existing = await self.find_existing(
                shipment.reference,
                tracking_number=shipment.tracking_number,
                since=min(shipment.ship_date, self.plex.clock.now()) - self.plex.settings.window,
            )
        if existing.shipper is not None and shipper_is_shipped(existing.shipper):
            return WriteResult(
                shipment.reference, self.name, shipper_id=existing.shipper.id, already_done=True
            )
        plan, by_id = await self._plan(shipment, releases)
        if existing.shipper is not None:
            await self._schedule_and_load(existing.shipper.id, shipment, plan, by_id, fresh=False)
            shipper = existing.shipper
        else:
            shipper = await self._create(shipment)
            await self._schedule_and_load(shipper.id, shipment, plan, by_id, fresh=True)
        resumed = existing.shipper is not None
        shipped = await self.writes.ship_shipper(shipper.id)
        if (shipped.tracking_number or None) != shipment.tracking_number or not shipped.mentions(
            shipment.reference
        ):
            await self.writes.update_shipper(shipper.id, self._tracking(shipment, shipped))
        return WriteResult(shipment.reference, self.name, shipper_id=shipper.id, resumed=resumed)

    async def _create(self, shipment: ShipmentWrite) -> Shipper:
        customer_id, address_id = await self._destination(shipment)
        body: dict[str, object] = {
            "customerId": customer_id,
            "customerAddressId": address_id,
            "scheduledShipDate": format_utc_z(shipment.ship_date),
            "shipperNote": shipment.note(),
        }
        if shipment.tracking_number:
            body["trackingNumber"] = shipment.tracking_number
        if shipment.carrier_id:
            body["carrierId"] = shipment.carrier_id
        return await self.writes.create_shipper(body)

    async def _destination(self, shipment: ShipmentWrite) -> tuple[str, str]:
        if shipment.customer_id and shipment.customer_address_id:
            return shipment.customer_id, shipment.customer_address_id
        if shipment.order_id:
            order = await self.plex.get_order(shipment.order_id)
            address = shipment.customer_address_id or order.ship_to_address_id
            if order.customer_id and address:
                return order.customer_id, address
        raise SkipRecordError(
            f"cannot tell which Plex customer and ship-to {shipment.reference} belongs to",
            record=shipment.reference,
            hint="the shipment must carry the Plex order id (or customer and address ids)",
        )

    async def _plan(
        self, shipment: ShipmentWrite, known: Sequence[Release] | None
    ) -> tuple[dict[str, str], dict[str, Release]]:
        """Per release: ``fifo`` (all that is open ships) or ``containers`` (a partial shipment),
        and the releases by id.

        Checked before anything is written, so an impossible shipment leaves nothing behind.
        ``known``: releases the caller read just now (any missing one is read here).
        """
        wanted = shipment.quantities()
        releases = await releases_by_id(self.plex, wanted, known)
        plan: dict[str, str] = {}
        for release_id, quantity in wanted.items():
            release = releases.get(release_id)
            if release is None:
                raise SkipRecordError(
                    f"Plex has no release {release_id} for {shipment.reference}",
                    record=shipment.reference,
                )
            if release.on_hold or release.closed:
                raise SkipRecordError(
                    f"{shipment.reference} shipped release "
                    f"{release.release_number or release.id}, which is {release.status!r} in "
                    "Plex: Plex would refuse to schedule it on a shipper",
                    record=shipment.reference,
                    hint=(
                        "take the release (and its order) off hold in Plex, then replay the "
                        "operation; nothing was written to Plex"
                        if release.on_hold
                        else "reopen the release in Plex if it did ship, then replay the "
                        "operation; nothing was written to Plex"
                    ),
                )
            if quantity > release.open_quantity:
                raise SkipRecordError(
                    f"{shipment.reference} shipped {quantity:g} of release "
                    f"{release.release_number or release.id}, but only "
                    f"{release.open_quantity:g} is open in Plex",
                    record=shipment.reference,
                    hint="raise the release quantity in Plex, then replay the operation",
                )
            plan[release_id] = "fifo" if quantity == release.open_quantity else "containers"
        return plan, releases

    async def _schedule_and_load(
        self,
        shipper_id: str,
        shipment: ShipmentWrite,
        plan: dict[str, str],
        releases: dict[str, Release],
        *,
        fresh: bool,
    ) -> None:
        """Put each release on the shipper and load it; ``fresh``: the shipper was created by
        this call, so it has no lines yet (nothing to read)."""
        lines = [] if fresh else await self.plex.list_shipper_lines(shipper_id)
        on_shipper = {(ln.release_id or "").lower(): ln for ln in lines if ln.release_id}
        taken: set[str] = set()
        #: the line as ``load-fifo`` answered it, per release loaded by this call
        answered: dict[str, ShipperLine] = {}
        for release_id, quantity in shipment.quantities().items():
            line = on_shipper.get(release_id)
            remaining = quantity - (line.quantity if line is not None else 0)
            if remaining <= 0:
                continue  # loaded by an earlier (crashed) attempt; verified below
            # A line an earlier attempt loaded in part (a crash, or a load refused for want of
            # stock after taking what there was) is topped up: load-fifo loads what is still
            # open on the line; containers are picked for the remainder only.
            if line is None:
                scheduled = await self.writes.schedule_release(shipper_id, release_id)
                line_id = next(
                    (s.shipper_line_id for s in scheduled if s.release_id.lower() == release_id),
                    scheduled[0].shipper_line_id,
                )
            else:
                line_id = line.id
            part_id = shipment.part_of(release_id)
            if plan[release_id] == "fifo":
                answered[release_id] = await self._load_fifo(
                    shipper_id, line_id, shipment, releases[release_id], part_id
                )
                continue
            containers = [
                c
                for c in await self.plex.list_containers(part_id=part_id)
                if self.plex.shippable(c) and c.serial_no not in taken
            ]
            for serial in pick_whole_containers(containers, remaining, part_id, shipment.reference):
                taken.add(serial)
                await self.writes.load_container(shipper_id, line_id, serial)
        await self._verify_loaded(shipper_id, shipment, answered if fresh else None)

    async def _load_fifo(
        self,
        shipper_id: str,
        line_id: str,
        shipment: ShipmentWrite,
        release: Release,
        part_id: str,
    ) -> ShipperLine:
        """``load-fifo``; a refusal for want of stock becomes a message naming the part, where
        its shippable stock is, and what to do (the stock is read only on that failure)."""
        try:
            return await self.writes.load_fifo(shipper_id, line_id)
        except RemoteValidationError as exc:
            stock = await self.plex.list_containers(part_id=part_id)
            shippable = [c for c in stock if self.plex.shippable(c)]
            needed = release.open_quantity
            if sum(c.quantity for c in shippable) >= needed:
                raise  # refused for another reason: Plex's own message says which
            part = release.part_number or next((c.part_no for c in stock if c.part_no), None)
            raise SkipRecordError(
                f"not enough stock in Plex to ship {shipment.reference}: release "
                f"{release.release_number or release.id} needs {needed:g} of part "
                f"{part or part_id} (id {part_id}); {describe_stock(shippable)}. Plex shipper "
                f"{shipper_id} was left open with the release scheduled, not shipped",
                record=shipment.reference,
                hint=(
                    f"put {needed:g} of part {part or part_id} into shippable containers in Plex "
                    "(receive or move stock to a location with a shippable status), then replay "
                    "the operation; the open shipper is resumed, not duplicated"
                ),
            ) from exc

    async def _verify_loaded(
        self,
        shipper_id: str,
        shipment: ShipmentWrite,
        answered: dict[str, ShipperLine] | None = None,
    ) -> None:
        """Refuse to ship a shipper whose loaded quantities differ from what ShipStation shipped.

        ``answered``: the ``load-fifo`` answers of a shipper created by this call. When every
        release has one (one line per release, each loaded once), they are the loaded quantities
        and the lines are not read back; otherwise (containers loaded one by one, or a resumed
        shipper) the lines are read.
        """
        wanted = shipment.quantities()
        loaded: dict[str, float] = {}
        if (
            answered is not None
            and set(answered) == set(wanted)
            and all((ln.release_id or key).lower() == key for key, ln in answered.items())
        ):
            loaded = {key: line.quantity for key, line in answered.items()}
        else:
            for line in await self.plex.list_shipper_lines(shipper_id):
                key = (line.release_id or "").lower()
                loaded[key] = loaded.get(key, 0) + line.quantity
        for release_id, quantity in wanted.items():
            if loaded.get(release_id, 0) != quantity:
                raise SkipRecordError(
                    f"Plex loaded {loaded.get(release_id, 0):g} of release {release_id} on "
                    f"shipper {shipper_id}, but {shipment.reference} shipped {quantity:g}; the "
                    "shipper was left open, not shipped",
                    record=shipment.reference,
                    hint="correct the containers loaded on the shipper in Plex, then replay",
                )

    @staticmethod
    def _tracking(shipment: ShipmentWrite, shipper: Shipper) -> dict[str, object]:
        note = shipper.shipper_note or ""
        if shipment.reference not in note:
            note = f"{note}\n{shipment.note()}".strip()
        changes: dict[str, object] = {"shipperNote": note}
        if shipment.tracking_number:
            changes["trackingNumber"] = shipment.tracking_number
        if shipment.carrier_id:
            changes["carrierId"] = shipment.carrier_id
        return changes

    async def reverse(self, reference: str) -> WriteResult:
        """A voided label: Plex's public API has no un-ship for customer shippers.

        The shipper's note is marked as voided and the tracking number cleared, then
        :class:`ReversalNotSupportedError` tells the operator to un-ship it in Plex (the public
        API offers no container quantity adjustment either; reference §3b).
        """
        self.check_reference(reference)
        shipper = await self.find_shipper(reference)
        if shipper is None:
            return WriteResult(reference, self.name, details={"nothing_to_reverse": True})
        mark = f"VOIDED in ShipStation: {reference}"
        if mark not in (shipper.shipper_note or ""):
            note = f"{shipper.shipper_note or ''}\n{mark}".strip()
            await self.writes.update_shipper(
                shipper.id, {"shipperNote": note, "trackingNumber": ""}
            )
        raise ReversalNotSupportedError(
            f"the label of {reference} was voided, but Plex shipper "
            f"{shipper.shipper_number or shipper.id} cannot be un-shipped through the public API",
            record=reference,
            hint=(
                "un-ship the shipper in Plex (Customer Shippers screen) so its containers return "
                "to inventory; its note is marked VOIDED; or use the datasource strategy, whose "
                "inventory shipments can be un-shipped"
            ),
        )


class DataSourceStrategy(WriteStrategy):
    """Tracking via the Data Source API on the existing shipper; on-hand via inventory shipment."""

    name = "datasource"

    def __init__(self, plex: PlexClient, datasources: PlexDataSourceClient) -> None:
        super().__init__(plex)
        self.datasources = datasources

    async def find_existing(
        self,
        reference: str,
        *,
        tracking_number: str | None = None,
        since: datetime | None = None,
    ) -> ExistingWrite:
        """The inventory shipment coded with ``reference`` (the shipper's note is informative)."""
        self.check_reference(reference)
        shipments = await self.plex.find_inventory_shipments(reference)
        return ExistingWrite(inventory_shipment=shipments[0] if shipments else None)

    async def write_shipment(
        self,
        shipment: ShipmentWrite,
        *,
        first_attempt: bool = False,
        releases: Sequence[Release] | None = None,
    ) -> WriteResult:
        """Update the holding shipper's tracking/note and reduce on-hand, exactly once."""
        existing = ExistingWrite()
        if not first_attempt:
            existing = await self.find_existing(shipment.reference)
        found = existing.inventory_shipment
        if found is not None and (found.shipment_status or "").lower() in SHIPPED_INVENTORY:
            return WriteResult(
                shipment.reference,
                self.name,
                inventory_shipment_id=found.id,
                already_done=True,
            )
        details: dict[str, object] = {}
        shipper_id = await self._update_shipper(shipment, details, releases)
        inventory = found or await self.writes.create_inventory_shipment(shipment.reference)
        if not inventory.containers:
            serials = await self._pick_containers(shipment)
            inventory = await self.writes.inventory_shipment_action(inventory.id, "stage", serials)
            details["serial_nos"] = serials
        await self.writes.inventory_shipment_action(inventory.id, "ship")
        return WriteResult(
            shipment.reference,
            self.name,
            shipper_id=shipper_id,
            inventory_shipment_id=inventory.id,
            resumed=found is not None,
            details=details,
        )

    async def locate_shipper(
        self, shipment: ShipmentWrite, known: Sequence[Release] | None = None
    ) -> Shipper | None:
        """The open Plex shipper whose lines hold the shipped releases, if any (``known``: the
        releases the caller just read; the others are read here)."""
        if shipment.shipper_id:
            return await self.plex.get_shipper(shipment.shipper_id)
        wanted = {line.release_id.lower() for line in shipment.lines}
        releases = (await releases_by_id(self.plex, wanted, known)).values()
        addresses = sorted({r.ship_to_address_id for r in releases if r.ship_to_address_id})
        for address in addresses:
            for status in self.plex.settings.open_shipper_statuses:
                candidates = await self.plex.list_shippers(
                    [("customerAddressId", address), ("status", status)]
                )
                for shipper in candidates:
                    lines = await self.plex.list_shipper_lines(shipper.id)
                    if wanted & {(line.release_id or "").lower() for line in lines}:
                        return shipper
        return None

    async def _update_shipper(
        self,
        shipment: ShipmentWrite,
        details: dict[str, object],
        releases: Sequence[Release] | None = None,
    ) -> str | None:
        shipper = await self.locate_shipper(shipment, releases)
        if shipper is None:
            details["shipper"] = "no Plex shipper holds these releases; tracking not written"
            return None
        if shipper.mentions(shipment.reference) and (
            not shipment.tracking_number or shipper.tracking_number == shipment.tracking_number
        ):
            return shipper.id  # written by the crashed attempt
        keys = await self.plex.shipper_keys([shipper.id])
        key = keys.get(shipper.id.lower())
        if key is None:
            raise SkipRecordError(
                f"Plex returned no Shipper_Key for shipper {shipper.id}",
                record=shipment.reference,
                hint="check plex.datasources.shipper_standard_object / shipper_key_column",
            )
        note = shipper.shipper_note or ""
        if shipment.reference not in note:
            note = f"{note}\n{shipment.note()}".strip()
        # "Update" datasources null omitted inputs: always send all three.
        await self.datasources.execute(
            self.plex.settings.datasources.shipper_tracking_update,
            {
                "Shipper_Key": key,
                "Tracking_No": shipment.tracking_number or shipper.tracking_number or "",
                "Shipper_Note": note,
            },
        )
        return shipper.id

    async def _pick_containers(self, shipment: ShipmentWrite) -> list[str]:
        """Whole shippable containers, oldest first, summing exactly to each part's quantity."""
        needed: dict[str, float] = {}
        for line in shipment.lines:
            needed[line.part_id] = needed.get(line.part_id, 0) + line.quantity
        serials: list[str] = []
        for part_id, quantity in needed.items():
            containers = [
                c
                for c in await self.plex.list_containers(part_id=part_id)
                if self.plex.shippable(c)
            ]
            serials.extend(pick_whole_containers(containers, quantity, part_id, shipment.reference))
        return serials

    async def reverse(self, reference: str) -> WriteResult:
        """A voided label: un-ship the inventory shipment (beta endpoint), restoring on-hand."""
        existing = await self.find_existing(reference)
        shipment = existing.inventory_shipment
        if shipment is None:
            return WriteResult(reference, self.name, details={"nothing_to_reverse": True})
        if (shipment.shipment_status or "").lower() not in SHIPPED_INVENTORY:
            return WriteResult(
                reference, self.name, inventory_shipment_id=shipment.id, already_done=True
            )
        await self.writes.inventory_shipment_action(shipment.id, "unship")
        return WriteResult(reference, self.name, inventory_shipment_id=shipment.id)
