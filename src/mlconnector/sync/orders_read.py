"""The read side of the orders flow: what changed in Plex, and each affected order in full.

Plex lists are unpaginated and windowed (the client checks that the date filter took effect).
A release does not name its sales order, only its line; the order is found through the release's
``orderId`` when Plex sends one, through the lines of the orders read in the same window (Plex
bumps an order's ``modifiedDate`` with its releases'), or through the links of releases already
synced. A release whose order cannot be found is reported, not guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from mlconnector.plex import PlexClient, Release, SalesOrder
from mlconnector.shipstation import ShipStationV1Client
from mlconnector.store import Store
from mlconnector.sync.mapping import OrderBundle


@dataclass
class Changes:
    """Records modified in one read window (after de-duplication against the cursor)."""

    orders: list[SalesOrder] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)
    #: every ``(id, modified)`` read, de-duplicated or not, for advancing the cursor
    pairs: list[tuple[str, datetime | None]] = field(default_factory=list)


async def read_changes(
    plex: PlexClient,
    start: datetime,
    end: datetime,
    is_new: Callable[[str, datetime | None], bool],
) -> Changes:
    """Orders and releases modified in ``[start, end]`` that the cursor has not committed yet."""
    changes = Changes()
    async for order in plex.iter_orders_modified(start, end):
        changes.pairs.append((f"o:{order.id.lower()}", order.modified_date))
        if is_new(f"o:{order.id.lower()}", order.modified_date):
            changes.orders.append(order)
    async for release in plex.iter_releases_modified(start, end):
        changes.pairs.append((f"r:{release.id.lower()}", release.modified_date))
        if is_new(f"r:{release.id.lower()}", release.modified_date):
            changes.releases.append(release)
    return changes


async def load_bundle(plex: PlexClient, order: SalesOrder) -> OrderBundle:
    """One sales order with its lines, releases, customer, addresses and parts."""
    lines = await plex.list_order_lines(order.id)
    releases = await plex.list_releases_for_lines([line.id for line in lines]) if lines else []
    customer = await plex.get_customer(order.customer_id) if order.customer_id else None
    addresses = await plex.list_addresses(order.customer_id) if order.customer_id else []
    part_ids = sorted({line.part_id for line in lines if line.part_id})
    parts = await plex.list_parts(part_ids) if part_ids else []
    return OrderBundle(
        order=order,
        customer=customer,
        lines=lines,
        releases=releases,
        parts={p.id.lower(): p for p in parts},
        addresses={a.id.lower(): a for a in addresses},
    )


def order_id_hint(release: Release) -> str | None:
    """The release's sales order id, when Plex includes one (not in every version)."""
    extra = release.model_extra or {}
    value = extra.get("orderId") or extra.get("salesOrderId")
    return str(value).lower() if value else None


async def orders_of_releases_by_links(
    store: Store, connection: str, release_ids: Iterable[str], *, page: int = 1000
) -> dict[str, str]:
    """release id → Plex order id, from the links of groups already synced."""
    wanted = {r.lower() for r in release_ids}
    found: dict[str, str] = {}
    after: str | None = None
    while wanted - found.keys():
        links = await store.list_links(connection, after_order_key=after, limit=page)
        if not links:
            break
        for link in links:
            for release_id in link.release_ids:
                if release_id.lower() in wanted:
                    found[release_id.lower()] = link.plex_order_id
        after = links[-1].order_key
    return found


async def shipped_in_shipstation(
    ss_v1: ShipStationV1Client, ss_order_ids: Iterable[str]
) -> dict[str, float]:
    """release id (``lineItemKey``) → quantity shipped by non-voided ShipStation labels of the
    given orders. Read only for orders with a partly shipped release (one request per order)."""
    shipped: dict[str, float] = {}
    for order_id in sorted(set(ss_order_ids)):
        async for shipment in ss_v1.iter_shipments(order_id=int(order_id)):
            if shipment.voided:
                continue
            for item in shipment.shipment_items or []:
                if item.line_item_key and item.quantity:
                    key = item.line_item_key.lower()
                    shipped[key] = shipped.get(key, 0.0) + item.quantity
    return shipped
