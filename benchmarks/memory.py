"""Peak memory of one orders pass at 10,000 vs 100,000 new orders (each size in a fresh process).

Each size runs in its own subprocess (``memory.py --child N``) so its RSS starts clean: both
simulators in-process on a :class:`FakeClock` (``httpx.ASGITransport``), the ~40-order seed synced
first (not measured), then N orders added with the Plex simulator's ``add_order`` and one
``OrdersFlow.run``. Printed per size: peak RSS before the pass (simulators seeded) and after it
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), their difference, and with ``--tracemalloc`` the
Python-allocation peak during the pass. The simulators' own state (N Plex orders, the ShipStation
orders created) lives in the same process and is part of the figures.

A pass that exceeds the time budget (default 300 s of wall time) is stopped; the child then prints
how many orders it had loaded from Plex by then, and the parent says the size was not reached.

With ``--attribute`` (implies ``--tracemalloc``), snapshots are taken when the pass sends its
first and its last ``createorders`` and the traced memory is grouped by source area (simulators,
sync, store, clients, pydantic, SQLAlchemy, ...): the flow works a chunk of orders at a time, so
what grows between the two is the simulators' state (the ShipStation orders created), the run's
plan and the per-order ids kept to advance the cursor, not the connector's bundles.

Run: ``uv run python benchmarks/memory.py [--budget SECONDS] [--tracemalloc] [--attribute]
[sizes...]`` (default sizes: 10000 100000)
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from _sync_env import make_bench

from mlconnector.sync.orders import OrdersFlow

HERE = Path(__file__).resolve().parent


def rss_mib() -> float:
    """Peak RSS of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


AREAS = (
    ("simulators", "mlconnector/sandbox/"),
    ("sync flows", "mlconnector/sync/"),
    ("store", "mlconnector/store/"),
    ("shipstation client", "mlconnector/shipstation/"),
    ("plex client", "mlconnector/plex/"),
    ("http", "mlconnector/http/"),
    ("pydantic", "/pydantic"),
    ("sqlalchemy/aiosqlite", "sqlalchemy"),
    ("httpx/starlette", "/httpx/"),
    ("json", "/json/"),
)


def attribute(snapshot: tracemalloc.Snapshot) -> dict[str, float]:
    """Traced MiB by source area (the frame that allocated)."""
    areas: dict[str, float] = {}
    for stat in snapshot.statistics("filename"):
        name = stat.traceback[0].filename
        area = next((a for a, marker in AREAS if marker in name), "other")
        areas[area] = areas.get(area, 0.0) + stat.size / 2**20
    return {k: round(v, 1) for k, v in sorted(areas.items(), key=lambda kv: -kv[1])}


async def child(size: int, budget: float, trace: bool, attr: bool = False) -> dict[str, object]:
    bench = await make_bench()
    try:
        rt = await bench.runtime()
        flow = OrdersFlow()
        await flow.run(rt)
        bench.clock.advance(600)
        bench.add_orders(size)
        bench.clock.advance(600)
        before = rss_mib()
        snapshots: list[dict[str, float]] = []
        if trace or attr:
            tracemalloc.start()
        if attr:
            ss_app = bench.ss_app
            sends = [0]
            last = -(-size // 100)  # the pass's last createorders (one order per Plex order)

            def at_send() -> None:
                sends[0] += 1
                if sends[0] in {1, last}:
                    snapshots.append(attribute(tracemalloc.take_snapshot()))

            ss_app.on_request = at_send
        started = time.perf_counter()
        task = asyncio.ensure_future(flow.run(rt))
        done, _ = await asyncio.wait({task}, timeout=budget)
        seconds = time.perf_counter() - started
        if not done:
            task.cancel()
        loaded = bench.plex_app.calls.get("GET /sales/v1/orders/{id}/lines", 0)
        peak_traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace or attr else None
        result = task.result() if done else None
        return {
            "size": size,
            "completed": bool(done),
            "created": result.created if result else None,
            "orders_loaded": loaded,
            "seconds": round(seconds, 1),
            "rss_before_mib": round(before, 1),
            "rss_peak_mib": round(rss_mib(), 1),
            "tracemalloc_peak_mib": round(peak_traced, 1) if peak_traced is not None else None,
            "at_first_send_mib_by_area": snapshots[0] if snapshots else None,
            "at_last_send_mib_by_area": snapshots[-1] if len(snapshots) > 1 else None,
        }
    finally:
        await bench.close()


def run_size(size: int, budget: float, trace: bool, attr: bool) -> dict[str, object]:
    args = [sys.executable, str(HERE / "memory.py"), "--child", str(size), "--budget", str(budget)]
    if trace:
        args.append("--tracemalloc")
    if attr:
        args.append("--attribute")
    out = subprocess.run(args, capture_output=True, text=True, check=True, cwd=HERE.parent)  # noqa: S603
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def describe(r: dict[str, object]) -> str:
    traced = r["tracemalloc_peak_mib"]
    extra = f", tracemalloc peak {traced} MiB" if traced is not None else ""
    state = (
        f"completed in {r['seconds']} s (created {r['created']})"
        if r["completed"]
        else f"NOT completed: stopped after {r['seconds']} s with {r['orders_loaded']} of "
        f"{r['size']} orders loaded from Plex"
    )
    growth = float(str(r["rss_peak_mib"])) - float(str(r["rss_before_mib"]))
    for when in ("first", "last"):
        areas = r.get(f"at_{when}_send_mib_by_area")
        if areas:
            extra += f"\n         traced MiB by area at the {when} createorders: {areas}"
    return (
        f"{r['size']:>7} orders: {state}; peak RSS {r['rss_peak_mib']} MiB "
        f"(seeded: {r['rss_before_mib']} MiB, +{growth:.1f} MiB in the pass){extra}"
    )


def main(argv: list[str]) -> None:
    budget, trace, attr, sizes = 300.0, False, False, []
    it = iter(argv)
    for arg in it:
        if arg == "--child":
            size = int(next(it))
            rest = list(it)
            b = float(rest[rest.index("--budget") + 1]) if "--budget" in rest else budget
            result = child(size, b, "--tracemalloc" in rest, "--attribute" in rest)
            print(json.dumps(asyncio.run(result)))
            return
        if arg == "--budget":
            budget = float(next(it))
        elif arg == "--tracemalloc":
            trace = True
        elif arg == "--attribute":
            attr = True
        else:
            sizes.append(int(arg))
    results = []
    for size in sizes or [10_000, 100_000]:
        result = run_size(size, budget, trace, attr)
        results.append(result)
        print(describe(result), flush=True)
    done = [r for r in results if r["completed"]]
    if len(done) >= 2:
        small, large = done[0], done[-1]
        ratio = float(str(large["rss_peak_mib"])) / float(str(small["rss_peak_mib"]))
        print(f"peak RSS ratio {large['size']}/{small['size']} orders: {ratio:.2f}")
    if len(done) < len(results):
        reached = max(int(str(r["orders_loaded"])) for r in results if not r["completed"])
        print(
            f"largest size completed: {done[-1]['size'] if done else 'none'}; the larger run "
            f"reached {reached} orders loaded within the {budget:.0f}-s budget"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
