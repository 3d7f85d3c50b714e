"""The shipments flow: ShipStation shipments and fulfilments → Plex write-backs (and reversals).

One run:

1. **inbox** — every pending webhook delivery of the connection is parsed, its ``resource_url``
   checked against the V1 allow-list and followed (a foreign URL is refused before any request
   and the item finished as rejected, audited); the records it points at go down step 3;
2. **polls** — ``/shipments`` by ``createDate`` and by ``voidDate``, ``/fulfillments`` by
   ``createDate``, each with its own cursor (:mod:`.shipments_source`); records go down step 3;
   the cursors advance at the end of the run;
3. **one idempotent path** — a record's ``orderKey`` (fulfilments: ``orderId``) finds the
   :class:`~mlconnector.store.Link`; not ours → skipped with the reason. Each shipped
   ``lineItemKey`` is a Plex release of the link; the operation ``ss-shipment-{id}``
   (``ss-fulfillment-{id}``) is enqueued, its lines recorded in ``shipment_lines`` (so the
   inventory flow subtracts them until written back), and sent through the Plex write strategy,
   which looks in Plex for an earlier attempt before it writes (look before re-send).
   A webhook and a poll, or a duplicate delivery, meet the same key: one Plex write.
4. **voids** — a voided label that was written back is reversed once (``ss-void-{id}``, the
   strategy's ``reverse``); a strategy that cannot reverse (customer shippers) raises a
   per-operation fatal error: the operation goes ``dead`` once (audited ``needs_operator``, one
   alert, with the operator hint) on every path — this pass, a retry, crash recovery, a replay —
   and the pass goes on. A label voided before
   its write-back is recorded and never written back.

``resolve`` (crash recovery) asks Plex (``find_existing``) whether the write landed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mlconnector.errors import (
    ConnectorError,
    ForeignURLError,
    FrozenRecordError,
    RetryableError,
    SkipRecordError,
)
from mlconnector.lenient import Unreadable
from mlconnector.plex import (
    Release,
    ReversalNotSupportedError,
    ShipmentLine,
    ShipmentWrite,
    WriteResult,
)
from mlconnector.plex.writeback import SHIPPED_INVENTORY, shipper_is_shipped
from mlconnector.shipstation import MalformedDeliveryError, parse_delivery
from mlconnector.shipstation.webhooks import V1_ORDER_EVENTS
from mlconnector.store import InboxItem, Link, Operation, OperationState
from mlconnector.sync.base import FlowResult, PlanItem, Resolution, StaleOperationError, audit
from mlconnector.sync.cursor import (
    DEFAULT_INITIAL_LOOKBACK,
    DEFAULT_OVERLAP,
    DEFAULT_SAFETY_LAG,
    advance,
    read_bound,
    read_window,
)
from mlconnector.sync.outbox import Outbox
from mlconnector.sync.quarantine import QuarantineBook
from mlconnector.sync.runtime import ConnectionRuntime
from mlconnector.sync.shipments_source import (
    POLLS,
    PollCursors,
    Shipped,
    from_fulfillment,
    from_shipment,
    retry_unreadable,
    shipped_records,
    unreadable_entries,
)
from mlconnector.timezones import format_utc_z, parse_utc_z

FLOW = "shipments"
KIND_WRITE = "plex.shipment.write_back"
KIND_REVERSE = "plex.shipment.reverse"

#: inbox items read per store query
INBOX_PAGE = 100
#: V1 events that never carry a shipment to write back
IGNORED_EVENTS = V1_ORDER_EVENTS | {"FULFILLMENT_REJECTED"}
#: the poll that reads (by creation date) every record a V1 delivery of this type points at
COVERING_POLL = {
    "SHIP_NOTIFY": "created",
    "ITEM_SHIP_NOTIFY": "created",
    "FULFILLMENT_SHIPPED": "fulfillments",
}

_S = OperationState


def op_key(connection: str, reference: str) -> str:
    """The outbox key of a Plex write-back: ``shipments:{connection}:{reference}`` (the operations
    key is unique across connections; the Plex reference itself is ``ss-shipment-{id}``)."""
    return f"{FLOW}:{connection}:{reference}"


@dataclass
class _Run:
    result: FlowResult
    box: Outbox
    book: QuarantineBook
    #: (source id, voided) pairs handled this run: a webhook and a poll of the same record
    handled: set[tuple[str, bool]] = field(default_factory=set)
    #: each poll's read window of this run, ``(start, end)``
    spans: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    #: deliveries left to this run's polls: (inbox item id, covering poll), finished after them
    covered: list[tuple[int, str]] = field(default_factory=list)
    #: polls whose window had a record without a readable id (only a later window finds it)
    unretried: set[str] = field(default_factory=set)

    @property
    def dry_run(self) -> bool:
        return self.result.dry_run


def _refs(rec: Shipped, link: Link | None = None) -> dict[str, Any]:
    refs: dict[str, Any] = {
        "shipment_id": rec.source_id,
        "ss_order_id": rec.order_id,
        "ss_order_number": rec.order_number,
        "order_key": rec.order_key or (link.order_key if link else None),
    }
    if link is not None:
        refs["plex_order_id"] = link.plex_order_id
    return refs


def _planned(op: Operation) -> tuple[str, str]:
    """The plan entry (entity, key) of a write-back or reversal operation."""
    if op.kind == KIND_REVERSE:
        return ("void", str(op.payload.get("void_id")))
    return ("shipment", str(op.payload.get("reference")))


class ShipmentsFlow:
    """ShipStation → Plex shipments. Stateless between runs (state lives in the store)."""

    name = FLOW
    kinds = frozenset({KIND_WRITE, KIND_REVERSE})

    def __init__(
        self,
        *,
        overlap: timedelta = DEFAULT_OVERLAP,
        safety_lag: timedelta = DEFAULT_SAFETY_LAG,
        initial_lookback: timedelta = DEFAULT_INITIAL_LOOKBACK,
        inbox_limit: int = 1000,
    ) -> None:
        self.overlap = overlap
        self.safety_lag = safety_lag
        self.initial_lookback = initial_lookback
        self.inbox_limit = inbox_limit

    # --- one run -------------------------------------------------------------------------------
    async def run(self, rt: ConnectionRuntime, *, dry_run: bool = False) -> FlowResult:
        """One pass: the inbox, then the polls (see the module doc)."""
        result = FlowResult(FLOW, rt.name, dry_run=dry_run)
        run = _Run(
            result,
            Outbox(rt, FLOW, direction="ss->plex", entity="shipment"),
            QuarantineBook(rt, FLOW, result, dry_run),
        )
        await run.book.load()
        stored = await rt.store.get_cursor(rt.name, FLOW)
        cursors = PollCursors.from_json(stored.value if stored else None)
        now = rt.clock.now()
        for poll in POLLS:
            run.spans[poll] = read_window(
                cursors.get(poll),
                now,
                overlap=self.overlap,
                safety_lag=self.safety_lag,
                initial_lookback=self.initial_lookback,
            )
        deliveries = await self._inbox(rt, run)
        # quarantined records are re-read by id (the cursors moved past them)
        for rec in await retry_unreadable(rt.ss_v1, run.book):
            run.result.count("read")
            await self._handle(rt, run, rec)
        windows = await self._poll(rt, run, cursors)
        await self._finish_covered(rt, run)
        if not dry_run:
            await audit(
                rt,
                flow=FLOW,
                action="read",
                outcome="ok",
                entity="shipment",
                direction="ss->plex",
                details={
                    "webhooks": deliveries,
                    "webhooks_left_to_poll": len(run.covered),
                    "windows": windows,
                    **result.counts(),
                },
            )
        return result

    async def _note(
        self, rt: ConnectionRuntime, run: _Run, item: PlanItem, counter: str, **refs: Any
    ) -> None:
        """Add a skip to the plan and, unless dry-run, to the audit trail."""
        run.result.add(item, counter)
        if not run.dry_run:
            await run.box.record(
                item.action, counter, details={"reason": item.reason, **item.details}, **refs
            )

    # --- source 1: the webhook inbox -----------------------------------------------------------
    async def _inbox(self, rt: ConnectionRuntime, run: _Run) -> int:
        """Every pending delivery, oldest first, page by page, up to ``inbox_limit`` per run. A
        delivery left pending (could not be followed now, or a dry run) is not tried twice."""
        tried: set[int] = set()
        while len(tried) < self.inbox_limit:
            page = await rt.store.pending_webhooks(
                connection=rt.name, limit=INBOX_PAGE + len(tried)
            )
            fresh = [item for item in page if item.id not in tried]
            if not fresh:
                break
            for item in fresh[: self.inbox_limit - len(tried)]:
                tried.add(item.id)
                outcome = await self._delivery(rt, run, item)
                if outcome is not None and not run.dry_run:
                    await rt.store.finish_webhook(item.id, outcome)
        return len(tried)

    async def _delivery(self, rt: ConnectionRuntime, run: _Run, item: InboxItem) -> str | None:
        """Process one delivery; the outcome to finish it with (``None``: leave it pending)."""
        key = f"webhook {item.id}"
        try:
            delivery = parse_delivery(item.body)
        except MalformedDeliveryError as exc:
            plan = PlanItem("reject", "webhook", key, str(exc))
            await self._note(rt, run, plan, "skipped", entity="webhook", error=exc)
            return f"rejected: {exc.message}"
        if delivery.is_v2 or delivery.resource_type in IGNORED_EVENTS:
            # Not a V1 shipment pointer (a rejected fulfilment shipped nothing): the /shipments
            # and /fulfillments polls are the truth.
            return f"ignored: {delivery.resource_type} (the shipments poll covers it)"
        poll = COVERING_POLL.get(delivery.resource_type)
        if poll is not None and self._poll_covers(run.spans[poll], item.received_at):
            # Not followed: this run's poll reads every record it points at (one V1 request
            # per page instead of one per delivery); finished once the poll has run.
            run.covered.append((item.id, poll))
            return None
        try:
            batch = await rt.ss_v1.follow(delivery)
        except ForeignURLError as exc:
            plan = PlanItem("reject", "webhook", key, str(exc), {"hint": exc.hint})
            await self._note(rt, run, plan, "skipped", entity="webhook", error=exc)
            return "rejected: foreign resource_url, nothing was sent"
        except RetryableError as exc:
            run.result.errors.append(f"{key}: {exc}")
            if not run.dry_run:
                await rt.store.record_webhook_attempt(item.id, f"retry: {exc.message}")
                await run.box.record("follow", "failed", entity="webhook", error=exc)
            return None
        except SkipRecordError as exc:
            plan = PlanItem("reject", "webhook", key, str(exc))
            await self._note(rt, run, plan, "failed", entity="webhook", error=exc)
            return f"failed: {exc.message}"
        records = shipped_records(batch.shipments, batch.fulfillments)
        await run.book.put_all(unreadable_entries(batch.unreadable))
        run.result.count("read", len(records))
        for rec in records:
            await self._handle(rt, run, rec)
        return f"ok: {len(records)} record(s)"

    def _poll_covers(self, span: tuple[datetime, datetime], received_at: datetime) -> bool:
        """Whether the poll reading ``span`` sees every record of a delivery received then.

        ShipStation sends a ship hook when the label (fulfilment) is created, so its records
        were created before it was received, and — the bound the cursors' overlap already rests
        on — not more than ``overlap`` before. Received in ``[start + overlap, end −
        safety_lag]``, they lie inside ``[start, end]`` even with the clocks a safety lag apart.
        A delivery received later (a fresh one: the webhook's point is latency) is followed.
        """
        start, end = span
        return start + self.overlap <= received_at <= end - self.safety_lag

    async def _finish_covered(self, rt: ConnectionRuntime, run: _Run) -> None:
        """The polls ran to the end: finish the deliveries left to them (a poll that failed
        raised before this, and they stay pending for the next run)."""
        if run.dry_run:
            return
        for item_id, poll in run.covered:
            start, end = run.spans[poll]
            await rt.store.finish_webhook(
                item_id,
                f"ok: read by the {poll} poll ({format_utc_z(start)}..{format_utc_z(end)}), "
                "not followed",
            )

    # --- source 2: the polls -------------------------------------------------------------------
    async def _poll(
        self, rt: ConnectionRuntime, run: _Run, cursors: PollCursors
    ) -> dict[str, list[str]]:
        new = cursors
        windows: dict[str, list[str]] = {}
        for poll in POLLS:
            state = cursors.get(poll)
            start, end = run.spans[poll]
            windows[poll] = [format_utc_z(start), format_utc_z(end)]
            pairs: list[tuple[str, Any]] = []
            found = await self._read(rt, run, poll, start, end)
            read_to = read_bound(end, rt.ss_v1.server_time(), safety_lag=self.safety_lag)
            for rec, stamp in found:
                pairs.append((str(rec.ss_id), stamp))
                if state.is_new(str(rec.ss_id), stamp):
                    run.result.count("read")
                    await self._handle(rt, run, rec)
            whole = poll not in run.unretried
            moved = advance(
                state, pairs, end, overlap=self.overlap, read_through=read_to if whole else None
            )
            new = new.with_state(poll, moved)
        if not run.dry_run and new != cursors:
            stored_value = new.to_json()
            await rt.store.set_cursor(rt.name, FLOW, stored_value)
            run.result.cursor = stored_value
        return windows

    async def _read(
        self, rt: ConnectionRuntime, run: _Run, poll: str, start: Any, end: Any
    ) -> list[tuple[Shipped, Any]]:
        """The records of one poll with the timestamp its cursor follows; unreadable ones are
        quarantined (and retried by id on later passes)."""
        found: list[tuple[Shipped, Any]] = []
        problems: list[Unreadable] = []
        if poll == "fulfillments":
            async for fulfillment in rt.ss_v1.iter_fulfillments(
                create_date_start=start, create_date_end=end, on_unreadable=problems.append
            ):
                rec = from_fulfillment(fulfillment)
                if rec is not None:
                    found.append((rec, rec.create_date))
            await self._set_aside(run, poll, problems)
            return found
        window = (
            {"create_date_start": start, "create_date_end": end}
            if poll == "created"
            else {"void_date_start": start, "void_date_end": end}
        )
        async for shipment in rt.ss_v1.iter_shipments(
            include_shipment_items=True, on_unreadable=problems.append, **window
        ):
            rec = from_shipment(shipment)
            if rec is None or (poll == "voided" and not rec.voided):
                continue
            found.append((rec, rec.create_date if poll == "created" else rec.void_date))
        await self._set_aside(run, poll, problems)
        return found

    @staticmethod
    async def _set_aside(run: _Run, poll: str, problems: list[Unreadable]) -> None:
        entries = unreadable_entries(problems)
        if not all(e.retry_key for e in entries):
            run.unretried.add(poll)
        await run.book.put_all(entries)

    # --- the one idempotent path ---------------------------------------------------------------
    async def _handle(self, rt: ConnectionRuntime, run: _Run, rec: Shipped) -> None:
        if (rec.source_id, rec.voided) in run.handled:
            return
        run.handled.add((rec.source_id, rec.voided))
        if rec.voided:
            await self._void(rt, run, rec)
            return
        key = op_key(rt.name, rec.source_id)
        existing = await rt.store.get_operation_by_key(key)
        if existing is not None and existing.state is _S.CONFIRMED:
            run.result.add(PlanItem("skip", "shipment", rec.source_id, "already written back"))
            run.result.count("unchanged")
            return
        if await rt.store.get_operation_by_key(op_key(rt.name, rec.void_id)) is not None:
            reason = "the label was voided before it was written back; never written back"
            await self._note(
                rt,
                run,
                PlanItem("skip", "shipment", rec.source_id, reason),
                "skipped",
                **_refs(rec),
            )
            return
        link, order_items = await self._link(rt, rec)
        if link is None:
            reason = (
                f"not ours: no link for ShipStation order {rec.order_key or rec.order_id} "
                f"({rec.order_number or '?'})"
            )
            await self._note(
                rt,
                run,
                PlanItem("skip", "shipment", rec.source_id, reason),
                "skipped",
                **_refs(rec),
            )
            return
        lines, foreign = self._lines(rec, link, order_items)
        if not lines:
            reason = f"no shipped line is a Plex release of {link.order_key}"
            item = PlanItem("skip", "shipment", rec.source_id, reason, {"items": foreign})
            await self._note(rt, run, item, "skipped", **_refs(rec, link))
            return
        payload = self._payload(rt, rec, link, lines)
        plan = PlanItem(
            "write_back",
            "shipment",
            rec.source_id,
            "shipped in ShipStation",
            {"lines": lines, "ignored_items": foreign, "ship_date": payload["ship_date"]},
        )
        if run.dry_run:
            run.result.add(plan, "written_back")
            return
        enqueued = await run.box.enqueue(KIND_WRITE, key, payload)
        for line in lines:
            await rt.store.record_shipment_line(
                rt.name, rec.source_id, line["release_id"], line["quantity"], sku=line["sku"]
            )
        run.result.add(plan)
        # Inserted by this very call: no attempt under this reference can have reached Plex
        # (every write happens after mark_sent of this row), so the write need not look first.
        await self._submit(
            rt, run, enqueued.operation, _refs(rec, link), first_attempt=enqueued.created
        )

    async def _link(
        self, rt: ConnectionRuntime, rec: Shipped
    ) -> tuple[Link | None, list[dict[str, Any]]]:
        """The link of the record's order; for a fulfilment also the order's items (it has none)."""
        if rec.kind == "shipment":
            link = await rt.store.get_link(rt.name, rec.order_key) if rec.order_key else None
            if link is None and rec.order_id is not None:
                found = await rt.store.find_links(rt.name, ss_order_id=str(rec.order_id))
                link = found[0] if found else None
            return link, []
        if rec.order_id is None:
            return None, []
        order = await rt.ss_v1.get_order(rec.order_id)
        link = await rt.store.get_link(rt.name, order.order_key) if order.order_key else None
        if link is None:
            found = await rt.store.find_links(rt.name, ss_order_id=str(rec.order_id))
            link = found[0] if found else None
        items = [
            {"line_item_key": (i.line_item_key or "").lower(), "sku": i.sku, "quantity": i.quantity}
            for i in order.items or []
            if not i.adjustment
        ]
        return link, items

    @staticmethod
    def _lines(
        rec: Shipped, link: Link, order_items: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Shipped quantity per release of the link, and the items that are not ours."""
        releases = {r.lower() for r in link.release_ids}
        if rec.items is not None:
            raw = [(i.line_item_key, i.sku, i.quantity) for i in rec.items]
        else:
            raw = [(i["line_item_key"], i["sku"], int(i["quantity"] or 0)) for i in order_items]
        totals: dict[str, dict[str, Any]] = {}
        foreign: list[str] = []
        for key, sku, quantity in raw:
            if not key or key not in releases:
                foreign.append(f"{sku or '?'} (lineItemKey {key or 'none'})")
                continue
            if quantity <= 0:
                continue
            line = totals.setdefault(key, {"release_id": key, "sku": sku, "quantity": 0})
            line["quantity"] += quantity
        return [totals[k] for k in sorted(totals)], foreign

    @staticmethod
    def _payload(
        rt: ConnectionRuntime, rec: Shipped, link: Link, lines: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {
            "reference": rec.source_id,
            "void_id": rec.void_id,
            "ss_kind": rec.kind,
            "ss_id": rec.ss_id,
            "ss_order_id": rec.order_id,
            "order_number": rec.order_number,
            "order_key": link.order_key,
            "plex_order_id": link.plex_order_id,
            "carrier": rec.carrier,
            "service": rec.service,
            "tracking_number": rec.tracking_number,
            "ship_date": format_utc_z(rec.ship_instant(rt.clock.now())),
            "lines": lines,
        }

    # --- voided labels -------------------------------------------------------------------------
    async def _void(self, rt: ConnectionRuntime, run: _Run, rec: Shipped) -> None:
        refs = _refs(rec)
        void_key = op_key(rt.name, rec.void_id)
        existing = await rt.store.get_operation_by_key(void_key)
        if existing is not None:
            if existing.state is _S.CONFIRMED:
                run.result.add(PlanItem("skip", "void", rec.void_id, "void already handled"))
                run.result.count("unchanged")
            elif not run.box.ready(existing):
                reason = run.box.why_not_ready(existing)
                run.result.add(PlanItem("skip", "void", rec.void_id, reason), "skipped")
            elif not run.dry_run:
                await self._submit(rt, run, existing, refs)
            return
        write = await rt.store.get_operation_by_key(op_key(rt.name, rec.source_id))
        lines = await rt.store.get_shipment_lines(rt.name, rec.source_id)
        written = any(line.written_back_at for line in lines) or (
            write is not None and write.state in (_S.CONFIRMED, _S.SENT)
        )
        payload = {
            "reference": rec.source_id,
            "void_id": rec.void_id,
            "written_back": written,
            "void_date": format_utc_z(rec.void_date) if rec.void_date else None,
        }
        if not written:
            await self._void_unwritten(rt, run, rec, write, payload)
            return
        plan = PlanItem("reverse", "void", rec.void_id, "voided after it was written back")
        if run.dry_run:
            run.result.add(plan, "cancelled")
            return
        run.result.add(plan)
        op = (await run.box.enqueue(KIND_REVERSE, void_key, payload)).operation
        await self._submit(rt, run, op, refs)

    async def _void_unwritten(
        self,
        rt: ConnectionRuntime,
        run: _Run,
        rec: Shipped,
        write: Operation | None,
        payload: dict[str, Any],
    ) -> None:
        """A label voided before its write-back: record the void so it is never written back."""
        reason = "voided before it was written back: recorded, never written back to Plex"
        plan = PlanItem("record_void", "void", rec.void_id, reason)
        run.result.add(plan, "skipped")
        if run.dry_run:
            return
        op = (await run.box.enqueue(KIND_REVERSE, op_key(rt.name, rec.void_id), payload)).operation
        await run.box.confirm(await run.box.mark_sent(op), None, action="void", **_refs(rec))
        if write is not None and write.state in (_S.PENDING, _S.FAILED):
            retired = await rt.store.fail(
                write.id, reason, next_attempt_at=rt.clock.now(), max_attempts=1
            )
            await run.box.record("write_back", "superseded", op=retired, details={"reason": reason})
        # Close the recorded lines so the inventory flow stops subtracting them: stamped written
        # back and reversed at the same instant (no Plex write was made; the audit says so).
        for line in await rt.store.get_shipment_lines(rt.name, rec.source_id):
            await rt.store.mark_line_written_back(rt.name, rec.source_id, line.line_key)
            await rt.store.mark_line_reversed(rt.name, rec.source_id, line.line_key)

    # --- sending -------------------------------------------------------------------------------
    async def _submit(
        self,
        rt: ConnectionRuntime,
        run: _Run,
        op: Operation,
        refs: dict[str, Any],
        *,
        first_attempt: bool = False,
    ) -> None:
        """Send ``op`` if it is ready; count and audit what happened. ``first_attempt``: ``op``
        was created by the caller just now (a write-back then skips the look-before-send)."""
        result, box = run.result, run.box
        action = "reverse" if op.kind == KIND_REVERSE else "write_back"
        if op.state is _S.CONFIRMED:
            result.count("unchanged")
            return
        if not box.ready(op):
            result.add(PlanItem("skip", "operation", op.idempotency_key, box.why_not_ready(op)))
            result.count("skipped")
            return
        sent = await box.mark_sent(op)
        try:
            ref = await self._execute(rt, sent, first_attempt=first_attempt and op.attempts == 0)
        except ConnectorError as exc:
            # a per-operation fatal error (a void Plex cannot reverse, an inventory move left to
            # an operator) goes dead at once with one alert inside fail; the pass goes on
            failed = await box.fail(sent, exc, action=action, **refs)
            if isinstance(exc, StaleOperationError | FrozenRecordError):
                result.count("skipped")
            else:
                result.count("failed")
                result.settle(_planned(op), failed.state.value, str(exc))
                result.errors.append(f"{op.idempotency_key}: {exc} ({failed.state.value})")
            return
        await box.confirm(sent, ref, action=action, remote_ids={"plex": ref}, **refs)
        result.count("cancelled" if op.kind == KIND_REVERSE else "written_back")

    # --- one operation (retries, replays) and crash recovery -----------------------------------
    async def execute(self, rt: ConnectionRuntime, op: Operation) -> str | None:
        """Write one shipment to Plex (or reverse one); return the Plex record id. Used by
        retries, replays and crash recovery: the strategy looks in Plex before it writes."""
        return await self._execute(rt, op, first_attempt=False)

    async def _execute(
        self, rt: ConnectionRuntime, op: Operation, *, first_attempt: bool
    ) -> str | None:
        if op.kind == KIND_REVERSE:
            return await self._reverse(rt, op)
        payload = op.payload
        reference = payload["reference"]
        if await rt.store.get_operation_by_key(op_key(rt.name, payload["void_id"])) is not None:
            raise StaleOperationError(
                f"the ShipStation label of {reference} was voided before it was written back "
                "to Plex; it is never written back",
                record=reference,
            )
        write, releases = await self._shipment_write(rt, payload)
        # Unless this is the operation's first attempt, write_shipment looks in Plex first
        # (find_existing by the reference in the note or the inventory shipment code) and
        # resumes or confirms an earlier attempt: one Plex write. The releases just read are
        # passed on, so the strategy need not read them again.
        done: WriteResult = await rt.writer.write_shipment(
            write, first_attempt=first_attempt, releases=releases
        )
        await self._mark_written(rt, reference)
        return done.shipper_id or done.inventory_shipment_id or reference

    async def _shipment_write(
        self, rt: ConnectionRuntime, payload: dict[str, Any]
    ) -> tuple[ShipmentWrite, list[Release]]:
        """The strategy's input: each release with its part (release → order line → part), and
        the shipped releases as just read (open quantities for the strategy's plan)."""
        reference = payload["reference"]
        # By the order's lines (Plex's release ``id`` filter takes a single value; reference
        # §2.2): two requests whatever the number of shipped releases.
        order_lines = await rt.plex.list_order_lines(payload["plex_order_id"])
        part_of_line = {line.id.lower(): line.part_id for line in order_lines}
        found = await rt.plex.list_releases_for_lines(part_of_line) if part_of_line else []
        releases = {r.id.lower(): r for r in found}
        lines: list[ShipmentLine] = []
        shipped: list[Release] = []
        for line in payload["lines"]:
            release = releases.get(line["release_id"])
            part_id = part_of_line.get((release.order_line_id or "").lower()) if release else None
            if release is None or not part_id:
                raise SkipRecordError(
                    f"{reference}: Plex release {line['release_id']} (or its part) is not on "
                    f"order {payload['plex_order_id']}",
                    record=reference,
                    hint="check the release in Plex, then replay the operation",
                )
            lines.append(ShipmentLine(release.id, part_id, float(line["quantity"])))
            shipped.append(release)
        write = ShipmentWrite(
            reference=reference,
            carrier=payload.get("carrier"),
            service=payload.get("service"),
            tracking_number=payload.get("tracking_number"),
            ship_date=parse_utc_z(payload["ship_date"]),
            lines=tuple(lines),
            order_id=payload["plex_order_id"],
        )
        return write, shipped

    async def _mark_written(self, rt: ConnectionRuntime, reference: str) -> None:
        for line in await rt.store.get_shipment_lines(rt.name, reference):
            await rt.store.mark_line_written_back(rt.name, reference, line.line_key)

    async def _reverse(self, rt: ConnectionRuntime, op: Operation) -> str | None:
        payload = op.payload
        reference = payload["reference"]
        if not payload.get("written_back"):
            return None  # a void recorded before any write-back: nothing to undo in Plex
        reverse = getattr(rt.writer, "reverse", None)
        if reverse is None:
            raise ReversalNotSupportedError(
                f"the {rt.writer.name} write strategy cannot reverse {reference}",
                record=reference,
                hint="reverse the shipment in Plex by hand",
            )
        done: WriteResult = await reverse(reference)
        for line in await rt.store.get_shipment_lines(rt.name, reference):
            await rt.store.mark_line_reversed(rt.name, reference, line.line_key)
        return done.inventory_shipment_id or done.shipper_id or payload["void_id"]

    async def resolve(self, rt: ConnectionRuntime, op: Operation) -> Resolution:
        """Did the write (or the reversal) land in Plex? Looked up by the reference."""
        payload = op.payload
        reference = payload["reference"]
        if op.kind == KIND_REVERSE and not payload.get("written_back"):
            return True
        existing = await rt.writer.find_existing(
            reference, tracking_number=payload.get("tracking_number")
        )
        inventory = existing.inventory_shipment
        shipped_inventory = (
            inventory is not None and (inventory.shipment_status or "").lower() in SHIPPED_INVENTORY
        )
        shipped_shipper = existing.shipper is not None and shipper_is_shipped(existing.shipper)
        if op.kind == KIND_REVERSE:
            # reversed when nothing shipped is left under the reference
            return not (shipped_inventory or shipped_shipper)
        if shipped_inventory or shipped_shipper:
            await self._mark_written(rt, reference)
            if existing.shipper is not None and shipped_shipper:
                return existing.shipper.id
            return inventory.id if inventory is not None else True
        return False  # not there (or left half-done): send again, the strategy resumes it


__all__ = ["FLOW", "KIND_REVERSE", "KIND_WRITE", "ShipmentsFlow", "op_key"]
