"""The read side of the orders flow: what changed in Plex, and each affected order in full.

Plex lists are unpaginated and windowed (the client checks that the date filter took effect).
A release does not name its sales order, only its line; the order is found through the release's
``orderId`` when Plex sends one, through the lines of the orders read in the same window (Plex
bumps an order's ``modifiedDate`` with its releases'), or through the links of releases already
synced. A release whose order cannot be found is reported, not guessed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from mlconnector.errors import SkipRecordError
from mlconnector.lenient import Unreadable, UnreadableRecordError
from mlconnector.plex import OrderLine, Part, PlexClient, Release, SalesOrder
from mlconnector.shipstation import ShipStationV1Client
from mlconnector.store import QuarantineEntry, Store
from mlconnector.sync.cursor import ReadPairs
from mlconnector.sync.mapping import OrderBundle
from mlconnector.sync.quarantine import QuarantineBook, entry_of


@dataclass
class Changes:
    """Records modified in one Plex read window (after de-duplication against the cursor), kept
    compact until their chunk is loaded; a pass holds one window's at a time."""

    #: new orders by id (lower-case), as JSON until :meth:`take_order` (a third of the model)
    orders: dict[str, bytes] = field(default_factory=dict)
    #: new releases: ``(id, order line id (lower-case), sales order id hint)``
    releases: list[tuple[str, str, str | None]] = field(default_factory=list)
    #: records of the window's lists that could not be read (quarantined by the flow)
    unreadable: list[Unreadable] = field(default_factory=list)

    def take_order(self, order_id: str) -> SalesOrder | None:
        """The order read in the window (parsed again, then forgotten), or ``None``."""
        raw = self.orders.pop(order_id.lower(), None)
        return SalesOrder.model_validate_json(raw) if raw is not None else None


async def iter_changes(
    plex: PlexClient,
    start: datetime,
    end: datetime,
    is_new: Callable[[str, datetime | None], bool],
    pairs: ReadPairs,
) -> AsyncIterator[Changes]:
    """Orders and releases modified in ``[start, end]`` that the cursor has not committed yet,
    one Plex read window at a time (its orders, then its releases); every ``(id, modified)``
    read, new or not, goes to ``pairs`` for advancing the cursor."""
    bad: list[Unreadable] = []
    releases = plex.release_pages_modified(start, end, on_unreadable=bad.append)
    async for order_page in plex.order_pages_modified(start, end, on_unreadable=bad.append):
        changes = Changes()
        for order in order_page:
            key = order.id.lower()
            pairs.add(f"o:{key}", order.modified_date)
            if is_new(f"o:{key}", order.modified_date):
                changes.orders[key] = order.model_dump_json(by_alias=True).encode()
        del order_page
        for release in await anext(releases, []):
            pairs.add(f"r:{release.id.lower()}", release.modified_date)
            if is_new(f"r:{release.id.lower()}", release.modified_date):
                line_id = (release.order_line_id or "").lower()
                changes.releases.append((release.id, line_id, order_id_hint(release)))
        changes.unreadable, bad[:] = list(bad), []
        yield changes


def window_entries(problems: Sequence[Unreadable]) -> list[QuarantineEntry]:
    """Quarantine entries for unreadable records of the window's lists: an order is retried by
    its id; a release through its order when it names one, else by its own id. A record without
    a readable id cannot be re-fetched: it is retried when Plex sends it in a window again."""
    entries = []
    for problem in problems:
        known = not problem.record_id.startswith("#")
        order_id = problem.ref("orderId")
        if problem.kind == "Plex SalesOrder":
            key = f"order:{problem.record_id}" if known else None
            order_id = problem.record_id if known else None
        elif order_id:
            key = f"order:{order_id}"
        else:
            key = f"release:{problem.record_id}" if known else None
        entries.append(entry_of(problem, key, plex_order_id=order_id))
    return entries


async def retry_releases(plex: PlexClient, book: QuarantineBook, changes: Changes) -> None:
    """Re-read the quarantined releases retried by their own id; one that reads now joins the
    pass's new releases (its order is found as usual) and its entry is resolved."""
    for release_id in book.retry_ids("release"):
        try:
            found = await plex.list_releases([release_id])
        except UnreadableRecordError as exc:
            await book.put_all(entry_of(p, f"release:{release_id}") for p in exc.problems)
            continue
        for release in found:
            line_id = (release.order_line_id or "").lower()
            changes.releases.append((release.id, line_id, order_id_hint(release)))
        await book.read_ok(f"release:{release_id}")


async def load_bundle(plex: PlexClient, order: SalesOrder) -> OrderBundle:
    """One sales order with its lines, releases, customer, addresses and parts."""
    loaded = await load_bundles(plex, [order])
    answer = loaded[order.id.lower()]
    if isinstance(answer, SkipRecordError):
        raise answer
    return answer


async def load_bundles(
    plex: PlexClient, orders: Sequence[SalesOrder]
) -> dict[str, OrderBundle | SkipRecordError]:
    """Several sales orders in full: order id (lower-case) → its bundle, or the error that makes
    it unreadable (the other orders still load).

    Lines cost one request per order (Plex has no multi-order form); the releases of every line
    of the chunk are read together (``orderLineIds``, chunked and checked by the client); parts
    come from the client's per-run cache (only ids not seen yet are requested); customers and
    addresses are cached per run as well.
    """
    lines_of: dict[str, list[OrderLine]] = {}
    failed: dict[str, SkipRecordError] = {}
    for order in orders:
        try:
            lines_of[order.id.lower()] = await plex.list_order_lines(order.id)
        except SkipRecordError as exc:
            failed[order.id.lower()] = exc
    answers: dict[str, OrderBundle | SkipRecordError] = {}
    try:
        by_line, parts = await _releases_and_parts(plex, lines_of.values())
    except SkipRecordError as exc:
        if len(lines_of) <= 1:
            failed.update(dict.fromkeys(lines_of, exc))
            return {o.id.lower(): failed[o.id.lower()] for o in orders}
        # a shared request failed on one record: read order by order so only its order is skipped
        for order in orders:
            if order.id.lower() not in failed:
                answers.update(await load_bundles(plex, [order]))
        return {o.id.lower(): failed.get(o.id.lower()) or answers[o.id.lower()] for o in orders}
    for order in orders:
        key = order.id.lower()
        if key in failed:
            answers[key] = failed[key]
            continue
        try:
            answers[key] = await _bundle(plex, order, lines_of[key], by_line, parts)
        except SkipRecordError as exc:
            answers[key] = exc
    return answers


async def _releases_and_parts(
    plex: PlexClient, line_lists: Iterable[Sequence[OrderLine]]
) -> tuple[dict[str, list[Release]], dict[str, Part]]:
    """Releases by line id (lower-case) and parts by id for the given lines."""
    lines = [line for group in line_lists for line in group]
    line_ids = [line.id for line in lines]
    by_line: dict[str, list[Release]] = {}
    for release in await plex.list_releases_for_lines(line_ids) if line_ids else []:
        by_line.setdefault((release.order_line_id or "").lower(), []).append(release)
    part_ids = sorted({line.part_id for line in lines if line.part_id})
    parts = await plex.parts_by_id(part_ids) if part_ids else {}
    return by_line, parts


async def _bundle(
    plex: PlexClient,
    order: SalesOrder,
    lines: Sequence[OrderLine],
    by_line: Mapping[str, Sequence[Release]],
    parts: Mapping[str, Part],
) -> OrderBundle:
    customer = await plex.get_customer(order.customer_id) if order.customer_id else None
    addresses = await plex.list_addresses(order.customer_id) if order.customer_id else []
    seen: set[str] = set()
    releases: list[Release] = []
    for line in lines:
        if line.id.lower() in seen:
            continue
        seen.add(line.id.lower())
        releases += by_line.get(line.id.lower(), [])
    own_parts = {line.part_id.lower() for line in lines if line.part_id}
    return OrderBundle(
        order=order,
        customer=customer,
        lines=lines,
        releases=releases,
        parts={k: p for k in sorted(own_parts) if (p := parts.get(k)) is not None},
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
