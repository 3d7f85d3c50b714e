"""What the Plex client costs against the Plex simulator (in-process, virtual time).

Measures, on a :class:`~mlconnector.clock.FakeClock`:

1. a windowed read of every sales order and release modified in the last ``days`` days: requests
   sent and records read;
2. streaming a datasource history with a small Read Row Limit: requests (windows halved on the
   limit), rows, and the peak Python memory while streaming (tracemalloc) versus one unlimited call;
3. one ShipStation shipment written back by each strategy: requests per write, and per re-send of
   the same shipment (look-before-send).

Run: ``uv run python benchmarks/plex_client.py [days] [row_limit]``
"""

from __future__ import annotations

import asyncio
import sys
import time
import tracemalloc
from datetime import timedelta

import httpx

from mlconnector.clock import FakeClock
from mlconnector.http import RateLimiterRegistry
from mlconnector.plex import (
    DataSourceStrategy,
    PlexClient,
    PlexDataSourceClient,
    PlexSettings,
    ShipmentLine,
    ShipmentWrite,
    ShipperStrategy,
)
from mlconnector.plex.datasources import RowLimitExceededError
from mlconnector.sandbox.plex import (
    RELEASE_HISTORY_ID,
    LinePlan,
    PlexSandbox,
    ReleasePlan,
    create_plex_sandbox,
)
from mlconnector.timezones import format_utc_z

BASE = "http://plex.sandbox.invalid"


def settings_for(sandbox: PlexSandbox) -> PlexSettings:
    creds = sandbox.credentials()
    tenant = creds["tenants"][0]
    return PlexSettings.model_validate(
        {
            "endpoints": {
                "connect_url": BASE,
                "datasource_url": BASE,
                "soap_url": f"{BASE}/DataSource/Service.asmx",
                "token_url": f"{BASE}{creds['token_path']}",
            },
            "auth": {
                "strategy": "oauth2",
                "client_id": creds["consumer_key"],
                "client_secret": creds["consumer_secret"],
                "pcn": str(tenant["pcn"]),
                "ws_username": tenant["ws_username"],
                "ws_password": tenant["ws_password"],
            },
        }
    )


async def reads(plex: PlexClient, clock: FakeClock, days: int) -> None:
    end = clock.now()
    before = plex.calls
    orders = [o async for o in plex.iter_orders_modified(end - timedelta(days=days), end)]
    releases = [r async for r in plex.iter_releases_modified(end - timedelta(days=days), end)]
    print(
        f"windowed reads ({days} one-day windows each): {len(orders)} orders + "
        f"{len(releases)} releases in {plex.calls - before} requests"
    )


async def stream(ds: PlexDataSourceClient, sandbox: PlexSandbox, row_limit: int) -> None:
    end = sandbox.clock.now() + timedelta(days=90)
    start = end - timedelta(days=180)
    inputs = {"Begin_Date": format_utc_z(start), "End_Date": format_utc_z(end)}
    tracemalloc.start()
    everything = (await ds.execute(RELEASE_HISTORY_ID, inputs)).rows
    _, peak_all = tracemalloc.get_traced_memory()
    del everything
    tracemalloc.reset_peak()
    sandbox.set_row_limit(RELEASE_HISTORY_ID, row_limit)
    before = ds.calls
    count = 0
    try:
        async for _ in ds.stream_rows(
            RELEASE_HISTORY_ID,
            start,
            end,
            begin_input="Begin_Date",
            end_input="End_Date",
            window=timedelta(days=30),
            min_window=timedelta(seconds=1),
        ):
            count += 1
    except RowLimitExceededError as exc:
        tracemalloc.stop()
        print(f"stream_rows (row limit {row_limit}): refused after {count} rows: {exc.message}")
        return
    _, peak_stream = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"stream_rows (row limit {row_limit}): {count} rows in {ds.calls - before} requests; "
        f"peak traced memory {peak_stream / 1024:.0f} KiB streaming vs "
        f"{peak_all / 1024:.0f} KiB for one unlimited call"
    )


async def writes(plex: PlexClient, ds: PlexDataSourceClient, sandbox: PlexSandbox) -> None:
    part = next(iter(sandbox.tenant().parts.values())).id
    for n, strategy in enumerate([ShipperStrategy(plex), DataSourceStrategy(plex, ds)]):
        stock = [c for c in await plex.list_containers(part_id=part) if plex.shippable(c)]
        quantity = min(stock, key=lambda c: (c.add_date_time, c.serial_no)).quantity
        ship = sandbox.clock.now() + timedelta(days=1)
        order = sandbox.add_order(lines=[LinePlan(part, [ReleasePlan(quantity, ship)])])
        lines = await plex.list_order_lines(order.id)
        release = (await plex.list_releases_for_lines([ln.id for ln in lines]))[0]
        write = ShipmentWrite(
            reference=f"ss-shipment-{800 + n}",
            carrier="ups",
            service="ground",
            tracking_number=f"1Z{n}",
            ship_date=sandbox.clock.now(),
            lines=(ShipmentLine(release.id, part, quantity),),
            order_id=order.id,
        )
        before_stock = sandbox.on_hand(part)
        calls = plex.calls + ds.calls
        await strategy.write_shipment(write)
        first = plex.calls + ds.calls - calls
        calls = plex.calls + ds.calls
        again = await strategy.write_shipment(write)
        second = plex.calls + ds.calls - calls
        print(
            f"{strategy.name} write-back: {first} requests; re-send found it "
            f"(already_done={again.already_done}) in {second} requests; on-hand "
            f"{before_stock:g} -> {sandbox.on_hand(part):g} (shipped {quantity:g})"
        )


async def main(days: int, row_limit: int) -> None:
    clock = FakeClock()
    sandbox = create_plex_sandbox(clock)
    settings = settings_for(sandbox)
    started = time.perf_counter()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sandbox.app)) as http:
        limiters = RateLimiterRegistry(clock)  # as in production: 200/min paced per credential
        plex = PlexClient(http, settings, clock=clock, limiters=limiters)
        ds = PlexDataSourceClient(http, settings, clock=clock, limiters=limiters)
        await reads(plex, clock, days)
        await stream(ds, sandbox, row_limit)
        await writes(plex, ds, sandbox)
        assert plex.limiter is not None
        print(
            f"pacing: {plex.limiter.waits} limiter waits, {plex.limiter.waited_seconds:.0f} "
            f"virtual seconds; virtual time {clock.monotonic():.0f} s"
        )
    print(f"wall time {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(args[0] if args else 30, args[1] if len(args) > 1 else 25))
