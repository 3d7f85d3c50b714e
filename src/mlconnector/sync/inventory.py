"""The inventory flow: Plex on-hand → ShipStation V2 inventory levels (absolute ``adjust``).

One run:

1. read Plex on-hand per part and Plex location (containers in the shippable statuses,
   ``PlexClient.on_hand``);
2. map each Plex location to a ShipStation inventory location
   (``[connections.X.mappings.inventory_locations]``, by location code, else by location id);
   unmapped locations are skipped and reported **once per run** each; SKU = the Plex part number
   (the rule of :mod:`.mapping`);
3. target = on-hand − what ShipStation shipped that is not yet written back to Plex
   (``Store.unwritten_quantities``: the two flows never fight over the same units); a SKU spread
   over several locations has that quantity taken from its largest locations first; never below 0;
   a (SKU, location) pushed before that has no stock any more goes to 0;
4. compare with the snapshot of what was last pushed; only changes are sent, each as one outbox
   operation ``inventory:{connection}:{sku}@{location}:{from}->{to}#{n}`` (``n`` counts repeats
   of the same transition), and ``record_inventory_pushed`` after ShipStation accepted it.

A queued adjust whose starting point is no longer the snapshot (a newer push happened) is retired
instead of sent: an absolute level must never be overwritten by an older one. ``resolve`` reads the
V2 level and compares it with the target.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlconnector.errors import ConnectorError
from mlconnector.lenient import Unreadable
from mlconnector.plex import OnHand
from mlconnector.store import CredentialKind, Operation, OperationState
from mlconnector.sync.base import (
    FlowResult,
    PlanItem,
    Resolution,
    StaleOperationError,
    audit,
    audit_event,
)
from mlconnector.sync.outbox import Outbox
from mlconnector.sync.quarantine import QuarantineBook, entry_of
from mlconnector.sync.runtime import ConnectionRuntime, missing_credential

FLOW = "inventory"
KIND_ADJUST = "ss.inventory.adjust"

_S = OperationState
Key = tuple[str, str]  # (sku, ShipStation inventory location id)
#: levels per store batch (one transaction to queue them, one to confirm what landed)
BATCH = 100


@dataclass(frozen=True)
class Level:
    """The wanted ShipStation level of one SKU at one inventory location, and why."""

    sku: str
    location: str
    on_hand: int
    unwritten: int
    previous: int | None

    @property
    def target(self) -> int:
        return max(0, self.on_hand - self.unwritten)

    @property
    def key(self) -> Key:
        return (self.sku, self.location)

    def label(self) -> str:
        return f"{self.sku}@{self.location}"


def _from(previous: int | None) -> str:
    return "none" if previous is None else str(previous)


def payload_of(level: Level) -> dict[str, Any]:
    """The outbox payload of one level's adjust."""
    return {
        "sku": level.sku,
        "location": level.location,
        "previous": level.previous,
        "quantity": level.target,
        "on_hand": level.on_hand,
        "unwritten": level.unwritten,
    }


def adjust_key(connection: str, level: Level, repeat: int) -> str:
    """The outbox key of one transition; stable across crashes and retries."""
    return f"{FLOW}:{connection}:{level.label()}:{_from(level.previous)}->{level.target}#{repeat}"


def distribute(on_hand: dict[Key, int], unwritten: dict[str, int]) -> dict[Key, int]:
    """How much of each SKU's unwritten quantity to take from each of its locations: the
    largest location first, never more than a location holds."""
    taken: dict[Key, int] = {}
    by_sku: dict[str, list[Key]] = defaultdict(list)
    for key in on_hand:
        by_sku[key[0]].append(key)
    for sku, remaining in unwritten.items():
        for key in sorted(by_sku.get(sku, []), key=lambda k: (-on_hand[k], k[1])):
            if remaining <= 0:
                break
            take = min(remaining, on_hand[key])
            taken[key] = take
            remaining -= take
    return taken


class InventoryFlow:
    """Plex → ShipStation V2 inventory. Stateless between runs (the snapshot is in the store)."""

    name = FLOW
    kinds = frozenset({KIND_ADJUST})

    async def run(self, rt: ConnectionRuntime, *, dry_run: bool = False) -> FlowResult:
        """One pass (see the module doc)."""
        result = FlowResult(FLOW, rt.name, dry_run=dry_run)
        if not dry_run and not rt.has_ss_v2:
            # ShipStation inventory is V2 only: say which credential is missing before any read
            raise missing_credential(rt.name, CredentialKind.SS_V2_KEY)
        book = QuarantineBook(rt, FLOW, result, dry_run)
        await book.load()
        problems: list[Unreadable] = []
        rows = await rt.plex.on_hand(on_unreadable=problems.append)
        result.count("read", len(rows))
        # a part with an unreadable container has a short total: hold its levels this pass
        held = {p.ref("partId") for p in problems} - {None}
        await book.put_all(
            entry_of(p, None, sku=p.ref("partNo") or p.ref("partId")) for p in problems
        )
        # every pass reads every container: an entry not seen again has been corrected
        await book.resolve_unseen()
        on_hand, unmapped = await self.map_on_hand(rt, [r for r in rows if r.part_id not in held])
        held_skus = {n for p in problems if (n := p.ref("partNo"))} | held
        skipped = [
            PlanItem(
                "skip",
                "inventory",
                f"plex-location {location}",
                "no ShipStation inventory location is mapped to this Plex location; set "
                f"connections.{rt.name}.mappings.inventory_locations",
                detail,
            )
            for location, detail in sorted(unmapped.items())
        ]
        await self._note(rt, result, skipped, dry_run)
        levels = [lv for lv in await self._levels(rt, on_hand) if lv.sku not in held_skus]
        box = Outbox(rt, FLOW, direction="plex->ss", entity="inventory")
        changed = []
        for level in levels:
            if level.previous == level.target:
                result.count("unchanged")
            elif dry_run:
                await self._push(rt, box, level, result, dry_run)
            else:
                changed.append(level)
        for start in range(0, len(changed), BATCH):
            await self._push_batch(rt, box, changed[start : start + BATCH], result)
        if not dry_run:
            await audit(
                rt,
                flow=FLOW,
                action="read",
                outcome="ok",
                entity="inventory",
                direction="plex->ss",
                details={"levels": len(levels), "unmapped": sorted(unmapped), **result.counts()},
            )
        return result

    async def _note(
        self, rt: ConnectionRuntime, result: FlowResult, items: list[PlanItem], dry_run: bool
    ) -> None:
        """Count and plan the skipped ``items``; audit each (one store transaction for all)."""
        for item in items:
            result.add(item, "skipped")
        if not dry_run:
            await rt.store.append_audits(
                [
                    audit_event(
                        rt,
                        flow=FLOW,
                        action="skip",
                        outcome="skipped",
                        entity="inventory",
                        direction="plex->ss",
                        details={"reason": item.reason, "key": item.key, **item.details},
                    )
                    for item in items
                ]
            )

    async def map_on_hand(
        self, rt: ConnectionRuntime, rows: list[OnHand]
    ) -> tuple[dict[Key, int], dict[str, dict[str, Any]]]:
        """Plex on-hand rows as whole units per (SKU, ShipStation inventory location), and the
        Plex locations no inventory location is mapped to (with their part count and quantity).
        Reads part numbers from Plex when a row lacks one; writes nothing. Reconcile uses it to
        compute the same target as a run."""
        mapping = rt.config.mappings.inventory_locations
        numbers = await self._part_numbers(rt, rows)
        on_hand: dict[Key, float] = defaultdict(float)
        unmapped: dict[str, dict[str, Any]] = {}
        for row in rows:
            target = mapping.get(row.location or "") or mapping.get(row.location_id or "")
            if target is None:
                name = row.location or row.location_id or "(none)"
                detail = unmapped.setdefault(name, {"parts": 0, "quantity": 0.0})
                detail["parts"] += 1
                detail["quantity"] += row.quantity
                continue
            on_hand[(numbers[row.part_id], target)] += row.quantity
        # ShipStation counts whole units: a fraction of a unit cannot be sold.
        return {k: math.floor(q) for k, q in on_hand.items()}, unmapped

    async def _part_numbers(self, rt: ConnectionRuntime, rows: list[OnHand]) -> dict[str, str]:
        """SKU per Plex part id: the part number, as the orders flow sends it."""
        numbers = {r.part_id: r.part_no for r in rows if r.part_no}
        missing = sorted({r.part_id for r in rows if not r.part_no})
        if missing:
            for part in await rt.plex.list_parts(missing):
                if part.number:
                    numbers[part.id] = part.number
        return {r.part_id: numbers.get(r.part_id) or r.part_id for r in rows}

    async def _levels(self, rt: ConnectionRuntime, on_hand: dict[Key, int]) -> list[Level]:
        snapshot, unwritten = await rt.store.inventory_baseline(rt.name)
        mapped = set(rt.config.mappings.inventory_locations.values())
        # A level pushed before whose stock is gone (all shipped, moved, put on hold) goes to 0.
        for key in snapshot:
            if key[1] in mapped and key not in on_hand:
                on_hand[key] = 0
        taken = distribute(on_hand, unwritten)
        return [
            Level(sku, location, qty, taken.get((sku, location), 0), snapshot.get((sku, location)))
            for (sku, location), qty in sorted(on_hand.items())
        ]

    @staticmethod
    def _plan(level: Level) -> PlanItem:
        return PlanItem(
            "adjust",
            "inventory",
            level.label(),
            "changed in Plex" if level.previous is not None else "first push",
            {
                "from": level.previous,
                "to": level.target,
                "on_hand": level.on_hand,
                "unwritten": level.unwritten,
            },
        )

    async def _push_batch(
        self, rt: ConnectionRuntime, box: Outbox, levels: Sequence[Level], result: FlowResult
    ) -> None:
        """Push up to :data:`BATCH` levels: their operations enqueued and marked ``sent`` in one
        transaction, one V2 adjust each, then every landed one confirmed, audited and recorded
        in the snapshot in one transaction (also when a connection-level error stops the pass,
        so what landed is never left ``sent``). An operation an earlier run left behind, or a
        transition made before, takes the one-by-one path with its checks."""
        items = [(KIND_ADJUST, adjust_key(rt.name, lv, 1), payload_of(lv)) for lv in levels]
        queued = await box.enqueue_many(items, claim=True)
        landed: list[tuple[Operation, str | None, dict[str, Any]]] = []
        pushed: dict[Key, int] = {}
        try:
            for level, enqueued in zip(levels, queued, strict=True):
                op, plan = enqueued.operation, self._plan(level)
                if not (enqueued.created and enqueued.claimed):
                    claimed = enqueued.claimed
                    await self._push(
                        rt, box, level, result, False, plan=plan, op=op, claimed=claimed
                    )
                    continue
                result.add(plan)
                refs: dict[str, Any] = {"details": {"sku": level.sku, "location": level.location}}
                try:
                    await rt.ss_v2.adjust_inventory(level.sku, level.location, level.target)
                except ConnectorError as exc:
                    failed = await box.fail(op, exc, action="adjust", **refs)
                    result.count("failed")
                    result.settle(plan, failed.state.value, failed.last_error)
                    result.errors.append(f"{level.label()}: {failed.last_error}")
                    continue
                ref = f"{level.sku}@{level.location}={level.target}"
                landed.append((op, ref, {"action": "adjust", **refs}))
                pushed[(level.sku, level.location)] = level.target
                result.count("adjusted")
        finally:
            if landed:
                await box.confirm_many(landed, inventory=pushed)

    async def _push(
        self,
        rt: ConnectionRuntime,
        box: Outbox,
        level: Level,
        result: FlowResult,
        dry_run: bool,
        *,
        plan: PlanItem | None = None,
        op: Operation | None = None,
        claimed: bool = False,
    ) -> None:
        plan = plan or self._plan(level)
        if dry_run:
            result.add(plan, "adjusted")
            return
        result.add(plan)
        if op is None or op.state is _S.CONFIRMED:
            op, claimed = await self._enqueue(rt, box, level), False
        if op.state is _S.CONFIRMED:
            result.count("unchanged")
            return
        # an operation this pass claimed is ``sent`` by its own hand: send it, with the checks
        if not claimed and not box.ready(op):
            result.add(PlanItem("skip", "inventory", level.label(), box.why_not_ready(op)))
            result.count("skipped")
            return
        refs = {"details": {"sku": level.sku, "location": level.location}}
        done = await box.execute(self, op, action="adjust", **refs)
        if done.state is _S.CONFIRMED:
            result.count("adjusted")
        elif done.last_error:
            result.count("failed")
            result.settle(plan, done.state.value, done.last_error)
            result.errors.append(f"{level.label()}: {done.last_error}")

    async def _enqueue(self, rt: ConnectionRuntime, box: Outbox, level: Level) -> Operation:
        """The operation of this transition: the open one if a run left it, a new one if the same
        transition was made (and undone) before."""
        payload = payload_of(level)
        repeat = 1
        while True:
            key = adjust_key(rt.name, level, repeat)
            found = await rt.store.get_operation_by_key(key)
            if found is None or found.state is not _S.CONFIRMED:
                if found is not None:
                    return found
                return (await box.enqueue(KIND_ADJUST, key, payload)).operation
            repeat += 1

    # --- one operation (retries, replays) and crash recovery -----------------------------------
    async def execute(self, rt: ConnectionRuntime, op: Operation) -> str | None:
        """Set the absolute level; refuse if a newer push moved the snapshot since it was queued."""
        payload = op.payload
        sku, location, quantity = payload["sku"], payload["location"], int(payload["quantity"])
        current = (await rt.store.get_inventory_snapshot(rt.name)).get((sku, location))
        if current == quantity:
            return f"{sku}@{location}={quantity}"  # already there (pushed by a later run)
        if current != payload.get("previous"):
            raise StaleOperationError(
                f"inventory {sku}@{location} was pushed as {current} after this adjust to "
                f"{quantity} was queued; sending it would overwrite a newer level",
                record=f"{sku}@{location}",
            )
        await rt.ss_v2.adjust_inventory(sku, location, quantity)
        await rt.store.record_inventory_pushed(rt.name, {(sku, location): quantity})
        return f"{sku}@{location}={quantity}"

    async def resolve(self, rt: ConnectionRuntime, op: Operation) -> Resolution:
        """Is the target level what ShipStation shows now?"""
        payload = op.payload
        sku, location, quantity = payload["sku"], payload["location"], int(payload["quantity"])
        total = 0
        async for level in rt.ss_v2.list_inventory(sku=sku, inventory_location_id=location):
            if level.sku == sku and level.inventory_location_id == location:
                total += level.on_hand or 0
        if total != quantity:
            return False
        await rt.store.record_inventory_pushed(rt.name, {(sku, location): quantity})
        return f"{sku}@{location}={quantity}"


__all__ = [
    "FLOW",
    "KIND_ADJUST",
    "InventoryFlow",
    "Level",
    "adjust_key",
    "distribute",
]
