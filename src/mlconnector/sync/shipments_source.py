"""Where the shipments flow finds ShipStation shipments: the webhook inbox and the polls.

Webhooks are hints, polls are truth (DESIGN §1 rule 3). Both sources produce the same
:class:`Shipped` records, which the flow sends down one idempotent path:

* **inbox**: each pending delivery is parsed, its ``resource_url`` checked against the V1
  client's allow-list and followed (``ShipStationV1Client.follow``); a foreign URL is refused
  before any request is sent;
* **polls**: ``/shipments`` by ``createDate`` (new labels) and by ``voidDate`` (voided labels), and
  ``/fulfillments`` by ``createDate`` (orders marked shipped outside label creation), each with its
  own cursor (DESIGN §1 rule 2, :mod:`.cursor`), stored together as one JSON value.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from mlconnector.lenient import Unreadable
from mlconnector.shipstation import Fulfillment, Shipment, ShipStationV1Client
from mlconnector.store import QuarantineEntry
from mlconnector.sync.cursor import CursorState
from mlconnector.sync.quarantine import QuarantineBook, entry_of
from mlconnector.timezones import parse_pacific, to_pacific_naive

#: the three polls, in the order they run
POLLS = ("created", "voided", "fulfillments")


@dataclass(frozen=True)
class ShippedItem:
    """One shipped line: the ShipStation ``lineItemKey`` (our Plex release id), SKU, quantity."""

    line_item_key: str | None
    sku: str | None
    quantity: int


@dataclass(frozen=True)
class Shipped:
    """A ShipStation shipment or fulfilment, as the flow needs it (UTC datetimes)."""

    kind: str  # "shipment" | "fulfillment"
    ss_id: int
    order_id: int | None
    order_key: str | None
    order_number: str | None
    voided: bool
    carrier: str | None
    service: str | None
    tracking_number: str | None
    ship_date: datetime | None
    create_date: datetime | None
    #: ``None`` for a fulfilment (it carries no items: the order's items shipped)
    items: tuple[ShippedItem, ...] | None = None
    void_date: datetime | None = None

    @property
    def source_id(self) -> str:
        """The external reference written into Plex: ``ss-shipment-123``/``ss-fulfillment-4``."""
        return f"ss-{self.kind}-{self.ss_id}"

    @property
    def void_id(self) -> str:
        """The reference of a void: ``ss-void-123`` (shipment), ``ss-void-fulfillment-4``."""
        return (
            f"ss-void-{self.ss_id}"
            if self.kind == "shipment"
            else f"ss-void-{self.kind}-{self.ss_id}"
        )

    def ship_instant(self, fallback: datetime) -> datetime:
        """When it shipped, in UTC.

        V1 gives a shipment's ``shipDate`` as a bare Pacific calendar date (parsed as Pacific
        midnight). When the label was created on that same Pacific day, ``createDate`` is the
        better instant; otherwise (a label dated ahead) the ship date's Pacific midnight is used.
        """
        if self.ship_date is None:
            return self.create_date or fallback
        if (
            self.create_date is not None
            and to_pacific_naive(self.create_date).date() == to_pacific_naive(self.ship_date).date()
        ):
            return self.create_date
        return self.ship_date


def ship_day_instant(value: datetime | date | None) -> datetime | None:
    """A V1 ship date as an instant: a calendar date (ShipStation sends ``"2026-07-04"`` for a
    shipment's ``shipDate``) is that day's midnight US Pacific, in UTC."""
    if value is None or isinstance(value, datetime):
        return value
    return parse_pacific(f"{value.isoformat()}T00:00:00")


def from_shipment(shipment: Shipment) -> Shipped | None:
    """A V1 shipment as a :class:`Shipped` (``None`` without a shipmentId)."""
    if shipment.shipment_id is None:
        return None
    items = tuple(
        ShippedItem(
            (item.line_item_key or "").strip().lower() or None,
            item.sku,
            int(item.quantity or 0),
        )
        for item in shipment.shipment_items or []
    )
    return Shipped(
        kind="shipment",
        ss_id=shipment.shipment_id,
        order_id=shipment.order_id,
        order_key=shipment.order_key,
        order_number=shipment.order_number,
        voided=bool(shipment.voided),
        carrier=shipment.carrier_code,
        service=shipment.service_code,
        tracking_number=shipment.tracking_number,
        ship_date=ship_day_instant(shipment.ship_date),
        create_date=shipment.create_date,
        items=items if shipment.shipment_items is not None else None,
        void_date=shipment.void_date,
    )


def from_fulfillment(fulfillment: Fulfillment) -> Shipped | None:
    """A V1 fulfilment as a :class:`Shipped` (``None`` without a fulfillmentId)."""
    if fulfillment.fulfillment_id is None:
        return None
    return Shipped(
        kind="fulfillment",
        ss_id=fulfillment.fulfillment_id,
        order_id=fulfillment.order_id,
        order_key=None,
        order_number=fulfillment.order_number,
        voided=bool(fulfillment.voided),
        carrier=fulfillment.carrier_code or fulfillment.fulfillment_provider_code,
        service=fulfillment.fulfillment_service_code,
        tracking_number=fulfillment.tracking_number,
        ship_date=ship_day_instant(fulfillment.ship_date),
        create_date=fulfillment.create_date,
        items=None,
        void_date=fulfillment.void_date,
    )


def shipped_records(
    shipments: Iterable[Shipment], fulfillments: Iterable[Fulfillment]
) -> list[Shipped]:
    """Every usable record of a webhook batch or a poll."""
    found = [from_shipment(s) for s in shipments] + [from_fulfillment(f) for f in fulfillments]
    return [r for r in found if r is not None]


@dataclass(frozen=True)
class PollCursors:
    """The three cursors of the shipments flow, stored as one JSON value."""

    states: dict[str, CursorState] = field(default_factory=dict)

    def get(self, poll: str) -> CursorState:
        return self.states.get(poll) or CursorState()

    def with_state(self, poll: str, state: CursorState) -> PollCursors:
        return PollCursors({**self.states, poll: state})

    def to_json(self) -> str:
        return json.dumps(
            {poll: json.loads(self.get(poll).to_json()) for poll in POLLS},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> PollCursors:
        if not text:
            return cls()
        raw = json.loads(text)
        return cls({poll: CursorState.from_json(json.dumps(raw[poll])) for poll in raw})


# --- quarantine: unreadable shipments and fulfilments (docs/sync.md, "Quarantine") -------------
def unreadable_entries(problems: Iterable[Unreadable]) -> list[QuarantineEntry]:
    """Quarantine entries for unreadable shipments/fulfilments, with what re-reads them: V1
    ``/shipments`` has no id filter, so a shipment is retried through its order's shipments
    (``shipments-of-order:<orderId>``); a fulfilment by ``fulfillmentId``. A record naming
    neither is retried only if a later window or webhook brings it again."""
    entries = []
    for problem in problems:
        known = not problem.record_id.startswith("#")
        order_id = problem.ref("orderId")
        key: str | None = None
        if problem.kind == "ShipStation fulfillment" and known:
            key = f"fulfillment:{problem.record_id}"
        elif order_id and order_id.isdigit():
            prefix = "shipments" if problem.kind == "ShipStation shipment" else "fulfillments"
            key = f"{prefix}-of-order:{order_id}"
        shipment_id = None
        if known and problem.kind in ("ShipStation shipment", "ShipStation fulfillment"):
            shipment_id = f"ss-{problem.kind.split()[-1]}-{problem.record_id}"
        entries.append(entry_of(problem, key, shipment_id=shipment_id))
    return entries


async def retry_unreadable(ss_v1: ShipStationV1Client, book: QuarantineBook) -> list[Shipped]:
    """Re-read the quarantined shipments and fulfilments; the records that read now (to be
    handled as polled ones). Still unreadable ones are quarantined again; the entries of every
    key that was read and not quarantined again are resolved."""
    found: list[Shipped] = []
    reads: list[tuple[str, AsyncIterator[Shipment | Fulfillment]]] = []
    problems: list[Unreadable] = []
    sink = problems.append
    for order_id in book.retry_ids("shipments-of-order"):
        key = f"shipments-of-order:{order_id}"
        reads.append((key, ss_v1.iter_shipments(order_id=int(order_id), on_unreadable=sink)))
    for order_id in book.retry_ids("fulfillments-of-order"):
        key = f"fulfillments-of-order:{order_id}"
        reads.append((key, ss_v1.iter_fulfillments(order_id=int(order_id), on_unreadable=sink)))
    for fulfillment_id in book.retry_ids("fulfillment"):
        key = f"fulfillment:{fulfillment_id}"
        reads.append(
            (key, ss_v1.iter_fulfillments(fulfillment_id=int(fulfillment_id), on_unreadable=sink))
        )
    for key, records in reads:
        wanted = book.open_records(key)
        async for record in records:
            rec = (
                from_shipment(record) if isinstance(record, Shipment) else from_fulfillment(record)
            )
            if rec is not None and str(rec.ss_id) in wanted:
                found.append(rec)
        await book.put_all(unreadable_entries(problems))
        problems.clear()
        await book.read_ok(key)
    return found
