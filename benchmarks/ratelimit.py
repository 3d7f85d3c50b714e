"""How close the V1 client gets to ShipStation's 40 requests/minute without a single 429.

Runs N V1 requests (default 10,000: one ``createorders`` batch to seed, then ``GET /orders``
pages) through :class:`~mlconnector.shipstation.ShipStationV1Client` against the ShipStation
simulator in-process, on a :class:`~mlconnector.clock.FakeClock` (virtual time, so 250 virtual
minutes take seconds). ``workers`` tasks share one credential, hence one limiter.

Prints: requests sent, 429s answered, virtual minutes, achieved requests/minute as a fraction of
the 40/min limit (target >= 0.97, 429s target 0), and wall time. The rate is requests divided by
the virtual time until the limiter would let one more request start (so the burst a fixed window
allows at its start does not flatter the figure).

Run: ``uv run python benchmarks/ratelimit.py [requests] [workers]``
"""

from __future__ import annotations

import asyncio
import sys
import time

import httpx

from mlconnector.clock import FakeClock
from mlconnector.http import RateLimiterRegistry, RequestEvent
from mlconnector.sandbox.shipstation import ShipStationAccount, create_shipstation_sandbox
from mlconnector.shipstation import Order, OrderItem, ShipStationV1Client

LIMIT = 40
BASE_URL = "http://shipstation.sandbox.invalid"


async def run(total: int, workers: int) -> dict[str, float]:
    clock = FakeClock()
    sandbox = create_shipstation_sandbox(clock, public_url=BASE_URL)
    account = ShipStationAccount()
    events: list[RequestEvent] = []
    registry = RateLimiterRegistry(clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sandbox.app)) as http:
        client = ShipStationV1Client(
            http,
            api_key=account.api_key,
            api_secret=account.api_secret,
            clock=clock,
            base_url=BASE_URL,
            limiters=registry,
            on_event=events.append,
        )
        seed = [
            Order(
                order_number=f"B-{n}",
                order_key=f"bench:{n}",
                order_status="awaiting_shipment",
                items=[OrderItem(line_item_key=f"r{n}", sku="S", quantity=1)],
            )
            for n in range(100)
        ]
        wall = time.perf_counter()
        start = clock.monotonic()
        await client.create_orders(seed)
        remaining = [total - client.calls]

        async def worker() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                # one page of 10 orders per request: a real list call, small enough to be quick
                async for _ in client.iter_orders(page_size=10, max_pages=1):
                    pass

        await asyncio.gather(*(worker() for _ in range(workers)))
        span = clock.monotonic() - start
        # The budget those requests used runs until the limiter would let one more start: count
        # that time too, or a fixed window's burst at its start would flatter the figure.
        assert client.limiter is not None
        await client.limiter.acquire()
        client.limiter.release()
        virtual = clock.monotonic() - start
        wall = time.perf_counter() - wall
    rejected = sum(1 for e in events if e.status == 429)
    minutes = virtual / 60.0
    rate = client.calls / minutes if minutes > 0 else float("inf")
    return {
        "requests": client.calls,
        "span_minutes": span / 60.0,
        "rejected_429": rejected,
        "virtual_minutes": minutes,
        "per_minute": rate,
        "fraction": rate / LIMIT,
        "wall_seconds": wall,
    }


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    figures = asyncio.run(run(total, workers))
    print(f"ShipStation V1 rate limit ({LIMIT}/min), {workers} worker(s), in-process simulator")
    print(f"  requests sent      {figures['requests']:.0f}")
    print(f"  429 answers        {figures['rejected_429']:.0f}   (target 0)")
    print(f"  first to last      {figures['span_minutes']:.2f} min (virtual)")
    print(f"  budget used until  {figures['virtual_minutes']:.2f} min (next request allowed)")
    print(f"  achieved rate      {figures['per_minute']:.2f}/min")
    print(f"  fraction of limit  {figures['fraction']:.4f}   (target >= 0.97)")
    print(f"  wall time          {figures['wall_seconds']:.2f} s")


if __name__ == "__main__":
    main()
