"""Store throughput: outbox life cycles and audit appends per second, and a due() scan.

Run: ``uv run python benchmarks/store_outbox.py [--n 2000] [--postgres URL]``. Prints figures; it
asserts nothing about time. SQLite runs in a temporary folder; PostgreSQL (optional) in a database
created for the run and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

# web_receiver.py imports these two names from here
from _pgdb import create_database as _create_database
from _pgdb import drop_database as _drop_database

from mlconnector.clock import SystemClock
from mlconnector.store import AuditEvent, Store, open_store


async def _timed(label: str, n: int, body: Callable[[int], Awaitable[object]]) -> None:
    started = time.perf_counter()
    for i in range(n):
        await body(i)
    elapsed = time.perf_counter() - started
    print(f"  {label:<44} {n / elapsed:9.0f}/s  ({elapsed * 1000 / n:.2f} ms each)")


async def bench(store: Store, n: int) -> None:
    """Sequential figures: one caller, one transaction per method call."""
    await store.create_connection("bench")

    async def lifecycle(i: int) -> None:
        op = (await store.enqueue("bench", "orders", "create", f"key-{i}", {"i": i})).operation
        await store.mark_sent(op.id)
        await store.confirm(op.id, remote_ref=str(i))

    async def duplicate(i: int) -> None:
        await store.enqueue("bench", "orders", "create", f"key-{i}", {"i": i})

    async def audit(i: int) -> None:
        event = AuditEvent("bench", "orders", "plex->ss", "order", "create", "ok", order_key=str(i))
        await store.append_audit(event)

    await _timed("enqueue + mark_sent + confirm (3 tx)", n, lifecycle)
    await _timed("enqueue of an existing key (insert-or-get)", n, duplicate)
    await _timed("append_audit", n, audit)
    started = time.perf_counter()
    due = await store.due("bench", "orders", limit=1000)
    print(
        f"  due() scan with {n} confirmed rows: {(time.perf_counter() - started) * 1000:.1f} ms"
        f" ({len(due)} due)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument(
        "--postgres", help="admin URL, e.g. postgresql://postgres@127.0.0.1/postgres"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        print(f"SQLite (WAL) n={args.n}")
        store = await open_store(f"sqlite:///{Path(home) / 'bench.db'}", clock=SystemClock())
        try:
            await bench(store, args.n)
        finally:
            await store.close()
    if args.postgres:
        print(f"PostgreSQL n={args.n}")
        url = _create_database(args.postgres)
        try:
            store = await open_store(url, clock=SystemClock())
            try:
                await bench(store, args.n)
            finally:
                await store.close()
        finally:
            _drop_database(args.postgres, url)


if __name__ == "__main__":
    asyncio.run(main())
