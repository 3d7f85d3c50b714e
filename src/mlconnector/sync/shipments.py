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

from collections.abc import Sequence
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
from mlconnector.store import (
    AuditEvent,
    InboxItem,
    Link,
    Operation,
    OperationState,
    QuarantineEntry,
    StagedLine,
    StagedWrite,
    StoreError,
)
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
#: records whose store work is batched together (one look-up, one staging transaction)
STAGE_PAGE = 100
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
        retried = await retry_unreadable(rt.ss_v1, run.book)
        run.result.count("read", len(retried))
        await self._handle_many(rt, run, retried)
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
            finished: list[tuple[int, str]] = []
            try:
                for item in fresh[: self.inbox_limit - len(tried)]:
                    tried.add(item.id)
                    outcome = await self._delivery(rt, run, item)
                    if outcome is not None and not run.dry_run:
                        finished.append((item.id, outcome))
            finally:
                # the page's processed deliveries, in one statement (also when a connection-level
                # error stops the pass: those need not be processed again)
                await rt.store.finish_webhooks(finished)
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
        await self._handle_many(rt, run, records)
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
        outcomes: list[tuple[int, str]] = []
        for item_id, poll in run.covered:
            start, end = run.spans[poll]
            outcomes.append(
                (
                    item_id,
                    f"ok: read by the {poll} poll ({format_utc_z(start)}..{format_utc_z(end)}), "
                    "not followed",
                )
            )
        await rt.store.finish_webhooks(outcomes)

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
            fresh: list[Shipped] = []
            for rec, stamp in found:
                pairs.append((str(rec.ss_id), stamp))
                if state.is_new(str(rec.ss_id), stamp):
                    run.result.count("read")
                    fresh.append(rec)
            await self._handle_many(rt, run, fresh)
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
    async def _handle_many(self, rt: ConnectionRuntime, run: _Run, recs: Sequence[Shipped]) -> None:
        """Send records of one source (a delivery, a poll, the quarantine retries) down the one
        idempotent path, :data:`STAGE_PAGE` at a time: the store work of a page is batched."""
        fresh: list[Shipped] = []
        for rec in recs:
            if (rec.source_id, rec.voided) not in run.handled:
                run.handled.add((rec.source_id, rec.voided))
                fresh.append(rec)
        for start in range(0, len(fresh), STAGE_PAGE):
            await self._handle_page(rt, run, fresh[start : start + STAGE_PAGE])

    async def _handle_page(self, rt: ConnectionRuntime, run: _Run, recs: list[Shipped]) -> None:
        """One page: the operations of every record (and of its void) in one read, the links in
        one or two, the new write-backs staged in one transaction, then sent one by one (one
        transaction each). Voided labels go their own way (:meth:`_void`)."""
        writes = [rec for rec in recs if not rec.voided]
        known = await rt.store.operations_by_keys(
            [op_key(rt.name, ref) for rec in writes for ref in (rec.source_id, rec.void_id)]
        )
        todo: list[Shipped] = []
        for rec in writes:
            existing = known.get(op_key(rt.name, rec.source_id))
            if existing is not None and existing.state is _S.CONFIRMED:
                run.result.add(PlanItem("skip", "shipment", rec.source_id, "already written back"))
                run.result.count("unchanged")
            elif op_key(rt.name, rec.void_id) in known:
                reason = "the label was voided before it was written back; never written back"
                item = PlanItem("skip", "shipment", rec.source_id, reason)
                await self._note(rt, run, item, "skipped", **_refs(rec))
            else:
                todo.append(rec)
        links = await self._links(rt, todo)
        staged: list[tuple[Shipped, Link, PlanItem, StagedWrite]] = []
        for rec in todo:
            link, order_items = links[rec.source_id]
            write = await self._decide(rt, run, rec, link, order_items)
            if write is not None:
                staged.append(write)
        if staged:
            await self._stage_and_send(rt, run, staged)
        for rec in recs:
            if rec.voided:
                await self._void(rt, run, rec)

    async def _decide(
        self,
        rt: ConnectionRuntime,
        run: _Run,
        rec: Shipped,
        link: Link | None,
        order_items: list[dict[str, Any]],
    ) -> tuple[Shipped, Link, PlanItem, StagedWrite] | None:
        """The write-back of one record to stage, or ``None`` (skipped with the reason, or a dry
        run)."""
        if link is None:
            reason = (
                f"not ours: no link for ShipStation order {rec.order_key or rec.order_id} "
                f"({rec.order_number or '?'})"
            )
            item = PlanItem("skip", "shipment", rec.source_id, reason)
            await self._note(rt, run, item, "skipped", **_refs(rec))
            return None
        lines, foreign = self._lines(rec, link, order_items)
        if not lines:
            reason = f"no shipped line is a Plex release of {link.order_key}"
            item = PlanItem("skip", "shipment", rec.source_id, reason, {"items": foreign})
            await self._note(rt, run, item, "skipped", **_refs(rec, link))
            return None
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
            return None
        staged_lines = tuple(
            StagedLine(rec.source_id, line["release_id"], line["quantity"], sku=line["sku"])
            for line in lines
        )
        key = op_key(rt.name, rec.source_id)
        return rec, link, plan, StagedWrite(KIND_WRITE, key, payload, staged_lines)

    async def _stage_and_send(
        self,
        rt: ConnectionRuntime,
        run: _Run,
        staged: list[tuple[Shipped, Link, PlanItem, StagedWrite]],
    ) -> None:
        """Enqueue the page's write-backs with their lines (so the inventory flow subtracts them
        until written back) in one transaction, then send them. A write-back the store refused
        fails alone: counted, audited, and its record quarantined so a later pass reads it."""
        results = await rt.store.stage_batch(rt.name, FLOW, [write for *_, write in staged])
        sends: list[tuple[Operation, dict[str, Any], bool]] = []
        for (rec, link, plan, write), got in zip(staged, results, strict=True):
            refs = _refs(rec, link)
            run.result.add(plan)
            if isinstance(got, StoreError):
                await self._unstaged(run, rec, write, got, refs)
                continue
            if got.created:
                run.box.changed(got.operation)
            sends.append((got.operation, refs, got.created))
        await self._send_page(rt, run, sends)

    async def _unstaged(
        self, run: _Run, rec: Shipped, write: StagedWrite, error: StoreError, refs: dict[str, Any]
    ) -> None:
        run.result.count("failed")
        run.result.settle(("shipment", rec.source_id), "failed", str(error))
        run.result.errors.append(f"{write.idempotency_key}: {error}")
        await run.box.record("write_back", "failed", error=error, **refs)
        if rec.kind == "fulfillment":
            retry_key: str | None = f"fulfillment:{rec.ss_id}"
        else:
            retry_key = f"shipments-of-order:{rec.order_id}" if rec.order_id else None
        entry = QuarantineEntry(
            record_kind=f"ShipStation {rec.kind}",
            record_id=str(rec.ss_id),
            field="(operation)",
            value_excerpt=write.idempotency_key,
            error=str(error),
            what_to_do="the connector reads it again on the next pass; if this repeats, check "
            "the database (its log names the refused value)",
            retry_key=retry_key,
            shipment_id=rec.source_id,
        )
        await run.book.put(entry)

    async def _send_page(
        self, rt: ConnectionRuntime, run: _Run, sends: list[tuple[Operation, dict[str, Any], bool]]
    ) -> None:
        """Send each ready write-back. Each is claimed (``sent``) just before its request leaves,
        in the transaction that settles the one before it (confirmed, lines written back,
        audited): one store transaction per write-back. ``created``: the operation was inserted
        by this pass (its first attempt need not look in Plex first)."""
        result, box = run.result, run.box
        done: tuple[Operation, str | None, AuditEvent] | None = None
        for op, refs, created in sends:
            if op.state is _S.CONFIRMED:
                result.count("unchanged")
                continue
            if not box.ready(op):
                result.add(PlanItem("skip", "operation", op.idempotency_key, box.why_not_ready(op)))
                result.count("skipped")
                continue
            sent = await self._settle_and_claim(rt, run, done, op)
            done = None
            if sent is None:
                reason = f"operation {op.id} is no longer pending (another run took it)"
                result.add(PlanItem("skip", "operation", op.idempotency_key, reason), "skipped")
                continue
            try:
                ref = await self._write_back(rt, sent, first_attempt=created and op.attempts == 0)
            except ConnectorError as exc:
                await self._failed(run, sent, exc, "write_back", refs)
                continue
            event = box.event(
                "write_back",
                "ok",
                op=sent,
                from_last_request=True,
                remote_ids={"plex": ref},
                **refs,
            )
            done = (sent, ref, event)
        await self._settle_and_claim(rt, run, done, None)

    async def _settle_and_claim(
        self,
        rt: ConnectionRuntime,
        run: _Run,
        done: tuple[Operation, str | None, AuditEvent] | None,
        claim: Operation | None,
    ) -> Operation | None:
        """Confirm ``done`` (its lines written back, its audit event) and claim ``claim``, in one
        transaction; the claimed operation (``None`` if it was not pending/failed any more)."""
        if done is None and claim is None:
            return None
        op, ref, event = done if done is not None else (None, None, None)
        confirmed, claimed = await rt.store.settle_and_claim(
            confirms=[(op.id, ref)] if op is not None else [],
            lines_written=[(rt.name, op.payload["reference"])] if op is not None else [],
            events=[event] if event is not None else [],
            claim=[claim.id] if claim is not None else [],
        )
        for settled in confirmed:
            run.box.changed(settled)
            run.result.count("written_back")
        for taken in claimed:
            run.box.changed(taken)
        return claimed[0] if claimed else None

    async def _links(
        self, rt: ConnectionRuntime, recs: list[Shipped]
    ) -> dict[str, tuple[Link | None, list[dict[str, Any]]]]:
        """The link of each record's order, by ``source_id`` (by ``orderKey``, else by
        ShipStation orderId, each in one read); for a fulfilment also the order's items (it has
        none: the order is read from ShipStation)."""
        order_keys: dict[str, str | None] = {}
        items: dict[str, list[dict[str, Any]]] = {}
        for rec in recs:
            order_keys[rec.source_id], items[rec.source_id] = rec.order_key, []
            if rec.kind == "shipment" or rec.order_id is None:
                continue
            order = await rt.ss_v1.get_order(rec.order_id)
            order_keys[rec.source_id] = order.order_key
            items[rec.source_id] = [
                {
                    "line_item_key": (i.line_item_key or "").lower(),
                    "sku": i.sku,
                    "quantity": i.quantity,
                }
                for i in order.items or []
                if not i.adjustment
            ]
        wanted = [key for key in order_keys.values() if key]
        by_key = await rt.store.get_links(rt.name, wanted) if wanted else {}
        missing = [
            str(rec.order_id)
            for rec in recs
            if rec.order_id is not None and by_key.get(order_keys[rec.source_id] or "") is None
        ]
        by_id = await rt.store.links_by_ss_order_ids(rt.name, missing) if missing else {}
        found: dict[str, tuple[Link | None, list[dict[str, Any]]]] = {}
        for rec in recs:
            link = by_key.get(order_keys[rec.source_id] or "")
            if link is None and rec.order_id is not None:
                link = by_id.get(str(rec.order_id))
            found[rec.source_id] = (link, items[rec.source_id])
        return found

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
            await self._failed(run, sent, exc, action, refs)
            return
        await box.confirm(sent, ref, action=action, remote_ids={"plex": ref}, **refs)
        result.count("cancelled" if op.kind == KIND_REVERSE else "written_back")

    @staticmethod
    async def _failed(
        run: _Run, sent: Operation, exc: ConnectorError, action: str, refs: dict[str, Any]
    ) -> None:
        """Record a failed send. A per-operation fatal error (a void Plex cannot reverse, an
        inventory move left to an operator) goes dead at once with one alert inside ``fail``;
        the pass goes on. A connection-level one is re-raised by ``fail``."""
        result = run.result
        failed = await run.box.fail(sent, exc, action=action, **refs)
        if isinstance(exc, StaleOperationError | FrozenRecordError):
            result.count("skipped")
        else:
            result.count("failed")
            result.settle(_planned(sent), failed.state.value, str(exc))
            result.errors.append(f"{sent.idempotency_key}: {exc} ({failed.state.value})")

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
        ref = await self._write_back(rt, op, first_attempt=first_attempt)
        await self._mark_written(rt, reference)
        return ref

    async def _write_back(
        self, rt: ConnectionRuntime, op: Operation, *, first_attempt: bool
    ) -> str:
        """The Plex write of a write-back operation; the Plex record id (its lines are stamped
        written back by the caller)."""
        write, releases = await self._shipment_write(rt, op.payload)
        # Unless this is the operation's first attempt, write_shipment looks in Plex first
        # (find_existing by the reference in the note or the inventory shipment code) and
        # resumes or confirms an earlier attempt: one Plex write. The releases just read are
        # passed on, so the strategy need not read them again.
        done: WriteResult = await rt.writer.write_shipment(
            write, first_attempt=first_attempt, releases=releases
        )
        return done.shipper_id or done.inventory_shipment_id or write.reference

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
        """Stamp the lines of ``reference`` not yet written back (one statement)."""
        await rt.store.settle_and_claim(lines_written=[(rt.name, reference)])

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
