"""The in-process scheduler with a FakeClock: intervals, in-process locks, due times in memory,
recovery, retries and alerts."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from sqlalchemy import event

from mlconnector.errors import TransientError
from mlconnector.store import OperationState
from mlconnector.sync import LogAlertSink
from mlconnector.sync.engine import FlowBusyError
from mlconnector.sync.runs import get_last_run, last_runs
from tests.unit.engine.conftest import CONNECTION, EngineEnv, FakeFlow, run_for


def _gaps(flow: FakeFlow) -> list[float]:
    starts = [start for start, _, _ in flow.runs]
    return [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]


async def test_each_flow_runs_on_its_own_interval(env: EngineEnv) -> None:
    fast = FakeFlow("orders", env.clock)
    slow = FakeFlow("inventory", env.clock)
    engine = env.engine(
        {"orders": fast, "inventory": slow}, intervals={"orders": 60, "inventory": 300}
    )
    await run_for(env, 905, engine)
    # the first run is at start; then every interval, measured from the previous start (a run
    # is noticed at the next 5-second tick at the latest)
    assert 14 <= len(fast.runs) <= 16
    assert all(60 <= gap < 70 for gap in _gaps(fast)), _gaps(fast)
    assert len(slow.runs) == 4
    assert all(300 <= gap < 310 for gap in _gaps(slow)), _gaps(slow)
    runs = await last_runs(env.store, CONNECTION)
    assert set(runs) == {"orders", "inventory"}
    assert runs["orders"].ok
    assert runs["orders"].owner == "worker-a"
    assert runs["orders"].at == fast.runs[-1][0]


async def test_the_schedule_survives_a_restart(env: EngineEnv) -> None:
    flow = FakeFlow("orders", env.clock)
    await run_for(env, 30, env.engine({"orders": flow}, intervals={"orders": 600}))
    assert len(flow.runs) == 1
    # a new process 30 s later does not run it again before the interval (the store says when)
    engine = env.engine({"orders": flow}, owner="worker-b", intervals={"orders": 600})
    await run_for(env, 300, engine)
    assert len(flow.runs) == 1


async def test_a_run_longer_than_its_interval_never_overlaps_the_next(env: EngineEnv) -> None:
    flow = FakeFlow("orders", env.clock, duration=100)
    engine = env.engine({"orders": flow}, intervals={"orders": 60})
    await run_for(env, 600, engine)
    assert flow.max_running == 1
    # the next run starts as soon as the long one ended (it was due meanwhile)
    assert 5 <= len(flow.runs) <= 7, flow.runs
    assert all(100 <= gap < 106 for gap in _gaps(flow)), _gaps(flow)


async def test_runs_start_at_their_due_time_not_at_the_next_tick(env: EngineEnv) -> None:
    flow = FakeFlow("orders", env.clock)
    engine = env.engine({"orders": flow}, intervals={"orders": 63})
    await run_for(env, 700, engine)
    assert _gaps(flow) == pytest.approx([63.0] * (len(flow.runs) - 1))
    assert engine.stats.lag["orders"] == pytest.approx([0.0] * len(flow.runs))


async def test_an_idle_tick_asks_the_store_once(env: EngineEnv) -> None:
    flows = {
        name: FakeFlow(name, env.clock, kinds=frozenset({"x"}))
        for name in ("orders", "shipments", "inventory", "order_status")
    }
    engine = env.engine(flows, intervals=dict.fromkeys(flows, 3600))
    await run_for(env, 30, engine)  # the first runs, recorded
    statements: list[str] = []

    def count(*args: Any) -> None:
        verb = str(args[2]).split()[0].upper()
        if verb not in {"BEGIN", "COMMIT", "ROLLBACK"}:  # transaction control of the reader
            statements.append(verb)

    event.listen(env.store.engine.sync_engine, "before_cursor_execute", count)
    try:
        for _ in range(10):
            env.clock.advance(engine.options.tick)
            await engine.tick()
        timed = list(statements)
        for _ in range(10):  # passes woken within a tick (a run ended, a nudge): no new read
            await engine.tick()
    finally:
        event.remove(env.store.engine.sync_engine, "before_cursor_execute", count)
    await engine.aclose()
    # due times live in memory: one statement per tick (which flows have due operations),
    # whatever the number of (connection, flow) pairs
    assert timed == ["SELECT"] * 10
    assert statements == timed
    assert all(len(f.runs) == 1 for f in flows.values())


async def test_concurrency_bounds_the_runs_in_progress(env: EngineEnv) -> None:
    flows = {
        name: FakeFlow(name, env.clock, duration=10)
        for name in ("orders", "shipments", "inventory", "order_status")
    }
    running: list[int] = []
    engine = env.engine(flows, intervals=dict.fromkeys(flows, 3600), concurrency=2)
    task = asyncio.create_task(engine.run_forever())
    await env.run(1)
    running.append(sum(f.running for f in flows.values()))
    assert sorted(engine.states(CONNECTION).values()) == ["doing", "doing", "queued", "queued"]
    await env.run(15)
    running.append(sum(f.running for f in flows.values()))
    engine.stop()
    while not task.done():
        await env.run(1)
    assert running == [2, 2]
    assert all(len(f.runs) == 1 for f in flows.values())


async def test_sent_operations_are_resolved_before_anything_is_resent(env: EngineEnv) -> None:
    flow = FakeFlow("orders", env.clock, kinds=frozenset({"ss.order.upsert"}))
    landed = await env.store.enqueue(CONNECTION, "orders", "ss.order.upsert", "k-landed", {})
    lost = await env.store.enqueue(CONNECTION, "orders", "ss.order.upsert", "k-lost", {})
    await env.store.mark_sent(landed.operation.id)
    await env.store.mark_sent(lost.operation.id)
    flow.resolutions = {"k-landed": "remote-1", "k-lost": False}
    env.clock.advance(1)
    await run_for(env, 10, env.engine({"orders": flow}, intervals={"orders": 600}))
    # both were looked up first; only the one not found was sent again, once, then the pass ran
    assert flow.calls == [
        ("resolve", "k-landed"),
        ("resolve", "k-lost"),
        ("execute", "k-lost"),
        ("run", "real"),
    ]
    first = await env.store.get_operation(landed.operation.id)
    second = await env.store.get_operation(lost.operation.id)
    assert first is not None
    assert first.state is OperationState.CONFIRMED
    assert first.remote_ref == "remote-1"
    assert second is not None
    assert second.state is OperationState.CONFIRMED


async def test_a_dead_operation_alerts_once(env: EngineEnv) -> None:
    flow = FakeFlow(
        "orders",
        env.clock,
        kinds=frozenset({"ss.order.upsert"}),
        execute_error=TransientError("ShipStation answered 503", status=503),
    )
    op = (await env.store.enqueue(CONNECTION, "orders", "ss.order.upsert", "k-1", {})).operation
    alerts = LogAlertSink()
    engine = env.engine({"orders": flow}, intervals={"orders": 60}, alerts=alerts, max_attempts=2)
    await run_for(env, 1200, engine)
    executes = [c for c in flow.calls if c[0] == "execute"]
    assert executes == [("execute", "k-1"), ("execute", "k-1")]  # the budget, then no more
    final = await env.store.get_operation(op.id)
    assert final is not None
    assert final.state is OperationState.DEAD
    assert len(alerts.sent) == 1
    assert "dead" in alerts.sent[0].title
    assert len(flow.runs) >= 15  # the flow kept running meanwhile


async def test_a_failing_run_backs_off_and_alerts_once_per_streak(env: EngineEnv) -> None:
    class Broken(FakeFlow):
        async def run(self, rt, *, dry_run=False):  # type: ignore[no-untyped-def]
            self.calls.append(("run", "failed"))
            raise TransientError("Plex is down", status=503)

    flow = Broken("orders", env.clock)
    alerts = LogAlertSink()
    engine = env.engine({"orders": flow}, intervals={"orders": 60}, alerts=alerts, max_attempts=3)
    await run_for(env, 600, engine)
    assert 4 <= len(flow.calls) <= 12
    assert len(alerts.sent) == 1
    last = await get_last_run(env.store, CONNECTION, "orders")
    assert last is not None
    assert not last.ok
    assert "Plex is down" in (last.error or "")


async def test_a_nudge_runs_the_inbox_flow_at_once(env: EngineEnv) -> None:
    inbox = FakeFlow("shipments", env.clock)
    engine = env.engine({"shipments": inbox}, intervals={"shipments": 3600})
    task = asyncio.create_task(engine.run_forever())
    await env.run(100)
    assert len(inbox.runs) == 1
    nudged_at = env.clock.now()
    engine.nudge(CONNECTION)
    await env.run(1)
    assert len(inbox.runs) == 2
    assert (inbox.runs[1][0] - nudged_at).total_seconds() < 1
    engine.stop()
    await task


async def test_a_nudge_while_the_inbox_flow_runs_waits_for_it_without_spinning(
    env: EngineEnv,
) -> None:
    inbox = FakeFlow("shipments", env.clock, duration=60)
    engine = env.engine({"shipments": inbox}, intervals={"shipments": 3600})
    task = asyncio.create_task(engine.run_forever())
    await env.run(10)  # the first run is 10 s into its 60
    ticks = engine.stats.ticks
    engine.nudge(CONNECTION)
    await env.run(45)
    assert len(inbox.runs) == 0  # still the first run: never two at once
    assert engine.stats.ticks - ticks < 20  # waited (at most a tick a 5 s), no busy loop
    await env.run(70)
    assert len(inbox.runs) == 2  # the nudged run followed the first one's end
    assert inbox.runs[1][0] == inbox.runs[0][1]
    assert inbox.max_running == 1
    engine.stop()
    await task


async def test_a_nudge_for_a_connection_it_does_not_run_is_dropped(env: EngineEnv) -> None:
    inbox = FakeFlow("shipments", env.clock)
    engine = env.engine({"shipments": inbox}, intervals={"shipments": 3600})
    task = asyncio.create_task(engine.run_forever())
    await env.run(10)
    ticks = engine.stats.ticks
    engine.nudge("not-configured")
    await env.run(30)
    assert engine.stats.ticks - ticks < 20
    assert len(inbox.runs) == 1
    engine.stop()
    await task


async def test_stop_finishes_the_running_step(env: EngineEnv) -> None:
    flow = FakeFlow("orders", env.clock, duration=100)
    engine = env.engine({"orders": flow}, intervals={"orders": 600})
    task = asyncio.create_task(engine.run_forever())
    await env.run(10)
    assert engine.states(CONNECTION) == {"orders": "doing"}
    engine.stop()
    while not task.done():
        await env.run(1)
    assert len(flow.runs) == 1  # the run was not cut short
    assert (flow.runs[0][1] - flow.runs[0][0]).total_seconds() == pytest.approx(100)
    assert engine.states(CONNECTION) == {}


async def test_run_once_dry_run_records_nothing(env: EngineEnv) -> None:
    flow = FakeFlow("orders", env.clock)
    engine = env.engine({"orders": flow})
    report = await engine.run_once(CONNECTION, "orders", dry_run=True)
    await engine.aclose()
    assert report.ok
    assert report.result is not None
    assert report.result.dry_run
    assert flow.calls == [("run", "dry")]
    assert await get_last_run(env.store, CONNECTION, "orders") is None


async def test_run_once_refuses_a_flow_running_in_this_process(env: EngineEnv) -> None:
    flow = FakeFlow("orders", env.clock, duration=60)
    engine = env.engine({"orders": flow}, intervals={"orders": 3600})
    task = asyncio.create_task(engine.run_forever())
    await env.run(1)
    with pytest.raises(FlowBusyError, match="running in this process"):
        await engine.run_once(CONNECTION, "orders")
    assert len(flow.runs) == 0
    await env.run(60)
    engine.stop()
    while not task.done():
        await env.run(1)
    once = asyncio.create_task(engine.run_once(CONNECTION, "orders"))
    await env.run(61)  # the run lasts 60 virtual seconds
    report = await once
    await engine.aclose()
    assert report.ok
    assert len(flow.runs) == 2
    last = await get_last_run(env.store, CONNECTION, "orders")
    assert last is not None
    assert last.ok
