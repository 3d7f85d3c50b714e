"""CPU of one scheduled no-change run, per flow, without the scheduler: the flow-run function
(``FlowRunner.run``, as the scheduler and the workers call it) run back to back over N
connections, on the same set-up as ``scale.py sqlite`` (both simulators in-process, SQLite, last
runs and the orders read cursor seeded). Each (connection, flow) runs twice first (crash
recovery and the first window walk are not steady state), then ``--reps`` rounds are measured.

Prints per flow: engine CPU per run (process CPU minus the simulators' own), the simulators' CPU
per run, SQL statements per run (BEGIN included; COMMIT is not a statement) and HTTP requests per
run. Sequential runs, so the figure is repeatable on a loaded machine (compare runs taken close
together, and record ``uptime``). ``--profile FILE`` writes a cProfile of the measured rounds.

Run: ``uv run python benchmarks/run_cpu.py [--connections 20] [--reps 5] [--flow orders]``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from mlconnector.clock import SystemClock
from mlconnector.store import Vault, generate_key, open_store
from mlconnector.sync import LogAlertSink
from mlconnector.sync.flowrun import FlowRunner

sys.path.insert(0, str(Path(__file__).parent))
from _sync_env import Metered
from scale import INTERVALS, PLEX_URL, SS_URL, config, names, seed, sims


async def measure(flows: list[str], n: int, reps: int, profile: str | None) -> None:
    clock = SystemClock()
    plex, ss, accts = sims(clock, n)
    plex_app, ss_app = Metered(plex.app, clock), Metered(ss.app, clock)  # type: ignore[arg-type]
    home = Path(tempfile.mkdtemp(prefix="mlc-run-cpu-"))
    store = await open_store(
        f"sqlite+aiosqlite:///{home / 'run_cpu.db'}",
        clock=clock,
        vault=Vault([generate_key()], source="benchmark"),
    )
    conns = names(n)
    await seed(store, conns, accts)

    def http(service: str, base_url: str) -> httpx.AsyncClient:
        app = plex_app if service.startswith("plex") else ss_app
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)

    runner = FlowRunner(
        config(home, conns, PLEX_URL, SS_URL),
        store,
        clock,
        http_factory=http,
        alerts=LogAlertSink(),
    )
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    event.listen(store.engine.sync_engine, "before_cursor_execute", count)
    print(f"{'flow':<13} {'engine ms/run':>13} {'sims ms/run':>11} {'SQL/run':>8} {'HTTP/run':>8}")
    for flow in flows:
        for c in conns:
            for _ in range(2):
                await runner.run(c, flow)
        statements, plex_app.cpu, ss_app.cpu = 0, 0.0, 0.0
        requests = sum(plex_app.calls.values()) + sum(ss_app.calls.values())
        profiler = cProfile.Profile() if profile else None
        cpu = time.process_time()
        if profiler is not None:
            profiler.enable()
        runs = 0
        for _ in range(reps):
            for c in conns:
                report = await runner.run(c, flow)
                if report.outcome != "ok":
                    raise SystemExit(f"not a no-change run: {report.summary()}")
                runs += 1
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{profile}.{flow}")
        sims_cpu = plex_app.cpu + ss_app.cpu
        engine = time.process_time() - cpu - sims_cpu
        requests = sum(plex_app.calls.values()) + sum(ss_app.calls.values()) - requests
        print(
            f"{flow:<13} {1000 * engine / runs:13.2f} {1000 * sims_cpu / runs:11.2f} "
            f"{statements / runs:8.1f} {requests / runs:8.1f}"
        )
    await runner.aclose()
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--flow", choices=list(INTERVALS), help="one flow (default: each)")
    parser.add_argument("--profile", help="write cProfile stats to FILE.<flow>")
    args = parser.parse_args()
    flows = [args.flow] if args.flow else list(INTERVALS)
    asyncio.run(measure(flows, args.connections, args.reps, args.profile))


if __name__ == "__main__":
    main()
