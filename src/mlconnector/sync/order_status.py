"""The order-status flow: the connector learns which of its ShipStation orders shipped or were
cancelled, and never touches them again (DESIGN §1 rule 6).

It polls ShipStation V1 orders by ``modifyDate`` under the same cursor rules as every flow (record
timestamps, overlap, de-duplication; the client converts the bounds to Pacific time) and updates
the ``ss_status`` of the links it owns. ``shipped``/``cancelled`` freeze the link with the reason;
an order that reopened (a voided label) is unfrozen, because ShipStation is the truth here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from mlconnector.errors import FatalError
from mlconnector.lenient import Unreadable, UnreadableRecordError
from mlconnector.shipstation import FROZEN_STATUSES, Order
from mlconnector.store import Link, Operation, QuarantineEntry
from mlconnector.sync.base import FlowResult, PlanItem, Resolution, audit
from mlconnector.sync.cursor import (
    DEFAULT_INITIAL_LOOKBACK,
    DEFAULT_OVERLAP,
    DEFAULT_SAFETY_LAG,
    CursorState,
    advance,
    read_bound,
    read_window,
)
from mlconnector.sync.quarantine import QuarantineBook, entry_of
from mlconnector.sync.runtime import ConnectionRuntime

FLOW = "order_status"


def frozen_reason(order: Order) -> str | None:
    """Why a ShipStation order is read-only, or ``None`` when it is open."""
    if order.order_status not in FROZEN_STATUSES:
        return None
    when = order.modify_date.isoformat() if order.modify_date else "unknown time"
    return f"ShipStation order {order.order_number} is {order.order_status} (seen {when})"


def order_entries(problems: Iterable[Unreadable]) -> list[QuarantineEntry]:
    """Quarantine entries for unreadable ShipStation orders, retried by ``orderId`` when the
    record names a readable one."""
    entries = []
    for problem in problems:
        order_id = problem.ref("orderId") or problem.record_id
        key = f"ss-order:{order_id}" if order_id.isdigit() else None
        entries.append(entry_of(problem, key))
    return entries


class OrderStatusFlow:
    """ShipStation → connector: order statuses onto the links. Writes nothing remotely."""

    name = FLOW
    kinds: frozenset[str] = frozenset()

    def __init__(
        self,
        *,
        overlap: timedelta = DEFAULT_OVERLAP,
        safety_lag: timedelta = DEFAULT_SAFETY_LAG,
        initial_lookback: timedelta = DEFAULT_INITIAL_LOOKBACK,
    ) -> None:
        self.overlap = overlap
        self.safety_lag = safety_lag
        self.initial_lookback = initial_lookback

    async def run(self, rt: ConnectionRuntime, *, dry_run: bool = False) -> FlowResult:
        """Poll, update links, advance the cursor (dry-run: plan only)."""
        result = FlowResult(FLOW, rt.name, dry_run=dry_run)
        stored = await rt.store.get_cursor(rt.name, FLOW)
        state = CursorState.from_json(stored.value if stored else None)
        start, end = read_window(
            state,
            rt.clock.now(),
            overlap=self.overlap,
            safety_lag=self.safety_lag,
            initial_lookback=self.initial_lookback,
        )
        book = QuarantineBook(rt, FLOW, result, dry_run)
        await book.load()
        await self._retry(rt, book, result, dry_run)
        pairs = []
        problems: list[Unreadable] = []
        async for order in rt.ss_v1.iter_orders(
            modify_date_start=start, modify_date_end=end, on_unreadable=problems.append
        ):
            if order.order_id is None:
                continue
            pairs.append((str(order.order_id), order.modify_date))
            if not state.is_new(str(order.order_id), order.modify_date):
                continue
            result.count("read")
            await self._apply(rt, order, result, dry_run)
        read_to = read_bound(end, rt.ss_v1.server_time(), safety_lag=self.safety_lag)
        # unreadable orders: quarantined, re-read by id on later passes (the cursor moves on);
        # one without a readable id is found again only by a later window
        entries = order_entries(problems)
        await book.put_all(entries)
        if dry_run:
            return result
        whole = all(e.retry_key for e in entries)
        new_state = advance(
            state, pairs, end, overlap=self.overlap, read_through=read_to if whole else None
        )
        if new_state != state:
            await rt.store.set_cursor(rt.name, FLOW, new_state.to_json())
            result.cursor = new_state.to_json()
        return result

    async def _retry(
        self, rt: ConnectionRuntime, book: QuarantineBook, result: FlowResult, dry_run: bool
    ) -> None:
        """Re-read each quarantined order by id; one that reads now is applied."""
        for order_id in book.retry_ids("ss-order"):
            try:
                order = await rt.ss_v1.get_order(int(order_id))
            except UnreadableRecordError as exc:
                await book.put_all(order_entries(exc.problems))
                continue
            result.count("read")
            await self._apply(rt, order, result, dry_run)
            await book.read_ok(f"ss-order:{order_id}")

    async def _apply(
        self, rt: ConnectionRuntime, order: Order, result: FlowResult, dry_run: bool
    ) -> None:
        if not order.order_key:
            return
        link = await rt.store.get_link(rt.name, order.order_key)
        if link is None:
            return  # not an order this connection created
        status = order.order_status or ""
        reason = frozen_reason(order)
        if reason and link.frozen_reason:
            reason = link.frozen_reason  # keep the first explanation (e.g. a connector cancel)
        if status == link.ss_status and reason == link.frozen_reason:
            result.add(PlanItem("skip", "order", order.order_key, f"still {status}"), "unchanged")
            return
        action = "freeze" if reason else "status"
        result.add(
            PlanItem(action, "order", order.order_key, reason or f"ShipStation status {status}"),
            "frozen" if reason else "updated",
        )
        if dry_run:
            return
        await self._save(rt, link, order, status, reason)
        await audit(
            rt,
            flow=FLOW,
            action=action,
            outcome="ok",
            direction="ss->connector",
            order_key=order.order_key,
            plex_order_id=link.plex_order_id,
            ss_order_id=order.order_id,
            ss_order_number=order.order_number,
            details={"from": link.ss_status, "to": status, "frozen_reason": reason},
        )

    @staticmethod
    async def _save(
        rt: ConnectionRuntime, link: Link, order: Order, status: str, reason: str | None
    ) -> None:
        if link.ss_order_id is None and order.order_id is not None:
            await rt.store.save_link(
                Link(
                    connection=link.connection,
                    order_key=link.order_key,
                    plex_order_id=link.plex_order_id,
                    group_key=link.group_key,
                    ss_order_id=str(order.order_id),
                    content_hash=link.content_hash,
                    ss_status=status,
                    frozen_reason=reason,
                    release_ids=list(link.release_ids),
                )
            )
            return
        await rt.store.set_link_status(rt.name, link.order_key, status, frozen_reason=reason)

    async def execute(self, rt: ConnectionRuntime, op: Operation) -> str | None:
        """This flow queues no operation; reaching here is a wiring mistake."""
        raise FatalError(f"the {FLOW} flow has no outbox operations (got {op.kind})")

    async def resolve(self, rt: ConnectionRuntime, op: Operation) -> Resolution:
        return None
