"""End to end over real loopback HTTP: ShipStation labels/fulfilments → ShipmentsFlow → Plex.

Orders are first created in the ShipStation simulator by the orders flow (links in the store);
labels are made with the simulator's operator surface; SHIP_NOTIFY deliveries reach a receiver on
loopback that persists them into the inbox. Plex effects are asserted on the Plex simulator's own
state: shippers naming the reference, releases' ``quantityShipped`` and shippable on-hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlconnector.plex import ShipmentWrite, WriteResult
from mlconnector.sandbox.plex import DEFAULT_WS_PASSWORD, PlexSandbox
from mlconnector.shipstation import Order
from mlconnector.store import AuditQuery, CredentialKind, Link, OperationState
from mlconnector.sync import ConnectionRuntime, recover, replay, retry_due
from mlconnector.sync.alerts import Alert
from mlconnector.sync.shipments import ShipmentsFlow, op_key
from mlconnector.timezones import parse_utc_z
from tests.conftest import FAKE_START
from tests.e2e.shipping_env import CONNECTION, PCN, ShipEnv, ship_env


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[ShipEnv]:
    async with ship_env(tmp_path, FAKE_START) as e:
        yield e


def _open(env: ShipEnv, link: Link) -> dict[str, float]:
    """Open quantity per release of a link, from the Plex simulator."""
    result = {}
    for rid in link.release_ids:
        release = env.plex.release(rid, tenant=PCN)
        result[rid] = release.quantity - release.quantity_shipped
    return result


def _on_hand(env: ShipEnv, release_ids: list[str]) -> dict[str, float]:
    parts = {env.part_of(r) for r in release_ids}
    return {p: env.plex.on_hand(p, tenant=PCN) for p in parts}


async def _linked(env: ShipEnv, *, min_releases: int = 1) -> tuple[ConnectionRuntime, Link]:
    rt = await env.runtime()
    links = await env.link_orders(rt)
    link = next(lk for lk in links if len(lk.release_ids) >= min_releases)
    assert link.ss_order_id is not None
    return rt, link


async def test_label_seen_by_webhook_and_poll_is_written_back_once(env: ShipEnv) -> None:
    rt, link = await _linked(env)
    await env.subscribe(rt)
    open_before = _open(env, link)
    stock_before = _on_hand(env, link.release_ids)
    env.step()
    label = env.ss.create_label(int(link.ss_order_id or 0), tracking_number="1Z999AA10123456784")
    deliveries = await env.ss.deliver_webhooks()
    assert [d.status for d in deliveries] == [200]
    assert len(await env.store.pending_webhooks(connection=CONNECTION)) == 1
    env.step()
    flow = ShipmentsFlow()
    polls_before = env.ss_rec.count("GET", "/shipments")
    dry = await flow.run(rt, dry_run=True)
    assert [i.key for i in dry.plan if i.action == "write_back"] == [
        f"ss-shipment-{label.shipment_id}"
    ]
    assert env.shippers_for(f"ss-shipment-{label.shipment_id}") == []  # a dry run writes nothing
    result = await flow.run(rt)
    assert result.failed == 0, result.errors
    # the webhook pointed at it and the /shipments poll read it: one write (the delivery,
    # older than the poll window's end, was left to the poll instead of being followed too)
    assert result.read >= 1
    # dry run and run: two polls each (createDate, voidDate), no follow of the delivery
    assert env.ss_rec.count("GET", "/shipments") == polls_before + 4
    assert result.written_back == 1
    reference = f"ss-shipment-{label.shipment_id}"
    shippers = env.shippers_for(reference)
    assert len(shippers) == 1
    assert shippers[0].tracking_number == "1Z999AA10123456784"
    assert shippers[0].status == "Shipped"
    for rid in open_before:
        release = env.plex.release(rid, tenant=PCN)
        assert release.quantity - release.quantity_shipped == 0  # all that was open shipped
    shipped = sum(open_before.values())
    assert sum(stock_before.values()) - sum(_on_hand(env, link.release_ids).values()) == shipped
    item = await env.store.pending_webhooks(connection=CONNECTION)
    assert item == []  # the inbox item was finished
    lines = await env.store.get_shipment_lines(CONNECTION, reference)
    assert {line.line_key for line in lines} == {r.lower() for r in link.release_ids}
    assert all(line.written_back_at is not None for line in lines)
    # later runs (poll overlap, a re-sent delivery with different bytes) change nothing
    body = env.ss.webhooks.delivered[0].body
    await env.store.receive_webhook(CONNECTION, body + b" ", {})
    env.step()
    again = await flow.run(rt)
    assert again.written_back == 0
    assert again.failed == 0
    assert await env.store.pending_webhooks(connection=CONNECTION) == []  # finished, no write
    assert len(env.shippers_for(reference)) == 1
    assert sum(stock_before.values()) - sum(_on_hand(env, link.release_ids).values()) == shipped


async def test_duplicate_and_reordered_deliveries_write_each_label_once(env: ShipEnv) -> None:
    rt = await env.runtime()
    links = (await env.link_orders(rt))[:3]
    await env.subscribe(rt)
    env.ss.faults.configure(duplicate_webhooks=True, reorder_webhooks=True, seed=7)
    env.step()
    labels = [env.ss.create_label(int(lk.ss_order_id or 0)) for lk in links]
    deliveries = await env.ss.deliver_webhooks()
    assert len(deliveries) == 2 * len(labels)  # every delivery sent twice, shuffled
    stock_before = {p: env.plex.on_hand(p, tenant=PCN) for p in env.plex.tenant(PCN).parts}
    env.step()
    result = await ShipmentsFlow().run(rt)
    assert result.failed == 0, result.errors
    assert result.written_back == len(labels)
    for label in labels:
        assert len(env.shippers_for(f"ss-shipment-{label.shipment_id}")) == 1
    shipped = sum(item.quantity for label in labels for item in label.items)
    after = {p: env.plex.on_hand(p, tenant=PCN) for p in stock_before}
    assert sum(stock_before.values()) - sum(after.values()) == shipped


async def test_split_and_partial_shipments_write_only_their_own_lines(env: ShipEnv) -> None:
    rt, link = await _linked(env, min_releases=2)
    first, second = sorted(link.release_ids)[:2]
    open_first = _open(env, link)[first]
    open_second = _open(env, link)[second]
    # a partial quantity of the first release: give Plex an exact whole container for it
    partial = max(1, int(open_first) // 2)
    location = next(iter(env.plex.tenant(PCN).containers.values())).location_id
    env.plex.add_container(env.part_of(first), location, partial, tenant=PCN)
    order_id = int(link.ss_order_id or 0)
    env.step()
    label_a = env.ss.create_label(order_id, {first: partial})
    label_b = env.ss.create_label(order_id, {second: int(open_second)})
    env.step()
    result = await ShipmentsFlow().run(rt)
    assert result.failed == 0, result.errors
    assert result.written_back == 2
    assert env.plex.quantity_shipped(first, tenant=PCN) == partial
    assert env.plex.quantity_shipped(second, tenant=PCN) == int(open_second)
    lines_a = await env.store.get_shipment_lines(CONNECTION, f"ss-shipment-{label_a.shipment_id}")
    lines_b = await env.store.get_shipment_lines(CONNECTION, f"ss-shipment-{label_b.shipment_id}")
    assert [(ln.line_key, ln.quantity) for ln in lines_a] == [(first.lower(), partial)]
    assert [(ln.line_key, ln.quantity) for ln in lines_b] == [(second.lower(), int(open_second))]
    for label in (label_a, label_b):
        assert len(env.shippers_for(f"ss-shipment-{label.shipment_id}")) == 1


async def test_one_label_shipping_several_releases_is_one_write_back(env: ShipEnv) -> None:
    rt, link = await _linked(env, min_releases=2)
    open_before = _open(env, link)
    location = next(iter(env.plex.tenant(PCN).containers.values())).location_id
    for rid, qty in open_before.items():  # enough stock for every release
        env.plex.add_container(env.part_of(rid), location, qty, tenant=PCN)
    env.step()
    label = env.ss.create_label(int(link.ss_order_id or 0))
    env.step()
    result = await ShipmentsFlow().run(rt)
    assert result.written_back == 1, result.errors
    assert len(env.shippers_for(f"ss-shipment-{label.shipment_id}")) == 1
    for rid in open_before:
        release = env.plex.release(rid, tenant=PCN)
        assert release.quantity - release.quantity_shipped == 0  # every release shipped in full


async def test_void_after_write_back_fails_visibly_with_the_shipper_strategy(
    env: ShipEnv,
) -> None:
    rt, link = await _linked(env)
    env.step()
    label = env.ss.create_label(int(link.ss_order_id or 0), tracking_number="1ZVOID")
    env.step()
    flow = ShipmentsFlow()
    assert (await flow.run(rt)).written_back == 1
    env.ss.void_label(label.shipment_id)
    env.step()
    result = await flow.run(rt)
    assert result.failed == 1
    assert any("un-ship the shipper in Plex" in e for e in result.errors)
    void = await env.store.get_operation_by_key(op_key(CONNECTION, f"ss-void-{label.shipment_id}"))
    assert void is not None
    assert void.state is OperationState.DEAD
    events = await env.store.search_audit(AuditQuery(outcome="needs_operator"))
    assert len(events) == 1
    assert events[0].details["hint"]
    shipper = env.shippers_for(f"ss-shipment-{label.shipment_id}")[0]
    assert "VOIDED in ShipStation" in (shipper.shipper_note or "")
    # once: a later run does not try again (dead until an operator replays it)
    env.step()
    later = await flow.run(rt)
    assert later.failed == 0
    assert len(await env.store.search_audit(AuditQuery(outcome="needs_operator"))) == 1


async def test_void_after_write_back_is_reversed_once_with_the_datasource_strategy(
    env: ShipEnv,
) -> None:
    await env.store.set_credential(CONNECTION, CredentialKind.PLEX_WS_PASSWORD, DEFAULT_WS_PASSWORD)
    rt = await env.runtime(
        plex={
            "datasource_base_url": env.plex_url,
            "web_service_user": PlexSandbox.ws_username(PCN),
        },
        write_back="datasource",
    )
    link = (await env.link_orders(rt))[0]
    # inventory shipments move whole containers: give each shipped part one of the exact size
    location = next(iter(env.plex.tenant(PCN).containers.values())).location_id
    for rid, qty in _open(env, link).items():
        env.plex.add_container(env.part_of(rid), location, qty, tenant=PCN)
    stock = _on_hand(env, link.release_ids)
    shipped = sum(_open(env, link).values())
    env.step()
    label = env.ss.create_label(int(link.ss_order_id or 0))
    env.step()
    flow = ShipmentsFlow()
    result = await flow.run(rt)
    assert result.written_back == 1, result.errors
    assert sum(stock.values()) - sum(_on_hand(env, link.release_ids).values()) == shipped
    env.ss.void_label(label.shipment_id)
    env.step()
    reversed_run = await flow.run(rt)
    assert reversed_run.failed == 0, reversed_run.errors
    assert reversed_run.cancelled == 1
    assert _on_hand(env, link.release_ids) == stock  # the containers came back
    lines = await env.store.get_shipment_lines(CONNECTION, f"ss-shipment-{label.shipment_id}")
    assert lines
    assert all(line.reversed_at is not None for line in lines)
    # once: the void seen again (poll overlap) changes nothing
    env.step()
    again = await flow.run(rt)
    assert again.cancelled == 0
    assert _on_hand(env, link.release_ids) == stock
    void = await env.store.get_operation_by_key(op_key(CONNECTION, f"ss-void-{label.shipment_id}"))
    assert void is not None
    assert void.state is OperationState.CONFIRMED


async def test_void_before_write_back_is_recorded_and_never_written(env: ShipEnv) -> None:
    rt, link = await _linked(env)
    env.step()
    label = env.ss.create_label(int(link.ss_order_id or 0))
    env.ss.void_label(label.shipment_id)
    stock = _on_hand(env, link.release_ids)
    env.step()
    flow = ShipmentsFlow()
    result = await flow.run(rt)
    assert result.written_back == 0
    assert result.failed == 0
    assert any(i.action == "record_void" for i in result.plan)
    assert env.shippers_for(f"ss-shipment-{label.shipment_id}") == []
    env.step()
    await flow.run(rt)
    await retry_due(rt, [flow])
    assert env.shippers_for(f"ss-shipment-{label.shipment_id}") == []
    assert _on_hand(env, link.release_ids) == stock


async def test_foreign_resource_url_is_rejected_without_a_request(env: ShipEnv) -> None:
    rt = await env.runtime()
    body = (
        '{"resource_url": "' + env.foreign_url + '/shipments?batchId=1", '
        '"resource_type": "SHIP_NOTIFY"}'
    ).encode()
    received = await env.store.receive_webhook(CONNECTION, body, {"content-type": "json"})
    result = await ShipmentsFlow().run(rt)
    assert env.foreign.calls == []  # nothing, not even a connection with credentials
    item = await env.store.get_webhook(received.item.id)
    assert item is not None
    assert item.processed_at is not None
    assert (item.outcome or "").startswith("rejected")
    assert any(i.action == "reject" for i in result.plan)
    events = await env.store.search_audit(AuditQuery(flow="shipments", outcome="skipped"))
    assert any(e.entity == "webhook" for e in events)


async def test_fulfillment_marked_shipped_is_written_back(env: ShipEnv) -> None:
    rt, link = await _linked(env)
    open_before = _open(env, link)
    env.step()
    fulfillment = env.ss.mark_shipped(int(link.ss_order_id or 0), tracking_number="FF-1")
    env.step()
    result = await ShipmentsFlow().run(rt)
    assert result.failed == 0, result.errors
    assert result.written_back == 1
    assert len(env.shippers_for(f"ss-fulfillment-{fulfillment['fulfillmentId']}")) == 1
    for rid in open_before:
        release = env.plex.release(rid, tenant=PCN)
        assert release.quantity - release.quantity_shipped == 0


async def test_unknown_order_key_is_skipped_with_the_reason(env: ShipEnv) -> None:
    rt, link = await _linked(env)
    # an order another system created in the same ShipStation account: no link here
    theirs = dict(env.ss.order_by_key(link.order_key) or {})
    for field_name in ("orderId", "createDate", "modifyDate"):
        theirs.pop(field_name, None)
    theirs.update(orderKey="shopify-123", orderNumber="SHOP-123")
    created = await rt.ss_v1.create_or_update_order(Order.model_validate(theirs))
    assert created.order_id is not None
    env.step()
    label = env.ss.create_label(created.order_id)
    env.step()
    result = await ShipmentsFlow().run(rt)
    assert result.written_back == 0
    skip = [i for i in result.plan if i.key == f"ss-shipment-{label.shipment_id}"]
    assert skip
    assert all(i.action == "skip" and "not ours" in i.reason for i in skip)
    assert env.shippers_for(f"ss-shipment-{label.shipment_id}") == []


def _pacific_fallback() -> tuple[datetime, datetime, datetime]:
    """01:50 PDT (first pass), 01:30 PST (second pass, 09:30Z) and a run inside the hour."""
    return (
        datetime(2026, 11, 1, 8, 50, tzinfo=UTC),
        datetime(2026, 11, 1, 9, 30, tzinfo=UTC),
        datetime(2026, 11, 1, 9, 45, tzinfo=UTC),
    )


async def test_fall_back_hour_shipment_is_picked_up_by_the_poll(tmp_path: Path) -> None:
    first_at, second_at, run_at = _pacific_fallback()
    async with ship_env(tmp_path, datetime(2026, 10, 31, 20, 0, tzinfo=UTC)) as env:
        rt = await env.runtime()
        links = await env.link_orders(rt)
        flow = ShipmentsFlow()
        env.set_time(first_at)
        label_a = env.ss.create_label(int(links[0].ss_order_id or 0))
        env.set_time(datetime(2026, 11, 1, 9, 0, tzinfo=UTC))
        assert (await flow.run(rt)).written_back == 1
        env.set_time(second_at)  # 01:30 again on the wall clock, 40 minutes *after* label A
        label_b = env.ss.create_label(int(links[1].ss_order_id or 0))
        env.set_time(run_at)  # 01:45 PST: an end filter of "01:43" may read as 01:43 PDT
        during = await flow.run(rt)
        env.set_time(datetime(2026, 11, 1, 10, 30, tzinfo=UTC))  # 02:30 PST, after the hour
        result = await flow.run(rt)
        assert during.failed == result.failed == 0, during.errors + result.errors
        # picked up (by whichever run first covered it) and written exactly once
        assert during.written_back + result.written_back == 1
        reference = f"ss-shipment-{label_b.shipment_id}"
        assert len(env.shippers_for(reference)) == 1
        op = await env.store.get_operation_by_key(op_key(CONNECTION, reference))
        assert op is not None
        written = op.payload["ship_date"]
        # V1 says "2026-11-01T01:30:00" with no offset: either pass of the hour is 01:30 Pacific,
        # and whichever it is, Plex gets it in UTC with Z.
        assert written.endswith("Z")
        assert parse_utc_z(written) in (
            datetime(2026, 11, 1, 8, 30, tzinfo=UTC),
            datetime(2026, 11, 1, 9, 30, tzinfo=UTC),
        )
        assert f"shipped {written}" in (env.shippers_for(reference)[0].shipper_note or "")
        assert len(env.shippers_for(f"ss-shipment-{label_a.shipment_id}")) == 1


async def test_spring_forward_day_ship_dates_are_exact_utc(tmp_path: Path) -> None:
    async with ship_env(tmp_path, datetime(2026, 3, 8, 6, 0, tzinfo=UTC)) as env:
        rt = await env.runtime()
        links = await env.link_orders(rt)
        env.set_time(datetime(2026, 3, 8, 9, 59, tzinfo=UTC))  # 01:59 PST
        before = env.ss.create_label(int(links[0].ss_order_id or 0))
        env.set_time(datetime(2026, 3, 8, 10, 0, tzinfo=UTC))  # 03:00 PDT (02:xx never happens)
        after = env.ss.create_label(int(links[1].ss_order_id or 0))
        env.set_time(datetime(2026, 3, 8, 10, 30, tzinfo=UTC))
        result = await ShipmentsFlow().run(rt)
        assert result.failed == 0, result.errors
        assert result.written_back == 2
        for label, expected in (
            (before, datetime(2026, 3, 8, 9, 59)),
            (after, datetime(2026, 3, 8, 10)),
        ):
            op = await env.store.get_operation_by_key(
                op_key(CONNECTION, f"ss-shipment-{label.shipment_id}")
            )
            assert op is not None
            assert op.payload["ship_date"].endswith("Z")
            assert parse_utc_z(op.payload["ship_date"]) == expected.replace(tzinfo=UTC)


class Crash(Exception):
    """The process 'dies' (not part of the connector's error tree)."""


async def test_crash_after_the_plex_write_is_recovered_without_a_second_write(
    env: ShipEnv,
) -> None:
    rt, link = await _linked(env)
    stock = _on_hand(env, link.release_ids)
    shipped = sum(_open(env, link).values())
    env.step()
    label = env.ss.create_label(int(link.ss_order_id or 0), tracking_number="1ZCRASH")
    env.step()
    write = rt.writer.write_shipment

    async def write_then_die(shipment: ShipmentWrite, **kw: Any) -> WriteResult:
        await write(shipment, **kw)
        raise Crash  # after Plex shipped it, before the outbox heard back

    rt.writer.write_shipment = write_then_die  # type: ignore[method-assign]
    flow = ShipmentsFlow()
    with pytest.raises(Crash):
        await flow.run(rt)
    reference = f"ss-shipment-{label.shipment_id}"
    op = await env.store.get_operation_by_key(op_key(CONNECTION, reference))
    assert op is not None
    assert op.state is OperationState.SENT
    rt.writer.write_shipment = write  # type: ignore[method-assign]
    recovered = await recover(rt, [flow])
    assert recovered.recovered == 1
    done = await env.store.get_operation_by_key(op_key(CONNECTION, reference))
    assert done is not None
    assert done.state is OperationState.CONFIRMED, done.last_error
    env.step()
    again = await flow.run(rt)
    assert again.written_back == 0
    await retry_due(rt, [flow])
    assert len(env.shippers_for(reference)) == 1
    assert sum(stock.values()) - sum(_on_hand(env, link.release_ids).values()) == shipped
    assert await env.store.unwritten_quantities(CONNECTION) == {}


class Alerts:
    def __init__(self) -> None:
        self.sent: list[Alert] = []

    async def alert(self, alert: Alert) -> None:
        self.sent.append(alert)


async def _short_stock_runtime(env: ShipEnv, write_back: str) -> tuple[ConnectionRuntime, Alerts]:
    plex: dict[str, Any] = {}
    if write_back == "datasource":
        await env.store.set_credential(
            CONNECTION, CredentialKind.PLEX_WS_PASSWORD, DEFAULT_WS_PASSWORD
        )
        plex = {
            "datasource_base_url": env.plex_url,
            "web_service_user": PlexSandbox.ws_username(PCN),
        }
    rt = await env.runtime(plex=plex, write_back=write_back)
    alerts = Alerts()
    rt.alerts = alerts
    return rt, alerts


@pytest.mark.parametrize("write_back", ["shipper", "datasource"])
async def test_short_stock_creates_nothing_raises_one_task_then_replay_completes(
    env: ShipEnv, write_back: str
) -> None:
    rt, alerts = await _short_stock_runtime(env, write_back)
    link = (await env.link_orders(rt))[0]
    release_id = sorted(link.release_ids)[0]
    need = _open(env, link)[release_id]
    assert need > 1
    part_id = env.part_of(release_id)
    data = env.plex.tenant(PCN)
    stock = sorted(
        (c for c in data.containers.values() if c.part_id == part_id and c.quantity > 0),
        key=lambda c: c.serial_no,
    )
    keep = stock[0]
    for container in stock:  # one unit left, in one location
        env.plex.adjust_container(
            container.serial_no, quantity=1 if container is keep else 0, tenant=PCN
        )
    env.step()
    # the whole release ships (load-fifo): its stock is checked before anything is created
    label = env.ss.create_label(int(link.ss_order_id or 0), {release_id: int(need)})
    env.step()
    flow = ShipmentsFlow()
    result = await flow.run(rt)
    assert (result.failed, result.written_back) == (1, 0)
    reference = f"ss-shipment-{label.shipment_id}"
    op = await env.store.get_operation_by_key(op_key(CONNECTION, reference))
    assert op is not None
    assert op.state is OperationState.DEAD  # once, at once: retrying cannot bring stock
    error = op.last_error or ""
    assert f"not enough stock in Plex to ship {reference}" in error
    assert "nothing was written to Plex" in error
    # one operator task: part, release, needed vs available per location, what to do, replay
    tasks = await env.store.search_audit(AuditQuery(outcome="needs_operator"))
    assert len(tasks) == 1
    details = tasks[0].details
    assert details["task"] == "short_stock"
    assert details["replay"] == f"mlconnector replay {op.id}"
    location = data.locations[keep.location_id].code
    assert details["lines"] == [
        {
            "release": data.releases[release_id].release_number,
            "part": data.parts[part_id].number,
            "quantity": need,
            "available": 1,
            "available_by_location": {location: 1},
        }
    ]
    assert f"put {need - 1:g} more of part {data.parts[part_id].number}" in details["hint"]
    assert "then replay the operation" in details["hint"]
    assert len(alerts.sent) == 1
    # nothing created in Plex: no shipper (open or not), no inventory shipment, on-hand untouched
    assert env.shippers_for(reference) == []
    assert [s for s in env.plex.shippers(tenant=PCN) if s.status != "Shipped"] == []
    assert not [s for s in data.inventory_shipments.values() if s.external_code == reference]
    assert env.plex.on_hand(part_id, tenant=PCN) == 1
    assert await env.store.unwritten_quantities(CONNECTION)  # still held back from ShipStation
    # later passes and retries leave it alone: no loop, no second task
    for _ in range(3):
        env.step(3600 * 2)
        await retry_due(rt, [flow])
        await flow.run(rt)
    assert len(alerts.sent) == 1
    assert len(await env.store.search_audit(AuditQuery(outcome="needs_operator"))) == 1
    # stock arrives; the operator replays: written once
    env.plex.add_container(part_id, keep.location_id, need, tenant=PCN)
    await replay(env.store, [op.id])
    env.step()
    retried = await retry_due(rt, [flow])
    assert retried.retried == 1, retried.errors
    done = await env.store.get_operation(op.id)
    assert done is not None
    assert done.state is OperationState.CONFIRMED, done.last_error
    if write_back == "shipper":
        assert [s.status for s in env.shippers_for(reference)] == ["Shipped"]
    else:
        shipped = [s for s in data.inventory_shipments.values() if s.external_code == reference]
        assert [s.status for s in shipped] == ["Shipped"]
    assert env.plex.on_hand(part_id, tenant=PCN) == 1
    assert [s for s in env.plex.shippers(tenant=PCN) if s.status != "Shipped"] == []
    assert await env.store.unwritten_quantities(CONNECTION) == {}
    assert len(alerts.sent) == 1


async def test_no_stock_anywhere_is_one_task_and_never_retried(env: ShipEnv) -> None:
    rt, alerts = await _short_stock_runtime(env, "shipper")
    link = (await env.link_orders(rt))[0]
    release_id = sorted(link.release_ids)[0]
    part_id = env.part_of(release_id)
    for container in list(env.plex.tenant(PCN).containers.values()):
        if container.part_id == part_id:
            env.plex.adjust_container(container.serial_no, quantity=0, tenant=PCN)
    env.step()
    need = int(_open(env, link)[release_id])
    label = env.ss.create_label(int(link.ss_order_id or 0), {release_id: need})
    env.step()
    flow = ShipmentsFlow()
    await flow.run(rt)
    reference = f"ss-shipment-{label.shipment_id}"
    op = await env.store.get_operation_by_key(op_key(CONNECTION, reference))
    assert op is not None
    for _ in range(rt.config.retry.max_attempts):
        env.step(rt.config.retry.max_delay_seconds + 1)
        await retry_due(rt, [flow])
    dead = await env.store.get_operation(op.id)
    assert dead is not None
    assert dead.state is OperationState.DEAD
    assert dead.attempts == 1  # dead on its first attempt, never retried
    assert "no shippable stock in any Plex location" in (dead.last_error or "")
    assert env.shippers_for(reference) == []
    assert len(alerts.sent) == 1


async def test_an_unreadable_shipment_is_quarantined_and_written_back_once_fixed(
    env: ShipEnv,
) -> None:
    rt = await env.runtime()
    links = (await env.link_orders(rt))[:2]
    env.step()
    good, bad = (env.ss.create_label(int(lk.ss_order_id or 0)) for lk in links)
    env.ss.set_raw_field(
        "shipments",
        bad.shipment_id,
        "shipmentItems",
        [{"lineItemKey": "x", "sku": "s", "quantity": "two"}],
    )
    env.step()
    first = await ShipmentsFlow().run(rt)
    assert (first.written_back, first.quarantined, first.failed) == (1, 1, 0), first.errors
    assert len(env.shippers_for(f"ss-shipment-{good.shipment_id}")) == 1
    assert env.shippers_for(f"ss-shipment-{bad.shipment_id}") == []
    [row] = await env.store.list_quarantined(connection=CONNECTION, flow="shipments")
    assert (row.record_kind, row.record_id) == ("ShipStation shipment", str(bad.shipment_id))
    assert row.field == "shipmentItems.0.quantity"
    assert row.value_excerpt == "'two'"
    assert row.retry_key == f"shipments-of-order:{bad.order_id}"
    events = await env.store.search_audit(
        AuditQuery(connection=CONNECTION, shipment_id=f"ss-shipment-{bad.shipment_id}")
    )
    assert [e.action for e in events if e.entity == "quarantine"] == ["quarantine"]

    env.step()
    again = await ShipmentsFlow().run(rt)  # still bad: retried by its order, not written
    assert (again.written_back, again.quarantined) == (0, 1)
    env.ss.clear_raw_fields("shipments", bad.shipment_id)
    env.step()
    fixed = await ShipmentsFlow().run(rt)  # the cursor is past it: the retry finds it
    assert (fixed.written_back, fixed.quarantined, fixed.failed) == (1, 0, 0), fixed.errors
    assert len(env.shippers_for(f"ss-shipment-{bad.shipment_id}")) == 1
    [row] = await env.store.list_quarantined(connection=CONNECTION, state=None)
    assert (row.state.value, row.attempts) == ("resolved", 2)
    env.step()
    quiet = await ShipmentsFlow().run(rt)
    assert (quiet.written_back, quiet.quarantined) == (0, 0)
    assert len(env.shippers_for(f"ss-shipment-{bad.shipment_id}")) == 1
