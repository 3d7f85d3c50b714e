"""Peak memory of one orders pass at 10,000 vs 100,000 new orders, the connector process alone.

Each size runs in its own pair of fresh processes:

* the **simulators** (``memory.py --simulators``): Plex and ShipStation served by uvicorn on
  loopback (ephemeral ports) on their own :class:`FakeClock`, plus a small control app that adds
  orders and reports request counts and the simulators' RSS. Their state (N Plex orders, the
  ShipStation orders created) lives there, not in the measured process;
* the **connector** (``memory.py --child N``): a SQLite store in a temporary folder and a runtime
  built the production way, talking real HTTP to the simulators. Its clock is a
  :class:`FakeClock` too (rate-limit waits cost no wall time); every request carries its virtual
  time (``X-Bench-Clock``) and the simulators' clock follows it, so both sides' rate limits
  agree. Only this process is measured.

The ~40-order seed is synced first (not measured); then N orders arrive in Plex at a steady
rate (``--per-hour``, default 1,000 an hour: 100,000 orders are a 100-hour backlog, a connector
catching up after an outage), read in Plex windows of ``--window-hours`` (default 1), and one
``OrdersFlow.run`` syncs them. Printed per size: peak RSS of the connector process before the
pass and after it (``ru_maxrss``), their difference, with ``--tracemalloc`` the
Python-allocation peak during the pass, and the simulators' RSS for reference. With three or
more completed sizes, the least-squares slope of the pass's RSS growth in KiB per order.

A pass that exceeds the time budget (default 600 s of wall time) is stopped; the child then
prints how many orders the simulators had served lines for by then.

With ``--attribute`` (implies ``--tracemalloc``), snapshots are taken when the pass sends its
first and its last ``createorders`` and the traced memory is grouped by source area (sync,
store, clients, pydantic, SQLAlchemy, ...): what grows between the two grows with the number of
orders.

Run: ``uv run python benchmarks/memory.py [--budget SECONDS] [--per-hour N] [--window-hours H]
[--tracemalloc] [--attribute] [sizes...]`` (default sizes: 10000 100000)
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from _sync_env import _UUID, CONNECTION, PCN, START, open_sandbox_store
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mlconnector.clock import FakeClock
from mlconnector.config import Config, ConnectionConfig, PlexSettings, ShipStationSettings
from mlconnector.sandbox.plex import (
    LinePlan,
    PlexSandbox,
    ReleasePlan,
    create_plex_sandbox,
)
from mlconnector.sandbox.server import serve
from mlconnector.sandbox.shipstation import ShipStationAccount, create_shipstation_sandbox
from mlconnector.sync import LogAlertSink, build_runtime
from mlconnector.sync.orders import OrdersFlow

HERE = Path(__file__).resolve().parent
CLOCK_HEADER = "X-Bench-Clock"
LINES = "GET /sales/v1/orders/{id}/lines"


def rss_mib() -> float:
    """Peak RSS of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the simulators' process -----------------------------------------------------------------
class Follow:
    """ASGI wrapper of a simulator: its clock follows the connector's (``X-Bench-Clock``), and
    requests are counted per method and path."""

    def __init__(self, app: ASGIApp, clock: FakeClock, calls: Counter[str]) -> None:
        self.app, self.clock, self.calls = app, clock, calls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.calls[f"{scope['method']} {_UUID.sub('{id}', scope['path'])}"] += 1
            for name, value in scope["headers"]:
                if name == CLOCK_HEADER.lower().encode():
                    ahead = float(value) - self.clock.monotonic()
                    if ahead > 0:
                        self.clock.advance(ahead)
        await self.app(scope, receive, send)


def add_orders(plex: PlexSandbox, clock: FakeClock, count: int, per_hour: float) -> None:
    """``count`` new open orders (one line, one release each), spread over the customers and
    parts, one every ``3600 / per_hour`` seconds of virtual time."""
    data = plex.tenant(PCN)
    customers = list(data.customers)
    parts = [p.id for p in data.parts.values() if p.status == "Active"]
    step = 3600.0 / per_hour
    for n in range(count):
        clock.advance(step)
        plan = ReleasePlan(float(1 + n % 20), clock.now() + timedelta(days=3 + n % 20))
        plex.add_order(
            customers[n % len(customers)], [LinePlan(parts[n % len(parts)], [plan])], tenant=PCN
        )


async def simulators() -> None:
    """Serve both simulators and the control app until stdin closes; print their URLs first."""
    clock = FakeClock(START)
    plex = create_plex_sandbox(clock)
    ss = create_shipstation_sandbox(clock, accounts=[ShipStationAccount()])
    calls: Counter[str] = Counter()

    async def add(request: Request) -> JSONResponse:
        body = await request.json()
        add_orders(plex, clock, int(body["count"]), float(body["per_hour"]))
        return JSONResponse({"elapsed": clock.monotonic(), "rss_mib": round(rss_mib(), 1)})

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse({"calls": dict(calls), "rss_mib": round(rss_mib(), 1)})

    control = Starlette(routes=[Route("/orders", add, methods=["POST"]), Route("/stats", stats)])
    async with (
        serve(Follow(plex.app, clock, calls)) as plex_url,
        serve(Follow(ss.app, clock, calls)) as ss_url,
        serve(control) as control_url,
    ):
        print(json.dumps({"plex": plex_url, "ss": ss_url, "control": control_url}), flush=True)
        await asyncio.to_thread(sys.stdin.read)  # the connector closes it when done


# --- the connector's process -----------------------------------------------------------------
AREAS = (
    ("sync flows", "mlconnector/sync/"),
    ("store", "mlconnector/store/"),
    ("shipstation client", "mlconnector/shipstation/"),
    ("plex client", "mlconnector/plex/"),
    ("http", "mlconnector/http/"),
    ("pydantic", "/pydantic"),
    ("sqlalchemy/aiosqlite", "sqlalchemy"),
    ("httpx/httpcore", "/http"),
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


def growth_by_line(first: tracemalloc.Snapshot, last: tracemalloc.Snapshot) -> list[str]:
    """The source lines whose traced memory grew most between two snapshots (KiB, blocks)."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    diff = last.filter_traces(ignore).compare_to(first.filter_traces(ignore), "lineno")
    top = sorted(diff, key=lambda d: -d.size_diff)[:12]
    return [
        f"{d.size_diff / 1024:+.0f} KiB {d.count_diff:+d} blocks "
        f"{d.traceback[0].filename.rsplit('site-packages/', 1)[-1]}:{d.traceback[0].lineno}"
        for d in top
    ]


def connector_config(home: Path, urls: dict[str, str], window_hours: float) -> Config:
    plex_url, ss_url = urls["plex"], urls["ss"]
    conn = ConnectionConfig(
        plex=PlexSettings(
            pcn=str(PCN),
            rest_base_url=plex_url,
            datasource_base_url=plex_url,
            soap_url=f"{plex_url}/DataSource/Service.asmx",
            web_service_user=PlexSandbox.ws_username(PCN),
            read_window_hours=window_hours,
        ),
        shipstation=ShipStationSettings(v1_base_url=ss_url, v2_base_url=ss_url),
    )
    return Config(home=home, connections={CONNECTION: conn})


def child(
    size: int, budget: float, per_hour: float, window_hours: float, trace: bool, attr: bool
) -> dict[str, object]:
    """Start the simulators' process, measure one pass against it, stop it."""
    sims = subprocess.Popen(  # noqa: S603 - this script, a fixed argument list
        [sys.executable, str(HERE / "memory.py"), "--simulators"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE.parent,
    )
    try:
        assert sims.stdout is not None
        urls = json.loads(sims.stdout.readline())
        return asyncio.run(measure(size, budget, per_hour, window_hours, trace, attr, urls))
    finally:
        if sims.stdin is not None:
            sims.stdin.close()
        sims.wait(timeout=30)


async def measure(
    size: int,
    budget: float,
    per_hour: float,
    window_hours: float,
    trace: bool,
    attr: bool,
    urls: dict[str, str],
) -> dict[str, object]:
    clock = FakeClock(START)
    sends = [0]
    measuring = [False]
    last = -(-size // 100)  # the pass's last createorders (one order per Plex order)
    snapshots: list[dict[str, float]] = []
    raw: list[tracemalloc.Snapshot] = []

    async def stamp(request: httpx.Request) -> None:
        request.headers[CLOCK_HEADER] = repr(clock.monotonic())
        if attr and measuring[0] and request.url.path.endswith("/orders/createorders"):
            sends[0] += 1
            if sends[0] in {1, last}:
                snapshot = tracemalloc.take_snapshot()
                snapshots.append(attribute(snapshot))
                raw.append(snapshot)

    def http_factory(service: str, base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=120.0, event_hooks={"request": [stamp]})

    home = Path(tempfile.mkdtemp(prefix="mlc-memory-"))
    account = ShipStationAccount()
    store = await open_sandbox_store(home, clock, account)
    rt = await build_runtime(
        connector_config(home, urls, window_hours),
        CONNECTION,
        store,
        clock,
        http_factory,
        alerts=LogAlertSink(),
    )
    control = httpx.AsyncClient(base_url=urls["control"], timeout=600.0)
    try:
        flow = OrdersFlow()
        await flow.run(rt)  # the seed (not measured)
        clock.advance(600)
        added = (await control.post("/orders", json={"count": size, "per_hour": per_hour})).json()
        clock.advance(max(0.0, added["elapsed"] - clock.monotonic()) + 600)
        before = rss_mib()
        if trace or attr:
            tracemalloc.start()
        measuring[0] = True
        started, cpu = time.perf_counter(), time.process_time()
        task = asyncio.ensure_future(flow.run(rt))
        done, _ = await asyncio.wait({task}, timeout=budget)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        if not done:
            task.cancel()
        peak_traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace or attr else None
        result = task.result() if done else None
        served = (await control.get("/stats")).json()
        return {
            "size": size,
            "completed": bool(done),
            "created": result.created if result else None,
            "orders_loaded": served["calls"].get(LINES, 0),
            "seconds": round(seconds, 1),
            "cpu_seconds": round(cpu, 1),
            "rss_before_mib": round(before, 1),
            "rss_peak_mib": round(rss_mib(), 1),
            "tracemalloc_peak_mib": round(peak_traced, 1) if peak_traced is not None else None,
            "simulators_rss_mib": served["rss_mib"],
            "at_first_send_mib_by_area": snapshots[0] if snapshots else None,
            "at_last_send_mib_by_area": snapshots[-1] if len(snapshots) > 1 else None,
            "grew_kib_by_line": growth_by_line(raw[0], raw[-1]) if len(raw) > 1 else None,
        }
    finally:
        await control.aclose()
        await rt.aclose()
        await store.close()


# --- the driver --------------------------------------------------------------------------------
def run_size(size: int, options: dict[str, Any]) -> dict[str, object]:
    args = [sys.executable, str(HERE / "memory.py"), "--child", str(size)]
    args += ["--budget", str(options["budget"]), "--per-hour", str(options["per_hour"])]
    args += ["--window-hours", str(options["window_hours"])]
    args += [flag for flag in ("--tracemalloc", "--attribute") if options[flag]]
    out = subprocess.run(args, capture_output=True, text=True, check=True, cwd=HERE.parent)  # noqa: S603
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def growth(r: dict[str, object]) -> float:
    return float(str(r["rss_peak_mib"])) - float(str(r["rss_before_mib"]))


def describe(r: dict[str, object]) -> str:
    traced = r["tracemalloc_peak_mib"]
    extra = f", tracemalloc peak {traced} MiB" if traced is not None else ""
    state = (
        f"completed in {r['seconds']} s, {r['cpu_seconds']} s CPU (created {r['created']})"
        if r["completed"]
        else f"NOT completed: stopped after {r['seconds']} s with {r['orders_loaded']} of "
        f"{r['size']} orders loaded from Plex"
    )
    for when in ("first", "last"):
        areas = r.get(f"at_{when}_send_mib_by_area")
        if areas:
            extra += f"\n         traced MiB by area at the {when} createorders: {areas}"
    for line in r.get("grew_kib_by_line") or []:
        extra += f"\n         grew from the first to the last createorders: {line}"
    return (
        f"{r['size']:>7} orders: {state}; connector peak RSS {r['rss_peak_mib']} MiB "
        f"(seeded: {r['rss_before_mib']} MiB, +{growth(r):.1f} MiB in the pass){extra}; "
        f"simulators' process {r['simulators_rss_mib']} MiB"
    )


def slope_kib(done: list[dict[str, object]]) -> float:
    """Least-squares slope of the pass's RSS growth, KiB per order."""
    xs = [float(str(r["size"])) for r in done]
    ys = [growth(r) * 1024 for r in done]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def main(argv: list[str]) -> None:
    options: dict[str, Any] = {
        "budget": 600.0,
        "per_hour": 1000.0,
        "window_hours": 1.0,
        "--tracemalloc": False,
        "--attribute": False,
    }
    sizes: list[int] = []
    child_size: int | None = None
    it = iter(argv)
    for arg in it:
        if arg == "--simulators":
            asyncio.run(simulators())
            return
        if arg == "--child":
            child_size = int(next(it))
        elif arg in ("--budget", "--per-hour", "--window-hours"):
            options[arg[2:].replace("-", "_")] = float(next(it))
        elif arg in ("--tracemalloc", "--attribute"):
            options[arg] = True
        else:
            sizes.append(int(arg))
    attr = bool(options["--attribute"])
    if child_size is not None:
        result = child(
            child_size,
            options["budget"],
            options["per_hour"],
            options["window_hours"],
            bool(options["--tracemalloc"]) or attr,
            attr,
        )
        print(json.dumps(result))
        return
    print(
        f"orders pass, connector process alone (simulators in their own process); "
        f"{options['per_hour']:.0f} orders/h, Plex window {options['window_hours']} h"
    )
    results = []
    for size in sizes or [10_000, 100_000]:
        result = run_size(size, options)
        results.append(result)
        print(describe(result), flush=True)
    done = [r for r in results if r["completed"]]
    if len(done) >= 2:
        small, large = done[0], done[-1]
        ratio = float(str(large["rss_peak_mib"])) / float(str(small["rss_peak_mib"]))
        print(
            f"peak RSS ratio {large['size']}/{small['size']} orders: {ratio:.2f}; pass growth "
            f"{growth(small):.1f} → {growth(large):.1f} MiB"
        )
    if len(done) >= 3:
        print(f"slope of the pass's RSS growth: {slope_kib(done):.2f} KiB/order")
    if len(done) < len(results):
        reached = max(int(str(r["orders_loaded"])) for r in results if not r["completed"])
        print(
            f"largest size completed: {done[-1]['size'] if done else 'none'}; the larger run "
            f"reached {reached} orders loaded within the {options['budget']:.0f}-s budget"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
