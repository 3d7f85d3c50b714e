"""Compare Plex and ShipStation for a period and list the drift (``mlconnector reconcile``).

Read-only: nothing is written anywhere (no remote write, no outbox row, no cursor, no audit).
Five kinds of drift, each a :class:`Drift` with the record and what to do:

* ``missing_order`` — an open Plex release group (orders modified in ``[since, until]``, mapped
  exactly as the orders flow maps them) has no ShipStation order, or its linked order is gone
  (deleted in ShipStation);
* ``stale_order`` — a ShipStation order still open there whose status or items (``lineItemKey``,
  SKU, quantity) differ from what Plex says now, including a group with no open release left in
  Plex whose ShipStation order is still open. Shipped/cancelled ShipStation orders are frozen on
  purpose and never reported as stale;
* ``not_written_back`` — a ShipStation shipment or fulfilment of one of our orders (created in
  the period, not voided) without a confirmed write-back operation or without recorded shipment
  lines;
* ``shipper_missing`` — a shipment confirmed as written back whose Plex record (shipper or
  inventory shipment carrying the reference) cannot be found in Plex any more;
* ``inventory`` — per SKU and mapped location, Plex on-hand − shipped-but-not-written-back
  (the inventory flow's own rule) differs from the ShipStation V2 level. This one compares the
  current state, whatever the period.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from mlconnector.errors import NotFoundError
from mlconnector.plex import SalesOrder
from mlconnector.shipstation import Order
from mlconnector.store import Link, OperationState
from mlconnector.sync.inventory import InventoryFlow, distribute
from mlconnector.sync.mapping import MappedOrder, MappingSkip, map_order
from mlconnector.sync.order_links import is_frozen, same_content
from mlconnector.sync.orders_read import load_bundle, shipped_in_shipstation
from mlconnector.sync.runtime import ConnectionRuntime
from mlconnector.sync.shipments import op_key
from mlconnector.sync.shipments_source import Shipped, from_fulfillment, from_shipment
from mlconnector.timezones import format_utc_z

#: the ShipStation statuses the connector sends orders in (and may still change)
OPEN_STATUSES = ("awaiting_shipment", "on_hold", "awaiting_payment")
KINDS = ("missing_order", "stale_order", "not_written_back", "shipper_missing", "inventory")


@dataclass(frozen=True)
class Drift:
    """One difference between the systems, with enough to find the records and act."""

    kind: str
    key: str
    detail: str
    hint: str = ""
    plex: Any = None
    shipstation: Any = None


@dataclass
class ReconcileReport:
    """Every drift found, and how many records each check looked at."""

    connection: str
    since: datetime
    until: datetime
    drifts: list[Drift] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.drifts

    def by_kind(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for drift in self.drifts:
            counts[drift.kind] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """The report for machines (``--json``)."""
        return {
            "connection": self.connection,
            "since": format_utc_z(self.since),
            "until": format_utc_z(self.until),
            "clean": self.clean,
            "counts": self.by_kind(),
            "checked": dict(self.checked),
            "notes": list(self.notes),
            "drifts": [asdict(d) for d in self.drifts],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)


def _items(order: Order) -> list[tuple[str | None, str | None, int | None]]:
    return sorted(
        ((i.line_item_key, i.sku, i.quantity) for i in order.items or []), key=lambda t: str(t)
    )


class Reconciler:
    """Runs the checks of :data:`KINDS` for one connection (read-only)."""

    def __init__(self, rt: ConnectionRuntime) -> None:
        self.rt = rt
        #: every open ShipStation order by id, read in pages of 500 on first need (one GET per
        #: linked order would cost minutes at V1's 40 requests/minute)
        self._open: dict[int, Order] | None = None

    async def run(self, since: datetime, until: datetime) -> ReconcileReport:
        """Every check, in order; the report lists the drift found."""
        report = ReconcileReport(self.rt.name, since, until)
        self.rt.plex.forget_cached()
        await self.orders(report)
        await self.shipments(report)
        await self.inventory(report)
        return report

    # --- orders: missing and stale ---------------------------------------------------------------
    async def orders(self, report: ReconcileReport) -> None:
        """Plex orders modified in the period against their ShipStation orders."""
        seen: set[str] = set()
        async for order in self.rt.plex.iter_orders_modified(report.since, report.until):
            if order.id.lower() in seen:
                continue
            seen.add(order.id.lower())
            await self._order(report, order)
        report.checked["plex_orders"] = len(seen)

    async def _order(self, report: ReconcileReport, order: SalesOrder) -> None:
        rt = self.rt
        bundle = await load_bundle(rt.plex, order)
        links = {x.order_key: x for x in await rt.store.find_links(rt.name, plex_order_id=order.id)}
        open_ids = [x.ss_order_id for x in links.values() if x.ss_order_id and not is_frozen(x)]
        if open_ids and any(r.quantity_shipped > 0 for r in bundle.releases):
            # as the orders flow does: what ShipStation shipped stays in its items
            shipped = await shipped_in_shipstation(rt.ss_v1, open_ids)
            bundle = replace(bundle, shipped_in_shipstation=shipped)
        mapped_keys: set[str] = set()
        for mapped in map_order(bundle, rt.config):
            mapped_keys.add(mapped.order_key)
            if isinstance(mapped, MappingSkip):
                report.checked["groups_unmappable"] += 1
                continue
            report.checked["groups"] += 1
            await self._group(report, mapped, links.get(mapped.order_key))
        for key in sorted(set(links) - mapped_keys):
            await self._gone(report, links[key])

    async def _remote(self, link: Link | None) -> Order | None:
        """The linked ShipStation order, or ``None`` when there is none (or it was deleted)."""
        if link is None or not link.ss_order_id:
            return None
        if self._open is None:
            self._open = {}
            for status in OPEN_STATUSES:
                async for order in self.rt.ss_v1.iter_orders(order_status=status):
                    if order.order_id is not None:
                        self._open[order.order_id] = order
        found = self._open.get(int(link.ss_order_id))
        if found is not None:
            return found
        # not open: shipped/cancelled (frozen), or deleted; only these cost one GET each
        try:
            remote = await self.rt.ss_v1.get_order(int(link.ss_order_id))
        except NotFoundError:
            return None
        extra = remote.model_extra or {}
        return None if extra.get("active") is False else remote

    async def _group(self, report: ReconcileReport, mapped: MappedOrder, link: Link | None) -> None:
        if link is not None and is_frozen(link):
            return  # shipped/cancelled in ShipStation: read-only by design
        cancelled = mapped.status == "cancelled"
        if cancelled and (link is None or not link.ss_order_id):
            return  # cancelled in Plex and never sent: nothing should be there
        remote = await self._remote(link)
        number = mapped.order.order_number
        if remote is None:
            if cancelled:
                return
            where = (
                f"linked ShipStation order {link.ss_order_id} is gone (deleted?)"
                if link is not None and link.ss_order_id
                else "never created in ShipStation"
            )
            report.drifts.append(
                Drift(
                    "missing_order",
                    mapped.order_key,
                    f"open Plex release group {number} ({len(mapped.release_ids)} release(s)): "
                    + where,
                    "run `mlconnector sync orders --once`; if the link points at a deleted order, "
                    "replay or re-create it",
                    plex={"order_id": mapped.plex_order_id, "releases": list(mapped.release_ids)},
                    shipstation={"order_id": link.ss_order_id if link else None},
                )
            )
            return
        if remote.is_frozen:
            return
        if not same_content(mapped.order.to_v1(), remote):
            report.drifts.append(
                Drift(
                    "stale_order",
                    mapped.order_key,
                    f"ShipStation order {remote.order_number} differs from Plex: status "
                    f"{remote.order_status} vs {mapped.status}; items {_items(remote)} vs "
                    f"{_items(mapped.order)}",
                    "run `mlconnector sync orders --once` (an edit made in ShipStation is "
                    "overwritten)",
                    plex={"status": mapped.status, "items": _items(mapped.order)},
                    shipstation={
                        "order_id": remote.order_id,
                        "status": remote.order_status,
                        "items": _items(remote),
                    },
                )
            )

    async def _gone(self, report: ReconcileReport, link: Link) -> None:
        """A linked group with no open release left in Plex: its order should be closed."""
        if is_frozen(link) or not link.ss_order_id:
            return
        remote = await self._remote(link)
        if remote is None or remote.is_frozen:
            return
        report.drifts.append(
            Drift(
                "stale_order",
                link.order_key,
                f"no open release left in Plex, but ShipStation order {remote.order_number} "
                f"is still {remote.order_status}",
                "run `mlconnector sync orders --once` (it cancels the ShipStation order)",
                plex={"order_id": link.plex_order_id, "releases": []},
                shipstation={"order_id": remote.order_id, "status": remote.order_status},
            )
        )

    # --- shipments: written back, and still in Plex ----------------------------------------------
    async def shipments(self, report: ReconcileReport) -> None:
        """ShipStation shipments/fulfilments created in the period against the write-backs."""
        ss, start, end = self.rt.ss_v1, report.since, report.until
        records: list[Shipped] = []
        async for shipment in ss.iter_shipments(
            include_shipment_items=True, create_date_start=start, create_date_end=end
        ):
            if (rec := from_shipment(shipment)) is not None:
                records.append(rec)
        async for fulfillment in ss.iter_fulfillments(create_date_start=start, create_date_end=end):
            if (rec := from_fulfillment(fulfillment)) is not None:
                records.append(rec)
        for rec in records:
            if rec.voided:
                continue
            link = await self._link_of(rec)
            if link is None:
                report.checked["shipments_not_ours"] += 1
                continue
            report.checked["shipments"] += 1
            await self._shipment(report, rec, link)

    async def _link_of(self, rec: Shipped) -> Link | None:
        store, name = self.rt.store, self.rt.name
        link = await store.get_link(name, rec.order_key) if rec.order_key else None
        if link is None and rec.order_id is not None:
            found = await store.find_links(name, ss_order_id=str(rec.order_id))
            link = found[0] if found else None
        return link

    async def _shipment(self, report: ReconcileReport, rec: Shipped, link: Link) -> None:
        store, name = self.rt.store, self.rt.name
        op = await store.get_operation_by_key(op_key(name, rec.source_id))
        lines = await store.get_shipment_lines(name, rec.source_id)
        refs = {"kind": rec.kind, "id": rec.ss_id, "order_number": rec.order_number}
        if op is None or op.state is not OperationState.CONFIRMED or not lines:
            state = "never seen by the shipments flow" if op is None else f"operation {op.state}"
            if op is not None and op.state is OperationState.CONFIRMED:
                state = "confirmed but no shipment lines recorded"
            report.drifts.append(
                Drift(
                    "not_written_back",
                    rec.source_id,
                    f"{rec.kind} {rec.ss_id} of {link.order_key} is not written back to Plex "
                    f"({state})",
                    "run `mlconnector sync shipments --once`; a failed operation: fix the cause "
                    "and replay it",
                    plex={"order_id": link.plex_order_id},
                    shipstation=refs,
                )
            )
            return
        existing = await self.rt.writer.find_existing(
            rec.source_id, tracking_number=rec.tracking_number
        )
        if not existing.found:
            report.drifts.append(
                Drift(
                    "shipper_missing",
                    rec.source_id,
                    f"{rec.kind} {rec.ss_id} was written back (operation {op.id}, Plex "
                    f"{op.remote_ref}) but no Plex shipper or inventory shipment carries "
                    f"{rec.source_id} any more",
                    "check the Plex shipper (deleted or its note changed?); replay operation "
                    f"{op.id} to write it again",
                    plex={"remote_ref": op.remote_ref},
                    shipstation=refs,
                )
            )

    # --- inventory --------------------------------------------------------------------------------
    async def inventory(self, report: ReconcileReport) -> None:
        """Plex on-hand − unwritten (the inventory flow's rule) against the V2 levels."""
        rt = self.rt
        mapped = set(rt.config.mappings.inventory_locations.values())
        if not rt.has_ss_v2 or not mapped:
            report.notes.append(
                "inventory not compared: "
                + ("no ShipStation V2 key" if not rt.has_ss_v2 else "no inventory location mapped")
            )
            return
        rows = await rt.plex.on_hand()
        on_hand, _ = await InventoryFlow().map_on_hand(rt, rows)
        taken = distribute(on_hand, await rt.store.unwritten_quantities(rt.name))
        expected = {k: max(0, q - taken.get(k, 0)) for k, q in on_hand.items()}
        actual: dict[tuple[str, str], int] = defaultdict(int)
        async for level in rt.ss_v2.list_inventory():
            if level.inventory_location_id in mapped:
                actual[(level.sku, level.inventory_location_id)] += level.on_hand or 0
        report.checked["inventory_levels"] = len(set(expected) | set(actual))
        for sku, location in sorted(set(expected) | set(actual)):
            want, have = expected.get((sku, location), 0), actual.get((sku, location), 0)
            if want == have:
                continue
            report.drifts.append(
                Drift(
                    "inventory",
                    f"{sku}@{location}",
                    f"ShipStation shows {have}, Plex says {want} (on-hand "
                    f"{on_hand.get((sku, location), 0)} − not written back "
                    f"{taken.get((sku, location), 0)})",
                    "run `mlconnector sync inventory --once`",
                    plex={"expected": want, "on_hand": on_hand.get((sku, location), 0)},
                    shipstation={"on_hand": have},
                )
            )


async def reconcile(rt: ConnectionRuntime, since: datetime, until: datetime) -> ReconcileReport:
    """Compare both systems for ``[since, until]`` (see the module doc)."""
    return await Reconciler(rt).run(since, until)


__all__ = ["KINDS", "Drift", "ReconcileReport", "Reconciler", "reconcile"]
