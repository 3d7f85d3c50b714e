"""Cost of the metrics: the observer per HTTP exchange, and one ``/metrics`` scrape.

Run: ``uv run python benchmarks/metrics.py [--events 200000] [--connections 20]``. Prints figures;
asserts nothing about time. The scrape reads a SQLite store in a temporary folder holding
``--connections`` connections with four flows' last runs and a few operations each, after the
given number of HTTP exchanges were observed (over 60 endpoint templates, so the label set is
realistic).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from mlconnector.clock import SystemClock
from mlconnector.http.client import RequestEvent
from mlconnector.store import open_store
from mlconnector.sync.base import FlowResult
from mlconnector.sync.runs import RunReport, record_run
from mlconnector.web.metrics import Metrics

FLOWS = ("orders", "inventory", "shipments", "order_status")


def events(n: int) -> list[RequestEvent]:
    systems = ("ShipStation V1", "ShipStation V2", "plex")
    return [
        RequestEvent(
            service=systems[i % 3],
            method="GET" if i % 4 else "POST",
            url="http://x/",
            status=(200, 200, 200, 404, 429, 503)[i % 6],
            request_id=None,
            attempt=1,
            elapsed=0.001 * (i % 50),
            endpoint=f"/resource{i % 20}/{{id}}",
            retry_in=1.0 if i % 6 in (4, 5) else None,
            rate_limited=i % 6 == 4,
            error_type="TransientError" if i % 6 == 5 else None,
        )
        for i in range(n)
    ]


async def scrape(metrics: Metrics, connections: int, rounds: int) -> None:
    clock = SystemClock()
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(f"sqlite+aiosqlite:///{Path(tmp) / 'm.db'}", clock=clock)
        try:
            for c in range(connections):
                name = f"c{c}"
                await store.create_connection(name)
                for i in range(5):
                    await store.enqueue(name, "orders", "k", f"{name}-{i}", {})
                for flow in FLOWS:
                    report = RunReport(name, flow, result=FlowResult(flow, name, read=3))
                    now = datetime.now(UTC)
                    await record_run(store, report, at=now, seconds=0.5, owner="bench")
            await metrics.render(store)  # warm up
            started = time.perf_counter()
            for _ in range(rounds):
                body = await metrics.render(store)
            each = (time.perf_counter() - started) / rounds
            lines = body.decode().count("\n")
            print(
                f"  /metrics scrape, {connections} connections: {each * 1000:8.2f} ms "
                f"({lines} lines, {len(body) / 1024:.0f} KiB)"
            )
        finally:
            await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    metrics = Metrics(env={})
    batch = events(args.events)
    started = time.perf_counter()
    for event in batch:
        metrics.http_exchange(event)
    elapsed = time.perf_counter() - started
    print(f"metrics (prometheus-client), {args.events} HTTP exchanges observed:")
    print(f"  observer per exchange: {elapsed / args.events * 1e6:8.2f} µs")
    started = time.perf_counter()
    for i in range(args.events // 10):
        metrics.operation_changed("c0", "orders", ("pending", "sent", "confirmed")[i % 3])
    elapsed = time.perf_counter() - started
    print(f"  per operation change:  {elapsed / (args.events // 10) * 1e6:8.2f} µs")
    asyncio.run(scrape(metrics, args.connections, args.rounds))


if __name__ == "__main__":
    main()
