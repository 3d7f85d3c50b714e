"""API calls, ShipStation throughput and engine CPU of the orders flow (Plex → ShipStation).

Both simulators run in-process (``httpx.ASGITransport``) on one :class:`FakeClock`: every rate
limit (Plex 200/min rolling, ShipStation V1 40 per 60-s window) is enforced by the simulators in
virtual time and paced by the clients, so the figures are what the real APIs would allow.

1. **N new orders** (default 10,000, added with the Plex simulator's ``add_order`` on top of its
   ~40-order seed): one ``OrdersFlow.run`` from an empty store. Printed: requests per endpoint vs
   the minimum (see ``minimum_plex`` for what the windowing and the Plex API strictly need),
   ``createorders`` calls vs ceil(groups/100), 429s, ShipStation orders/min vs the V1 ceiling
   (40 req/min × 100 orders/request = 4,000/min), and engine CPU per order
   (``time.process_time`` of the run minus the CPU spent inside the simulators).
   The flow reads, decides and sends a chunk of orders at a time, so its ``createorders`` calls
   are spread over the whole pass, at the pace of the Plex reads: new orders cost about one Plex
   read each (their lines) at 200 requests/min, far below V1's 4,000 orders/min. The binding
   limit is therefore Plex, and the pass rate is printed against both limits: end-to-end
   orders/min (virtual time), the Plex bound (200/min ÷ Plex reads per order) and V1's ceiling.
3. **ShipStation-bound send** (``--v1-bound``, or after 1 and 2 by default): the same N orders in a
   fresh bench whose Plex app is granted 10,000 requests/min (simulator and
   ``plex.requests_per_minute``), so V1 is the binding limit; printed: the ``createorders`` pace
   against the V1 minimum span, as orders/min and share of the 4,000/min ceiling, and 429s.
2. **No-change poll**: the clock moves 10 minutes and the flow runs again: ShipStation writes
   (must be 0) and Plex reads.

Run: ``uv run python benchmarks/orders_calls.py [orders]``
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import Counter

from _sync_env import Bench, make_bench

from mlconnector.sync.orders import OrdersFlow

V1_REQ_PER_MIN = 40
PLEX_REQ_PER_MIN = 200  # PlexSettings.requests_per_minute (the simulator's rolling limit)
ORDERS_PER_REQUEST = 100
CEILING = V1_REQ_PER_MIN * ORDERS_PER_REQUEST


def snapshot(bench: Bench) -> tuple[Counter[str], Counter[str]]:
    return Counter(bench.plex_app.calls), Counter(bench.ss_app.calls)


def diff(after: Counter[str], before: Counter[str]) -> Counter[str]:
    return Counter({k: after[k] - before[k] for k in after if after[k] - before[k]})


def minimum_plex(bench: Bench, orders: int, windows: int) -> tuple[int, str]:
    """The Plex reads an orders pass strictly needs for ``orders`` new single-line orders.

    * the modified-date reads: orders + releases, one call each per window (lists are not
      paginated, so the window count is what the windowing needs);
    * order lines: one call per order (``/sales/v1/orders/{id}/lines`` has no multi-order form);
    * releases: none beyond the windowed read (a new order's releases were all modified in it);
    * customers + addresses: one call each per distinct customer; parts: one call per 50 ids.
    """
    data = bench.plex.tenant()
    customers = len(data.customers)
    parts = len([p for p in data.parts.values() if p.status == "Active"])
    total = 2 * windows + orders + 2 * customers + math.ceil(parts / 50)
    how = (
        f"2×{windows} windowed + {orders} lines + 2×{customers} customers/addresses + "
        f"{math.ceil(parts / 50)} parts"
    )
    return total, how


def throughput(bench: Bench, start_count: int, orders_sent: int) -> tuple[float, float, float]:
    """ShipStation orders/min of this run's createorders calls, against the V1 ceiling.

    V1 allows 40 requests per fixed 60-s window, so ``n`` requests need at least
    ``(ceil(n/40) − 1) × 60 s`` from the first to the last (bursts at each window start). The share
    of the ceiling is that minimum span over the measured span (virtual time); the sustained rate
    is the ceiling (4,000 orders/min) times that share. Returns (rate, span, minimum span).
    """
    times = bench.ss_app.times.get("POST /orders/createorders", [])[start_count:]
    if len(times) < 2:
        return float("nan"), 0.0, 0.0
    span = times[-1] - times[0]
    minimum = (math.ceil(len(times) / V1_REQ_PER_MIN) - 1) * 60.0
    if minimum == 0:
        return float("nan"), span, minimum  # one window: no pacing to measure
    per_request = orders_sent / len(times)
    share = minimum / span if span > 0 else 1.0
    return CEILING * share * per_request / ORDERS_PER_REQUEST, span, minimum


async def main(count: int) -> None:
    bench = await make_bench()
    try:
        rt = await bench.runtime()
        flow = OrdersFlow()
        # the seed (~40 orders) is synced first, so the measured pass sees only the new orders
        seeded = await flow.run(rt)
        print(f"seed pass (not measured): {seeded.summary()}")
        bench.clock.advance(600)
        started = time.perf_counter()
        bench.add_orders(count)
        print(f"added {count} orders to the Plex simulator ({time.perf_counter() - started:.1f} s)")
        bench.clock.advance(600)  # past the 2-minute safety lag: the new orders are readable

        plex0, ss0 = snapshot(bench)
        cpu0, sim0 = time.process_time(), bench.plex_app.cpu + bench.ss_app.cpu
        wall0, virt0 = time.perf_counter(), bench.clock.monotonic()
        creates0 = len(bench.ss_app.times.get("POST /orders/createorders", []))
        statuses0 = Counter(rt.stats.statuses)
        result = await flow.run(rt)
        cpu = time.process_time() - cpu0
        sim = bench.plex_app.cpu + bench.ss_app.cpu - sim0
        wall, virt = time.perf_counter() - wall0, bench.clock.monotonic() - virt0
        plex_calls, ss_calls = (
            diff(a, b) for a, b in zip(snapshot(bench), (plex0, ss0), strict=True)
        )
        groups = result.created + result.updated + result.cancelled
        print(f"\n== {count} new orders: {result.summary()}")
        print(f"wall {wall:.1f} s; virtual {virt / 60:.1f} min")
        print("Plex requests by endpoint:")
        for key, n in sorted(plex_calls.items()):
            print(f"  {n:>7}  {key}")
        print("ShipStation requests by endpoint:")
        for key, n in sorted(ss_calls.items()):
            print(f"  {n:>7}  {key}")
        creates = ss_calls.get("POST /orders/createorders", 0)
        print(
            f"createorders: {creates} calls for {groups} orders; minimum ceil({groups}/100) = "
            f"{math.ceil(groups / ORDERS_PER_REQUEST)}"
        )
        windowed = 1  # the cursor's window (since − 2 h overlap .. now − 2 min) is one read window
        need, how = minimum_plex(bench, count, windowed)
        plex_total = sum(plex_calls.values())
        print(
            f"Plex reads: {plex_total}; minimum {need} ({how}); "
            f"{plex_total / need:.2f}× the minimum"
        )
        statuses = diff(Counter(rt.stats.statuses), statuses0)
        too_many = {k: n for k, n in statuses.items() if k.endswith(" 429")}
        print(f"429 answers: {sum(too_many.values())} {too_many or ''}")
        rate, span, minimum = throughput(bench, creates0, groups)
        print(
            f"ShipStation throughput: createorders from first to last call took {span:.0f} s "
            f"(virtual) vs the V1 minimum {minimum:.0f} s for {creates} calls → "
            f"{rate:,.0f} orders/min = {rate / CEILING:.1%} of the V1 ceiling ({CEILING:,}/min) "
            "(sent chunk by chunk as Plex is read: below the V1 ceiling when Plex binds)"
        )
        rate_all = groups / (virt / 60) if virt > 0 else float("nan")
        plex_bound = PLEX_REQ_PER_MIN * count / plex_total
        binding = min(plex_bound, CEILING)
        print(
            f"end to end: {groups} orders in {virt / 60:.1f} virtual min = {rate_all:,.0f} "
            f"orders/min; bounds: Plex {plex_bound:,.0f}/min ({PLEX_REQ_PER_MIN} req/min ÷ "
            f"{plex_total / count:.3f} reads per order), V1 {CEILING:,}/min → "
            f"{rate_all / binding:.1%} of the binding limit"
        )
        engine = cpu - sim
        print(
            f"CPU: {cpu:.1f} s total, {sim:.1f} s inside the simulators, engine {engine:.1f} s = "
            f"{engine / max(groups, 1) * 1000:.2f} ms/order"
        )

        bench.clock.advance(600)
        plex0, ss0 = snapshot(bench)
        again = await flow.run(rt)
        plex_calls, ss_calls = (
            diff(a, b) for a, b in zip(snapshot(bench), (plex0, ss0), strict=True)
        )
        writes = sum(n for k, n in ss_calls.items() if not k.startswith("GET "))
        print(f"\n== no-change poll: {again.summary()}")
        print(
            f"ShipStation writes: {writes} (must be 0); ShipStation reads: "
            f"{sum(ss_calls.values()) - writes}"
        )
        print(f"Plex reads: {sum(plex_calls.values())} {dict(plex_calls)}")
    finally:
        await bench.close()


async def v1_bound(count: int) -> None:
    """Scenario 3: Plex not binding (10,000 requests/min granted), so V1 paces the pass."""
    bench = await make_bench()
    try:
        bench.plex.set_rate_limit(10_000)
        rt = await bench.runtime({"requests_per_minute": 10_000})
        flow = OrdersFlow()
        await flow.run(rt)
        bench.clock.advance(600)
        bench.add_orders(count)
        bench.clock.advance(600)
        creates0 = len(bench.ss_app.times.get("POST /orders/createorders", []))
        statuses0 = Counter(rt.stats.statuses)
        virt0 = bench.clock.monotonic()
        result = await flow.run(rt)
        virt = bench.clock.monotonic() - virt0
        groups = result.created + result.updated + result.cancelled
        rate, span, minimum = throughput(bench, creates0, groups)
        statuses = diff(Counter(rt.stats.statuses), statuses0)
        too_many = sum(n for k, n in statuses.items() if k.endswith(" 429"))
        creates = len(bench.ss_app.times.get("POST /orders/createorders", [])) - creates0
        print(f"\n== {count} new orders, Plex not binding (10,000 req/min): {result.summary()}")
        print(
            f"createorders: {creates} calls from first to last in {span:.0f} s (virtual) vs the "
            f"V1 minimum {minimum:.0f} s → {rate:,.0f} orders/min = {rate / CEILING:.1%} of the "
            f"V1 ceiling ({CEILING:,}/min); 429 answers: {too_many}; whole pass "
            f"{virt / 60:.1f} virtual min"
        )
    finally:
        await bench.close()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 10_000
    if "--v1-bound" not in sys.argv:
        asyncio.run(main(n))
    asyncio.run(v1_bound(n))
