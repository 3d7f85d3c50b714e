"""The outbox state machine: enqueue → sent → confirmed, backoff, dead + alert, recover first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from mlconnector.clock import FakeClock
from mlconnector.errors import (
    AuthenticationError,
    FrozenRecordError,
    OperationFatalError,
    RemoteValidationError,
    TransientError,
    stops_pass,
)
from mlconnector.store import AuditQuery, Operation, OperationState
from mlconnector.sync import (
    ConnectionRuntime,
    FlowResult,
    LogAlertSink,
    Outbox,
    Resolution,
    StaleOperationError,
    recover,
    replay,
    retry_due,
)
from mlconnector.sync.outbox import audit_labels

S = OperationState


class Crash(Exception):
    """Not in the error tree: the process 'dies' after the request left."""


@dataclass
class FakeFlow:
    name: str = "orders"
    kinds: frozenset[str] = frozenset({"test.write"})
    errors: list[BaseException] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    resolution: Resolution = None

    async def run(self, rt: ConnectionRuntime, *, dry_run: bool = False) -> FlowResult:
        return FlowResult(self.name, rt.name, dry_run=dry_run)

    async def execute(self, rt: ConnectionRuntime, op: Operation) -> str | None:
        self.executed.append(op.idempotency_key)
        if self.errors:
            raise self.errors.pop(0)
        return f"remote-{len(self.executed)}"

    async def resolve(self, rt: ConnectionRuntime, op: Operation) -> Resolution:
        return self.resolution


def alerts(rt: ConnectionRuntime) -> LogAlertSink:
    assert isinstance(rt.alerts, LogAlertSink)
    return rt.alerts


async def test_submit_confirms_once_per_key(rt: ConnectionRuntime) -> None:
    flow, box = FakeFlow(), Outbox(rt, "orders")
    op = await box.submit(flow, "test.write", "orders:k1:h1", {"a": 1}, order_key="k1")
    assert op.state is S.CONFIRMED
    assert op.remote_ref == "remote-1"
    again = await box.submit(flow, "test.write", "orders:k1:h1", {"a": 1}, order_key="k1")
    assert again.id == op.id
    assert again.state is S.CONFIRMED
    assert flow.executed == ["orders:k1:h1"]  # the key made it happen once
    events = await rt.store.search_audit(AuditQuery(idempotency_key="orders:k1:h1"))
    assert [(e.action, e.outcome, e.order_key) for e in events] == [("write", "ok", "k1")]


async def test_retryable_backs_off_then_dies_with_alert(
    rt: ConnectionRuntime, fake_clock: FakeClock
) -> None:
    flow = FakeFlow(errors=[TransientError("HTTP 503") for _ in range(3)])
    box = Outbox(rt, "orders")
    start = fake_clock.now()
    op = await box.submit(flow, "test.write", "k", {})
    assert op.state is S.FAILED
    assert op.attempts == 1
    assert op.next_attempt_at == start + timedelta(seconds=10)  # base delay, no jitter
    assert await rt.store.due("acme", "orders") == []
    assert not box.ready(op)
    fake_clock.advance(10)
    result = await retry_due(rt, [flow])
    op2 = await rt.store.get_operation(op.id)
    assert op2 is not None
    assert op2.state is S.FAILED
    assert op2.attempts == 2
    assert op2.next_attempt_at == fake_clock.now() + timedelta(seconds=20)  # doubled
    assert result.failed == 1
    assert alerts(rt).sent == []
    fake_clock.advance(20)
    await retry_due(rt, [flow])
    dead = await rt.store.get_operation(op.id)
    assert dead is not None
    assert dead.state is S.DEAD
    assert dead.attempts == 3
    assert len(alerts(rt).sent) == 1
    assert "dead" in alerts(rt).sent[0].title
    outcomes = [e.outcome for e in await rt.store.search_audit(AuditQuery(idempotency_key="k"))]
    assert outcomes == ["dead", "failed", "failed"]  # newest first


async def test_jitter_and_retry_after_are_honoured(
    rt: ConnectionRuntime, fake_clock: FakeClock
) -> None:
    rt.jitter = lambda delay: delay / 2
    flow = FakeFlow(errors=[TransientError("503"), TransientError("429-ish", retry_after=77)])
    box = Outbox(rt, "orders")
    op = await box.submit(flow, "test.write", "j1", {})
    assert op.next_attempt_at == fake_clock.now() + timedelta(seconds=5)
    op = await box.submit(flow, "test.write", "j2", {})
    assert op.next_attempt_at == fake_clock.now() + timedelta(seconds=77)


async def test_skip_is_failed_with_reason_at_slowest_pace(
    rt: ConnectionRuntime, fake_clock: FakeClock
) -> None:
    flow = FakeFlow(errors=[RemoteValidationError("sku is required", status=400)])
    op = await Outbox(rt, "orders").submit(flow, "test.write", "s", {})
    assert op.state is S.FAILED
    assert "sku is required" in (op.last_error or "")
    assert op.next_attempt_at == fake_clock.now() + timedelta(seconds=100)  # max delay
    event = (await rt.store.search_audit(AuditQuery(idempotency_key="s")))[0]
    assert event.outcome == "failed"
    assert event.http_status == 400


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (FrozenRecordError("order is shipped"), "frozen"),
        (StaleOperationError("a newer write exists"), "superseded"),
    ],
)
async def test_frozen_and_stale_retire_without_alert(
    rt: ConnectionRuntime, error: Exception, outcome: str
) -> None:
    op = await Outbox(rt, "orders").submit(FakeFlow(errors=[error]), "test.write", "f", {})
    assert op.state is S.DEAD
    assert alerts(rt).sent == []
    event = (await rt.store.search_audit(AuditQuery(idempotency_key="f")))[0]
    assert event.outcome == outcome


async def test_fatal_stops_the_run_recorded_and_alerted(rt: ConnectionRuntime) -> None:
    flow = FakeFlow(errors=[AuthenticationError("bad key", status=401, request_id="r-9")])
    with pytest.raises(AuthenticationError):
        await Outbox(rt, "orders").submit(flow, "test.write", "x", {})
    op = await rt.store.get_operation_by_key("x")
    assert op is not None
    assert op.state is S.FAILED
    event = (await rt.store.search_audit(AuditQuery(idempotency_key="x")))[0]
    assert (event.http_status, event.request_id) == (401, "r-9")
    assert len(alerts(rt).sent) == 1


def test_only_connection_level_fatal_errors_stop_a_pass() -> None:
    assert stops_pass(AuthenticationError("bad key"))
    assert not stops_pass(OperationFatalError("this one record needs a person"))
    assert not stops_pass(TransientError("503"))


async def test_fatal_for_one_operation_is_dead_once_and_the_retries_go_on(
    rt: ConnectionRuntime, fake_clock: FakeClock
) -> None:
    task = {"release": "R-1", "do": "split container S1 in Plex"}
    flow = FakeFlow(errors=[TransientError("503"), OperationFatalError("cannot", task=task)])
    box = Outbox(rt, "orders")
    for key in ("a", "b"):
        await box.enqueue("test.write", key, {})
    first = await box.submit(flow, "test.write", "a", {})
    assert first.state is S.FAILED
    fake_clock.advance(3600)
    result = await retry_due(rt, [flow])  # "a" dies of its own error; "b" is still sent
    assert flow.executed == ["a", "a", "b"]
    dead = await rt.store.get_operation_by_key("a")
    assert dead is not None
    assert dead.state is S.DEAD
    assert (result.retried, result.failed) == (1, 1)
    assert len(alerts(rt).sent) == 1
    assert "needs an operator" in alerts(rt).sent[0].title
    events = await rt.store.search_audit(AuditQuery(outcome="needs_operator"))
    assert [e.details["release"] for e in events] == ["R-1"]
    fake_clock.advance(3600)
    await retry_due(rt, [flow])
    assert flow.executed == ["a", "a", "b"]  # dead: never again until replayed
    assert len(alerts(rt).sent) == 1


async def test_fatal_for_one_operation_during_recovery_is_dead_once(
    rt: ConnectionRuntime,
) -> None:
    class Refusing(FakeFlow):
        async def resolve(self, rt: ConnectionRuntime, op: Operation) -> Resolution:
            raise OperationFatalError("cannot tell without a person", hint="look in Plex")

    flow = Refusing()
    op = await _crash_after_send(rt, flow, "r1")
    result = await recover(rt, [flow])
    done = await rt.store.get_operation(op.id)
    assert done is not None
    assert done.state is S.DEAD
    assert result.failed == 1
    assert len(alerts(rt).sent) == 1


async def _crash_after_send(rt: ConnectionRuntime, flow: FakeFlow, key: str) -> Operation:
    flow.errors.append(Crash("killed"))
    with pytest.raises(Crash):
        await Outbox(rt, "orders").submit(flow, "test.write", key, {})
    op = await rt.store.get_operation_by_key(key)
    assert op is not None
    assert op.state is S.SENT
    return op


async def test_recover_confirms_what_landed_without_resending(rt: ConnectionRuntime) -> None:
    flow = FakeFlow()
    op = await _crash_after_send(rt, flow, "c1")
    flow.resolution = "ss-123"
    result = await recover(rt, [flow])
    done = await rt.store.get_operation(op.id)
    assert done is not None
    assert done.state is S.CONFIRMED
    assert done.remote_ref == "ss-123"
    assert result.recovered == 1
    await retry_due(rt, [flow])
    assert flow.executed == ["c1"]  # never re-sent


async def test_recover_resends_what_did_not_land(rt: ConnectionRuntime) -> None:
    flow = FakeFlow()
    op = await _crash_after_send(rt, flow, "c2")
    # while an op is sent, a normal submit does not send it again
    again = await Outbox(rt, "orders").submit(flow, "test.write", "c2", {})
    assert again.state is S.SENT
    assert flow.executed == ["c2"]
    flow.resolution = False
    result = await recover(rt, [flow])
    assert result.retried == 1
    await retry_due(rt, [flow])
    done = await rt.store.get_operation(op.id)
    assert done is not None
    assert done.state is S.CONFIRMED
    assert flow.executed == ["c2", "c2"]  # sent again, same key


async def test_recover_leaves_unknown_outcomes_sent(rt: ConnectionRuntime) -> None:
    flow = FakeFlow()
    op = await _crash_after_send(rt, flow, "c3")
    flow.resolution = None
    await recover(rt, [flow])
    still = await rt.store.get_operation(op.id)
    assert still is not None
    assert still.state is S.SENT
    await retry_due(rt, [flow])
    assert flow.executed == ["c3"]


async def test_replay_moves_dead_back_to_pending_and_audits(rt: ConnectionRuntime) -> None:
    flow = FakeFlow(errors=[FrozenRecordError("shipped")])
    op = await Outbox(rt, "orders").submit(flow, "test.write", "r", {})
    assert op.state is S.DEAD
    with pytest.raises(ValueError, match="ids or a connection"):
        await replay(rt.store)
    replayed = await replay(rt.store, [op.id])
    assert [o.state for o in replayed] == [S.PENDING]
    events = await rt.store.search_audit(AuditQuery(idempotency_key="r"))
    assert events[0].action == "replay"
    await retry_due(rt, [flow])
    done = await rt.store.get_operation(op.id)
    assert done is not None
    assert done.state is S.CONFIRMED
    assert done.last_error is None  # the replay landed: no stale error on a confirmed write
    events = await rt.store.search_audit(AuditQuery(idempotency_key="r"))
    trail = [(e.action, e.outcome) for e in reversed(events)]
    assert trail == [("write", "frozen"), ("replay", "ok"), ("write", "ok")]
    assert "shipped" in events[1].details["last_error"]  # the replay says what it replayed


async def test_recover_touches_only_the_flows_it_is_given(rt: ConnectionRuntime) -> None:
    orders = FakeFlow()
    op = await _crash_after_send(rt, orders, "mine")
    other = FakeFlow(name="inventory", kinds=frozenset({"inv.write"}), resolution="x")
    result = await recover(rt, [other])
    assert result.plan == []
    still = await rt.store.get_operation(op.id)
    assert still is not None
    assert still.state is S.SENT


@dataclass
class FakeBatchFlow(FakeFlow):
    """Resolves every operation left ``sent`` in one call (a list read)."""

    answers: dict[str, Resolution] = field(default_factory=dict)
    batches: list[list[str]] = field(default_factory=list)
    outage: bool = False

    async def resolve(self, rt: ConnectionRuntime, op: Operation) -> Resolution:
        raise AssertionError("a batch flow is resolved with resolve_batch")

    async def resolve_batch(
        self, rt: ConnectionRuntime, ops: Sequence[Operation]
    ) -> dict[int, Resolution]:
        self.batches.append([op.idempotency_key for op in ops])
        if self.outage:
            raise TransientError("HTTP 503")
        return {op.id: self.answers.get(op.idempotency_key) for op in ops}


async def test_recover_resolves_a_batch_flow_in_one_call(rt: ConnectionRuntime) -> None:
    flow = FakeBatchFlow()
    ops = [await _crash_after_send(rt, flow, key) for key in ("b1", "b2", "b3")]
    flow.answers = {"b1": "ss-1", "b2": False}  # b3: cannot tell
    result = await recover(rt, [flow])
    assert flow.batches == [["b1", "b2", "b3"]]
    states = [(await rt.store.get_operation(op.id)) for op in ops]
    assert [s.state for s in states if s] == [S.CONFIRMED, S.FAILED, S.SENT]
    assert (result.recovered, result.retried) == (1, 1)
    await retry_due(rt, [flow])
    assert flow.executed == ["b1", "b2", "b3", "b2"]  # only the one not found is re-sent


async def test_recover_leaves_a_batch_sent_when_the_list_read_fails(
    rt: ConnectionRuntime,
) -> None:
    flow = FakeBatchFlow(outage=True)
    ops = [await _crash_after_send(rt, flow, key) for key in ("o1", "o2")]
    result = await recover(rt, [flow])
    assert result.failed == 2
    for op in ops:
        still = await rt.store.get_operation(op.id)
        assert still is not None
        assert still.state is S.SENT
    events = await rt.store.search_audit(AuditQuery(idempotency_key="o1"))
    assert events[0].action == "resolve"
    assert events[0].outcome == "failed"


async def test_retry_and_recovery_audit_the_entity_of_the_operation_kind(
    rt: ConnectionRuntime, fake_clock: FakeClock
) -> None:
    # a shipment write-back and an inventory adjust retried or recovered were audited as
    # entity "order" (direction plex->ss) whatever their kind
    ship = FakeFlow(name="shipments", kinds=frozenset({"plex.shipment.write_back"}))
    stock = FakeFlow(name="inventory", kinds=frozenset({"ss.inventory.adjust"}))
    ship.errors.append(TransientError("503"))
    ship_box = Outbox(rt, "shipments", direction="ss->plex", entity="shipment")
    await ship_box.submit(ship, "plex.shipment.write_back", "w1", {})
    stock.errors.append(Crash("killed"))
    with pytest.raises(Crash):
        await Outbox(rt, "inventory", entity="inventory").submit(
            stock, "ss.inventory.adjust", "a1", {}
        )
    stock.resolution = False  # not found: failed, due now
    await recover(rt, [stock])
    fake_clock.advance(3600)
    await retry_due(rt, [ship, stock])
    labels = {
        (e.idempotency_key, e.action, e.outcome): (e.direction, e.entity)
        for e in await rt.store.search_audit(AuditQuery())
        if e.idempotency_key
    }
    assert labels == {
        ("w1", "write", "failed"): ("ss->plex", "shipment"),
        ("w1", "write", "ok"): ("ss->plex", "shipment"),
        ("a1", "resolve", "not_found"): ("plex->ss", "inventory"),
        ("a1", "write", "ok"): ("plex->ss", "inventory"),
    }


def test_audit_labels_come_from_the_kind() -> None:
    assert audit_labels("ss.order.upsert") == ("plex->ss", "order")
    assert audit_labels("plex.shipment.reverse") == ("ss->plex", "shipment")
    assert audit_labels("test.write") == ("internal", "operation")
