"""The engine's scheduler with a FakeClock: intervals, leases, recovery, retries and alerts."""

from __future__ import annotations

import asyncio
import itertools
import os
from datetime import timedelta

import pytest

from mlconnector.errors import TransientError
from mlconnector.store import OperationState
from mlconnector.sync import LogAlertSink
from mlconnector.sync.engine import FlowBusyError, owner_is_dead_local_process
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


async def test_two_engines_on_one_database_never_run_a_flow_twice_at_once(
    env: EngineEnv,
) -> None:
    flow = FakeFlow("orders", env.clock, duration=40)
    a = env.engine({"orders": flow}, owner="worker-a", intervals={"orders": 60})
    b = env.engine(
        {"orders": flow}, owner="worker-b", intervals={"orders": 60}, store=await env.second_store()
    )
    await run_for(env, 600, a, b)
    assert flow.max_running == 1
    # the interval is shared: two workers do not double the runs
    assert 8 <= len(flow.runs) <= 11, flow.runs
    assert all(gap >= 60 for gap in _gaps(flow)), str(_gaps(flow))
    assert await env.store.get_lease(CONNECTION, "orders") is None  # released on stop


async def test_an_expired_lease_is_taken_over(env: EngineEnv) -> None:
    # a worker took the lease and died without renewing it
    dead = await env.store.try_acquire_lease(
        CONNECTION, "orders", "dead-worker", timedelta(seconds=120)
    )
    assert dead is not None
    start = env.clock.now()
    flow = FakeFlow("orders", env.clock)
    await run_for(env, 200, env.engine({"orders": flow}, intervals={"orders": 600}))
    assert len(flow.runs) == 1
    assert 120 <= (flow.runs[0][0] - start).total_seconds() < 130


async def test_a_long_run_renews_its_lease(env: EngineEnv) -> None:
    flow = FakeFlow("orders", env.clock, duration=500)
    a = env.engine({"orders": flow}, owner="worker-a", intervals={"orders": 3600}, lease_ttl=60)
    b = env.engine(
        {"orders": flow},
        owner="worker-b",
        intervals={"orders": 3600},
        lease_ttl=60,
        store=await env.second_store(),
    )
    await run_for(env, 450, a, b)
    assert flow.max_running == 1  # b never took the lease although the run outlived its TTL
    assert len(flow.runs) == 1


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


async def test_stop_finishes_the_running_step_and_releases_the_lease(env: EngineEnv) -> None:
    flow = FakeFlow("orders", env.clock, duration=100)
    engine = env.engine({"orders": flow}, intervals={"orders": 600})
    task = asyncio.create_task(engine.run_forever())
    await env.run(10)
    lease = await env.store.get_lease(CONNECTION, "orders")
    assert lease is not None
    assert lease.owner == "worker-a"
    engine.stop()
    while not task.done():
        await env.run(1)
    assert len(flow.runs) == 1  # the run was not cut short
    assert (flow.runs[0][1] - flow.runs[0][0]).total_seconds() == pytest.approx(100)
    assert await env.store.get_lease(CONNECTION, "orders") is None


async def test_run_once_dry_run_takes_no_lease_and_records_nothing(env: EngineEnv) -> None:
    flow = FakeFlow("orders", env.clock)
    engine = env.engine({"orders": flow})
    await env.store.try_acquire_lease(CONNECTION, "orders", "other", timedelta(seconds=60))
    report = await engine.run_once(CONNECTION, "orders", dry_run=True)
    await engine.aclose()
    assert report.ok
    assert report.result is not None
    assert report.result.dry_run
    assert flow.calls == [("run", "dry")]
    assert await get_last_run(env.store, CONNECTION, "orders") is None


async def test_run_once_refuses_a_flow_running_elsewhere(env: EngineEnv) -> None:
    flow = FakeFlow("orders", env.clock)
    engine = env.engine({"orders": flow})
    await env.store.try_acquire_lease(CONNECTION, "orders", "other", timedelta(seconds=60))
    with pytest.raises(FlowBusyError, match="running elsewhere"):
        await engine.run_once(CONNECTION, "orders")
    assert flow.calls == []
    env.clock.advance(61)
    report = await engine.run_once(CONNECTION, "orders")
    await engine.aclose()
    assert report.ok
    assert flow.calls == [("run", "real")]
    last = await get_last_run(env.store, CONNECTION, "orders")
    assert last is not None
    assert last.ok


async def test_a_lease_left_by_a_dead_process_of_this_host_is_taken_over_at_once(
    env: EngineEnv,
) -> None:
    import socket
    import sys

    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await child.wait()
    pid = str(child.pid)
    dead_owner = f"{socket.gethostname()}:{pid}:deadbeef"
    assert owner_is_dead_local_process(dead_owner)
    assert not owner_is_dead_local_process(f"{socket.gethostname()}:{os.getpid()}:x")
    assert not owner_is_dead_local_process(f"another-host:{pid}:x")
    await env.store.try_acquire_lease(CONNECTION, "orders", dead_owner, timedelta(seconds=600))
    flow = FakeFlow("orders", env.clock)
    engine = env.engine({"orders": flow})
    report = await engine.run_once(CONNECTION, "orders")
    await engine.aclose()
    assert report.ok
    assert flow.calls == [("run", "real")]
