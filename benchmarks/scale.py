"""Many connections on one engine: schedule lag, runs started vs due, CPU per run, store
statements per scheduler tick, overlaps.

**sqlite N** — one process, the in-process scheduler (``mlconnector run``), N connections × 4
flows at the default intervals (orders 300 s, shipments 300 s, order_status 600 s, inventory
900 s), the real flows against both simulators in-process (each connection its own ShipStation
account; one Plex tenant with no open orders, so every run is a scheduled no-change run). The
last run of every (connection, flow) is seeded at a random instant of its past interval, as in a
deployment that has been running for a while: runs fall due spread over time, and a bounded
window (``--seconds``, default 120) measures the steady state (the connections' runtimes are
built before the window, as a long-running process has them). Real time.

**postgres W N** — W ``mlconnector worker`` processes (procrastinate) on a fresh PostgreSQL
database, N connections, the simulators served on loopback by this process; the same seeding.
Lag per run is procrastinate's own record: a job's ``started`` event minus its ``scheduled_at``.

Prints per flow: lag p50/p99 (s), runs started / due in the window; then CPU per run (engine
only: the simulators' CPU is measured apart and taken off; for PostgreSQL, the workers' CPU from
/proc), scheduler store statements per tick, overlaps (must be 0).

Run: ``uv run python benchmarks/scale.py sqlite 100 [--seconds 120] [--flow orders]``
(``--flow``: schedule that flow only, so the CPU per run is that flow's)
     ``uv run python benchmarks/scale.py postgres 4 200 [--seconds 120]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from mlconnector.clock import SystemClock
from mlconnector.config import (
    Config,
    ConnectionConfig,
    PlexSettings,
    PollIntervals,
    ShipStationSettings,
)
from mlconnector.sandbox.plex import DEFAULT_CONSUMER_KEY, TenantSpec, create_plex_sandbox
from mlconnector.sandbox.shipstation import ShipStationAccount, create_shipstation_sandbox
from mlconnector.store import CredentialKind, Store, Vault, generate_key, open_store
from mlconnector.sync import ConnectionRuntime, FlowResult, LogAlertSink
from mlconnector.sync.cursor import CursorState
from mlconnector.sync.engine import Engine, EngineOptions, default_flows
from mlconnector.sync.runs import LastRun, last_run_cursor

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parent.parent))  # tests.dbutil for the PostgreSQL scenario
from _sync_env import Metered

PCN = 340884
PLEX_URL = "http://plex.scale"
SS_URL = "http://shipstation.scale"
INTERVALS = {"orders": 300, "shipments": 300, "order_status": 600, "inventory": 900}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Guarded:
    """A flow wrapper that notices two runs of one (connection, flow) at once."""

    def __init__(self, inner: Any, overlaps: Counter[str]) -> None:
        self.inner = inner
        self.name = inner.name
        self.kinds = inner.kinds
        self.running: Counter[str] = Counter()
        self.overlaps = overlaps

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def run(self, rt: ConnectionRuntime, *, dry_run: bool = False) -> FlowResult:
        self.running[rt.name] += 1
        if self.running[rt.name] > 1:
            self.overlaps[self.name] += 1
        try:
            result: FlowResult = await self.inner.run(rt, dry_run=dry_run)
            return result
        finally:
            self.running[rt.name] -= 1


def names(n: int) -> list[str]:
    return [f"plant{i:04d}" for i in range(n)]


def accounts(n: int) -> list[ShipStationAccount]:
    return [
        ShipStationAccount(api_key=f"k{i}", api_secret=f"s{i}", v2_api_key=f"v2-{i}")
        for i in range(n)
    ]


def config(home: Path, conns: list[str], plex_url: str, ss_url: str) -> Config:
    plex = PlexSettings(pcn=str(PCN), rest_base_url=plex_url, requests_per_minute=10_000)
    ss = ShipStationSettings(v1_base_url=ss_url, v2_base_url=ss_url)
    return Config(
        home=home,
        connections={
            c: ConnectionConfig(plex=plex, shipstation=ss, poll=PollIntervals(**INTERVALS))
            for c in conns
        },
    )


def config_toml(home: Path, conns: list[str], plex_url: str, ss_url: str) -> str:
    parts = [f'home = "{home}"']
    for c in conns:
        parts.append(
            f'[connections.{c}.plex]\npcn = "{PCN}"\nrest_base_url = "{plex_url}"\n'
            f"requests_per_minute = 10000\n[connections.{c}.shipstation]\n"
            f'v1_base_url = "{ss_url}"\nv2_base_url = "{ss_url}"\n'
            f"[connections.{c}.poll]\n"
            + "".join(f"{flow} = {seconds}\n" for flow, seconds in INTERVALS.items())
        )
    return "\n".join(parts)


async def seed(
    store: Store,
    conns: list[str],
    accts: list[ShipStationAccount],
    *,
    now: datetime | None = None,
) -> dict[Any, Any]:
    """Connections, credentials and a last run per (connection, flow) at a random past
    instant of its interval before ``now`` (default: now); returns the first due time of each."""
    rng = random.Random(12)
    now = now or datetime.now(UTC)
    due: dict[tuple[str, str], datetime] = {}
    for c, acct in zip(conns, accts, strict=True):
        await store.create_connection(c, plex_pcn=str(PCN))
        for kind, value in {
            CredentialKind.PLEX_API_KEY: DEFAULT_CONSUMER_KEY,
            CredentialKind.SS_V1_KEY: acct.api_key,
            CredentialKind.SS_V1_SECRET: acct.api_secret,
            CredentialKind.SS_V2_KEY: acct.v2_api_key or "",
        }.items():
            await store.set_credential(c, kind, value)
        for flow, interval in INTERVALS.items():
            at = now - timedelta(seconds=rng.uniform(0, interval))
            run = LastRun(flow, at, True, 0.0, "seed", "seeded")
            await store.set_cursor(c, last_run_cursor(flow), run.to_json())
            if flow == "orders":
                # a running deployment's read cursor is at its newest order: without it every
                # run walks the 60-day initial lookback (120 Plex windows), which spends the
                # Plex key's budget shared by all connections and caps the runs per minute
                cursor = CursorState(since=at - timedelta(minutes=5))
                await store.set_cursor(c, flow, cursor.to_json())
            due[(c, flow)] = at + timedelta(seconds=interval)
    return due


def due_in(due: Mapping[tuple[str, str], datetime], start: datetime, end: datetime) -> Counter[str]:
    """Runs due in [start, end] per flow (first due time, then every interval)."""
    counts: Counter[str] = Counter()
    for (_, flow), first in due.items():
        at = first
        while at <= end:
            if at >= start - timedelta(seconds=1):
                counts[flow] += 1
            at += timedelta(seconds=INTERVALS[flow])
    return counts


def sims(clock: SystemClock, n: int) -> tuple[Any, Any, list[ShipStationAccount]]:
    plex = create_plex_sandbox(
        clock,
        tenants=[
            TenantSpec(pcn=PCN, code="mlauto", name="Midland", customers=2, parts=5, orders=0)
        ],
    )
    plex.set_rate_limit(1_000_000)
    accts = accounts(n)
    ss = create_shipstation_sandbox(clock, accounts=accts)
    return plex, ss, accts


def report(
    title: str,
    lag: dict[str, list[float]],
    started: Counter[str],
    due: Counter[str],
    cpu_per_run_ms: float,
    per_tick: float,
    overlaps: int,
    extra: str = "",
) -> None:
    print(f"\n== {title}")
    print(f"{'flow':<13} {'lag p50 s':>9} {'lag p99 s':>9} {'started':>8} {'due':>6}")
    for flow in INTERVALS:
        values = lag.get(flow, [])
        print(
            f"{flow:<13} {pct(values, 0.5):9.2f} {pct(values, 0.99):9.2f} "
            f"{started[flow]:8d} {due[flow]:6d}"
        )
    print(f"CPU per run (engine): {cpu_per_run_ms:.2f} ms")
    print(f"scheduler store statements per tick: {per_tick:.2f}")
    print(f"overlaps: {overlaps}")
    if extra:
        print(extra)


# --- one SQLite process ----------------------------------------------------------------------
async def sqlite_scenario(n: int, seconds: float, only: str | None = None) -> None:
    clock = SystemClock()
    plex, ss, accts = sims(clock, n)
    plex_app, ss_app = Metered(plex.app, clock), Metered(ss.app, clock)  # type: ignore[arg-type]
    home = Path(tempfile.mkdtemp(prefix="mlc-scale-"))
    store = await open_store(
        f"sqlite+aiosqlite:///{home / 'scale.db'}",
        clock=clock,
        vault=Vault([generate_key()], source="benchmark"),
    )
    conns = names(n)
    due = await seed(store, conns, accts)
    overlaps: Counter[str] = Counter()
    flows = {
        name: Guarded(flow, overlaps)
        for name, flow in default_flows().items()
        if only in (None, name)
    }

    def http(service: str, base_url: str) -> httpx.AsyncClient:
        app = plex_app if service.startswith("plex") else ss_app
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)

    calls: Counter[str] = Counter()
    for method in ("due_flows", "cursors_named"):
        inner = getattr(store, method)

        def counted(*a: Any, _inner: Any = inner, _m: str = method, **k: Any) -> Any:
            calls[_m] += 1
            return _inner(*a, **k)

        setattr(store, method, counted)
    engine = Engine(
        config(home, conns, PLEX_URL, SS_URL),
        store,
        clock,
        flows=flows,  # type: ignore[arg-type]
        http_factory=http,
        alerts=LogAlertSink(),
        options=EngineOptions(concurrency=32),
    )
    for c in conns:  # built once per process, as a long-running process has them
        await engine.runtime(c)
    plex_app.cpu = ss_app.cpu = 0.0
    start = datetime.now(UTC)
    cpu0 = time.process_time()
    task = asyncio.create_task(engine.run_forever())
    await asyncio.sleep(seconds / 2)
    # the second half alone: with --interval below the window, runs past each one's first
    # (crash recovery, cold caches) of its (connection, flow) in this process
    half_runs = sum(len(v) for v in engine.stats.lag.values())
    half_cpu = time.process_time() - cpu0 - plex_app.cpu - ss_app.cpu
    await asyncio.sleep(seconds / 2)
    engine.stop()
    await task
    cpu = time.process_time() - cpu0 - plex_app.cpu - ss_app.cpu
    end = datetime.now(UTC)
    started = Counter({f: len(v) for f, v in engine.stats.lag.items()})
    runs = sum(started.values())
    due_now = due_in(due, start, end)
    report(
        f"SQLite, one process, {n} connections x {only or '4 flows'}, {seconds:.0f} s window",
        engine.stats.lag,
        started,
        Counter({f: v for f, v in due_now.items() if only in (None, f)}),
        1000 * cpu / max(1, runs),
        sum(calls.values()) / max(1, engine.stats.ticks),
        sum(overlaps.values()),
        f"ticks: {engine.stats.ticks}; simulators' CPU {plex_app.cpu + ss_app.cpu:.1f} s "
        f"(not counted); engine CPU {cpu:.1f} s = {100 * cpu / seconds:.0f}% of a core\n"
        f"second half of the window: {runs - half_runs} runs, CPU per run "
        f"{1000 * (cpu - half_cpu) / max(1, runs - half_runs):.2f} ms",
    )
    await store.close()


# --- PostgreSQL, W worker processes ------------------------------------------------------------
def proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Statuses:
    """ASGI wrapper: the answers' status codes (a 429 is a rate budget overspent)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.counts: Counter[int] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counting(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.counts[message["status"]] += 1
            await send(message)

        await self.app(scope, receive, counting)


async def pg_counters(store: Store) -> tuple[int, int]:
    """(transactions, rows written) of this database so far (``pg_stat_database``)."""
    from sqlalchemy import text

    async with store.engine.connect() as conn:
        await conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        row = (
            await conn.execute(
                text(
                    "SELECT xact_commit + xact_rollback AS x, "
                    "tup_inserted + tup_updated + tup_deleted AS w "
                    "FROM pg_stat_database WHERE datname = current_database()"
                )
            )
        ).one()
    return int(row.x), int(row.w)


async def workers_ready(store: Store, procs: list[Any], logs: Path, within: float) -> None:
    """Until every worker has registered with procrastinate (its start-up done: imports,
    config, the start-of-worker schedule pass)."""
    from sqlalchemy import text

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for i, p in enumerate(procs):
            if p.returncode is not None:
                log = (logs / f"worker-{i}.log").read_text()[-2000:]
                raise SystemExit(f"worker {i} exited ({p.returncode}):\n{log}")
        async with store.engine.connect() as conn:
            if (await conn.execute(text("SELECT to_regclass('procrastinate_workers')"))).scalar():
                seen = (
                    await conn.execute(text("SELECT count(*) FROM procrastinate_workers"))
                ).scalar_one()
                if seen >= len(procs):
                    return
        await asyncio.sleep(0.5)
    raise SystemExit(f"workers not ready after {within:.0f} s (see {logs})")


async def postgres_scenario(
    workers: int,
    n: int,
    seconds: float,
    warmup: float,
    profile: Path | None,
    log_statements: bool = False,
) -> None:
    """The schedule is seeded as of the window start ``t0`` = now + ``warmup``: nothing falls
    due before it, so the workers' start-up (imports, procrastinate's schema check, the first
    schedule pass) is over, and outside the CPU figure, when the window opens."""
    from sqlalchemy import text
    from tests.dbutil import temporary_database

    from mlconnector.sandbox.server import serve
    from mlconnector.store import init_home, load_vault

    clock = SystemClock()
    plex, ss, accts = sims(clock, n)
    plex_app, ss_app = Metered(plex.app, clock), Metered(ss.app, clock)  # type: ignore[arg-type]
    plex_st, ss_st = Statuses(plex_app), Statuses(ss_app)
    home = Path(tempfile.mkdtemp(prefix="mlc-scale-pg-"))
    conns = names(n)
    with temporary_database() as url:
        env = {
            "HOME": str(home),
            "MLCONNECTOR_HOME": str(home / "home"),
            "MLCONNECTOR_DATABASE_URL": url,
            "PATH": os.environ.get("PATH", ""),
            "MLCONNECTOR_LOG_LEVEL": "WARNING",
        }
        init_home(env)
        async with serve(plex_st) as plex_url, serve(ss_st) as ss_url:
            (home / "home" / "mlconnector.toml").write_text(
                config_toml(home / "home", conns, plex_url, ss_url)
            )
            store = await open_store(url, clock=clock, vault=load_vault(env))
            if log_statements:  # the server log gets this database's statements (profiling)
                async with store.engine.begin() as conn:
                    db = store.engine.url.database
                    await conn.execute(text(f"ALTER DATABASE \"{db}\" SET log_statement = 'all'"))
                print(f"logging the statements of database {db}")
            t0 = datetime.now(UTC) + timedelta(seconds=warmup)
            due = await seed(store, conns, accts, now=t0)
            procs = []
            for i in range(workers):
                log = open(home / f"worker-{i}.log", "wb")  # noqa: SIM115, ASYNC230
                cli = ["-m", "mlconnector.cli"]
                if profile is not None and i == 0:
                    cli = [str(Path(__file__).parent / "_profiled_worker.py"), str(profile)]
                procs.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        *cli,
                        "worker",
                        "--concurrency",
                        "16",
                        env=env,
                        stdout=log,
                        stderr=log,
                    )
                )
            await workers_ready(store, procs, home, within=max(120.0, warmup))
            ready = datetime.now(UTC)
            idle_cpu0 = sum(proc_cpu(p.pid) for p in procs)
            idle = (t0 - ready).total_seconds()
            if idle < 0:
                print(
                    f"warning: workers ready {-idle:.1f} s after the window start; raise --warmup"
                )
                t0 = ready
            else:
                await asyncio.sleep(idle)
            idle_cpu = sum(proc_cpu(p.pid) for p in procs) - idle_cpu0
            if profile is not None:
                procs[0].send_signal(signal.SIGUSR1)
            cpu0 = sum(proc_cpu(p.pid) for p in procs)
            pg0 = await pg_counters(store)
            plex_app.cpu = ss_app.cpu = 0.0
            plex_st.counts.clear()
            ss_st.counts.clear()
            await asyncio.sleep(seconds)
            cpu = sum(proc_cpu(p.pid) for p in procs) - cpu0
            pg1 = await pg_counters(store)
            t1 = datetime.now(UTC)
            sims_cpu = plex_app.cpu + ss_app.cpu
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                await p.wait()
            async with store.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        text(
                            "SELECT j.args->>'flow' AS flow, j.args->>'connection' AS c, "
                            "j.args->>'reason' AS reason, j.scheduled_at, e.at AS started "
                            "FROM procrastinate_jobs j JOIN procrastinate_events e "
                            "ON e.job_id = j.id AND e.type = 'started' "
                            "WHERE j.task_name = 'mlconnector.run_flow'"
                        )
                    )
                ).all()
                spans = (
                    await conn.execute(
                        text(
                            "SELECT j.lock, s.at AS a, f.at AS b FROM procrastinate_jobs j "
                            "JOIN procrastinate_events s ON s.job_id = j.id AND s.type='started' "
                            "JOIN procrastinate_events f ON f.job_id = j.id AND f.type IN "
                            "('succeeded', 'failed') WHERE j.task_name='mlconnector.run_flow'"
                        )
                    )
                ).all()
            await store.close()
    lag: dict[str, list[float]] = {}
    started: Counter[str] = Counter()
    early = 0
    for r in rows:
        if r.started < t0:
            early += 1
            continue
        if r.started > t1:
            continue
        at = r.scheduled_at or r.started
        lag.setdefault(r.flow, []).append(max(0.0, (r.started - at).total_seconds()))
        started[r.flow] += 1
    by_lock: dict[str, list[tuple[datetime, datetime]]] = {}
    for s in spans:
        by_lock.setdefault(s.lock, []).append((s.a, s.b))
    overlaps = 0
    for runs in by_lock.values():
        runs.sort()
        overlaps += sum(1 for (_, b), (a2, _) in itertools.pairwise(runs) if a2 < b)
    total = sum(started.values())
    # a worker builds a connection's runtime at its first run there: with one worker, once per
    # connection run in the window
    built = len({r.c for r in rows if t0 <= r.started <= t1})
    window = (t1 - t0).total_seconds()
    idle_rate = idle_cpu / max(idle, 1e-9) if idle > 0 else float("nan")
    marginal = (cpu - idle_rate * window) / max(1, total)
    xacts, writes = pg1[0] - pg0[0], pg1[1] - pg0[1]
    report(
        f"PostgreSQL, {workers} worker processes, {n} connections x 4 flows, {window:.0f} s "
        "window after start-up",
        lag,
        started,
        due_in(due, t0, t1),
        1000 * cpu / max(1, total),
        float("nan"),
        overlaps,
        f"workers' CPU in the window {cpu:.1f} s = {100 * cpu / window:.0f}% of a core; "
        f"idle before it {idle_cpu:.2f} s in {idle:.0f} s ({100 * idle_rate:.1f}% of a core, "
        f"{workers} workers) -> CPU per run above idle {1000 * marginal:.2f} ms\n"
        f"PostgreSQL: {xacts / window:.1f} transactions/s, {xacts / max(1, total):.1f} per run; "
        f"{writes / max(1, total):.1f} rows written per run\n"
        f"HTTP answers: Plex {dict(plex_st.counts)}, ShipStation {dict(ss_st.counts)}; "
        f"429s: {plex_st.counts[429] + ss_st.counts[429]}\n"
        f"connections run in the window: {built} (runtime builds, with one worker); "
        f"intervals {INTERVALS}\n"
        f"window {t0:%H:%M:%S}-{t1:%H:%M:%S} UTC; runs started before it (start-up): {early}; "
        f"simulators' CPU {sims_cpu:.1f} s (not counted)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("backend", choices=["sqlite", "postgres"])
    parser.add_argument("numbers", type=int, nargs="+", help="N, or W N for postgres")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument(
        "--flow",
        choices=list(INTERVALS),
        help="sqlite: schedule only this flow (CPU per run of it)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=60.0,
        help="postgres: seconds from the workers' start to the window (nothing falls due before)",
    )
    parser.add_argument(
        "--profile", type=Path, help="postgres: cProfile worker 0 into this file (slows it)"
    )
    parser.add_argument(
        "--log-statements",
        action="store_true",
        help="postgres: log_statement = all for the benchmark's database (the server's log)",
    )
    parser.add_argument(
        "--interval",
        type=int,
        help="every flow's poll interval in seconds (at least the configuration's minimum: "
        "60, inventory 300), so a connection runs again inside the window: its later runs are "
        "past the first run's crash recovery (and, for postgres, on the runtime its worker "
        "built at its first run)",
    )
    args = parser.parse_args()
    if args.interval is not None:
        for flow in INTERVALS:
            INTERVALS[flow] = max(args.interval, 300 if flow == "inventory" else 60)
    if args.backend == "sqlite":
        asyncio.run(sqlite_scenario(args.numbers[0], args.seconds, args.flow))
    else:
        workers, n = args.numbers
        asyncio.run(
            postgres_scenario(
                workers, n, args.seconds, args.warmup, args.profile, args.log_statements
            )
        )


if __name__ == "__main__":
    main()
