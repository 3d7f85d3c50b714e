"""The executor every flow writes through: the idempotent outbox (DESIGN §1 rule 1, §3).

One write goes ``enqueue`` (its idempotency key is fixed before the first attempt and reused by
every retry) → ``mark_sent`` (just before the request leaves) → the call → ``confirm(remote_ref)``.
Failures are classified by the error tree:

* :class:`~mlconnector.errors.RetryableError` → ``failed`` with a backoff from the connection's
  retry budget (``[connections.X.retry]``, injected clock and jitter; a server's ``Retry-After``
  wins) → ``dead`` when the budget is spent, and an alert goes out;
* :class:`~mlconnector.errors.SkipRecordError` → ``failed`` with the reason, retried at the slowest
  pace (the data may be fixed meanwhile); a frozen record or a superseded write goes straight to
  ``dead`` without an alert: sending it again can never be right;
* :class:`~mlconnector.errors.OperationFatalError` (fatal for this one operation: a void Plex
  cannot reverse, an inventory move left to an operator) → ``dead`` at once, audited as
  ``needs_operator`` with what to do, one alert; the pass goes on — on every path (main pass,
  :func:`retry_due`, :func:`recover`, replay);
* any other :class:`~mlconnector.errors.FatalError` (connection level: authentication, a missing
  grant, bad configuration) → recorded, alerted, and re-raised to stop the run.

Any other exception is a crash: the operation stays ``sent`` and :func:`recover` asks the flow's
``resolve`` what happened **before** anything is re-sent. Every step is audited.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from mlconnector.errors import (
    ConnectorError,
    FatalError,
    FrozenRecordError,
    OperationFatalError,
    RetryableError,
    SkipRecordError,
)
from mlconnector.store import Enqueued, Link, Operation, OperationState, Store
from mlconnector.store.records import AuditEvent
from mlconnector.sync.alerts import Alert
from mlconnector.sync.base import (
    BatchFlow,
    BatchResolveFlow,
    Flow,
    FlowResult,
    PlanItem,
    Resolution,
    StaleOperationError,
    audit,
    audit_event,
)
from mlconnector.sync.runtime import ConnectionRuntime

_S = OperationState

#: the first segment of an operation kind (``{target}.{entity}.{verb}``): where the write goes
_DIRECTIONS = {"ss": "plex->ss", "plex": "ss->plex"}


def audit_labels(kind: str) -> tuple[str, str]:
    """The audit ``(direction, entity)`` of an operation of ``kind``: ``ss.order.upsert`` →
    ``("plex->ss", "order")``, ``plex.shipment.write_back`` → ``("ss->plex", "shipment")``,
    ``ss.inventory.adjust`` → ``("plex->ss", "inventory")``; a kind of another shape is labelled
    ``("internal", "operation")``."""
    parts = kind.split(".")
    if len(parts) >= 3 and parts[0] in _DIRECTIONS and parts[1]:
        return _DIRECTIONS[parts[0]], parts[1]
    return "internal", "operation"


class Outbox:
    """The outbox of one flow of one connection, with auditing and alerting built in.

    ``direction`` and ``entity`` label the audit events (``"plex->ss"``/``"order"``,
    ``"ss->plex"``/``"shipment"`` ...). Audit references (``order_key=``, ``plex_order_id=``,
    ``ss_order_id=``, ``shipment_id=``, ``details=`` ...) pass through ``**refs``.
    """

    def __init__(
        self,
        rt: ConnectionRuntime,
        flow: str,
        *,
        direction: str = "plex->ss",
        entity: str = "order",
    ) -> None:
        self.rt = rt
        self.flow = flow
        self.direction = direction
        self.entity = entity

    @classmethod
    def for_operation(cls, rt: ConnectionRuntime, op: Operation) -> Outbox:
        """The outbox that audits ``op`` under the labels of its kind (retries, recovery: paths
        that hold an operation, not a flow's own outbox)."""
        direction, entity = audit_labels(op.kind)
        return cls(rt, op.flow, direction=direction, entity=entity)

    async def record(self, action: str, outcome: str, **fields: Any) -> AuditEvent:
        fields.setdefault("entity", self.entity)
        fields.setdefault("direction", self.direction)
        return await audit(self.rt, flow=self.flow, action=action, outcome=outcome, **fields)

    def changed(self, op: Operation) -> Operation:
        """Tell the observer (metrics) that ``op`` entered its state; return it."""
        self.rt.observer.operation_changed(self.rt.name, self.flow, op.state.value)
        return op

    # --- the steps -----------------------------------------------------------------------------
    async def enqueue(self, kind: str, key: str, payload: Mapping[str, Any]) -> Enqueued:
        """Record the write before it is sent (insert-or-get by ``key``)."""
        enqueued = await self.rt.store.enqueue(self.rt.name, self.flow, kind, key, payload)
        if enqueued.created:
            self.changed(enqueued.operation)
        return enqueued

    def ready(self, op: Operation) -> bool:
        """Whether ``op`` should be sent now: ``pending``, or ``failed`` and due. A ``sent`` op
        is never re-sent here (that is :func:`recover`'s job, after looking remotely)."""
        if op.state is _S.PENDING:
            return True
        if op.state is _S.FAILED:
            return op.next_attempt_at is None or op.next_attempt_at <= self.rt.clock.now()
        return False

    def why_not_ready(self, op: Operation) -> str:
        """A reason an operator understands, for the plan of a run that does not send ``op``."""
        if op.state is _S.CONFIRMED:
            return f"already sent and confirmed (operation {op.id})"
        if op.state is _S.DEAD:
            return f"operation {op.id} is dead ({op.last_error}); replay it to try again"
        if op.state is _S.SENT:
            return f"operation {op.id} was sent and awaits crash recovery"
        when = op.next_attempt_at.isoformat() if op.next_attempt_at else "now"
        return f"operation {op.id} failed ({op.last_error}); next attempt at {when}"

    async def mark_sent(self, op: Operation) -> Operation:
        """Call just before the request leaves."""
        return self.changed(await self.rt.store.mark_sent(op.id))

    # --- many operations at once (a batch request) ---------------------------------------------
    async def enqueue_many(
        self, items: Sequence[tuple[str, str, Mapping[str, Any]]], *, claim: bool = False
    ) -> list[Enqueued]:
        """:meth:`enqueue` for many ``(kind, key, payload)`` in one transaction; with ``claim``
        the ready ones are marked ``sent`` in it too (``Enqueued.claimed``)."""
        queued = await self.rt.store.enqueue_many(self.rt.name, self.flow, items, claim=claim)
        observer = self.rt.observer
        for enqueued in queued:
            if enqueued.created:  # entered pending (and maybe sent, in the same transaction)
                observer.operation_changed(self.rt.name, self.flow, _S.PENDING.value)
            if enqueued.claimed:
                self.changed(enqueued.operation)
        return queued

    async def mark_sent_many(self, ops: Sequence[Operation]) -> list[Operation]:
        """:meth:`mark_sent` for a batch, in one statement (those that can be sent, by id)."""
        return [
            self.changed(op) for op in await self.rt.store.mark_sent_many([op.id for op in ops])
        ]

    def event(self, action: str, outcome: str, **fields: Any) -> AuditEvent:
        """The audit event :meth:`record` would append (for a batch appended at once)."""
        fields.setdefault("entity", self.entity)
        fields.setdefault("direction", self.direction)
        return audit_event(self.rt, flow=self.flow, action=action, outcome=outcome, **fields)

    async def confirm_many(
        self,
        confirms: Sequence[tuple[Operation, str | None, Mapping[str, Any]]],
        *,
        links: Sequence[Link] = (),
        inventory: Mapping[tuple[str, str], int] | None = None,
        action: str = "write",
    ) -> list[Operation]:
        """:meth:`confirm` for a batch: every ``(op, remote_ref, refs)`` confirmed, audited,
        ``links`` saved and ``inventory`` levels recorded as pushed, in one transaction."""
        events = [
            self.event(
                str(refs.get("action", action)),
                "ok",
                op=op,
                from_last_request=True,
                **{k: v for k, v in refs.items() if k != "action"},
            )
            for op, _, refs in confirms
        ]
        confirmed = await self.rt.store.settle_batch(
            confirms=[(op.id, ref) for op, ref, _ in confirms],
            links=links,
            events=events,
            inventory=(self.rt.name, inventory) if inventory else None,
        )
        return [self.changed(op) for op in confirmed]

    async def confirm(
        self, op: Operation, remote_ref: str | None, *, action: str = "write", **refs: Any
    ) -> Operation:
        """The write landed: ``confirmed`` with the remote reference, audited."""
        confirmed = self.changed(await self.rt.store.confirm(op.id, remote_ref=remote_ref))
        refs.setdefault("from_last_request", True)
        await self.record(action, "ok", op=confirmed, **refs)
        return confirmed

    async def fail(
        self,
        op: Operation,
        error: ConnectorError,
        *,
        action: str = "write",
        raise_fatal: bool = True,
        **refs: Any,
    ) -> Operation:
        """Record a failed attempt as the error tree says (see the module doc). Re-raises a
        connection-level :class:`FatalError` after recording it (unless ``raise_fatal`` is
        false: a batch records every operation first, then raises itself)."""
        store, now = self.rt.store, self.rt.clock.now()
        policy = self.rt.retry_policy()
        reason = str(error)
        if isinstance(error, OperationFatalError):
            return await self.needs_operator(op, error, action=action, **refs)
        if isinstance(error, StaleOperationError | FrozenRecordError):
            failed = self.changed(
                await store.fail(op.id, reason, next_attempt_at=now, max_attempts=1)
            )
            outcome = "superseded" if isinstance(error, StaleOperationError) else "frozen"
            await self.record(action, outcome, op=failed, error=error, **refs)
            return failed
        if isinstance(error, SkipRecordError):
            delay = policy.max_delay
        else:
            delay = policy.backoff(op.attempts + 1)
            if error.retry_after is not None:
                delay = max(delay, error.retry_after)
        failed = self.changed(
            await store.fail(
                op.id,
                reason,
                next_attempt_at=now + timedelta(seconds=delay),
                max_attempts=policy.max_attempts,
            )
        )
        outcome = "dead" if failed.state is _S.DEAD else "failed"
        await self.record(action, outcome, op=failed, error=error, **refs)
        if failed.state is _S.DEAD or isinstance(error, FatalError):
            await self.alert(failed, error)
        if isinstance(error, FatalError) and raise_fatal:
            raise error
        return failed

    async def needs_operator(
        self, op: Operation, error: OperationFatalError, *, action: str = "write", **refs: Any
    ) -> Operation:
        """Retrying cannot help: ``dead`` at once, audited (``needs_operator``, with the hint and
        the operator task), one alert. Never re-raised: the pass goes on."""
        dead = self.changed(
            await self.rt.store.fail(
                op.id, str(error), next_attempt_at=self.rt.clock.now(), max_attempts=1
            )
        )
        details = {
            "hint": error.hint,
            "replay": f"mlconnector replay {op.id}",
            **error.task,
            **refs.pop("details", {}),
        }
        await self.record(action, "needs_operator", op=dead, error=error, details=details, **refs)
        await self.alert(dead, error)
        return dead

    async def alert(self, op: Operation, error: ConnectorError) -> None:
        """Tell a person: the operation needs them (dead, or a fatal error)."""
        if isinstance(error, OperationFatalError):
            title = f"operation {op.id} ({op.kind}) needs an operator: {error.message}"
        elif op.state is _S.DEAD:
            title = f"operation {op.id} ({op.kind}) is dead after {op.attempts} attempt(s)"
        else:
            title = f"operation {op.id} ({op.kind}) stopped the run: {error.message}"
        await self.rt.alerts.alert(
            Alert(
                connection=self.rt.name,
                flow=self.flow,
                title=title,
                details={
                    "operation_id": op.id,
                    "idempotency_key": op.idempotency_key,
                    "error": self.rt.redactor.text(str(error)),
                    "hint": error.hint or f"fix the cause, then replay operation {op.id}",
                },
            )
        )

    # --- one operation, end to end -------------------------------------------------------------
    async def execute(self, flow: Flow, op: Operation, **refs: Any) -> Operation:
        """``mark_sent`` → ``flow.execute`` → ``confirm`` (or :meth:`fail`)."""
        sent = await self.mark_sent(op)
        try:
            remote_ref = await flow.execute(self.rt, sent)
        except ConnectorError as exc:
            return await self.fail(sent, exc, **refs)
        return await self.confirm(sent, remote_ref, **refs)

    async def submit(
        self, flow: Flow, kind: str, key: str, payload: Mapping[str, Any], **refs: Any
    ) -> Operation:
        """Enqueue and, if it is ready, execute. An operation already confirmed (or dead, or
        waiting for its backoff) is returned as it is: the key makes the write happen once."""
        op = (await self.enqueue(kind, key, payload)).operation
        if not self.ready(op):
            return op
        return await self.execute(flow, op, **refs)


def _flow_for(kind: str, flows: Iterable[Flow]) -> Flow | None:
    return next((f for f in flows if kind in f.kinds), None)


async def recover(rt: ConnectionRuntime, flows: Sequence[Flow], *, limit: int = 500) -> FlowResult:
    """Crash recovery: for every operation of ``flows`` left ``sent``, ask its flow what
    happened **before** anything is re-sent. Found → ``confirmed``; not found → ``failed`` and
    due now (the next :func:`retry_due` re-sends it with the same key); cannot tell → left
    ``sent``. A :class:`BatchResolveFlow` answers for all its operations at once (a crashed
    ``createorders`` batch costs a list read, not one look-up per order).

    Call it under the flow's lock (nobody else may be mid-send), before the runs.
    """
    result = FlowResult(flow="recover", connection=rt.name)
    now = rt.clock.now()
    left: list[Operation] = []
    for named in {f.name for f in flows}:
        left += await rt.store.left_sent(
            older_than=now, connection=rt.name, flow=named, limit=limit
        )
    by_flow: dict[int, tuple[Flow, list[Operation]]] = {}
    for op in sorted(left, key=lambda o: o.id):
        flow = _flow_for(op.kind, flows)
        if flow is None:
            result.add(PlanItem("skip", "operation", op.idempotency_key, f"no flow for {op.kind}"))
            continue
        by_flow.setdefault(id(flow), (flow, []))[1].append(op)
    for flow, ops in by_flow.values():
        if isinstance(flow, BatchResolveFlow):
            try:
                answers = await flow.resolve_batch(rt, ops)
            except RetryableError as exc:
                for op in ops:
                    await _unresolved(rt, op, exc, result)
                continue
            for op in ops:
                await _settle(rt, op, answers.get(op.id), result)
            continue
        for op in ops:
            try:
                found = await flow.resolve(rt, op)
            except RetryableError as exc:
                await _unresolved(rt, op, exc, result)
                continue
            except OperationFatalError as exc:
                dead = await Outbox.for_operation(rt, op).needs_operator(op, exc, action="resolve")
                result.add(PlanItem("skip", "operation", op.idempotency_key, str(exc)), "failed")
                result.errors.append(f"{op.idempotency_key}: {exc} ({dead.state.value})")
                continue
            await _settle(rt, op, found, result)
    return result


async def _unresolved(
    rt: ConnectionRuntime, op: Operation, exc: RetryableError, result: FlowResult
) -> None:
    """The remote system could not be asked now: the operation stays ``sent``."""
    await Outbox.for_operation(rt, op).record("resolve", "failed", op=op, error=exc)
    result.add(PlanItem("skip", "operation", op.idempotency_key, str(exc)), "failed")


async def _settle(
    rt: ConnectionRuntime, op: Operation, found: Resolution, result: FlowResult
) -> None:
    """Apply one resolution: confirm, make due again, or leave ``sent``."""
    box = Outbox.for_operation(rt, op)
    if found is None:
        await box.record("resolve", "unknown", op=op)
        result.add(PlanItem("skip", "operation", op.idempotency_key, "cannot tell yet"))
    elif found is False:
        reason = "outcome unknown after a crash; not found remotely, will resend"
        await rt.store.fail(
            op.id,
            reason,
            next_attempt_at=rt.clock.now(),
            max_attempts=rt.config.retry.max_attempts,
        )
        await box.record("resolve", "not_found", op=op, details={"reason": reason})
        result.add(PlanItem("resend", "operation", op.idempotency_key, reason), "retried")
    else:
        ref = found if isinstance(found, str) else None
        await box.confirm(op, ref, action="resolve", remote_ids={"remote_ref": ref})
        result.add(PlanItem("confirm", "operation", op.idempotency_key, "found remotely"))
        result.count("recovered")


async def retry_due(
    rt: ConnectionRuntime, flows: Sequence[Flow], *, limit: int = 100
) -> FlowResult:
    """Send every due operation (``pending``, or ``failed`` whose backoff has passed) of every
    flow: through ``execute_batch`` when the flow has one (:class:`BatchFlow`), else one
    ``execute`` per operation."""
    result = FlowResult(flow="retry", connection=rt.name)
    for flow in flows:
        due = [
            op
            for op in await rt.store.due(rt.name, flow.name, limit=limit)
            if op.kind in flow.kinds
        ]
        if not due:
            continue
        if isinstance(flow, BatchFlow):
            sub = await flow.execute_batch(rt, due)
            result.plan.extend(sub.plan)
            result.count("retried", sub.created + sub.updated + sub.cancelled + sub.unchanged)
            result.count("failed", sub.failed + sub.skipped + sub.frozen)
            result.errors.extend(sub.errors)
            continue
        for op in due:
            # an operation whose error is fatal for it alone goes dead here (Outbox.fail); only a
            # connection-level error stops the loop
            done = await Outbox.for_operation(rt, op).execute(flow, op)
            counter = "retried" if done.state is _S.CONFIRMED else "failed"
            result.add(
                PlanItem("retry", "operation", op.idempotency_key, done.state.value), counter
            )
    return result


async def replay(
    store: Store,
    ids: Sequence[int] | None = None,
    *,
    connection: str | None = None,
    flow: str | None = None,
    states: Sequence[OperationState] = (_S.FAILED, _S.DEAD),
) -> list[Operation]:
    """Operator replay (CLI, web UI): ``failed``/``dead`` operations back to ``pending`` with a
    fresh attempt budget, each audited with the error it is replayed from. They are sent by the
    next :func:`retry_due`; the one that lands has its ``last_error`` cleared."""
    if ids is None and connection is None and flow is None:
        raise ValueError("replay needs operation ids or a connection/flow filter")
    replayed = await store.replay(ids, connection=connection, flow=flow, states=states)
    for op in replayed:
        await store.append_audit(
            AuditEvent(
                connection=op.connection,
                flow=op.flow,
                direction="internal",
                entity="operation",
                action="replay",
                outcome="ok",
                idempotency_key=op.idempotency_key,
                details={"operation_id": op.id, "kind": op.kind, "last_error": op.last_error},
            )
        )
    return replayed
