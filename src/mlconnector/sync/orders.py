"""The orders flow: open Plex releases → ShipStation orders (create, update, cancel).

One run:

1. read the Plex orders and releases modified in the cursor window (DESIGN §1 rule 2);
2. load each affected order in full and map its open releases to groups (:mod:`.mapping`);
3. compare every group with its :class:`~mlconnector.store.Link`: the same content hash →
   unchanged; a frozen link (ShipStation shipped/cancelled) → skipped with the reason, never sent;
   a group that disappeared (all shipped or cancelled in Plex) while still open in ShipStation →
   cancelled; a cancelled Plex order → sent with ``orderStatus = cancelled``;
4. unless dry-run: enqueue one operation per group (``orders:{orderKey}:{hash}``, fixed before
   the first attempt), send them in ``createorders`` batches of up to 100, handle each order's own
   result, save the links, then advance the cursor.

Crash recovery (``resolve_batch``) lists the ShipStation orders modified since the crashed batch
was sent (paged) and matches them by exact ``orderKey``; ``resolve`` looks one order up by
``orderNumber`` (a prefix filter). Either confirms only if what is there is what was sent.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from mlconnector.errors import (
    ConnectorError,
    FatalError,
    FrozenRecordError,
    RemoteValidationError,
    RetryableError,
    SkipRecordError,
    stops_pass,
)
from mlconnector.lenient import UnreadableRecordError
from mlconnector.plex import SalesOrder
from mlconnector.shipstation import Order
from mlconnector.store import Link, Operation, OperationState
from mlconnector.sync.base import FlowResult, PlanItem, Resolution, StaleOperationError, audit
from mlconnector.sync.cursor import (
    DEFAULT_INITIAL_LOOKBACK,
    DEFAULT_OVERLAP,
    DEFAULT_SAFETY_LAG,
    CursorState,
    ReadPairs,
    advance,
    read_bound,
    read_window,
)
from mlconnector.sync.mapping import (
    MappedOrder,
    MappingSkip,
    OrderBundle,
    content_hash,
    map_order,
)
from mlconnector.sync.order_links import (
    Decision,
    check_link,
    decision_of,
    freeze_link,
    is_frozen,
    link_of,
    link_version,
    precheck,
    refs_of,
    same_content,
    save_link,
    would,
)
from mlconnector.sync.orders_read import (
    Changes,
    iter_changes,
    load_bundles,
    orders_of_releases_by_links,
    retry_releases,
    shipped_in_shipstation,
    window_entries,
)
from mlconnector.sync.outbox import Outbox
from mlconnector.sync.quarantine import QuarantineBook, entry_of, unmappable_entry
from mlconnector.sync.runtime import ConnectionRuntime

FLOW = "orders"
KIND_UPSERT = "ss.order.upsert"
BATCH = 100
#: crash recovery lists the orders modified since a batch was sent, minus this (clock skew)
RECOVERY_MARGIN = timedelta(minutes=10)
#: operations sent longer ago than this are resolved one look-up each (see ``resolve_batch``)
RECOVERY_HORIZON = timedelta(days=1)


class OrdersFlow:
    """Plex → ShipStation orders. Stateless between runs (state lives in the store)."""

    name = FLOW
    kinds = frozenset({KIND_UPSERT})

    def __init__(
        self,
        *,
        overlap: timedelta = DEFAULT_OVERLAP,
        safety_lag: timedelta = DEFAULT_SAFETY_LAG,
        initial_lookback: timedelta = DEFAULT_INITIAL_LOOKBACK,
        batch_size: int = BATCH,
    ) -> None:
        self.overlap = overlap
        self.safety_lag = safety_lag
        self.initial_lookback = initial_lookback
        self.batch_size = max(1, min(BATCH, batch_size))

    # --- one run -------------------------------------------------------------------------------
    async def run(self, rt: ConnectionRuntime, *, dry_run: bool = False) -> FlowResult:
        """One pass (see the module doc)."""
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
        rt.plex.forget_cached()
        book = QuarantineBook(rt, FLOW, result, dry_run)
        await book.load()
        sender = None if dry_run else _Sender(self, rt, result)
        pass_ = _Pass(set(book.retry_ids("order")))
        pairs = ReadPairs(end, overlap=self.overlap)
        # one Plex read window at a time: read, decide, hand to the sender, then the next window
        # (a pass holds one window's records and one chunk of bundles, not the whole read)
        # a record of a window without a readable id is found again only by a later window:
        # then the cursor may not step to the window's end (``whole``)
        whole = True
        read_to = read_bound(end, rt.plex.server_time(), safety_lag=self.safety_lag)
        async for changes in iter_changes(rt.plex, start, end, state.is_new, pairs):
            # the server's clock as the window was read (before the loads its decisions make)
            read_to = read_bound(end, rt.plex.server_time(), safety_lag=self.safety_lag)
            await self._decide_window(rt, changes, pass_, result, dry_run, sender, book)
            # unreadable records of the window lists not already set aside with their order:
            # they are retried by id on later passes, so the cursor may move past them
            entries = window_entries(changes.unreadable)
            whole = whole and all(e.retry_key for e in entries)
            await book.put_all(e for e in entries if not book.seen(e))
        last = Changes()
        await retry_releases(rt.plex, book, last)
        await self._decide_window(rt, last, pass_, result, dry_run, sender, book, final=True)
        counts = {"orders": pass_.orders, "releases": pass_.releases}
        if sender is None:
            return result
        await sender.flush()
        # every chunk of the window is sent and linked: only now may the cursor move (§1 rule 2)
        new_state = advance(
            state,
            pairs,
            end,
            overlap=self.overlap,
            read_through=read_to if whole else None,
        )
        if new_state != state:
            await rt.store.set_cursor(rt.name, FLOW, new_state.to_json())
            result.cursor = new_state.to_json()
        await audit(
            rt,
            flow=FLOW,
            action="read",
            outcome="ok",
            entity="order",
            direction="plex->ss",
            details={
                "window": [start.isoformat(), end.isoformat()],
                **counts,
                **result.counts(),
            },
        )
        return result

    async def _decide_window(
        self,
        rt: ConnectionRuntime,
        changes: Changes,
        pass_: _Pass,
        result: FlowResult,
        dry_run: bool,
        sender: _Sender | None,
        book: QuarantineBook,
        *,
        final: bool = False,
    ) -> None:
        """Decide the orders changed in one read window a chunk at a time and hand each
        chunk's decisions to the sender, so a run holds one chunk of bundles and decisions.

        A release whose order line was not loaded stays pending (id and line only) until a
        later window loads its line; the ``final`` step (after the last window) also retries
        the quarantined orders not read again, and finds the orders of the releases still
        pending through the links of groups already synced."""
        pass_.orders += len(changes.orders)
        pass_.releases += len(changes.releases)
        result.count("read", len(changes.orders) + len(changes.releases))
        hints = {hint for _, _, hint in changes.releases if hint}
        wanted = set(changes.orders) | hints
        if final:
            wanted |= pass_.retry
        pass_.retry -= wanted
        loaded_lines: set[str] = set()
        await self._decide_chunks(
            rt, sorted(wanted), changes, result, dry_run, loaded_lines, sender, book
        )
        pending = pass_.orphans + [(rid, line_id) for rid, line_id, _ in changes.releases]
        pass_.orphans = [(rid, line_id) for rid, line_id in pending if line_id not in loaded_lines]
        if not final or not pass_.orphans:
            return
        orphans = [rid for rid, _ in pass_.orphans]
        by_link = await orders_of_releases_by_links(rt.store, rt.name, orphans)
        more = sorted(set(by_link.values()) - wanted)
        await self._decide_chunks(rt, more, changes, result, dry_run, loaded_lines, sender, book)
        for release_id in orphans:
            if release_id.lower() not in by_link:
                await self._note(
                    rt,
                    result,
                    PlanItem(
                        "skip",
                        "release",
                        release_id,
                        "cannot find the sales order of this release; it is synced when "
                        "its order changes",
                    ),
                    "skipped",
                    dry_run,
                )

    async def _decide_chunks(
        self,
        rt: ConnectionRuntime,
        order_ids: Sequence[str],
        changes: Changes,
        result: FlowResult,
        dry_run: bool,
        loaded_lines: set[str],
        sender: _Sender | None,
        book: QuarantineBook,
    ) -> None:
        for start in range(0, len(order_ids), self.batch_size):
            chunk = order_ids[start : start + self.batch_size]
            known = {i: o for i in chunk if (o := changes.take_order(i)) is not None}
            decisions = await self.decide_orders(
                rt, chunk, known, result, dry_run, loaded_lines, book=book
            )
            if sender is not None:
                await sender.add(decisions)

    async def decide_orders(
        self,
        rt: ConnectionRuntime,
        order_ids: Sequence[str],
        known: dict[str, SalesOrder],
        result: FlowResult,
        dry_run: bool,
        loaded_lines: set[str],
        *,
        book: QuarantineBook | None = None,
    ) -> list[Decision]:
        """The decisions for some Plex orders, their bundles loaded together (the run's chunks
        and the backfill's way in). With a ``book``, an order that cannot be read or mapped is
        quarantined (retried on later passes); without, it is skipped with the reason."""
        unreadable: dict[str, SkipRecordError] = {}
        fetched: dict[str, SalesOrder] = {}
        for order_id in order_ids:
            try:
                fetched[order_id] = known.get(order_id) or await rt.plex.get_order(order_id)
            except SkipRecordError as exc:
                unreadable[order_id] = exc
        bundles = await load_bundles(rt.plex, list(fetched.values()))
        # the links of the whole chunk in one read (was one read per order)
        links_by_order = await rt.store.links_of_orders(rt.name, list(fetched))
        decisions: list[Decision] = []
        for order_id in order_ids:
            answer = unreadable.get(order_id) or bundles[fetched[order_id].id.lower()]
            if isinstance(answer, UnreadableRecordError) and book is not None:
                await book.put_all(
                    entry_of(p, f"order:{order_id}", plex_order_id=order_id)
                    for p in answer.problems
                )
                continue
            if isinstance(answer, SkipRecordError):
                item = PlanItem("skip", "order", order_id, f"cannot read the Plex order: {answer}")
                await self._note(rt, result, item, "skipped", dry_run, plex_order_id=order_id)
                continue
            links = {x.order_key: x for x in links_by_order.get(order_id, [])}
            decisions += await self._decide_bundle(
                rt, order_id, answer, links, result, dry_run, book
            )
            loaded_lines.update(line.id.lower() for line in answer.lines)
            if book is not None:
                await book.read_ok(f"order:{order_id}", plex_order_id=order_id)
        return decisions

    async def _decide_bundle(
        self,
        rt: ConnectionRuntime,
        order_id: str,
        bundle: OrderBundle,
        links: dict[str, Link],
        result: FlowResult,
        dry_run: bool,
        book: QuarantineBook | None = None,
    ) -> list[Decision]:
        partly = {r.id.lower() for r in bundle.releases if r.quantity_shipped > 0}
        open_ids = [
            x.ss_order_id
            for x in links.values()
            if x.ss_order_id and not is_frozen(x) and partly & {i.lower() for i in x.release_ids}
        ]
        if open_ids:
            # what ShipStation shipped stays in its items (see mapping: partial shipments)
            shipped = await shipped_in_shipstation(rt.ss_v1, open_ids)
            bundle = replace(bundle, shipped_in_shipstation=shipped)
        decisions: list[Decision] = []
        mapped_keys: set[str] = set()
        for mapped in map_order(bundle, rt.config):
            mapped_keys.add(mapped.order_key)
            link = links.get(mapped.order_key)
            decision = await self._compare(rt, mapped, link, result, dry_run, book)
            if decision is not None:
                decisions.append(decision)
        for key in sorted(set(links) - mapped_keys):
            decision = await self._disappeared(rt, links[key], result, dry_run)
            if decision is not None:
                decisions.append(decision)
        return decisions

    async def _compare(
        self,
        rt: ConnectionRuntime,
        mapped: MappedOrder | MappingSkip,
        link: Link | None,
        result: FlowResult,
        dry_run: bool,
        book: QuarantineBook | None = None,
    ) -> Decision | None:
        refs = {"order_key": mapped.order_key, "plex_order_id": mapped.plex_order_id}
        if isinstance(mapped, MappingSkip) and mapped.counter == "skipped" and book is not None:
            # the record's data is the problem (a setting refusing it stays ``failed``)
            await book.put(unmappable_entry(mapped))
            return None
        # the plan shows an order by its number; the key stays the record's identity
        number = {"order_number": mapped.order_number}
        if isinstance(mapped, MappingSkip):
            item = PlanItem("skip", "order", mapped.order_key, mapped.reason, number)
            await self._note(rt, result, item, mapped.counter, dry_run, **refs)
            return None
        if link is not None and is_frozen(link):
            reason = link.frozen_reason or f"ShipStation order is {link.ss_status}"
            item = PlanItem("skip", "order", mapped.order_key, f"frozen: {reason}", number)
            await self._note(
                rt, result, item, "frozen", dry_run, ss_order_id=link.ss_order_id, **refs
            )
            return None
        if link is not None and link.content_hash == mapped.content_hash and link.ss_order_id:
            item = PlanItem("skip", "order", mapped.order_key, "unchanged", number)
            result.add(item, "unchanged")
            return None
        if mapped.status == "cancelled" and (link is None or not link.ss_order_id):
            item = PlanItem(
                "skip", "order", mapped.order_key, "cancelled in Plex, never sent", number
            )
            await self._note(rt, result, item, "skipped", dry_run, **refs)
            return None
        action = "cancel" if mapped.status == "cancelled" else "update" if link else "create"
        decision = Decision(
            action,
            mapped.order_key,
            mapped.plex_order_id,
            mapped.group_key,
            mapped.content_hash,
            mapped.release_ids,
            mapped.order,
            link_version(link),
        )
        plan = self._plan(decision)
        if mapped.warnings:
            # shown in the plan (dry run) and the "what was done" table
            reason = "; ".join((plan.reason, *mapped.warnings))
            plan = replace(
                plan, reason=reason, details={**plan.details, "warnings": mapped.warnings}
            )
        result.add(plan, would(decision) if dry_run else None)
        return decision

    async def _disappeared(
        self, rt: ConnectionRuntime, link: Link, result: FlowResult, dry_run: bool
    ) -> Decision | None:
        """A linked group has no open release any more: cancel its ShipStation order."""
        refs = {"order_key": link.order_key, "plex_order_id": link.plex_order_id}
        if is_frozen(link) or not link.ss_order_id:
            return None  # already closed in ShipStation, or never created there
        try:
            current = await rt.ss_v1.get_order(int(link.ss_order_id))
        except SkipRecordError as exc:
            item = PlanItem(
                "skip", "order", link.order_key, f"cannot read ShipStation order: {exc}"
            )
            await self._note(rt, result, item, "skipped", dry_run, **refs)
            return None
        if current.is_frozen:
            reason = f"ShipStation order is {current.order_status}"
            if not dry_run:
                await rt.store.set_link_status(
                    rt.name, link.order_key, current.order_status or "", frozen_reason=reason
                )
            item = PlanItem("skip", "order", link.order_key, f"frozen: {reason}")
            await self._note(rt, result, item, "frozen", dry_run, **refs)
            return None
        current.order_status = "cancelled"
        decision = Decision(
            "cancel",
            link.order_key,
            link.plex_order_id,
            link.group_key,
            content_hash(current),
            tuple(link.release_ids),
            current,
            link_version(link),
        )
        result.add(
            self._plan(decision, "no open release left in Plex"), "cancelled" if dry_run else None
        )
        return decision

    @staticmethod
    def _plan(decision: Decision, reason: str = "") -> PlanItem:
        order = decision.order
        return PlanItem(
            decision.action,
            "order",
            decision.order_key,
            reason
            or {"create": "new", "update": "changed in Plex"}.get(
                decision.action, "cancelled in Plex"
            ),
            {
                "order_number": order.order_number,
                "status": order.order_status,
                "items": [(i.line_item_key, i.sku, i.quantity) for i in order.items or []],
                "hash": decision.content_hash,
            },
        )

    async def _note(
        self,
        rt: ConnectionRuntime,
        result: FlowResult,
        item: PlanItem,
        counter: str,
        dry_run: bool,
        **refs: Any,
    ) -> None:
        """Add a skip to the plan and, unless dry-run, to the audit trail."""
        result.add(item, counter)
        if not dry_run:
            await audit(
                rt,
                flow=FLOW,
                action="skip",
                outcome=counter,
                details={"reason": item.reason},
                **refs,
            )

    # --- sending -------------------------------------------------------------------------------
    async def send(
        self, rt: ConnectionRuntime, decisions: Sequence[Decision], result: FlowResult
    ) -> None:
        """Queue and send these decisions (``createorders`` batches of up to 100); the
        backfill's way in."""
        sender = _Sender(self, rt, result)
        await sender.add(decisions)
        await sender.flush()

    async def _send_batch(
        self,
        rt: ConnectionRuntime,
        box: Outbox,
        sent: Sequence[tuple[Decision, Operation]],
        result: FlowResult,
    ) -> None:
        """Send one ``createorders`` batch of operations already marked ``sent``; the orders
        that landed are confirmed, linked and audited in one transaction."""
        try:
            outcomes = await rt.ss_v1.create_orders(
                [Order.model_validate(op.payload["order"]) for _, op in sent]
            )
        except (RetryableError, FatalError) as exc:
            for decision, op in sent:
                failed = await box.fail(
                    op, exc, action=decision.action, raise_fatal=False, **refs_of(decision)
                )
                result.count("failed")
                result.settle(("order", decision.order_key), failed.state.value, str(exc))
            if stops_pass(exc):  # a connection-level fatal error; one operation's goes dead
                raise
            result.errors.append(str(exc))
            return
        landed: list[tuple[Operation, str | None, dict[str, Any]]] = []
        links: list[Link] = []
        refused: list[tuple[Decision, Operation, str, bool]] = []
        for (decision, op), outcome in zip(sent, outcomes, strict=True):
            if outcome.success and outcome.order_id is not None:
                ref = str(outcome.order_id)
                refs = {
                    "action": decision.action,
                    "ss_order_id": outcome.order_id,
                    "ss_order_number": outcome.order_number,
                    **refs_of(decision),
                }
                landed.append((op, ref, refs))
                links.append(link_of(rt, op.payload, ref, decision.order.order_status))
                result.count(would(decision))
                continue
            message = outcome.error_message or "ShipStation did not accept the order"
            refused.append((decision, op, message, outcome.frozen))
        if landed:
            await box.confirm_many(landed, links=links)
        # the batch answered HTTP 200; its request id still finds the exchange
        request_id = rt.last_request.request_id if rt.last_request else None
        for decision, op, message, frozen in refused:
            error: ConnectorError
            if frozen:
                error = FrozenRecordError(message, record=decision.order_key, request_id=request_id)
                await freeze_link(rt, op.payload, message)
                result.count("frozen")
                result.settle(("order", decision.order_key), "frozen", message)
            else:
                error = RemoteValidationError(
                    message, record=decision.order_key, request_id=request_id
                )
                result.count("failed")
                result.errors.append(f"{decision.order_key}: {message}")
            failed = await box.fail(op, error, action=decision.action, **refs_of(decision))
            if not frozen:
                result.settle(("order", decision.order_key), failed.state.value, message)

    # --- one operation (retries, replays) and crash recovery -----------------------------------
    async def execute(self, rt: ConnectionRuntime, op: Operation) -> str | None:
        """Send one queued order with ``createorder`` (upsert by orderKey)."""
        done = await precheck(rt, op)
        if done is not None:
            return done  # this content is already in ShipStation
        payload = op.payload
        try:
            answer = await rt.ss_v1.create_or_update_order(Order.model_validate(payload["order"]))
        except FrozenRecordError as exc:
            await freeze_link(rt, payload, exc.message)
            raise
        ref = str(answer.order_id) if answer.order_id is not None else None
        await save_link(rt, payload, ref, answer.order_status)
        return ref

    async def execute_batch(self, rt: ConnectionRuntime, ops: Sequence[Operation]) -> FlowResult:
        """Send due operations in ``createorders`` batches (after an outage, 100 orders per
        request instead of one): the same checks as :meth:`execute`, then per-order results."""
        result = FlowResult(FLOW, rt.name)
        box = Outbox(rt, FLOW)
        known = await rt.store.get_links(rt.name, [op.payload["order_key"] for op in ops])
        ready: list[tuple[Decision, Operation]] = []
        for op in ops:
            decision = decision_of(op)
            try:
                done = check_link(op, known.get(decision.order_key))
            except (FrozenRecordError, StaleOperationError) as exc:
                await box.fail(op, exc, action=decision.action, **refs_of(decision))
                stale = isinstance(exc, StaleOperationError)
                result.add(
                    PlanItem("skip", "order", decision.order_key, str(exc)),
                    "skipped" if stale else "frozen",
                )
                continue
            if done is not None:
                await box.confirm(op, done, action="resolve", **refs_of(decision))
                result.add(
                    PlanItem("confirm", "order", decision.order_key, "already there"), "unchanged"
                )
                continue
            ready.append((decision, op))
        for start in range(0, len(ready), self.batch_size):
            batch = ready[start : start + self.batch_size]
            sent = {op.id: op for op in await box.mark_sent_many([op for _, op in batch])}
            await self._send_batch(
                rt, box, [(d, sent[op.id]) for d, op in batch if op.id in sent], result
            )
        return result

    async def resolve(self, rt: ConnectionRuntime, op: Operation) -> Resolution:
        """Is what this operation sent in ShipStation? Looked up by orderNumber + orderKey."""
        payload = op.payload
        number = payload["order"].get("orderNumber")
        if not number:
            return False
        async for remote in rt.ss_v1.iter_orders(order_number=number):
            if remote.order_key == payload["order_key"]:
                return await _landed(rt, payload, remote)
        return False

    async def resolve_batch(
        self, rt: ConnectionRuntime, ops: Sequence[Operation]
    ) -> dict[int, Resolution]:
        """Resolve a crashed batch with list reads: the orders ShipStation modified since the
        earliest send (minus :data:`RECOVERY_MARGIN` for clock skew), paged, matched by
        ``orderKey``; the read stops once every order is found. An operation sent longer ago
        than :data:`RECOVERY_HORIZON` is looked up on its own (a window that old could hold
        every order of the account)."""
        now = rt.clock.now()
        answers: dict[int, Resolution] = {}
        recent: dict[str, list[Operation]] = {}
        for op in ops:
            if op.updated_at < now - RECOVERY_HORIZON:
                answers[op.id] = await self.resolve(rt, op)
            else:
                recent.setdefault(op.payload["order_key"], []).append(op)
        if not recent:
            return answers
        since = min(op.updated_at for group in recent.values() for op in group)
        async for remote in rt.ss_v1.iter_orders(modify_date_start=since - RECOVERY_MARGIN):
            group = recent.pop(remote.order_key or "", None)
            for op in group or ():
                answers[op.id] = await _landed(rt, op.payload, remote)
            if not recent:
                break  # every order found: the pages left are not read
        for group in recent.values():
            for op in group:
                answers[op.id] = False  # not modified since it was sent: it never landed
        return answers


async def _landed(rt: ConnectionRuntime, payload: dict[str, Any], remote: Order) -> Resolution:
    """The resolution of ``payload`` given the ShipStation order with its orderKey."""
    if remote.order_id is None or not same_content(payload["order"], remote):
        return False  # an older version is there: send ours
    await save_link(rt, payload, str(remote.order_id), remote.order_status)
    return str(remote.order_id)


@dataclass
class _Pass:
    """What a pass carries from one read window to the next: counts, the quarantined orders
    not decided yet, and the releases whose order was not found yet (usually none)."""

    retry: set[str]
    orders: int = 0
    releases: int = 0
    orphans: list[tuple[str, str]] = field(default_factory=list)


class _Sender:
    """Collects decisions as they are made and sends them in full ``createorders`` batches, so a
    run never holds more than one batch (plus one chunk of decisions) of unsent orders.

    A batch costs two transactions: its operations are enqueued (keys fixed) and the ready ones
    marked ``sent`` together, just before the request leaves; the orders that landed are then
    confirmed, linked and audited together. Decisions waiting for a full batch are not in the
    outbox yet: if the run dies, the cursor has not moved and the next run decides them again.
    """

    def __init__(self, flow: OrdersFlow, rt: ConnectionRuntime, result: FlowResult) -> None:
        self.flow = flow
        self.rt = rt
        self.result = result
        self.box = Outbox(rt, FLOW)
        #: decisions not sent yet, by orderKey
        self.waiting: dict[str, Decision] = {}

    async def add(self, decisions: Sequence[Decision]) -> None:
        """Queue decisions; send every full batch. A newer decision for an order still waiting
        (decided again in a later read window, e.g. through a release's order id) replaces it:
        the older one was never enqueued."""
        for decision in decisions:
            self.waiting[decision.order_key] = decision
        size = self.flow.batch_size
        while len(self.waiting) >= size:
            keys = list(itertools.islice(self.waiting, size))
            await self._send([self.waiting.pop(key) for key in keys])

    async def flush(self) -> None:
        """Send what is left (the last, partial batch)."""
        batch, self.waiting = list(self.waiting.values()), {}
        if batch:
            await self._send(batch)

    async def _send(self, decisions: Sequence[Decision]) -> None:
        rt, box = self.rt, self.box
        items = [(KIND_UPSERT, d.idempotency_key, d.payload()) for d in decisions]
        queued = await box.enqueue_many(items, claim=True)
        relinked: list[Link] = []
        batch: list[tuple[Decision, Operation]] = []
        claimed: set[int] = set()
        for decision, enqueued in zip(decisions, queued, strict=True):
            op = enqueued.operation
            if op.state is OperationState.CONFIRMED:
                status = op.payload["order"].get("orderStatus")
                relinked.append(link_of(rt, op.payload, op.remote_ref, status))
            elif enqueued.claimed and op.id not in claimed:
                claimed.add(op.id)
                batch.append((decision, op))
            elif not enqueued.claimed:
                reason = box.why_not_ready(op)
                self.result.add(PlanItem("skip", "order", decision.order_key, reason), "skipped")
        if relinked:
            await rt.store.settle_batch(links=relinked)
        if batch:
            await self.flow._send_batch(rt, box, batch, self.result)
