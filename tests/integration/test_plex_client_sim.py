"""The Plex client against the Plex simulator: in-process (ASGITransport) and once over loopback.

Everything the client sends is configured (hosts, token path, PCN, web-service user, datasource
ids), here to the simulator's values read from ``sandbox.credentials()``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.errors import (
    AuthenticationError,
    PermissionDeniedError,
    RetryBudgetExhaustedError,
    SkipRecordError,
)
from mlconnector.http import RetryPolicy
from mlconnector.plex import (
    DataSourceError,
    DataSourceStrategy,
    FilterIgnoredError,
    PlexClient,
    PlexDataSourceClient,
    PlexSettings,
    PlexSoapClient,
    Release,
    RowLimitExceededError,
    SalesOrder,
    ShipmentLine,
    ShipmentWrite,
    ShipperStrategy,
)
from mlconnector.sandbox.plex import (
    RELEASE_HISTORY_ID,
    TRACKING_UPDATE_ID,
    LinePlan,
    PlexSandbox,
    ReleasePlan,
    create_plex_sandbox,
)
from mlconnector.sandbox.server import serve
from mlconnector.timezones import format_utc_z

BASE = "http://plex.sandbox.invalid"
RETRY = RetryPolicy(max_attempts=6, base_delay=0.5)


def settings_for(sandbox: PlexSandbox, base: str = BASE, **auth: Any) -> PlexSettings:
    creds = sandbox.credentials()
    tenant = creds["tenants"][0]
    strategy = auth.pop("strategy", "oauth2")
    return PlexSettings.model_validate(
        {
            "endpoints": {
                "connect_url": base,
                "datasource_url": base,
                "soap_url": f"{base}/DataSource/Service.asmx",
                "token_url": f"{base}{creds['token_path']}",
            },
            "auth": {
                "strategy": strategy,
                "api_key": creds["consumer_key"] if strategy == "api_key" else None,
                "client_id": creds["consumer_key"],
                "client_secret": creds["consumer_secret"],
                "pcn": str(tenant["pcn"]),
                "ws_username": tenant["ws_username"],
                "ws_password": tenant["ws_password"],
                **auth,
            },
            "datasources": {"shipper_tracking_update": TRACKING_UPDATE_ID},
        }
    )


class CrashingTransport(httpx.AsyncBaseTransport):
    """Forwards to the simulator; raises once on a chosen request (the connector "crashes")."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.crash_on: tuple[str, str] | None = None
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        crash = self.crash_on
        if crash and request.method == crash[0] and request.url.path.endswith(crash[1]):
            self.crash_on = None
            raise RuntimeError("simulated crash of the connector process")
        self.sent.append(request)
        return await self.inner.handle_async_request(request)

    def count(self, method: str, suffix: str) -> int:
        return sum(1 for r in self.sent if r.method == method and r.url.path.endswith(suffix))


@pytest.fixture
def sandbox(fake_clock: FakeClock) -> PlexSandbox:
    return create_plex_sandbox(fake_clock)


@pytest.fixture
def transport(sandbox: PlexSandbox) -> CrashingTransport:
    return CrashingTransport(httpx.ASGITransport(sandbox.app))


@pytest.fixture
async def http(transport: CrashingTransport) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport) as client:
        yield client


@pytest.fixture
def plex(http: httpx.AsyncClient, sandbox: PlexSandbox, fake_clock: FakeClock) -> PlexClient:
    return PlexClient(http, settings_for(sandbox), clock=fake_clock, retry=RETRY)


@pytest.fixture
def datasources(
    http: httpx.AsyncClient, sandbox: PlexSandbox, fake_clock: FakeClock
) -> PlexDataSourceClient:
    return PlexDataSourceClient(http, settings_for(sandbox), clock=fake_clock, retry=RETRY)


def first_part(sandbox: PlexSandbox) -> str:
    return next(iter(sandbox.tenant().parts.values())).id


async def open_release(
    plex: PlexClient, sandbox: PlexSandbox, quantity: float
) -> tuple[Release, SalesOrder, str]:
    """A new order with one release of ``quantity`` of the first part: (release, order, part)."""
    part_id = first_part(sandbox)
    ship = sandbox.clock.now() + timedelta(days=2)
    added = sandbox.add_order(lines=[LinePlan(part_id, [ReleasePlan(quantity, ship)])])
    order = await plex.get_order(added.id)
    lines = await plex.list_order_lines(order.id)
    releases = await plex.list_releases_for_lines([line.id for line in lines])
    assert len(releases) == 1
    return releases[0], order, part_id


def write_for(
    release: Release, order: SalesOrder, part_id: str, quantity: float, ref: str
) -> ShipmentWrite:
    assert order.order_date is not None
    return ShipmentWrite(
        reference=ref,
        carrier="fedex",
        service="fedex_ground",
        tracking_number=f"TRK-{ref}",
        ship_date=order.order_date,
        lines=(ShipmentLine(release.id, part_id, quantity),),
        order_id=order.id,
    )


# --- reads ---------------------------------------------------------------------------------------
async def test_orders_and_releases_in_windows(plex: PlexClient, fake_clock: FakeClock) -> None:
    end = fake_clock.now()
    orders = [o async for o in plex.iter_orders_modified(end - timedelta(days=30), end)]
    assert len(orders) == 40  # the seeded PCN 340884
    assert len({o.id for o in orders}) == 40
    releases = [r async for r in plex.iter_releases_modified(end - timedelta(days=30), end)]
    assert releases
    assert all(r.modified_date is not None and r.modified_date.tzinfo for r in releases)


async def test_a_misspelled_filter_is_detected(plex: PlexClient, fake_clock: FakeClock) -> None:
    # Orders filter on modifiedByDate…; "modifiedDate…" is unknown there and silently ignored.
    end = fake_clock.now()
    iterator = plex.iter_windowed(
        "sales/v1/orders",
        SalesOrder,
        end - timedelta(hours=6),
        end,
        begin_param="modifiedDateBegin",
        end_param="modifiedDateEnd",
        date_of=lambda o: o.modified_date,
        id_of=lambda o: o.id,
    )
    with pytest.raises(FilterIgnoredError, match="refusing a silent full-table sync"):
        async for _ in iterator:
            pass


async def test_on_hand_matches_the_simulator(plex: PlexClient, sandbox: PlexSandbox) -> None:
    part = next(iter(sandbox.tenant().parts.values()))
    totals = await plex.on_hand([part.id])
    assert sum(t.quantity for t in totals) == sandbox.on_hand(part.id)
    for total in totals:
        assert total.quantity == sandbox.on_hand(part.id, total.location_id)


async def test_api_key_strategy_with_pcn(http, sandbox, fake_clock) -> None:
    client = PlexClient(http, settings_for(sandbox, strategy="api_key"), clock=fake_clock)
    assert await client.list_locations()


async def test_expired_token_is_refreshed_once(plex: PlexClient, sandbox, transport) -> None:
    await plex.list_locations()
    sandbox.expire_tokens()
    await plex.list_locations()
    assert transport.count("POST", sandbox.token_path) == 2


async def test_unsubscribed_product_names_it(plex: PlexClient, sandbox: PlexSandbox) -> None:
    sandbox.unsubscribe("Customer Shippers")
    with pytest.raises(AuthenticationError) as info:
        await plex.list_shippers([])
    assert "'Customer Shippers' API product" in str(info.value)
    assert "PCN 340884" in str(info.value)


async def test_missing_permission_names_resource_and_role(plex, sandbox) -> None:
    sandbox.revoke_permission("shipping.shippers.write")
    with pytest.raises(PermissionDeniedError) as info:
        await plex.create_shipper({"customerId": "x"})
    text = str(info.value)
    assert "Customer Shippers" in text
    assert "shipping.shippers.write" in text
    assert "grant" in text


async def test_reads_survive_injected_faults(plex: PlexClient, sandbox: PlexSandbox) -> None:
    sandbox.faults.configure(error_rate=0.3, storm_requests=2, storm_retry_after=3, seed=7)
    for _ in range(5):
        assert await plex.list_locations()
    assert sandbox.faults.config.injected


async def test_plex_429_without_retry_after_is_waited_out(plex, sandbox, fake_clock) -> None:
    sandbox.set_rate_limit(5)  # the simulator's 429 carries no Retry-After, like Plex
    for _ in range(12):
        assert await plex.list_locations()
    assert fake_clock.monotonic() >= 60  # waited for the rolling minute, never gave up


async def test_empty_list_answered_404_reads_as_empty(plex: PlexClient, sandbox) -> None:
    sandbox.set_empty_list_not_found()
    assert await plex.find_inventory_shipments("ss-shipment-none") == []
    assert await plex.list_shippers([("trackingNumber", "NOPE")]) == []


# --- datasources ---------------------------------------------------------------------------------
async def test_release_history_streams_past_the_row_limit(datasources, sandbox, fake_clock):
    end = fake_clock.now() + timedelta(days=60)
    start = end - timedelta(days=120)
    window = {"Begin_Date": format_utc_z(start), "End_Date": format_utc_z(end)}
    everything = (await datasources.execute(RELEASE_HISTORY_ID, window)).rows
    # The limit must be above the rows sharing one ship date: no date filter can split those.
    per_instant = Counter(str(row["Ship_Date"]) for row in everything)
    limit = max(per_instant.values()) + 1
    assert len(everything) > 2 * limit
    sandbox.set_row_limit(RELEASE_HISTORY_ID, limit)
    with pytest.raises(RowLimitExceededError, match="narrow the window"):
        await datasources.execute(RELEASE_HISTORY_ID, window)
    rows = [
        row
        async for row in datasources.stream_rows(
            RELEASE_HISTORY_ID,
            start,
            end,
            begin_input="Begin_Date",
            end_input="End_Date",
            window=timedelta(days=30),
            min_window=timedelta(seconds=1),
        )
    ]
    # Complete: every row of the unlimited answer, none twice (inclusive edges de-duplicated).
    assert sorted(map(str, rows)) == sorted(map(str, everything))


async def test_soap_history_streams_by_window(http, datasources, sandbox, fake_clock) -> None:
    soap = PlexSoapClient(http, settings_for(sandbox), clock=fake_clock)
    end = fake_clock.now() + timedelta(days=60)
    start = end - timedelta(days=120)
    window = {"Begin_Date": format_utc_z(start), "End_Date": format_utc_z(end)}
    expected = (await datasources.execute(RELEASE_HISTORY_ID, window)).rows
    before = soap.calls
    rows = [
        row
        async for row in soap.stream_rows(
            RELEASE_HISTORY_ID,
            start,
            end,
            begin_input="Begin_Date",
            end_input="End_Date",
            window=timedelta(days=10),
        )
    ]
    assert soap.calls - before == 12
    assert len(rows) == len(expected)
    assert sorted(str(r["Release_Key"]) for r in rows) == sorted(
        str(r["Release_Key"]) for r in expected
    )


async def test_soap_error_true_raises(http, sandbox, fake_clock) -> None:
    soap = PlexSoapClient(http, settings_for(sandbox), clock=fake_clock)
    with pytest.raises(DataSourceError, match="Error=true"):
        await soap.execute(999_999_999, {})


# --- write strategies ----------------------------------------------------------------------------
async def test_shipper_strategy_reduces_on_hand_once(plex, sandbox, transport) -> None:
    release, order, part_id = await open_release(plex, sandbox, 7)
    before = sandbox.on_hand(part_id)
    strategy = ShipperStrategy(plex)
    write = write_for(release, order, part_id, 7, "ss-shipment-9001")
    result = await strategy.write_shipment(write)
    assert sandbox.on_hand(part_id) == before - 7
    assert sandbox.quantity_shipped(release.id) == 7
    shipper = await plex.get_shipper(result.shipper_id or "")
    assert shipper.tracking_number == "TRK-ss-shipment-9001"
    assert shipper.mentions("ss-shipment-9001")
    again = await strategy.write_shipment(write)
    assert again.already_done
    assert sandbox.on_hand(part_id) == before - 7
    assert transport.count("POST", "/ship") == 1


async def test_a_held_release_is_refused_before_any_shipper_is_created(
    plex, sandbox, transport
) -> None:
    release, order, part_id = await open_release(plex, sandbox, 5)
    sandbox.edit_release(release.id, status="Hold")
    held = (await plex.list_releases([release.id]))[0]
    before = sandbox.on_hand(part_id)
    strategy = ShipperStrategy(plex)
    write = write_for(held, order, part_id, 5, "ss-shipment-9101")
    with pytest.raises(SkipRecordError, match="'Hold' in Plex") as refused:
        await strategy.write_shipment(write, first_attempt=True, releases=[held])
    assert "off hold" in (refused.value.hint or "")
    # nothing was written: no empty shipper left behind in Plex, stock untouched
    assert not [r for r in transport.sent if r.method != "GET" and "/token" not in r.url.path]
    assert transport.count("POST", "/customer-shippers") == 0
    assert sandbox.on_hand(part_id) == before
    # off hold again, a replay writes it once
    sandbox.edit_release(release.id, status="Open")
    done = await strategy.write_shipment(write)
    assert not done.already_done
    assert sandbox.on_hand(part_id) == before - 5
    assert transport.count("POST", "/customer-shippers") == 1


async def test_shipper_crash_then_find_existing_prevents_a_duplicate(plex, sandbox, transport):
    release, order, part_id = await open_release(plex, sandbox, 5)
    before = sandbox.on_hand(part_id)
    strategy = ShipperStrategy(plex)
    write = write_for(release, order, part_id, 5, "ss-shipment-9002")
    transport.crash_on = ("POST", "/ship")
    with pytest.raises(RuntimeError, match="crash"):
        await strategy.write_shipment(write)
    existing = await strategy.find_existing("ss-shipment-9002")
    assert existing.shipper is not None
    shippers_before = len(sandbox.shippers())
    result = await strategy.write_shipment(write)
    assert result.resumed
    assert len(sandbox.shippers()) == shippers_before
    assert sandbox.on_hand(part_id) == before - 5
    assert sandbox.quantity_shipped(release.id) == 5


async def datasource_setup(plex: PlexClient, sandbox: PlexSandbox) -> tuple[Release, Any, str]:
    """A release whose quantity equals the oldest shippable container, on an open shipper."""
    part_id = first_part(sandbox)
    containers = [c for c in await plex.list_containers(part_id=part_id) if plex.shippable(c)]
    oldest = min(containers, key=lambda c: (c.add_date_time, c.serial_no))
    release, order, _ = await open_release(plex, sandbox, oldest.quantity)
    # A shipper made in Plex beforehand (the datasource strategy updates, never creates one).
    shipper = await plex.create_shipper(
        {
            "customerId": order.customer_id,
            "customerAddressId": release.ship_to_address_id,
            "shipperNote": "made in Plex",
        }
    )
    await plex.schedule_release(shipper.id, release.id)
    return release, order, shipper.id


async def test_datasource_strategy_tracking_and_on_hand(plex, datasources, sandbox, transport):
    release, order, shipper_id = await datasource_setup(plex, sandbox)
    part_id = first_part(sandbox)
    before = sandbox.on_hand(part_id)
    strategy = DataSourceStrategy(plex, datasources)
    write = write_for(release, order, part_id, release.quantity, "ss-shipment-9100")
    result = await strategy.write_shipment(write)
    assert result.shipper_id == shipper_id
    shipper = await plex.get_shipper(shipper_id)
    assert shipper.tracking_number == "TRK-ss-shipment-9100"
    assert shipper.shipper_note is not None
    assert shipper.shipper_note.startswith("made in Plex")
    assert "ss-shipment-9100" in shipper.shipper_note
    assert sandbox.on_hand(part_id) == before - release.quantity
    again = await strategy.write_shipment(write)
    assert again.already_done
    assert sandbox.on_hand(part_id) == before - release.quantity
    assert transport.count("POST", f"/datasources/{TRACKING_UPDATE_ID}/execute") == 1


async def test_datasource_crash_then_resume_and_reverse(plex, datasources, sandbox, transport):
    release, order, _ = await datasource_setup(plex, sandbox)
    part_id = first_part(sandbox)
    before = sandbox.on_hand(part_id)
    strategy = DataSourceStrategy(plex, datasources)
    write = write_for(release, order, part_id, release.quantity, "ss-shipment-9101")
    transport.crash_on = ("POST", "/ship")
    with pytest.raises(RuntimeError):
        await strategy.write_shipment(write)
    found = await strategy.find_existing("ss-shipment-9101")
    assert found.inventory_shipment is not None
    result = await strategy.write_shipment(write)
    assert result.resumed
    assert result.inventory_shipment_id == found.inventory_shipment.id
    assert transport.count("POST", "/shipments") == 1  # created once
    assert sandbox.on_hand(part_id) == before - release.quantity
    await strategy.reverse("ss-shipment-9101")
    assert sandbox.on_hand(part_id) == before


# --- loopback ------------------------------------------------------------------------------------
async def test_over_loopback_http(sandbox: PlexSandbox, fake_clock: FakeClock) -> None:
    async with serve(sandbox.app) as base, httpx.AsyncClient() as http:
        plex = PlexClient(http, settings_for(sandbox, base), clock=fake_clock, retry=RETRY)
        release, order, part_id = await open_release(plex, sandbox, 3)
        before = sandbox.on_hand(part_id)
        result = await ShipperStrategy(plex).write_shipment(
            write_for(release, order, part_id, 3, "ss-shipment-9200")
        )
        assert result.shipper_id
        assert sandbox.on_hand(part_id) == before - 3
        soap = PlexSoapClient(http, settings_for(sandbox, base), clock=fake_clock)
        with pytest.raises(DataSourceError):
            await soap.execute(999_999_999, {})
        # Real dropped connections (cut mid-answer) are retried on reads.
        sandbox.faults.configure(drop_rate=0.4, seed=3)
        for _ in range(5):
            assert await plex.list_locations()
        assert sandbox.faults.config.injected.get("drop", 0) > 0


async def test_partial_shipment_loads_whole_containers(plex, sandbox, transport) -> None:
    part_id = first_part(sandbox)
    containers = [c for c in await plex.list_containers(part_id=part_id) if plex.shippable(c)]
    oldest = min(containers, key=lambda c: (c.add_date_time, c.serial_no))
    release, order, _ = await open_release(plex, sandbox, oldest.quantity + 5)
    before = sandbox.on_hand(part_id)
    write = write_for(release, order, part_id, oldest.quantity, "ss-shipment-9300")
    await ShipperStrategy(plex).write_shipment(write)
    assert transport.count("POST", "/load-container") == 1
    assert transport.count("POST", "/load-fifo") == 0
    assert sandbox.on_hand(part_id) == before - oldest.quantity
    assert sandbox.quantity_shipped(release.id) == oldest.quantity


@pytest.mark.parametrize("strategy_name", ["shipper", "datasource"])
async def test_writes_under_faults_land_exactly_once(
    plex, datasources, sandbox, strategy_name
) -> None:
    if strategy_name == "datasource":
        release, order, _ = await datasource_setup(plex, sandbox)
        strategy: ShipperStrategy | DataSourceStrategy = DataSourceStrategy(plex, datasources)
    else:
        release, order, _ = await open_release(plex, sandbox, 6)
        strategy = ShipperStrategy(plex)
    part_id = first_part(sandbox)
    before = sandbox.on_hand(part_id)
    ref = f"ss-shipment-95{len(strategy_name)}"
    write = write_for(release, order, part_id, release.quantity, ref)
    sandbox.faults.configure(error_rate=0.3, malformed_rate=0.1, seed=11)
    failures = 0
    for _ in range(30):  # the outbox's retries of one operation
        try:
            await strategy.write_shipment(write)
            break
        except RetryBudgetExhaustedError:
            failures += 1
    else:
        pytest.fail("the write never completed under faults")
    assert failures > 0  # the faults did hit writes (seeded)
    assert sandbox.faults.config.injected
    sandbox.faults.configure()
    assert sandbox.on_hand(part_id) == before - release.quantity
    assert sandbox.quantity_shipped(release.id) == (
        release.quantity if strategy_name == "shipper" else 0
    )
    mine = [s for s in sandbox.shippers() if ref in (s.shipper_note or "")]
    assert len(mine) == 1
