"""How fast the ShipStation simulator answers in-process (prints figures; asserts nothing timed).

Run: ``uv run python benchmarks/bench_shipstation_sandbox.py [orders]``
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from typing import Any

import httpx

from mlconnector.clock import FakeClock
from mlconnector.sandbox.shipstation import create_shipstation_sandbox

AUTH = "Basic " + base64.b64encode(b"sandbox-v1-key:sandbox-v1-secret").decode()


def order(n: int) -> dict[str, Any]:
    return {
        "orderNumber": f"N-{n}",
        "orderKey": f"k-{n}",
        "orderDate": "2026-01-15 08:00:00",
        "orderStatus": "awaiting_shipment",
        "items": [{"lineItemKey": "L1", "sku": "S", "quantity": 2}],
    }


async def main(total: int) -> None:
    sandbox = create_shipstation_sandbox(FakeClock())
    sandbox.v1_limiter.limit = 10**9  # measure the simulator, not its 40/min budget
    transport = httpx.ASGITransport(sandbox.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://ss", headers={"Authorization": AUTH}
    ) as client:
        start = time.perf_counter()
        for batch in range(0, total, 100):
            body = [order(n) for n in range(batch, min(batch + 100, total))]
            response = await client.post("/orders/createorders", json=body)
            assert not response.json()["hasErrors"]
        created = time.perf_counter() - start
        start = time.perf_counter()
        pages = -(-total // 500)
        for page in range(1, pages + 1):
            await client.get("/orders", params={"pageSize": 500, "page": page})
        listed = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(200):
            await client.get("/orders", params={"orderNumber": f"N-{total - 1}"})
        searched = time.perf_counter() - start
    print(f"createorders: {total} orders in {created:.2f} s ({total / created:.0f} orders/s)")
    print(f"GET /orders pageSize=500: {pages} pages in {listed:.2f} s")
    print(f"GET /orders?orderNumber with {total} stored: {200 / searched:.0f} requests/s")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
