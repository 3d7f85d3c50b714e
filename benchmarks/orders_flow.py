"""Engine CPU per order of an orders pass on SQLite, with the store's transactions and
statements per order (and, with ``--profile``, where the CPU goes).

Both simulators in-process on a :class:`FakeClock` (``_sync_env``; their own CPU is measured apart
and subtracted). The ~40-order seed is synced first (not measured), then N new Plex orders (one
release each, so one ShipStation order each) are synced by one ``OrdersFlow.run``. Printed:

* engine CPU per order = (process CPU − CPU inside the simulators) / orders created;
* database transactions (commits) and SQL statements per order, counted on the engine;
* a no-change pass and a one-release edit (what a scheduled poll costs).

Run: ``uv run python benchmarks/orders_flow.py [--profile] [orders]`` (default 1000)
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import sys
import time
from typing import Any

from _sync_env import Bench, make_bench
from sqlalchemy import event

from mlconnector.sync import ConnectionRuntime
from mlconnector.sync.orders import OrdersFlow


class DbCounter:
    """Commits and statements executed on the store's engine."""

    def __init__(self, bench: Bench) -> None:
        self.commits = 0
        self.statements = 0
        engine = bench.store.engine.sync_engine
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "before_cursor_execute", self._statement)

    def _commit(self, *_: Any) -> None:
        self.commits += 1

    def _statement(self, *_: Any) -> None:
        self.statements += 1


async def measured(
    label: str, bench: Bench, rt: ConnectionRuntime, db: DbCounter, profile: bool
) -> None:
    flow = OrdersFlow()
    commits, statements = db.commits, db.statements
    cpu0, sim0 = time.process_time(), bench.plex_app.cpu + bench.ss_app.cpu
    wall0 = time.perf_counter()
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    result = await flow.run(rt)
    if profiler is not None:
        profiler.disable()
    engine = time.process_time() - cpu0 - (bench.plex_app.cpu + bench.ss_app.cpu - sim0)
    orders = result.created + result.updated + result.cancelled
    per = max(orders, 1)
    print(
        f"{label:<20} {result.counts_text()}\n"
        f"  engine CPU {engine:.2f} s = {engine * 1000 / per:.2f} ms/order; "
        f"{(db.commits - commits) / per:.2f} transactions and "
        f"{(db.statements - statements) / per:.2f} statements per order "
        f"({db.commits - commits} / {db.statements - statements}); "
        f"wall {time.perf_counter() - wall0:.1f} s"
    )
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())


async def main(orders: int, profile: bool) -> None:
    bench = await make_bench()
    try:
        rt = await bench.runtime()
        await OrdersFlow().run(rt)  # the seed, not measured
        bench.clock.advance(600)
        bench.add_orders(orders)
        bench.clock.advance(600)
        db = DbCounter(bench)
        print(f"orders pass on SQLite, {orders} new orders")
        await measured("first pass", bench, rt, db, profile)
        bench.clock.advance(600)
        await measured("no change", bench, rt, db, False)
        data = bench.plex.tenant(bench_pcn := 340884)
        release = next(r for r in data.releases.values() if r.status == "Open")
        bench.plex.edit_release(release.id, quantity=release.quantity + 1, tenant=bench_pcn)
        bench.clock.advance(600)
        await measured("one release edited", bench, rt, db, False)
    finally:
        await bench.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    prof = "--profile" in args
    sizes = [int(a) for a in args if a != "--profile"]
    asyncio.run(main(sizes[0] if sizes else 1000, prof))
