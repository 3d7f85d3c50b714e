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
caller passing the releases it just read): one containers read per part (stock is checked for
every line before anything is created), create, schedule and load per release, ship; the loaded
quantities are checked from the ``load-fifo`` answers, not by reading the lines back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

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
from mlconnector.plex.partial import (
    Blocked,
    ContainerSplitter,
    Pick,
    Short,
    SplitRefusedError,
    WithoutSplit,
    describe_stock,
    fifo,
    needs_operator,
    plan_pick,
    short_of_stock,
    whole_containers,
)
from mlconnector.plex.windows import FilterIgnoredError, windows
from mlconnector.timezones import format_utc_z

log = logging.getLogger("mlconnector.plex.writeback")

SHIPPED_SHIPPER = frozenset({"shipped", "closed", "complete", "completed"})
SHIPPED_INVENTORY = frozenset({"shipped"})

#: how an operator task is completed, for its hint (the audit event names the exact command)
REPLAY_HINT = "`mlconnector replay` with its operation id, or Replay in the web UI"


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


def pick_whole_containers(
    containers: list[Container], quantity: float, part_id: str, ref: str
) -> list[str]:
    """Serials of whole containers summing exactly to ``quantity``, oldest first (or skip)."""
    serials = whole_containers(containers, quantity)
    if serials is not None:
        return serials
    stock = fifo(containers)
    raise SkipRecordError(
        f"cannot move exactly {quantity:g} of part {part_id} for {ref} with whole "
        f"containers (on hand in shippable containers: {sum(c.quantity for c in stock):g}; "
        f"{describe_stock(stock)})",
        record=ref,
        hint="split a container in Plex to the shipped quantity, then replay the operation",
    )


@dataclass(frozen=True)
class Need:
    """A quantity of one part to move: per release (shipper) or per part (inventory shipment).

    ``fifo``: Plex picks the containers (``load-fifo``, a release shipped in full); only the
    stock is checked. Otherwise containers are picked here."""

    key: str
    part_id: str
    quantity: float
    label: str
    fifo: bool = False


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


@dataclass(frozen=True)
class _ShipperPlan:
    """What a shipper write will do, decided before anything is written."""

    #: per release: ``fifo`` (all that is open ships) or ``containers`` (picked below)
    modes: dict[str, str]
    releases: dict[str, Release]
    picks: dict[str, Pick]
    #: partial quantities no whole containers match and no split can serve
    blocked: list[Blocked]


class WriteStrategy:
    """Shared look-up logic of both strategies."""

    name = "base"

    def __init__(
        self,
        plex: PlexClient,
        *,
        splitter: ContainerSplitter | None = None,
        without_split: WithoutSplit = "tracking_and_task",
    ) -> None:
        self.plex = plex
        # Writes are sent once: a lost answer may hide a write Plex did apply, so the retry is
        # the whole write_shipment again, which looks (find_existing) before it re-sends.
        self.writes = plex.single_shot()
        #: splits a container when whole ones cannot match a partial quantity (configured)
        self.splitter = splitter
        #: what happens when no split is possible (``partial_without_split``)
        self.without_split: WithoutSplit = without_split

    # --- exact partial quantities (see mlconnector.plex.partial) --------------------------------
    async def plan_picks(
        self,
        reference: str,
        needs: Sequence[Need],
        *,
        loaded: Mapping[str, float] | None = None,
    ) -> tuple[dict[str, Pick], list[Blocked]]:
        """The containers each need takes, from one read of each part's containers, before
        anything is written; the needs no whole containers match and no split can serve.

        Every need is checked for stock, ``fifo`` ones included: short stock raises one operator
        task naming every short line (:func:`short_of_stock`), so nothing is created in Plex.
        ``loaded``: quantity per serial already loaded on the shipper being resumed (not free).
        """
        stock: dict[str, list[Container]] = {}
        taken: set[str] = set()
        #: per part, what load-fifo will take from the containers the picks leave
        promised: dict[str, float] = {}
        picks: dict[str, Pick] = {}
        blocked: list[Blocked] = []
        shorts: list[Short] = []
        # picked containers first: they are loaded first, and load-fifo takes from the rest
        for need in sorted(needs, key=lambda n: n.fifo):
            if need.part_id not in stock:
                stock[need.part_id] = await self._free_stock(need.part_id, loaded or {})
            free = [c for c in stock[need.part_id] if c.serial_no not in taken]
            part = next((c.part_no for c in stock[need.part_id] if c.part_no), None)
            part = part or need.part_id
            available = sum(c.quantity for c in free) - promised.get(need.part_id, 0)
            if available < need.quantity:
                shorts.append(Short(need.label, part, need.quantity, max(available, 0), free))
                continue
            if need.fifo:
                promised[need.part_id] = promised.get(need.part_id, 0) + need.quantity
                continue
            pick = plan_pick(free, need.part_id, need.quantity, can_split=self.splitter is not None)
            if pick is None:
                reason = "no container split is configured (plex.container_split.datasource_id)"
                blocked.append(Blocked(need.label, part, need.quantity, free, reason))
                continue
            pick.label, pick.part, pick.stock = need.label, part, free
            taken.update(pick.serials)
            if pick.split is not None:
                taken.add(pick.split.serial_no)
            picks[need.key] = pick
        if shorts:
            raise short_of_stock(reference, shorts, operation_hint=REPLAY_HINT)
        return picks, blocked

    async def _free_stock(self, part_id: str, loaded: Mapping[str, float]) -> list[Container]:
        """The part's shippable containers, less what is loaded on the resumed shipper (Plex
        lists a loaded container with its full quantity until the shipper ships)."""
        free: list[Container] = []
        for c in await self.plex.list_containers(part_id=part_id):
            if not self.plex.shippable(c):
                continue
            left = c.quantity - loaded.get(c.serial_no, 0)
            if left > 0:
                free.append(c if left == c.quantity else c.model_copy(update={"quantity": left}))
        return free

    async def run_splits(self, reference: str, picks: dict[str, Pick]) -> list[Blocked]:
        """Split what the picks need split (each pick's ``split_serial`` is set); a split Plex
        refuses becomes a blocked need, for the no-split setting."""
        blocked: list[Blocked] = []
        for pick in picks.values():
            if pick.split is None or pick.split_serial is not None:
                continue
            assert self.splitter is not None  # plan_picks plans splits only with a splitter
            try:
                pick.split_serial = await self.splitter.split(pick.split, reference=reference)
            except SplitRefusedError as exc:
                blocked.append(
                    Blocked(pick.label, pick.part, pick.split.quantity, pick.stock, exc.message)
                )
        return blocked

    async def record_tracking(
        self, shipment: ShipmentWrite, releases: dict[str, Release]
    ) -> str | None:
        """Tracking, carrier, service and ship date into Plex without an inventory move; where
        they went (for the operator task). Default: each shipped release's note."""
        names: list[str] = []
        for release_id in sorted(shipment.quantities()):
            release = releases[release_id]
            if shipment.reference not in (release.note or ""):
                note = f"{release.note or ''}\n{shipment.note()}".strip()
                await self.writes.update_release(release.id, {"note": note})
            names.append(release.release_number or release.id)
        return f"note of release {', '.join(names)}"

    async def no_split(
        self,
        shipment: ShipmentWrite,
        blocked: list[Blocked],
        releases: dict[str, Release],
    ) -> NoReturn:
        """No split possible: by ``without_split``, record the tracking first (or not), then
        raise the operator task (once; the outbox makes the operation dead at once)."""
        tracking = None
        if self.without_split == "tracking_and_task":
            tracking = await self.record_tracking(shipment, releases)
        raise needs_operator(
            shipment.reference,
            blocked,
            tracking=tracking,
            operation_hint=REPLAY_HINT,
        )

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
        lines: list[ShipperLine] = []
        loaded: dict[str, float] = {}
        destination: tuple[str, str] | None = None
        if existing.shipper is not None:
            lines = await self.plex.list_shipper_lines(existing.shipper.id)
            loaded = await self._loaded_serials(existing.shipper.id, lines)
        else:
            destination = await self._destination(shipment)
        plan = await self._plan(shipment, releases, lines, loaded)
        blocked = plan.blocked or await self.run_splits(shipment.reference, plan.picks)
        if blocked:
            await self.no_split(shipment, blocked, plan.releases)
        if existing.shipper is not None:
            await self._schedule_and_load(existing.shipper.id, shipment, plan, lines, fresh=False)
            shipper = existing.shipper
        else:
            assert destination is not None
            shipper = await self._create(shipment, destination)
            await self._schedule_and_load(shipper.id, shipment, plan, [], fresh=True)
        resumed = existing.shipper is not None
        shipped = await self.writes.ship_shipper(shipper.id)
        if (shipped.tracking_number or None) != shipment.tracking_number or not shipped.mentions(
            shipment.reference
        ):
            await self.writes.update_shipper(shipper.id, self._tracking(shipment, shipped))
        return WriteResult(shipment.reference, self.name, shipper_id=shipper.id, resumed=resumed)

    async def _create(self, shipment: ShipmentWrite, destination: tuple[str, str]) -> Shipper:
        customer_id, address_id = destination
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

    async def _loaded_serials(
        self, shipper_id: str, lines: Sequence[ShipperLine]
    ) -> dict[str, float]:
        """Quantity per serial an earlier attempt loaded on the shipper (read only for lines
        holding something), so the rest is not picked from those containers again."""
        loaded: dict[str, float] = {}
        for line in lines:
            if line.quantity > 0:
                for item in await self.plex.list_line_containers(shipper_id, line.id):
                    loaded[item.serial_number] = loaded.get(item.serial_number, 0) + item.quantity
        return loaded

    async def _plan(
        self,
        shipment: ShipmentWrite,
        known: Sequence[Release] | None,
        lines: Sequence[ShipperLine] = (),
        loaded_serials: Mapping[str, float] | None = None,
    ) -> _ShipperPlan:
        """Per release: ``fifo`` (all that is open ships) or ``containers`` (a partial shipment:
        whole containers, or one split), and the releases by id.

        Checked before anything is written (stock included, for every release), so an
        impossible shipment leaves nothing behind. ``known``: releases the caller read just now
        (any missing one is read here); ``lines``: the lines of the shipper an earlier attempt
        created (only the rest is picked), ``loaded_serials`` what is loaded on them.
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
        loaded: dict[str, float] = {}
        for line in lines:
            key = (line.release_id or "").lower()
            loaded[key] = loaded.get(key, 0) + line.quantity
        needs = [
            Need(
                release_id,
                shipment.part_of(release_id),
                quantity - loaded.get(release_id, 0),
                releases[release_id].release_number or release_id,
                fifo=plan[release_id] == "fifo",
            )
            for release_id, quantity in wanted.items()
            if quantity - loaded.get(release_id, 0) > 0
        ]
        picks, blocked = await self.plan_picks(shipment.reference, needs, loaded=loaded_serials)
        return _ShipperPlan(plan, releases, picks, blocked)

    async def _schedule_and_load(
        self,
        shipper_id: str,
        shipment: ShipmentWrite,
        plan: _ShipperPlan,
        lines: Sequence[ShipperLine],
        *,
        fresh: bool,
    ) -> None:
        """Put each release on the shipper and load it; ``fresh``: the shipper was created by
        this call, so it has no lines yet; else ``lines`` are its lines as read."""
        on_shipper = {(ln.release_id or "").lower(): ln for ln in lines if ln.release_id}
        #: the line as ``load-fifo`` answered it, per release loaded by this call
        answered: dict[str, ShipperLine] = {}
        # picked containers first, so load-fifo cannot take a container a pick counts on
        wanted = shipment.quantities()
        for release_id in sorted(wanted, key=lambda r: plan.modes[r] == "fifo"):
            quantity = wanted[release_id]
            line = on_shipper.get(release_id)
            remaining = quantity - (line.quantity if line is not None else 0)
            if remaining <= 0:
                continue  # loaded by an earlier (crashed) attempt; verified below
            # A line an earlier attempt loaded in part (a crash, or a load refused for want of
            # stock after taking what there was) is topped up: load-fifo loads what is still
            # open on the line; containers were picked for the remainder only.
            if line is None:
                scheduled = await self.writes.schedule_release(shipper_id, release_id)
                line_id = next(
                    (s.shipper_line_id for s in scheduled if s.release_id.lower() == release_id),
                    scheduled[0].shipper_line_id,
                )
            else:
                line_id = line.id
            if plan.modes[release_id] == "fifo":
                answered[release_id] = await self._load_fifo(
                    shipper_id,
                    line_id,
                    shipment,
                    plan.releases[release_id],
                    shipment.part_of(release_id),
                )
                continue
            for serial in plan.picks[release_id].all_serials():
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
        """``load-fifo``; a refusal for want of stock (stock was checked before the shipper was
        created, so only a race with another shipper gets here) becomes a message naming the
        part, where its shippable stock is, and what to do."""
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
        if not shipper_is_shipped(shipper):
            # a person un-shipped it in Plex (what the hint below asks), then replayed: done
            return WriteResult(
                reference, self.name, shipper_id=shipper.id, details={"unshipped_in_plex": True}
            )
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

    def __init__(
        self,
        plex: PlexClient,
        datasources: PlexDataSourceClient,
        *,
        splitter: ContainerSplitter | None = None,
        without_split: WithoutSplit = "tracking_and_task",
    ) -> None:
        super().__init__(plex, splitter=splitter, without_split=without_split)
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
        picks: dict[str, Pick] = {}
        if found is None or not found.containers:
            # every container chosen (and split) before the inventory shipment is created:
            # an impossible move leaves no open inventory shipment behind
            needs = self._needs(shipment, releases or ())
            picks, blocked = await self.plan_picks(shipment.reference, needs)
            blocked = blocked or await self.run_splits(shipment.reference, picks)
            if blocked:
                by_id = await releases_by_id(self.plex, shipment.quantities(), releases)
                await self.no_split(shipment, blocked, by_id)
        shipper_id = await self._update_shipper(shipment, details, releases)
        inventory = found or await self.writes.create_inventory_shipment(shipment.reference)
        if not inventory.containers:
            serials = [serial for pick in picks.values() for serial in pick.all_serials()]
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

    async def record_tracking(
        self, shipment: ShipmentWrite, releases: dict[str, Release]
    ) -> str | None:
        """The holding shipper's tracking number and note (Data Source update), or the
        releases' notes when no Plex shipper holds them."""
        shipper_id = await self._update_shipper(shipment, {}, list(releases.values()))
        if shipper_id is None:
            return await super().record_tracking(shipment, releases)
        return f"tracking number and note of Plex shipper {shipper_id}"

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

    @staticmethod
    def _needs(shipment: ShipmentWrite, known: Sequence[Release]) -> list[Need]:
        """Per part, the quantity the inventory shipment must stage (whole containers), named
        by its releases (their numbers when ``known``)."""
        numbers = {r.id.lower(): r.release_number for r in known if r.release_number}
        needed: dict[str, float] = {}
        labels: dict[str, list[str]] = {}
        for line in shipment.lines:
            needed[line.part_id] = needed.get(line.part_id, 0) + line.quantity
            name = numbers.get(line.release_id.lower()) or line.release_id
            labels.setdefault(line.part_id, []).append(name)
        return [Need(p, p, q, ", ".join(labels[p])) for p, q in needed.items()]

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
