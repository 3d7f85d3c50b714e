"""End to end over real loopback HTTP: Plex simulator → OrdersFlow → ShipStation simulator.

Both simulators are served by uvicorn on 127.0.0.1 (ephemeral ports); the store is SQLite in
``tmp_path``; time is a FakeClock (Plex edits are followed by a clock step past the safety lag).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlconnector.clock import FakeClock
from mlconnector.config import (
    Config,
    ConnectionConfig,
    Mappings,
    PlexSettings,
    ShipStationSettings,
    StoreMapping,
)
from mlconnector.sandbox.plex import (
    DEFAULT_CONSUMER_KEY,
    PlexSandbox,
    TenantSpec,
    create_plex_sandbox,
)
from mlconnector.sandbox.server import serve
from mlconnector.sandbox.shipstation import (
    ShipStationAccount,
    ShipStationSandbox,
    create_shipstation_sandbox,
)
from mlconnector.shipstation import ShipStationV1Client
from mlconnector.store import (
    AuditQuery,
    CredentialKind,
    OperationState,
    Store,
    Vault,
    generate_key,
    open_store,
)
from mlconnector.sync import (
    ConnectionRuntime,
    LogAlertSink,
    build_runtime,
    recover,
    retry_due,
)
from mlconnector.sync.order_status import OrderStatusFlow
from mlconnector.sync.orders import OrdersFlow
from tests.conftest import FAKE_START
from tests.e2e.shipping_env import open_releases

PCN = 340884
STEP = 600.0  # seconds the clock moves after a Plex edit (past the 2-minute safety lag)


class Recorder:
    """ASGI wrapper that remembers every request (method, path, body) the simulator saw."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.calls: list[tuple[str, str, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        await self.app(scope, recording, send)
        self.calls.append((scope["method"], scope["path"], b"".join(chunks)))

    def created_keys(self) -> list[str]:
        """Every orderKey sent to createorder(s), in order."""
        keys: list[str] = []
        for method, path, body in self.calls:
            if method == "POST" and path in ("/orders/createorders", "/orders/createorder"):
                payload = json.loads(body)
                for order in payload if isinstance(payload, list) else [payload]:
                    keys.append(order["orderKey"])
        return keys

    def count(self, path: str) -> int:
        return sum(1 for _, p, _ in self.calls if p == path)


class Crash(Exception):
    """The process 'dies' (not part of the connector's error tree)."""


@dataclass
class Env:
    clock: FakeClock
    plex: PlexSandbox
    ss: ShipStationSandbox
    recorder: Recorder
    store: Store
    plex_url: str
    ss_url: str
    tmp_path: Path
    runtimes: list[ConnectionRuntime] = field(default_factory=list)

    def config(self, **overrides: Any) -> Config:
        conn = ConnectionConfig(
            plex=PlexSettings(pcn=str(PCN), rest_base_url=self.plex_url, read_window_hours=24 * 31),
            shipstation=ShipStationSettings(
                v1_base_url=self.ss_url, v2_base_url=self.ss_url + "/v2"
            ),
            **overrides,
        )
        return Config(home=self.tmp_path, connections={"acme": conn})

    async def runtime(self, **overrides: Any) -> ConnectionRuntime:
        rt = await build_runtime(
            self.config(**overrides), "acme", self.store, self.clock, alerts=LogAlertSink()
        )
        self.runtimes.append(rt)
        return rt

    def step(self) -> None:
        self.clock.advance(STEP)

    def ss_by_key(self) -> dict[str, dict[str, Any]]:
        orders = self.ss.all_orders()
        keys = [o["orderKey"] for o in orders]
        assert len(keys) == len(set(keys)), "a ShipStation order was duplicated"
        return {o["orderKey"]: o for o in orders}

    def open_releases(self) -> dict[str, float]:
        """Plex open quantity per release id, from the simulator's own state."""
        return open_releases(self.plex)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    clock = FakeClock(FAKE_START)
    spec = TenantSpec(pcn=PCN, code="mlauto", name="Midland", customers=4, parts=15, orders=8)
    plex = create_plex_sandbox(clock, tenants=[spec])
    account = ShipStationAccount()
    ss = create_shipstation_sandbox(clock, accounts=[account])
    recorder = Recorder(ss.app)
    store = await open_store(
        f"sqlite+aiosqlite:///{tmp_path / 'mlc.db'}",
        clock=clock,
        vault=Vault([generate_key()], source="test"),
    )
    await store.create_connection("acme", plex_pcn=str(PCN))
    for kind, value in {
        CredentialKind.PLEX_API_KEY: DEFAULT_CONSUMER_KEY,
        CredentialKind.SS_V1_KEY: account.api_key,
        CredentialKind.SS_V1_SECRET: account.api_secret,
    }.items():
        await store.set_credential("acme", kind, value)
    async with serve(plex.app) as plex_url, serve(recorder) as ss_url:
        e = Env(clock, plex, ss, recorder, store, plex_url, ss_url, tmp_path)
        try:
            yield e
        finally:
            for rt in e.runtimes:
                await rt.aclose()
            await store.close()


async def _first_run(env: Env) -> tuple[ConnectionRuntime, OrdersFlow]:
    rt, flow = await env.runtime(), OrdersFlow()
    result = await flow.run(rt)
    assert result.failed == 0, result.errors
    assert result.created > 0
    return rt, flow


async def test_new_orders_appear_with_open_quantities(env: Env) -> None:
    expected = env.open_releases()
    rt, flow = await env.runtime(), OrdersFlow()
    dry = await flow.run(rt, dry_run=True)
    assert dry.plan
    assert {i.action for i in dry.plan} >= {"create"}
    assert env.recorder.created_keys() == []  # dry run wrote nothing remotely...
    assert await rt.store.get_cursor("acme", "orders") is None  # ...nor locally
    assert await rt.store.list_operations(connection="acme") == []
    result = await flow.run(rt)
    assert result.failed == 0, result.errors
    assert result.created == dry.created == sum(1 for i in dry.plan if i.action == "create")
    orders = env.ss_by_key()
    assert len(orders) == result.created
    sent = {item["lineItemKey"]: item["quantity"] for o in orders.values() for item in o["items"]}
    assert sent == {rid: int(q) for rid, q in expected.items()}
    for key, order in orders.items():
        assert key.startswith(f"plex-{PCN}-")
        assert order["advancedOptions"]["source"] == "plex"
        assert len(order["orderNumber"]) <= 50
        assert order["orderStatus"] in ("awaiting_shipment", "on_hold")
        link = await rt.store.get_link("acme", key)
        assert link is not None
        assert link.ss_order_id == str(order["orderId"])
    assert await rt.store.get_cursor("acme", "orders") is not None


async def test_second_run_without_change_sends_nothing(env: Env) -> None:
    rt, flow = await _first_run(env)
    calls = env.recorder.count("/orders/createorders")
    env.step()
    again = await flow.run(rt)
    assert env.recorder.count("/orders/createorders") == calls
    assert (again.created, again.updated, again.cancelled) == (0, 0, 0)


async def test_plex_release_edit_updates_the_order(env: Env) -> None:
    rt, flow = await _first_run(env)
    release_id = sorted(env.open_releases())[0]
    release = env.plex.release(release_id, tenant=PCN)
    env.step()
    env.plex.edit_release(release_id, quantity=release.quantity + 7, tenant=PCN)
    env.step()
    before = len(env.recorder.created_keys())
    result = await flow.run(rt)
    assert result.updated == 1
    assert len(env.recorder.created_keys()) == before + 1
    item = next(
        i for o in env.ss_by_key().values() for i in o["items"] if i["lineItemKey"] == release_id
    )
    assert item["quantity"] == int(release.quantity - release.quantity_shipped)


async def test_plex_cancel_cancels_in_shipstation(env: Env) -> None:
    rt, flow = await _first_run(env)
    links = await rt.store.list_links("acme")
    target = links[0].plex_order_id
    keys = {link.order_key for link in links if link.plex_order_id == target}
    env.step()
    env.plex.cancel_order(target, tenant=PCN)
    env.step()
    result = await flow.run(rt)
    assert result.cancelled == len(keys)
    orders = env.ss_by_key()
    for key in keys:
        assert orders[key]["orderStatus"] == "cancelled"
        link = await rt.store.get_link("acme", key)
        assert link is not None
        assert link.frozen_reason
    env.step()
    calls = env.recorder.count("/orders/createorders")
    assert (await flow.run(rt)).cancelled == 0
    assert env.recorder.count("/orders/createorders") == calls


async def _ship_one(env: Env, rt: ConnectionRuntime) -> tuple[str, str]:
    """Mark one linked ShipStation order shipped; return (orderKey, one of its release ids)."""
    link = (await rt.store.list_links("acme"))[0]
    assert link.ss_order_id is not None
    env.ss.mark_shipped(int(link.ss_order_id))
    return link.order_key, link.release_ids[0]


async def test_shipped_order_edited_in_plex_is_never_touched(env: Env) -> None:
    rt, flow = await _first_run(env)
    key, release_id = await _ship_one(env, rt)
    env.step()
    status = await OrderStatusFlow().run(rt)
    assert status.frozen == 1
    link = await rt.store.get_link("acme", key)
    assert link is not None
    assert link.ss_status == "shipped"
    assert link.frozen_reason
    release = env.plex.release(release_id, tenant=PCN)
    env.plex.edit_release(release_id, quantity=release.quantity + 3, tenant=PCN)
    env.step()
    before = env.recorder.created_keys()
    result = await flow.run(rt)
    assert result.frozen == 1
    assert any(i.key == key and "frozen" in i.reason for i in result.plan)
    assert env.recorder.created_keys() == before  # nothing sent at all
    events = await rt.store.search_audit(AuditQuery(order_key=key, outcome="frozen"))
    assert events


async def test_shipped_order_refused_by_shipstation_freezes_the_link(env: Env) -> None:
    """Without a status poll the link is not frozen yet: ShipStation refuses, the link freezes."""
    rt, flow = await _first_run(env)
    key, release_id = await _ship_one(env, rt)
    release = env.plex.release(release_id, tenant=PCN)
    env.step()
    env.plex.edit_release(release_id, quantity=release.quantity + 3, tenant=PCN)
    env.step()
    result = await flow.run(rt)
    assert result.frozen == 1
    assert result.failed == 0
    link = await rt.store.get_link("acme", key)
    assert link is not None
    assert link.frozen_reason
    assert env.ss_by_key()[key]["orderStatus"] == "shipped"
    ops = await rt.store.list_operations(connection="acme", states=[OperationState.DEAD])
    assert [op.payload["order_key"] for op in ops] == [key]
    env.plex.edit_release(release_id, quantity=release.quantity + 4, tenant=PCN)
    env.step()
    before = env.recorder.created_keys()
    assert (await flow.run(rt)).frozen == 1
    assert env.recorder.created_keys() == before


async def test_partial_batch_failure_is_handled_per_order(env: Env) -> None:
    data = env.plex.tenant(PCN)
    open_ids = set(env.open_releases())
    orders_with_open = {data.lines[data.releases[rid].order_line_id].order_id for rid in open_ids}
    bad_order = data.orders[sorted(orders_with_open)[0]]
    bad_customer = data.customers[bad_order.customer_id].code
    rt = await env.runtime(
        mappings=Mappings(stores=StoreMapping(by_customer={bad_customer: 987654}))
    )
    result = await OrdersFlow().run(rt)
    assert result.failed > 0
    assert result.created > 0
    assert env.recorder.count("/orders/createorders") == 1  # one batch, mixed results
    orders = env.ss_by_key()
    assert all(o["advancedOptions"]["customField3"] != bad_order.id for o in orders.values())
    failed = await rt.store.list_operations(connection="acme", states=[OperationState.FAILED])
    assert len(failed) == result.failed
    assert all("987654" in (op.last_error or "") for op in failed)
    bad_customers = {data.orders[op.payload["plex_order_id"]].customer_id for op in failed}
    assert bad_customers == {bad_order.customer_id}


async def test_crash_between_send_and_confirm_recovers_without_duplicate(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, flow = await env.runtime(), OrdersFlow()
    real_create = ShipStationV1Client.create_orders

    async def crash(self: ShipStationV1Client, *args: Any, **kwargs: Any) -> Any:
        await real_create(self, *args, **kwargs)  # ShipStation applies the batch...
        raise Crash("killed after the request left")  # ...and the process dies

    monkeypatch.setattr(ShipStationV1Client, "create_orders", crash)
    with pytest.raises(Crash):
        await flow.run(rt)
    monkeypatch.setattr(ShipStationV1Client, "create_orders", real_create)
    sent = await rt.store.list_operations(connection="acme", states=[OperationState.SENT])
    assert sent, "the crash should leave operations in 'sent'"
    assert await rt.store.get_cursor("acme", "orders") is None  # the batch was not committed
    in_shipstation = env.ss_by_key()
    assert {op.payload["order_key"] for op in sent} == set(in_shipstation)
    calls = env.recorder.count("/orders/createorders")
    reads = env.recorder.count("/orders")

    env.step()
    restarted = await env.runtime()
    report = await recover(restarted, [flow])
    assert report.recovered == len(sent)
    assert env.recorder.count("/orders/createorders") == calls  # looked, did not re-send
    # the whole batch resolved with one list read, not one GET /orders?orderNumber= each
    assert env.recorder.count("/orders") - reads == 1
    for op in sent:
        done = await restarted.store.get_operation(op.id)
        assert done is not None
        assert done.state is OperationState.CONFIRMED
        assert done.remote_ref == str(in_shipstation[op.payload["order_key"]]["orderId"])
    result = await flow.run(restarted)
    assert (result.created, result.updated) == (0, 0)
    assert env.recorder.count("/orders/createorders") == calls
    assert set(env.ss_by_key()) == set(in_shipstation)  # no duplicate, nothing lost


async def test_crash_before_the_batch_left_resends_it_once(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, flow = await env.runtime(), OrdersFlow()
    real_create = ShipStationV1Client.create_orders

    async def crash(self: ShipStationV1Client, *args: Any, **kwargs: Any) -> Any:
        raise Crash("killed after mark_sent, before the request left")

    monkeypatch.setattr(ShipStationV1Client, "create_orders", crash)
    with pytest.raises(Crash):
        await flow.run(rt)
    monkeypatch.setattr(ShipStationV1Client, "create_orders", real_create)
    sent = await rt.store.list_operations(connection="acme", states=[OperationState.SENT])
    assert sent
    assert env.ss_by_key() == {}

    env.step()
    restarted = await env.runtime()
    report = await recover(restarted, [flow])
    assert report.recovered == 0
    assert report.retried == len(sent)  # not found remotely: due again, same keys
    assert env.recorder.count("/orders") == 1
    retried = await retry_due(restarted, [flow])
    assert retried.retried == len(sent)
    assert env.recorder.count("/orders/createorders") == 1  # one batch, sent once
    assert {op.payload["order_key"] for op in sent} == set(env.ss_by_key())
    for op in sent:
        done = await restarted.store.get_operation(op.id)
        assert done is not None
        assert done.state is OperationState.CONFIRMED


async def test_plex_hold_puts_the_order_on_hold_and_back(env: Env) -> None:
    rt, flow = await _first_run(env)
    link = (await rt.store.list_links("acme"))[0]
    keys = {
        x.order_key for x in await rt.store.find_links("acme", plex_order_id=link.plex_order_id)
    }
    env.step()
    env.plex.set_order_status(link.plex_order_id, "Hold", tenant=PCN)
    env.step()
    assert (await flow.run(rt)).updated == len(keys)
    assert {env.ss_by_key()[k]["orderStatus"] for k in keys} == {"on_hold"}
    env.plex.set_order_status(link.plex_order_id, "Open", tenant=PCN)
    env.step()
    assert (await flow.run(rt)).updated == len(keys)
    assert {env.ss_by_key()[k]["orderStatus"] for k in keys} == {"awaiting_shipment"}


async def test_voided_label_reopens_and_unfreezes_the_link(env: Env) -> None:
    rt, _ = await _first_run(env)
    link = (await rt.store.list_links("acme"))[0]
    assert link.ss_order_id is not None
    shipment = env.ss.create_label(int(link.ss_order_id))
    env.step()
    status = OrderStatusFlow()
    assert (await status.run(rt)).frozen == 1
    frozen = await rt.store.get_link("acme", link.order_key)
    assert frozen is not None
    assert frozen.ss_status == "shipped"
    env.step()
    env.ss.void_label(shipment.shipment_id)
    env.step()
    assert (await status.run(rt)).updated == 1
    reopened = await rt.store.get_link("acme", link.order_key)
    assert reopened is not None
    assert reopened.ss_status == "awaiting_shipment"
    assert reopened.frozen_reason is None


async def test_server_errors_go_to_the_outbox_and_retry_later(env: Env) -> None:
    """createorders fails (HTTP 500 after the client's retries): every order is 'failed' with a
    backoff; a later retry_due sends them one by one, and a retry that a newer Plex version
    overtook is retired instead of undoing the newer version."""
    rt, flow = await env.runtime(), OrdersFlow()
    env.ss.faults.configure(error_rate=1.0)
    first = await flow.run(rt)
    assert first.created == 0
    assert first.failed > 0
    failed = await rt.store.list_operations(connection="acme", states=[OperationState.FAILED])
    assert len(failed) == first.failed
    assert env.ss.all_orders() == []
    env.ss.faults.configure()
    # a Plex edit overtakes one queued version
    victim = failed[0]
    release_id = victim.payload["release_ids"][0]
    release = env.plex.release(release_id, tenant=PCN)
    env.plex.edit_release(release_id, quantity=release.quantity + 5, tenant=PCN)
    env.clock.advance(rt.config.retry.max_delay_seconds)
    second = await flow.run(rt)
    assert second.failed == 0, second.errors
    newer = await rt.store.get_link("acme", victim.payload["order_key"])
    assert newer is not None
    assert newer.content_hash != victim.payload["hash"]
    batches = env.recorder.count("/orders/createorders")
    # the run re-sent the groups it decided on again; the rest wait in the outbox
    waiting = await rt.store.list_operations(connection="acme", states=[OperationState.FAILED])
    assert victim.id in {op.id for op in waiting}
    report = await retry_due(rt, [flow])
    assert report.failed == 1  # the overtaken version
    assert report.retried == len(waiting) - 1
    # retried in createorders batches, not one createorder per order
    assert env.recorder.count("/orders/createorder") == 0
    assert env.recorder.count("/orders/createorders") == batches + 1
    old = await rt.store.get_operation(victim.id)
    assert old is not None
    assert old.state is OperationState.DEAD
    assert "newer version" in (old.last_error or "")
    assert isinstance(rt.alerts, LogAlertSink)
    assert rt.alerts.sent == []  # superseded is not an operator problem
    orders = env.ss_by_key()
    items = {i["lineItemKey"]: i["quantity"] for o in orders.values() for i in o["items"]}
    assert items == {rid: int(q) for rid, q in env.open_releases().items()}
    left = await rt.store.list_operations(
        connection="acme", states=[OperationState.FAILED, OperationState.PENDING]
    )
    assert left == []


async def test_audit_trail_explains_each_write(env: Env) -> None:
    rt, _ = await _first_run(env)
    link = (await rt.store.list_links("acme"))[0]
    events = await rt.store.search_audit(AuditQuery(order_key=link.order_key))
    (write,) = [e for e in events if e.action == "create"]
    assert write.outcome == "ok"
    assert write.ss_order_id == link.ss_order_id
    assert write.http_status == 200
    assert write.idempotency_key is not None
    assert write.idempotency_key.startswith(f"orders:{link.order_key}:new:")
    assert write.plex_order_id == link.plex_order_id
    reads = await rt.store.search_audit(AuditQuery(flow="orders", outcome="ok"))
    assert any(e.action == "read" and e.details.get("created") for e in reads)


async def test_partial_label_written_back_to_plex_does_not_shrink_the_order(env: Env) -> None:
    rt, flow = await _first_run(env)
    orders = env.ss_by_key()
    key, order = next((k, o) for k, o in orders.items() if o["items"][0]["quantity"] >= 4)
    item = order["items"][0]
    part = item["quantity"] // 2
    env.ss.create_label(order["orderId"], {item["lineItemKey"]: part})
    # the shipments flow writes the label back to Plex: quantityShipped grows by `part`
    data = env.plex.tenant(PCN)
    release = data.release(item["lineItemKey"])
    env.step()
    data.edit_release(release, quantity_shipped=release.quantity_shipped + part)
    env.step()
    before = env.recorder.created_keys()
    result = await flow.run(rt)
    assert key not in env.recorder.created_keys()[len(before) :]
    assert any(i.key == key and i.reason == "unchanged" for i in result.plan)
    after = env.ss_by_key()[key]
    assert after["items"][0]["quantity"] == item["quantity"]
    assert after["orderStatus"] == "awaiting_shipment"


async def test_an_unreadable_shipstation_order_is_quarantined_by_the_status_poll(
    env: Env,
) -> None:
    rt, _flow = await _first_run(env)
    key, _release_id = await _ship_one(env, rt)
    link = await rt.store.get_link("acme", key)
    assert link is not None
    assert link.ss_order_id is not None
    ss_id = int(link.ss_order_id)
    env.ss.set_raw_field("orders", ss_id, "items", "not a list of items")  # lenient: None
    env.ss.set_raw_field("orders", ss_id, "orderId", "12ab")  # identity: unreadable
    env.step()
    status = await OrderStatusFlow().run(rt)
    assert (status.quarantined, status.frozen) == (1, 0)
    [row] = await rt.store.list_quarantined(connection="acme", flow="order_status")
    assert (row.record_kind, row.field, row.value_excerpt) == (
        "ShipStation order",
        "orderId",
        "'12ab'",
    )
    assert row.record_id == "12ab"  # its id as sent
    assert row.retry_key is None  # no readable id: retried when a window brings it again
    env.ss.clear_raw_fields("orders", ss_id)
    env.ss.set_raw_field("orders", ss_id, "orderKey", {"k": 1})  # readable id, bad key
    env.ss.state.orders[ss_id].modify_date = env.clock.now()  # modified again: in the window
    env.step()
    again = await OrderStatusFlow().run(rt)
    assert again.quarantined == 1
    rows = await rt.store.list_quarantined(connection="acme", flow="order_status")
    keyed = [r for r in rows if r.retry_key == f"ss-order:{ss_id}"]
    assert len(keyed) == 1
    env.ss.clear_raw_fields("orders", ss_id)
    env.step()
    fixed = await OrderStatusFlow().run(rt)  # re-read by id though the cursor moved on
    assert (fixed.quarantined, fixed.frozen) == (0, 1)
    [resolved] = [
        r
        for r in await rt.store.list_quarantined(connection="acme", state=None)
        if r.retry_key == f"ss-order:{ss_id}"
    ]
    assert resolved.state.value == "resolved"
    frozen = await rt.store.get_link("acme", key)
    assert frozen is not None
    assert frozen.ss_status == "shipped"
