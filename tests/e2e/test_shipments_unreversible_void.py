"""An unreversible void (customer-shipper strategy) interrupted on its first attempt goes ``dead``
once with one alert on every path — retry, crash recovery, replay — and the pass goes on.

Over real loopback HTTP (Plex and ShipStation simulators); the interruption is a crash between
``sent`` and confirm, or a 5xx on the first attempt of the reverse.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mlconnector.errors import TransientError
from mlconnector.plex import WriteResult
from mlconnector.store import AuditQuery, Link, OperationState
from mlconnector.sync import ConnectionRuntime, recover, replay, retry_due
from mlconnector.sync.alerts import Alert
from mlconnector.sync.engine import Engine
from mlconnector.sync.shipments import ShipmentsFlow, op_key
from tests.conftest import FAKE_START
from tests.e2e.shipping_env import CONNECTION, PCN, ShipEnv, ship_env


class Crash(Exception):
    """A kill between ``sent`` and confirm."""


class Alerts:
    def __init__(self) -> None:
        self.sent: list[Alert] = []

    async def alert(self, alert: Alert) -> None:
        self.sent.append(alert)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[ShipEnv]:
    async with ship_env(tmp_path, FAKE_START, orders=6) as e:
        yield e


async def _written_back(env: ShipEnv) -> tuple[ConnectionRuntime, Alerts, ShipmentsFlow, int]:
    """A label written back with the shipper strategy, then voided in ShipStation."""
    rt = await env.runtime()
    alerts = Alerts()
    rt.alerts = alerts
    links = await env.link_orders(rt)
    link = links[0]
    env.step()
    label = env.ss.create_label(int(link.ss_order_id or 0), tracking_number="1ZUNDO")
    env.step()
    flow = ShipmentsFlow()
    assert (await flow.run(rt)).written_back == 1
    env.ss.void_label(label.shipment_id)
    env.step()
    return rt, alerts, flow, label.shipment_id


def _other_link(env: ShipEnv, links: list[Link], used: int) -> Link:
    """Another linked order, with enough Plex stock to ship all of it."""
    link = next(lk for lk in links if lk.ss_order_id and int(lk.ss_order_id) != used)
    data = env.plex.tenant(PCN)
    location = next(iter(data.containers.values())).location_id
    for rid in link.release_ids:
        release = data.releases[rid]
        left = release.quantity - release.quantity_shipped
        env.plex.add_container(env.part_of(rid), location, left, tenant=PCN)
    return link


async def _void_op(env: ShipEnv, shipment_id: int) -> OperationState:
    op = await env.store.get_operation_by_key(op_key(CONNECTION, f"ss-void-{shipment_id}"))
    assert op is not None
    return op.state


async def _needs_operator(env: ShipEnv) -> int:
    return len(await env.store.search_audit(AuditQuery(outcome="needs_operator")))


async def test_void_killed_after_sent_is_dead_once_on_recovery_and_the_pass_completes(
    env: ShipEnv,
) -> None:
    rt, alerts, flow, shipment_id = await _written_back(env)
    reverse = rt.writer.reverse  # type: ignore[attr-defined]

    async def killed(reference: str) -> WriteResult:
        raise Crash

    rt.writer.reverse = killed  # type: ignore[attr-defined]
    with pytest.raises(Crash):
        await flow.run(rt)
    assert await _void_op(env, shipment_id) is OperationState.SENT
    rt.writer.reverse = reverse  # type: ignore[attr-defined]
    # the engine's order of steps: recover, retry the due operations, then the pass
    recovered = await recover(rt, [flow])
    assert recovered.recovered == 0  # the shipper is still shipped in Plex: not reversed
    retried = await retry_due(rt, [flow])  # must not raise: one operation, not the connection
    assert retried.failed == 1
    assert await _void_op(env, shipment_id) is OperationState.DEAD
    assert len(alerts.sent) == 1
    assert "needs an operator" in alerts.sent[0].title
    assert "un-ship the shipper in Plex" in str(alerts.sent[0].details["hint"])
    assert await _needs_operator(env) == 1
    # the pass goes on: a new label of another order is written back in the same run
    links = await env.store.list_links(CONNECTION)
    other = _other_link(env, links, int(links[0].ss_order_id or 0))
    label = env.ss.create_label(int(other.ss_order_id or 0), tracking_number="1ZNEXT")
    env.step()
    result = await flow.run(rt)
    assert result.written_back == 1, result.errors
    assert len(env.shippers_for(f"ss-shipment-{label.shipment_id}")) == 1
    # once: later passes and retries do not try again
    env.step()
    assert (await retry_due(rt, [flow])).failed == 0
    await flow.run(rt)
    assert len(alerts.sent) == 1
    assert await _needs_operator(env) == 1


async def test_void_with_a_5xx_first_is_dead_once_on_the_retry_path(env: ShipEnv) -> None:
    rt, alerts, flow, shipment_id = await _written_back(env)
    reverse = rt.writer.reverse  # type: ignore[attr-defined]
    calls = 0

    async def flaky(reference: str) -> WriteResult:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TransientError("Plex answered 503", status=503, record=reference)
        result: WriteResult = await reverse(reference)
        return result

    rt.writer.reverse = flaky  # type: ignore[attr-defined]
    first = await flow.run(rt)
    assert first.failed == 1
    assert await _void_op(env, shipment_id) is OperationState.FAILED
    assert alerts.sent == []
    env.step(3600 * 2)  # past the backoff
    retried = await retry_due(rt, [flow])
    assert retried.failed == 1
    assert await _void_op(env, shipment_id) is OperationState.DEAD
    assert len(alerts.sent) == 1
    assert await _needs_operator(env) == 1
    for _ in range(3):  # never again until an operator replays it
        env.step(3600 * 2)
        await retry_due(rt, [flow])
        await flow.run(rt)
    assert len(alerts.sent) == 1
    assert calls == 2


async def test_replayed_unreversible_void_is_dead_again_once_without_stopping_the_retries(
    env: ShipEnv,
) -> None:
    rt, alerts, flow, shipment_id = await _written_back(env)
    await flow.run(rt)
    assert await _void_op(env, shipment_id) is OperationState.DEAD
    assert len(alerts.sent) == 1
    # an early replay (before the operator un-shipped in Plex), next to another due operation
    links = await env.store.list_links(CONNECTION)
    other = _other_link(env, links, int(links[0].ss_order_id or 0))
    label = env.ss.create_label(int(other.ss_order_id or 0), tracking_number="1ZBOTH")
    op = await env.store.get_operation_by_key(op_key(CONNECTION, f"ss-void-{shipment_id}"))
    assert op is not None
    await replay(env.store, [op.id])
    env.step()
    retried = await retry_due(rt, [flow])
    assert retried.failed == 1
    assert await _void_op(env, shipment_id) is OperationState.DEAD
    assert len(alerts.sent) == 2  # one per replay, never a loop
    result = await flow.run(rt)
    assert result.written_back == 1, result.errors
    assert len(env.shippers_for(f"ss-shipment-{label.shipment_id}")) == 1
    assert env.plex.tenant(PCN).shippers  # Plex was reached throughout


async def test_engine_run_after_an_interrupted_void_completes_with_one_dead_operation(
    env: ShipEnv,
) -> None:
    rt, alerts, flow, shipment_id = await _written_back(env)
    reverse = rt.writer.reverse  # type: ignore[attr-defined]

    async def killed(reference: str) -> WriteResult:
        raise Crash

    rt.writer.reverse = killed  # type: ignore[attr-defined]
    with pytest.raises(Crash):
        await flow.run(rt)
    rt.writer.reverse = reverse  # type: ignore[attr-defined]
    links = await env.store.list_links(CONNECTION)
    other = _other_link(env, links, int(links[0].ss_order_id or 0))
    label = env.ss.create_label(int(other.ss_order_id or 0), tracking_number="1ZENGINE")
    env.step()
    # a restarted process: the engine recovers, retries the due operations, then runs the pass
    engine = Engine(env.config(), env.store, env.clock, alerts=alerts)
    report = await engine.run_once(CONNECTION, "shipments")
    await engine.aclose()
    assert report.error is None, report.error
    assert not report.fatal
    assert report.result is not None
    assert report.result.written_back == 1
    assert report.outcome == "partial"  # one operation needs a person; the pass went through
    assert len(env.shippers_for(f"ss-shipment-{label.shipment_id}")) == 1
    assert await _void_op(env, shipment_id) is OperationState.DEAD
    assert len(alerts.sent) == 1
    assert await _needs_operator(env) == 1
