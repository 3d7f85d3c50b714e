"""End to end over real loopback HTTP under injected faults: a 429 storm and 20 % server errors.

Both simulators are served on loopback (``tests.e2e.shipping_env``); the fault injectors sit in
front of their apps, so an injected answer means the simulator did nothing. Each engine step is
spelled out as the engine runs it (``recover`` → ``retry_due`` → ``run``); a run that gives up
(its retry budget spent on a read) is what the engine would back off from, and the next step
goes on. The claims: every Plex release ends up in ShipStation exactly once with its open
quantity, every label is written back to Plex exactly once, on-hand drops exactly once, and a
storm is waited out without a single failure being recorded.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from mlconnector.commands.ops_cmd import shipment_reference
from mlconnector.errors import RetryableError
from mlconnector.store import AuditQuery, OperationState
from mlconnector.sync import ConnectionRuntime, recover, retry_due
from mlconnector.sync.base import Flow, FlowResult
from mlconnector.sync.orders import OrdersFlow
from mlconnector.sync.shipments import ShipmentsFlow
from tests.conftest import FAKE_START
from tests.e2e.shipping_env import CONNECTION, PCN, ShipEnv, open_releases, ship_env


def _ss_items(env: ShipEnv) -> dict[str, int]:
    """Quantity per lineItemKey over every ShipStation order; fails on any duplicate."""
    orders = env.ss.all_orders()
    keys = Counter(str(o["orderKey"]) for o in orders)
    assert [k for k, n in keys.items() if n > 1] == [], "a ShipStation order was duplicated"
    items: dict[str, int] = {}
    for order in orders:
        for item in order["items"]:
            assert item["lineItemKey"] not in items, "a release is on two ShipStation orders"
            items[item["lineItemKey"]] = item["quantity"]
    return items


async def _step(rt: ConnectionRuntime, flow: Flow) -> FlowResult | None:
    """One engine step for ``flow``; ``None`` when the run gave up on a retryable error."""
    await recover(rt, [flow])
    await retry_due(rt, [flow])
    try:
        return await flow.run(rt)
    except RetryableError:
        return None


async def _unsettled(env: ShipEnv) -> list[Any]:
    ops = await env.store.list_operations(
        connection=CONNECTION,
        states=[OperationState.PENDING, OperationState.SENT, OperationState.FAILED],
    )
    return [*ops, *await env.store.pending_webhooks(connection=CONNECTION)]


async def _until_settled(env: ShipEnv, rt: ConnectionRuntime, flow: Flow, steps: int = 25) -> int:
    """Run engine steps (the clock past the longest backoff between them) until nothing is left
    pending, sent, failed or unprocessed and a run went through; return how many it took."""
    for n in range(1, steps + 1):
        result = await _step(rt, flow)
        env.step(rt.config.retry.max_delay_seconds + 1)
        if result is not None and result.failed == 0 and not await _unsettled(env):
            return n
    raise AssertionError(f"{flow.name} did not settle in {steps} steps: {await _unsettled(env)}")


async def _label_two_orders(env: ShipEnv) -> list[tuple[str, list[str], float]]:
    """Ship two linked orders whole (the webhooks land in the inbox); return, per label, its
    reference, its releases and the quantity it ships. Plex gets a container per release first,
    so the seed's stock never limits the write-back."""
    links = [lk for lk in await env.store.list_links(CONNECTION) if lk.ss_order_id]
    assert len(links) >= 2
    location = next(iter(env.plex.tenant(PCN).containers.values())).location_id
    labels = []
    for link in links[:2]:
        open_now = open_releases(env.plex)
        qty = sum(open_now[r] for r in link.release_ids if r in open_now)
        assert qty > 0
        for rid in link.release_ids:
            if rid in open_now:
                env.plex.add_container(env.part_of(rid), location, open_now[rid], tenant=PCN)
        label = env.ss.create_label(int(link.ss_order_id or 0))
        labels.append((f"ss-shipment-{label.shipment_id}", list(link.release_ids), qty))
    deliveries = await env.ss.deliver_webhooks()
    assert deliveries
    assert all(d.status == 200 for d in deliveries)
    return labels


def _total_on_hand(env: ShipEnv, release_ids: list[str]) -> float:
    parts = {env.part_of(r) for r in release_ids}
    return sum(env.plex.on_hand(p, tenant=PCN) for p in parts)


async def test_a_429_storm_is_waited_out_on_both_sides_with_no_failure(tmp_path: Path) -> None:
    async with ship_env(tmp_path, FAKE_START, orders=6) as env:
        rt = await env.runtime()
        await env.subscribe(rt)
        expected = {rid: int(q) for rid, q in open_releases(env.plex).items()}
        assert expected
        env.ss.faults.configure(storm_requests=6, storm_retry_after=5)
        env.plex.faults.configure(storm_requests=4, storm_retry_after=5)
        orders = await OrdersFlow().run(rt)
        assert orders.failed == 0, orders.errors
        assert env.ss.faults.config.injected.get("storm") == 6  # the storm really happened
        assert env.plex.faults.config.injected.get("storm") == 4
        assert _ss_items(env) == expected
        assert env.ss_rec.count("POST", "/orders/createorder") == 0
        assert await _unsettled(env) == []

        all_releases = list(expected)
        labels = await _label_two_orders(env)
        stock_before = _total_on_hand(env, all_releases)
        env.step()
        env.ss.faults.configure(storm_requests=6, storm_retry_after=5)
        env.plex.faults.configure(storm_requests=6, storm_retry_after=5)
        shipped = await ShipmentsFlow().run(rt)
        assert shipped.failed == 0, shipped.errors
        assert shipped.written_back == len(labels)
        assert env.ss.faults.config.injected.get("storm") == 6
        assert env.plex.faults.config.injected.get("storm") == 6
        for reference, _, _ in labels:
            assert len(env.shippers_for(reference)) == 1, reference
            # the write-back is in the audit trail under the shipment (what `audit --shipment
            # ID` searches, ID turned into this reference)
            events = await env.store.search_audit(
                AuditQuery(shipment_id=shipment_reference(reference.removeprefix("ss-shipment-")))
            )
            assert any(e.action == "write_back" and e.outcome == "ok" for e in events), events
        moved = sum(qty for _, _, qty in labels)
        assert stock_before - _total_on_hand(env, all_releases) == moved
        assert await _unsettled(env) == []
        failures = await env.store.list_operations(
            connection=CONNECTION, states=[OperationState.FAILED, OperationState.DEAD]
        )
        assert failures == []  # a storm is never surfaced as a failure


async def test_twenty_percent_server_errors_converge_with_no_duplicate(tmp_path: Path) -> None:
    async with ship_env(tmp_path, FAKE_START, orders=8) as env:
        rt = await env.runtime()
        await env.subscribe(rt)
        expected = {rid: int(q) for rid, q in open_releases(env.plex).items()}
        assert expected
        env.ss.faults.configure(error_rate=0.2, error_status=500, seed=18)
        env.plex.faults.configure(error_rate=0.2, error_status=503, seed=11)
        await _until_settled(env, rt, OrdersFlow())
        assert env.ss.faults.config.injected.get("error", 0) > 0
        assert env.plex.faults.config.injected.get("error", 0) > 0
        assert _ss_items(env) == expected
        dead = await env.store.list_operations(connection=CONNECTION, states=[OperationState.DEAD])
        assert dead == []

        all_releases = list(expected)
        labels = await _label_two_orders(env)
        stock_before = _total_on_hand(env, all_releases)
        env.step()
        ss_errors = env.ss.faults.config.injected.get("error", 0)
        plex_errors = env.plex.faults.config.injected.get("error", 0)
        await _until_settled(env, rt, ShipmentsFlow())
        assert env.ss.faults.config.injected.get("error", 0) > ss_errors
        assert env.plex.faults.config.injected.get("error", 0) > plex_errors
        for reference, release_ids, _ in labels:
            assert len(env.shippers_for(reference)) == 1, reference
            for rid in release_ids:
                release = env.plex.release(rid, tenant=PCN)
                assert release.quantity_shipped == release.quantity, rid
        moved = sum(qty for _, _, qty in labels)
        assert stock_before - _total_on_hand(env, all_releases) == moved
        # more runs under the same faults change nothing
        for _ in range(3):
            await _step(rt, ShipmentsFlow())
            env.step()
        for reference, _, _ in labels:
            assert len(env.shippers_for(reference)) == 1, reference
        assert stock_before - _total_on_hand(env, all_releases) == moved
        assert _ss_items(env) == expected
