"""The ShipStation client against the ShipStation simulator: in-process (ASGITransport) and over
real loopback HTTP (``serve``). Client and simulator were written separately from the specs; a
disagreement about the API fails here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.errors import (
    AuthenticationError,
    ForeignURLError,
    FrozenRecordError,
    SignatureError,
)
from mlconnector.sandbox.server import serve
from mlconnector.sandbox.shipstation import (
    ShipStationAccount,
    ShipStationSandbox,
    create_shipstation_sandbox,
)
from mlconnector.shipstation import (
    Address,
    AdvancedOptions,
    Order,
    OrderItem,
    ShipStationV1Client,
    ShipStationV2Client,
    SignatureVerifier,
    WebhookDelivery,
    parse_delivery,
)

ACCOUNT = ShipStationAccount()
SANDBOX_URL = "http://shipstation.sandbox.invalid"
HOOK_URL = "https://connector.example.com/webhooks/shipstation/acme/token"


class Captured:
    """A webhook receiver: a MockTransport that records what the simulator POSTs."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200)


@pytest.fixture
def receiver() -> Captured:
    return Captured()


@pytest.fixture
def sandbox(fake_clock: FakeClock, receiver: Captured) -> ShipStationSandbox:
    return create_shipstation_sandbox(
        fake_clock, public_url=SANDBOX_URL, webhook_transport=httpx.MockTransport(receiver.handler)
    )


@pytest.fixture
async def http(sandbox: ShipStationSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sandbox.app)) as client:
        yield client


@pytest.fixture
def v1(http: httpx.AsyncClient, fake_clock: FakeClock) -> ShipStationV1Client:
    return ShipStationV1Client(
        http,
        api_key=ACCOUNT.api_key,
        api_secret=ACCOUNT.api_secret,
        clock=fake_clock,
        base_url=SANDBOX_URL,
        connection="acme",
    )


@pytest.fixture
def v2(http: httpx.AsyncClient, fake_clock: FakeClock) -> ShipStationV2Client:
    assert ACCOUNT.v2_api_key is not None
    return ShipStationV2Client(
        http, api_key=ACCOUNT.v2_api_key, clock=fake_clock, base_url=SANDBOX_URL
    )


def make_order(n: int, *, number: str | None = None, when: datetime | None = None) -> Order:
    return Order(
        order_number=number or f"PLX-{n}",
        order_key=f"plex:100:{n}",
        order_date=when or datetime(2026, 1, 10, 18, 30, tzinfo=UTC),
        order_status="awaiting_shipment",
        bill_to=Address(name="Acme Corp"),
        ship_to=Address(
            name="Receiving",
            company="Acme Corp",
            street1="1 Main St",
            city="Portland",
            state="OR",
            postal_code="97201",
            country="US",
        ),
        items=[
            OrderItem(line_item_key=f"rel-{n}-1", sku="PART-1", name="Widget", quantity=3),
            OrderItem(line_item_key=f"rel-{n}-2", sku="PART-2", name="Gadget", quantity=1),
        ],
        advanced_options=AdvancedOptions(custom_field1=f"PO-{n}", source="plex"),
    )


# --- V1 ------------------------------------------------------------------------------------


async def test_upsert_batch_and_read_back_in_utc(
    v1: ShipStationV1Client, fake_clock: FakeClock
) -> None:
    orders = [make_order(i) for i in range(120)]
    outcomes = await v1.create_orders(orders)
    assert [o.order_key for o in outcomes] == [o.order_key for o in orders]
    assert all(o.success and o.order_id for o in outcomes)

    # upsert by orderKey: a replay updates, never duplicates
    again = await v1.create_orders(orders[:5])
    assert [o.order_id for o in again] == [o.order_id for o in outcomes[:5]]

    listed = [
        o
        async for o in v1.iter_orders(
            modify_date_start=fake_clock.now() - timedelta(hours=2), page_size=50
        )
    ]
    assert len(listed) == 120
    first = next(o for o in listed if o.order_key == "plex:100:0")
    assert first.order_date == datetime(2026, 1, 10, 18, 30, tzinfo=UTC)
    assert first.modify_date is not None
    assert first.modify_date.tzinfo is not None
    assert first.items is not None
    assert [i.line_item_key for i in first.items] == [
        "rel-0-1",
        "rel-0-2",
    ]
    assert first.advanced_options is not None
    assert first.advanced_options.custom_field1 == "PO-0"


async def test_summer_order_date_round_trips_through_pacific(v1: ShipStationV1Client) -> None:
    when = datetime(2026, 7, 4, 16, 45, 12, tzinfo=UTC)
    saved = await v1.create_or_update_order(make_order(1, when=when))
    assert saved.order_date == when
    assert saved.order_id is not None
    fetched = await v1.get_order(saved.order_id)
    assert fetched.order_date == when


async def test_full_order_round_trip_keeps_fields(v1: ShipStationV1Client) -> None:
    saved = await v1.create_or_update_order(make_order(2))
    assert saved.order_id is not None
    fetched = await v1.get_order(saved.order_id)
    fetched.internal_notes = "changed in Plex"
    updated = await v1.create_or_update_order(fetched)
    assert updated.order_id == saved.order_id
    assert updated.internal_notes == "changed in Plex"
    assert updated.items is not None
    assert len(updated.items) == 2
    assert updated.ship_to == saved.ship_to


async def test_order_number_prefix_versus_exact(v1: ShipStationV1Client) -> None:
    await v1.create_orders(
        [make_order(1, number="1001"), make_order(2, number="10010"), make_order(3, number="2001")]
    )
    prefix = sorted([o.order_number or "" async for o in v1.iter_orders(order_number="1001")])
    assert prefix == ["1001", "10010"]
    exact = await v1.find_orders_by_number("1001")
    assert [o.order_number for o in exact] == ["1001"]


async def test_shipped_order_is_frozen(
    v1: ShipStationV1Client, sandbox: ShipStationSandbox
) -> None:
    saved = await v1.create_or_update_order(make_order(5))
    assert saved.order_id is not None
    sandbox.create_label(saved.order_id)
    fetched = await v1.get_order(saved.order_id)
    assert fetched.order_status == "shipped"
    assert fetched.is_frozen
    with pytest.raises(FrozenRecordError):
        await v1.create_or_update_order(make_order(5))
    [outcome] = await v1.create_orders([make_order(5)])
    assert not outcome.success
    assert outcome.frozen


async def test_ship_notify_is_followed_with_items(
    v1: ShipStationV1Client, sandbox: ShipStationSandbox, receiver: Captured
) -> None:
    await v1.subscribe_webhook(target_url=HOOK_URL, event="SHIP_NOTIFY", friendly_name="acme")
    hooks = await v1.list_webhooks()
    assert [h.hook_type for h in hooks] == ["SHIP_NOTIFY"]
    saved = await v1.create_or_update_order(make_order(7))
    assert saved.order_id is not None
    sandbox.create_label(saved.order_id, {"rel-7-1": 2}, tracking_number="1Z999")
    await sandbox.deliver_webhooks()
    [post] = receiver.requests
    delivery = parse_delivery(post.content)
    assert delivery.resource_type == "SHIP_NOTIFY"
    batch = await v1.follow(delivery)
    [shipment] = batch.shipments
    assert shipment.order_key == "plex:100:7"
    assert shipment.tracking_number == "1Z999"
    assert shipment.shipment_items is not None
    assert [(i.line_item_key, i.quantity) for i in shipment.shipment_items] == [("rel-7-1", 2)]
    # the simulator sends shipDate as a calendar date, as V1 does: it stays a date
    assert isinstance(shipment.ship_date, date)
    assert not isinstance(shipment.ship_date, datetime)

    # the same list through the poll
    polled = [s async for s in v1.iter_shipments(order_id=saved.order_id)]
    assert [s.shipment_id for s in polled] == [shipment.shipment_id]
    for hook in hooks:
        assert hook.webhook_id is not None
        await v1.unsubscribe_webhook(hook.webhook_id)
    assert await v1.list_webhooks() == []


async def test_mark_as_shipped_appears_as_fulfillment(v1: ShipStationV1Client) -> None:
    saved = await v1.create_or_update_order(make_order(8))
    assert saved.order_id is not None
    result = await v1.mark_as_shipped(
        saved.order_id,
        carrier_code="fedex",
        ship_date=datetime(2026, 1, 15, 20, tzinfo=UTC),
        tracking_number="FX1",
    )
    assert result.order_id == saved.order_id
    fulfillments = [f async for f in v1.iter_fulfillments(order_id=saved.order_id)]
    assert [f.tracking_number for f in fulfillments] == ["FX1"]
    assert (await v1.get_order(saved.order_id)).order_status == "shipped"


async def test_foreign_resource_url_sends_nothing(
    v1: ShipStationV1Client, sandbox: ShipStationSandbox
) -> None:
    delivery = WebhookDelivery(
        resource_url="http://attacker.example/shipments?batchId=1", resource_type="SHIP_NOTIFY"
    )
    calls = v1.calls
    with pytest.raises(ForeignURLError):
        await v1.follow(delivery)
    assert v1.calls == calls
    assert sandbox.counts()["orders"] == 0


async def test_stores_warehouses_and_delete(v1: ShipStationV1Client) -> None:
    stores = await v1.list_stores()
    assert stores
    assert all(s.store_id is not None for s in stores)
    warehouses = await v1.list_warehouses()
    assert warehouses
    assert all(w.warehouse_id is not None for w in warehouses)
    saved = await v1.create_or_update_order(make_order(9))
    assert saved.order_id is not None
    await v1.delete_order(saved.order_id)
    assert [o async for o in v1.iter_orders(order_number="PLX-9")] == []


async def test_wrong_v1_secret_names_the_v1_credentials(
    http: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    client = ShipStationV1Client(
        http,
        api_key=ACCOUNT.api_key,
        api_secret="wrong-secret",
        clock=fake_clock,
        base_url=SANDBOX_URL,
        connection="acme",
    )
    with pytest.raises(AuthenticationError) as info:
        await client.list_stores()
    assert "V1" in str(info.value)
    assert "'acme'" in str(info.value)
    assert "wrong-secret" not in str(info.value)


async def test_429_storm_is_waited_out(
    v1: ShipStationV1Client, sandbox: ShipStationSandbox, fake_clock: FakeClock
) -> None:
    sandbox.faults.configure(storm_requests=3, storm_retry_after=7)
    assert isinstance(await v1.list_stores(), list)
    assert fake_clock.monotonic() >= 21


async def test_5xx_faults_are_retried(v1: ShipStationV1Client, sandbox: ShipStationSandbox) -> None:
    await v1.create_orders([make_order(i) for i in range(30)])
    sandbox.faults.configure(error_rate=0.3, seed=7)
    listed = [o async for o in v1.iter_orders(page_size=5)]
    assert len(listed) == 30
    assert sandbox.faults.config.injected.get("error", 0) > 0


# --- V2 ------------------------------------------------------------------------------------


async def test_inventory_round_trip(v2: ShipStationV2Client) -> None:
    warehouse = await v2.create_inventory_warehouse("Plex plant 100")
    location = await v2.create_inventory_location("Main", warehouse.inventory_warehouse_id)
    assert [w.inventory_warehouse_id for w in await v2.list_inventory_warehouses()] == [
        warehouse.inventory_warehouse_id
    ]
    assert [loc.inventory_location_id for loc in await v2.list_inventory_locations()] == [
        location.inventory_location_id
    ]
    loc = location.inventory_location_id
    await v2.adjust_inventory("PART-1", loc, 40, reason="Plex sync")
    await v2.increment_inventory("PART-2", loc, 5)
    await v2.decrement_inventory("PART-1", loc, 10)
    levels = {lvl.sku: lvl.on_hand async for lvl in v2.list_inventory()}
    assert levels == {"PART-1": 30, "PART-2": 5}


async def test_signed_v2_delivery_verifies_with_published_keys(
    v2: ShipStationV2Client, sandbox: ShipStationSandbox, receiver: Captured, fake_clock: FakeClock
) -> None:
    hook = await v2.create_webhook(url=HOOK_URL, event="track_event_v2", headers={"x-token": "t"})
    assert [h.webhook_id for h in await v2.list_webhooks()] == [hook.webhook_id]
    sandbox.emit_v2_event(
        "track_event_v2", SANDBOX_URL + "/v2/labels/se-1/track", data={"status_code": "DE"}
    )
    await sandbox.deliver_webhooks()
    [post] = receiver.requests
    verifier = SignatureVerifier(fake_clock, fetch_keys=v2.fetch_webhook_keys)
    await verifier.verify(post.headers, post.content)
    delivery = parse_delivery(post.content)
    assert delivery.is_v2
    assert delivery.extra["data"] == {"status_code": "DE"}
    tampered = post.content.replace(b"DE", b"EX")
    with pytest.raises(SignatureError, match="does not verify"):
        await verifier.verify(post.headers, tampered)
    await v2.delete_webhook(hook.webhook_id or "")
    assert await v2.list_webhooks() == []


async def test_wrong_v2_key_names_the_v2_key(
    http: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    client = ShipStationV2Client(
        http, api_key="not-the-key", clock=fake_clock, base_url=SANDBOX_URL, connection="acme"
    )
    with pytest.raises(AuthenticationError, match="V2 refused the API key"):
        await client.list_inventory_warehouses()


# --- over real loopback HTTP -------------------------------------------------------------------


async def test_over_loopback(fake_clock: FakeClock) -> None:
    received: list[bytes] = []

    def hook(request: httpx.Request) -> httpx.Response:
        received.append(request.content)
        return httpx.Response(200)

    sandbox = create_shipstation_sandbox(fake_clock, webhook_transport=httpx.MockTransport(hook))
    async with serve(sandbox.app) as base_url, httpx.AsyncClient() as http:
        sandbox.public_url = base_url
        v1 = ShipStationV1Client(
            http,
            api_key=ACCOUNT.api_key,
            api_secret=ACCOUNT.api_secret,
            clock=fake_clock,
            base_url=base_url,
        )
        await v1.subscribe_webhook(target_url=HOOK_URL, event="ORDER_NOTIFY")
        outcomes = await v1.create_orders([make_order(i) for i in range(3)])
        assert all(o.success for o in outcomes)
        listed = [o.order_key async for o in v1.iter_orders(sort_by="OrderDate")]
        assert sorted([k or "" for k in listed]) == [f"plex:100:{i}" for i in range(3)]
        await sandbox.deliver_webhooks()
        # ORDER_NOTIFY fires on import; follow the pointer over the wire
        assert len(received) == 1
        batch = await v1.follow(parse_delivery(received[0]))
        assert sorted([o.order_key or "" for o in batch.orders]) == [
            f"plex:100:{i}" for i in range(3)
        ]
        assert v1.calls == 4  # subscribe, createorders, one list page, one followed page


async def test_malformed_bodies_are_retried(
    v1: ShipStationV1Client, sandbox: ShipStationSandbox
) -> None:
    await v1.create_orders([make_order(i) for i in range(12)])
    sandbox.faults.configure(malformed_rate=0.3, seed=3)
    listed = [o.order_key async for o in v1.iter_orders(page_size=4)]
    assert sorted([k or "" for k in listed]) == sorted(f"plex:100:{i}" for i in range(12))
    assert sandbox.faults.config.injected.get("malformed", 0) > 0


async def test_v2_storm_is_waited_out_with_retry_after(
    v2: ShipStationV2Client, sandbox: ShipStationSandbox, fake_clock: FakeClock
) -> None:
    sandbox.faults.configure(storm_requests=2, storm_retry_after=9)
    assert await v2.list_webhooks() == []
    assert fake_clock.monotonic() >= 18


async def test_dropped_connections_over_loopback_are_retried(fake_clock: FakeClock) -> None:
    sandbox = create_shipstation_sandbox(fake_clock)
    async with serve(sandbox.app) as base_url, httpx.AsyncClient() as http:
        v1 = ShipStationV1Client(
            http,
            api_key=ACCOUNT.api_key,
            api_secret=ACCOUNT.api_secret,
            clock=fake_clock,
            base_url=base_url,
        )
        await v1.create_orders([make_order(i) for i in range(10)])
        sandbox.faults.configure(drop_rate=0.4, seed=11)
        listed = [o.order_key async for o in v1.iter_orders(page_size=1)]
        assert len(listed) == 10
        assert sandbox.faults.config.injected.get("drop", 0) > 0
