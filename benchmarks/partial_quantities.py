"""What an exact partial quantity costs: 5 pieces of a release of 20, stocked in one 100-piece
container, written back N times per path against the Plex simulator (in-process, virtual time).

Paths:

1. ``shipper`` strategy with a configured container split (the simulator's ``Container_Split``);
2. ``datasource`` strategy with the same split;
3. no split (``partial_without_split = "tracking_and_task"``): the tracking note and the operator
   task, then — after the operator's split in Plex — the replayed write that completes it.

Prints, per path: Plex requests (REST + Data Source) per write-back, and checks every write moved
exactly 5 (on-hand 100 → 95, the remainder container kept its serial with 95).

Run: ``uv run python benchmarks/partial_quantities.py [writes per path]``
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta

import httpx
from plex_client import settings_for

from mlconnector.clock import FakeClock
from mlconnector.http import RateLimiterRegistry
from mlconnector.plex import (
    ContainerSplitter,
    DataSourceStrategy,
    NeedsOperatorError,
    PlexClient,
    PlexContainerSplit,
    PlexDataSourceClient,
    ShipmentLine,
    ShipmentWrite,
    ShipperStrategy,
    WriteStrategy,
)
from mlconnector.sandbox.plex import (
    CONTAINER_SPLIT_ID,
    LinePlan,
    PlexSandbox,
    ReleasePlan,
    create_plex_sandbox,
)
from mlconnector.sandbox.plex.model import Container

SHIPPED, ORDERED, STOCK = 5, 20, 100


class Counts:
    """Every request the clients send (reads, and the single-shot writes), REST and Data Source."""

    def __init__(self) -> None:
        self.rest = self.ds = 0

    async def __call__(self, request: httpx.Request) -> None:
        if request.url.path.startswith("/api/datasources/"):
            self.ds += 1
        elif not request.url.path.endswith("/token"):
            self.rest += 1

    def now(self) -> tuple[int, int]:
        return self.rest, self.ds


async def one_partial(
    sandbox: PlexSandbox, plex: PlexClient, n: int
) -> tuple[ShipmentWrite, Container, str]:
    """A release of 20 whose part sits in exactly one fresh 100-piece container."""
    data = sandbox.tenant()
    part = sorted(data.parts)[n % len(data.parts)]
    location = sorted(data.locations)[0]
    for container in data.containers.values():
        if container.part_id == part:
            container.quantity = 0
    container = sandbox.add_container(part, location, STOCK)
    ship = sandbox.clock.now() + timedelta(days=1)
    order = sandbox.add_order(lines=[LinePlan(part, [ReleasePlan(ORDERED, ship)])])
    lines = await plex.list_order_lines(order.id)
    release = (await plex.list_releases_for_lines([ln.id for ln in lines]))[0]
    write = ShipmentWrite(
        reference=f"ss-shipment-{900_000 + n}",
        carrier="ups",
        service="ground",
        tracking_number=f"1ZPART{n}",
        ship_date=sandbox.clock.now(),
        lines=(ShipmentLine(release.id, part, SHIPPED),),
        order_id=order.id,
    )
    return write, container, part


def check_moved(sandbox: PlexSandbox, container: Container, part: str) -> None:
    assert sandbox.on_hand(part) == STOCK - SHIPPED, sandbox.on_hand(part)
    assert sandbox.tenant().containers[container.serial_no].quantity == STOCK - SHIPPED


async def split_path(
    name: str, strategy: WriteStrategy, sandbox: PlexSandbox, counts: Counts, writes: int
) -> None:
    rest = ds = 0
    for n in range(writes):
        write, container, part = await one_partial(sandbox, strategy.plex, n)
        before = counts.now()
        await strategy.write_shipment(write, first_attempt=True)
        after = counts.now()
        rest, ds = rest + after[0] - before[0], ds + after[1] - before[1]
        check_moved(sandbox, container, part)
    print(
        f"{name:<34} {writes} write-backs, each exactly {SHIPPED} of {STOCK}: "
        f"{(rest + ds) / writes:.2f} Plex requests each ({rest / writes:.2f} REST + "
        f"{ds / writes:.2f} Data Source)"
    )


async def no_split_path(
    strategy: WriteStrategy, sandbox: PlexSandbox, counts: Counts, writes: int
) -> None:
    raise_rest = replay_rest = 0
    raise_ds = 0
    for n in range(writes):
        write, container, part = await one_partial(sandbox, strategy.plex, 1000 + n)
        before = counts.now()
        try:
            await strategy.write_shipment(write, first_attempt=True)
        except NeedsOperatorError:
            pass
        else:
            raise AssertionError("no split configured: the write must raise the operator task")
        raise_rest += counts.now()[0] - before[0]
        raise_ds += counts.now()[1] - before[1]
        assert sandbox.on_hand(part) == STOCK  # nothing moved, nothing left open
        sandbox.split_container(container.serial_no, SHIPPED)  # the operator, in Plex
        before = counts.now()
        await strategy.write_shipment(write)  # the replay looks before it writes
        replay_rest += counts.now()[0] - before[0]
        check_moved(sandbox, container, part)
    print(
        f"{'no split: tracking + task':<34} {writes} tasks: {raise_rest / writes:.2f} REST "
        f"requests each, {raise_ds / writes:.2f} Data Source (tracking in the release note, "
        f"no shipper); replay after the operator's "
        f"split: {replay_rest / writes:.2f} REST requests each"
    )


async def main(writes: int) -> None:
    clock = FakeClock()
    sandbox = create_plex_sandbox(clock)
    settings = settings_for(sandbox)
    started = time.perf_counter()
    counts = Counts()
    transport = httpx.ASGITransport(sandbox.app)
    async with httpx.AsyncClient(transport=transport, event_hooks={"request": [counts]}) as http:
        limiters = RateLimiterRegistry(clock)
        plex = PlexClient(http, settings, clock=clock, limiters=limiters)
        ds = PlexDataSourceClient(http, settings, clock=clock, limiters=limiters)
        splitter = ContainerSplitter(ds, PlexContainerSplit(datasource_id=CONTAINER_SPLIT_ID))
        await split_path(
            "shipper + split", ShipperStrategy(plex, splitter=splitter), sandbox, counts, writes
        )
        await split_path(
            "datasource + split",
            DataSourceStrategy(plex, ds, splitter=splitter),
            sandbox,
            counts,
            writes,
        )
        await no_split_path(ShipperStrategy(plex), sandbox, counts, writes)
    print(
        f"virtual time {clock.monotonic():.0f} s; wall time {time.perf_counter() - started:.2f} s"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
