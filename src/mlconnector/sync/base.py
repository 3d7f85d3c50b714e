"""What every sync flow shares: its result, its plan, the ``Flow`` protocol and the audit helper.

A flow (orders, order status, inventory, shipments) is one object with a ``name``, the operation
``kinds`` it owns in the outbox, and three coroutines:

* ``run(rt, dry_run=...)``: one pass: read, compare, and (unless dry-run) write through the outbox;
* ``execute(rt, op)``: send one outbox operation, return the remote reference (retries, replays);
* ``resolve(rt, op)``: after a crash left ``op`` in ``sent``, look at the remote system and say
  whether the write landed, **before** anything is re-sent (``sync.outbox.recover``).

Every effect is explainable (DESIGN §1 rule 8): :func:`audit` writes one :class:`AuditEvent` per
read, write, skip, retry or failure, with idempotency key, remote ids, HTTP status and request id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mlconnector.errors import ConnectorError, SkipRecordError
from mlconnector.store import AuditEvent, Operation

if TYPE_CHECKING:
    from mlconnector.sync.runtime import ConnectionRuntime

#: what ``Flow.resolve`` answers: a remote reference or ``True`` (the write landed: confirm it),
#: ``False`` (it did not land: send it again), ``None`` (cannot tell yet: leave it ``sent``)
Resolution = bool | str | None


class StaleOperationError(SkipRecordError):
    """A queued write was overtaken by a newer one for the same record; sending it would undo the
    newer state. The outbox retires it (``dead``, no alert) instead of sending it."""


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One decision of a run: what would be (or was) done to which record, and why.

    ``action`` is a verb (``create``, ``update``, ``cancel``, ``skip``, ``adjust``, ``write_back``,
    ``freeze`` ...), ``entity`` the kind of record (``order``, ``inventory``, ``shipment``),
    ``key`` its identity (an ``orderKey``, a SKU@location, a shipment reference). ``outcome`` is
    set (by :meth:`FlowResult.settle`) when the write did not land: ``failed`` or ``dead``.
    """

    action: str
    entity: str
    key: str
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    outcome: str = ""

    def result(self, *, dry_run: bool = False) -> str:
        """What became of this decision, for the tables: ``planned`` in a dry run, the settled
        outcome, ``skipped`` for a skip, else ``done``."""
        if dry_run:
            return "planned"
        if self.outcome:
            return self.outcome
        return "skipped" if self.action in ("skip", "freeze") else "done"


#: decisions a run keeps in memory of each kind (done, and needing attention: skipped, failed,
#: dead, frozen); the counters cover every decision, the audit trail records every write and skip
PLAN_SAMPLE = 200
#: record errors a run keeps in memory (the counters and the audit trail have them all)
ERROR_SAMPLE = 100


def _attention(item: PlanItem) -> bool:
    return bool(item.outcome) or item.action in ("skip", "freeze")


class PlanSample(list[PlanItem]):
    """A run's plan, bounded: the first ``limit`` decisions that were done and the first
    ``limit`` that need attention (so a failure late in a long run is still shown); the others
    are only counted (``dropped``), so memory does not grow with the number of records."""

    def __init__(self, limit: int = PLAN_SAMPLE) -> None:
        super().__init__()
        self.limit = limit
        self.dropped = 0
        self._kept = {False: 0, True: 0}

    def append(self, item: PlanItem) -> None:
        kind = _attention(item)
        if self._kept[kind] >= self.limit:
            self.dropped += 1
            return
        self._kept[kind] += 1
        super().append(item)

    def extend(self, items: Iterable[PlanItem]) -> None:
        for item in items:
            self.append(item)
        if isinstance(items, PlanSample):
            self.dropped += items.dropped

    def __setitem__(self, index: Any, item: Any) -> None:
        # a settled decision (done → failed) moves to the attention budget
        if isinstance(index, int) and isinstance(item, PlanItem):
            old = self[index]
            self._kept[_attention(old)] -= 1
            self._kept[_attention(item)] += 1
        super().__setitem__(index, item)

    @property
    def total(self) -> int:
        """Decisions made, kept or not."""
        return len(self) + self.dropped


class ErrorSample(list[str]):
    """A run's record errors, bounded to the first ``limit`` (the rest counted in ``dropped``)."""

    def __init__(self, limit: int = ERROR_SAMPLE) -> None:
        super().__init__()
        self.limit = limit
        self.dropped = 0

    def append(self, error: str) -> None:
        if len(self) >= self.limit:
            self.dropped += 1
            return
        super().append(error)

    def extend(self, errors: Iterable[str]) -> None:
        for error in errors:
            self.append(error)
        if isinstance(errors, ErrorSample):
            self.dropped += errors.dropped


#: counters a FlowResult knows; ``count()`` refuses anything else so a typo cannot hide
COUNTERS = (
    "read",
    "created",
    "updated",
    "cancelled",
    "unchanged",
    "skipped",
    "frozen",
    "failed",
    "written_back",
    "adjusted",
    "recovered",
    "retried",
    "quarantined",
)


@dataclass
class FlowResult:
    """What one run of one flow did (or, in a dry run, would do)."""

    flow: str
    connection: str
    dry_run: bool = False
    read: int = 0
    created: int = 0
    updated: int = 0
    cancelled: int = 0
    unchanged: int = 0
    skipped: int = 0
    frozen: int = 0
    failed: int = 0
    written_back: int = 0
    adjusted: int = 0
    recovered: int = 0
    retried: int = 0
    #: records set aside as unreadable/unmappable this pass (a nonzero count: the pass is partial)
    quarantined: int = 0
    #: a bounded sample of the decisions (:class:`PlanSample`); the counters cover them all
    plan: list[PlanItem] = field(default_factory=PlanSample)
    errors: list[str] = field(default_factory=ErrorSample)
    #: the cursor value stored at the end of the run (``None``: not moved)
    cursor: str | None = None

    def count(self, counter: str, n: int = 1) -> None:
        """Add ``n`` to one of :data:`COUNTERS`."""
        if counter not in COUNTERS:
            raise ValueError(f"unknown FlowResult counter {counter!r}; known: {COUNTERS}")
        setattr(self, counter, getattr(self, counter) + n)

    def add(self, item: PlanItem, counter: str | None = None) -> PlanItem:
        """Record a decision (and count it)."""
        self.plan.append(item)
        if counter is not None:
            self.count(counter)
        return item

    def settle(
        self, target: PlanItem | tuple[str, str], outcome: str, reason: str | None = None
    ) -> PlanItem:
        """Record that the write of ``target`` (a plan item, or its ``(entity, key)``) ended
        ``outcome`` (``failed``, ``dead``, ``frozen``): the tables then show it as such, not as
        done. Counters stay the caller's. The latest matching decision is settled."""

        def matches(item: PlanItem) -> bool:
            if isinstance(target, PlanItem):
                return item is target
            return (item.entity, item.key) == target and item.action not in ("skip", "freeze")

        for index in range(len(self.plan) - 1, -1, -1):  # usually near the end: look from there
            item = self.plan[index]
            if matches(item):
                settled = replace(item, outcome=outcome, reason=reason or item.reason)
                self.plan[index] = settled
                return settled
        entity, key = (target.entity, target.key) if isinstance(target, PlanItem) else target
        return self.add(PlanItem("write", entity, key, reason or "", outcome=outcome))

    @property
    def plan_total(self) -> int:
        """How many decisions the run made (``len(plan)`` of them are kept in memory)."""
        return len(self.plan) + getattr(self.plan, "dropped", 0)

    def counts(self) -> dict[str, int]:
        """Every counter, for the CLI, the UI and metrics."""
        return {name: int(getattr(self, name)) for name in COUNTERS}

    @property
    def changed(self) -> int:
        """How many remote records were (or would be) changed."""
        return self.created + self.updated + self.cancelled + self.written_back + self.adjusted

    def counts_text(self) -> str:
        """``created=2 updated=1 skipped=3`` (zero counters left out), or ``nothing to do``."""
        return " ".join(f"{k}={v}" for k, v in self.counts().items() if v) or "nothing to do"

    def summary(self) -> str:
        """One line: ``orders@acme: created=2 updated=1 skipped=3``."""
        mode = " (dry run)" if self.dry_run else ""
        return f"{self.flow}@{self.connection}{mode}: {self.counts_text()}"


@runtime_checkable
class Flow(Protocol):
    """One sync flow. Implementations are plain classes; the engine holds one per flow name."""

    #: the flow's name: cursor, flow lock and outbox ``flow`` column (``"orders"``, ``"inventory"``)
    name: str
    #: the outbox operation kinds this flow executes and resolves (``"ss.order.upsert"`` ...)
    kinds: frozenset[str]

    async def run(self, rt: ConnectionRuntime, *, dry_run: bool = False) -> FlowResult:
        """One pass of the flow. With ``dry_run`` nothing is written anywhere (no remote write,
        no outbox row, no cursor, no link, no audit); the plan says what would happen."""
        ...

    async def execute(self, rt: ConnectionRuntime, op: Operation) -> str | None:
        """Send one queued operation; return the remote reference (an id) to confirm it with.
        Raise from the error tree on failure (the outbox classifies it)."""
        ...

    async def resolve(self, rt: ConnectionRuntime, op: Operation) -> Resolution:
        """``op`` was left ``sent`` (crash between send and confirm): did it land remotely?"""
        ...


@runtime_checkable
class BatchFlow(Flow, Protocol):
    """A flow that can send many due operations at once (ShipStation ``createorders``).
    :func:`~mlconnector.sync.outbox.retry_due` prefers it to one ``execute`` per operation."""

    async def execute_batch(self, rt: ConnectionRuntime, ops: Sequence[Operation]) -> FlowResult:
        """Send ``ops`` (due, of this flow's kinds): mark, send, confirm or fail each one."""
        ...


@runtime_checkable
class BatchResolveFlow(Flow, Protocol):
    """A flow that can resolve many operations left ``sent`` with a few list reads (a crashed
    ``createorders`` batch) instead of one look-up each. :func:`~mlconnector.sync.outbox.recover`
    prefers it to one ``resolve`` per operation."""

    async def resolve_batch(
        self, rt: ConnectionRuntime, ops: Sequence[Operation]
    ) -> dict[int, Resolution]:
        """The :data:`Resolution` of each of ``ops`` (of this flow's kinds), by operation id."""
        ...


def audit_event(
    rt: ConnectionRuntime,
    *,
    flow: str,
    action: str,
    outcome: str,
    entity: str = "order",
    direction: str = "plex->ss",
    op: Operation | None = None,
    error: BaseException | None = None,
    idempotency_key: str | None = None,
    plex_order_id: str | None = None,
    order_key: str | None = None,
    ss_order_id: str | int | None = None,
    ss_order_number: str | None = None,
    shipment_id: str | int | None = None,
    http_status: int | None = None,
    request_id: str | None = None,
    entity_ids: dict[str, Any] | None = None,
    remote_ids: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    from_last_request: bool = False,
) -> AuditEvent:
    """One audit event for connection ``rt.name`` (not stored: :func:`audit` appends one,
    ``Store.settle_batch``/``append_audits`` many at once).

    ``op`` fills the idempotency key and operation id; a :class:`ConnectorError` ``error`` fills
    the HTTP status, request id and error details. With ``from_last_request`` (right after the
    write that produced this outcome), status and request id come from the runtime's last HTTP
    exchange when not given.
    """
    info: dict[str, Any] = dict(details or {})
    if op is not None:
        idempotency_key = idempotency_key or op.idempotency_key
        info.setdefault("operation_id", op.id)
        info.setdefault("kind", op.kind)
        info.setdefault("attempts", op.attempts)
    if isinstance(error, ConnectorError):
        http_status = http_status if http_status is not None else error.status
        request_id = request_id or error.request_id
        info["error"] = error.details()
    elif error is not None:
        info["error"] = {"error": type(error).__name__, "message": str(error)}
    if from_last_request and http_status is None and request_id is None and error is None:
        last = rt.last_request
        if last is not None:
            http_status, request_id = last.status, last.request_id
    return AuditEvent(
        connection=rt.name,
        flow=flow,
        direction=direction,
        entity=entity,
        action=action,
        outcome=outcome,
        plex_order_id=plex_order_id,
        order_key=order_key,
        ss_order_id=None if ss_order_id is None else str(ss_order_id),
        ss_order_number=ss_order_number,
        shipment_id=None if shipment_id is None else str(shipment_id),
        entity_ids=dict(entity_ids or {}),
        remote_ids=dict(remote_ids or {}),
        http_status=http_status,
        request_id=request_id,
        idempotency_key=idempotency_key,
        details=info,
    )


async def audit(
    rt: ConnectionRuntime, *, flow: str, action: str, outcome: str, **fields: Any
) -> AuditEvent:
    """Append one audit event for connection ``rt.name`` (fields: see :func:`audit_event`);
    returns it as appended (its id is not read back)."""
    event = audit_event(rt, flow=flow, action=action, outcome=outcome, **fields)
    await rt.store.append_audits([event])
    return event
