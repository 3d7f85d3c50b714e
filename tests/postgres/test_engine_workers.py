"""PostgreSQL only: procrastinate workers share the flow runs through their job locks.

Two workers, each with its own store (own server sessions) and its own :class:`FlowRunner`, run
in this process on real time (procrastinate schedules on the database clock) with short
intervals. Fake flows record every run; nothing talks to a remote system.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from mlconnector.clock import SystemClock
from mlconnector.config import Config, ConnectionConfig, PlexSettings
from mlconnector.store import Store, Vault, generate_key, open_store
from mlconnector.sync import ConnectionRuntime, FlowResult, LogAlertSink
from mlconnector.sync.flowrun import FlowRunner
from mlconnector.sync.jobs import (
    RUN_FLOW,
    JobArgs,
    JobQueue,
    ensure_scheduled,
    opened_app,
    retry_stalled_jobs,
)
from tests.dbutil import temporary_database
from tests.unit.engine.conftest import SECRETS, refusing_factory

# several worker processes on real time: under pytest-xdist these files share one worker (.ci/run)
pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("pg-processes")]

NAMES = ("acme", "beta", "gamma")
INTERVAL = 2.0


class RecordingFlow:
    """Records (connection, worker, start, end) of each run; a run lasts ``duration`` s."""

    kinds: frozenset[str] = frozenset()

    def __init__(self, name: str, log: list[tuple[str, str, float, float]], duration: float):
        self.name = name
        self.log = log
        self.duration = duration
        self.running: Counter[str] = Counter()
        self.overlap = False
        self.worker = ""

    async def run(self, rt: ConnectionRuntime, *, dry_run: bool = False) -> FlowResult:
        self.running[rt.name] += 1
        self.overlap = self.overlap or self.running[rt.name] > 1
        start = time.monotonic()
        try:
            await asyncio.sleep(self.duration)
        finally:
            self.running[rt.name] -= 1
        self.log.append((rt.name, self.name, start, time.monotonic()))
        return FlowResult(self.name, rt.name)

    async def execute(self, rt: ConnectionRuntime, op: Any) -> str | None:
        raise AssertionError("no operation here")

    async def resolve(self, rt: ConnectionRuntime, op: Any) -> bool | None:
        return None


@pytest.fixture
async def pg(tmp_path: Path) -> AsyncIterator[tuple[str, list[Store], Config]]:
    vault = Vault([generate_key()], source="a test key")
    clock = SystemClock()
    with temporary_database() as url:
        stores = [await open_store(url, clock=clock, vault=vault) for _ in range(2)]
        for name in NAMES:
            await stores[0].create_connection(name, plex_pcn="79870")
            for kind, value in SECRETS.items():
                await stores[0].set_credential(name, kind, value)
        config = Config(
            home=tmp_path,
            connections={n: ConnectionConfig(plex=PlexSettings(pcn="79870")) for n in NAMES},
        )
        try:
            yield url, stores, config
        finally:
            for s in stores:
                await s.close()


def _runner(config: Config, store: Store, flows: dict[str, Any], owner: str) -> FlowRunner:
    return FlowRunner(
        config,
        store,
        SystemClock(),
        flows=flows,
        http_factory=refusing_factory,
        alerts=LogAlertSink(),
        intervals=dict.fromkeys(flows, INTERVAL),
        owner=owner,
    )


async def _work(app: Any, name: str) -> None:
    await app.run_worker_async(
        name=name,
        concurrency=4,
        install_signal_handlers=False,
        fetch_job_polling_interval=0.1,
        listen_notify=False,
    )


async def test_two_workers_run_each_flow_on_its_interval_never_twice_at_once(
    pg: tuple[str, list[Store], Config],
) -> None:
    url, stores, config = pg
    log: list[tuple[str, str, float, float]] = []
    flows = {name: RecordingFlow(name, log, 0.5) for name in ("orders", "inventory")}
    runners = [_runner(config, s, flows, f"w{i}") for i, s in enumerate(stores)]
    async with contextlib.AsyncExitStack() as stack:
        apps = [
            await stack.enter_async_context(opened_app(s, url, runner=r))
            for s, r in zip(stores, runners, strict=True)
        ]
        scheduled, _ = await ensure_scheduled(runners[0], JobQueue(apps[0]))
        assert scheduled == len(NAMES) * 2
        # a second pass (another worker's) finds every chain in place: nothing doubled
        assert await ensure_scheduled(runners[1], JobQueue(apps[1])) == (0, 0)
        began = time.monotonic()
        workers = [asyncio.create_task(_work(app, f"w{i}")) for i, app in enumerate(apps)]
        await asyncio.sleep(7.5)
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        states = await JobQueue(apps[0]).states()
    for r in runners:
        await r.aclose()
    assert not any(f.overlap for f in flows.values())
    runs = Counter((c, f) for c, f, start, _ in log if start - began < 7.5)
    assert set(runs) == {(n, f) for n in NAMES for f in flows}
    # every 2 s measured from the start, over 7.5 s: 3 or 4 runs each (the window is counted
    # from the workers' start: on a loaded machine the sleep may end late, and runs started
    # after the window are not its runs)
    assert all(3 <= n <= 4 for n in runs.values()), runs
    for key in runs:
        starts = sorted(s for c, f, s, _ in log if (c, f) == key)
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert all(gap >= INTERVAL - 0.3 for gap in gaps), (key, gaps)
    # each chain has its next run waiting (scheduled), and nothing else
    assert set(states) == set(runs)
    owners = {(await stores[0].get_cursor(c, f"{f}.last_run")) is not None for c, f in runs}
    assert owners == {True}


async def test_a_nudge_overtakes_the_waiting_scheduled_run(
    pg: tuple[str, list[Store], Config],
) -> None:
    url, stores, config = pg
    log: list[tuple[str, str, float, float]] = []
    flows = {"shipments": RecordingFlow("shipments", log, 0.1)}
    runner = _runner(config, stores[0], flows, "w0")
    runner.intervals["shipments"] = 3600
    async with opened_app(stores[0], url, runner=runner) as app:
        queue = JobQueue(app)
        await ensure_scheduled(runner, queue)
        worker = asyncio.create_task(_work(app, "w0"))
        await asyncio.sleep(2)  # the first runs; the next ones wait an hour
        assert len(log) == len(NAMES)
        nudged = time.monotonic()
        await queue.nudge("beta")
        await asyncio.sleep(1.5)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    await runner.aclose()
    later = [(c, s) for c, _, s, _ in log if s >= nudged]
    assert [c for c, _ in later] == ["beta"]
    assert later[0][1] - nudged < 1.0


async def test_a_dead_workers_job_is_handed_to_another(
    pg: tuple[str, list[Store], Config],
) -> None:
    url, stores, config = pg
    log: list[tuple[str, str, float, float]] = []
    flows = {"orders": RecordingFlow("orders", log, 0.1)}
    runner = _runner(config, stores[0], flows, "w0")
    async with opened_app(stores[0], url, runner=runner) as app:
        # a worker took the job and died: 'doing', its heartbeat long gone
        worker_id = await app.job_manager.register_worker()
        await JobQueue(app).defer(JobArgs("acme", "orders"))
        async with stores[0].engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE procrastinate_jobs SET status = 'doing', worker_id = :w "
                    "WHERE task_name = :t"
                ),
                {"w": worker_id, "t": RUN_FLOW},
            )
            await conn.execute(
                text("UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour'")
            )
        assert await retry_stalled_jobs(app) == 1
        worker = asyncio.create_task(_work(app, "w1"))
        await asyncio.sleep(2)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    await runner.aclose()
    # the handed-over job ran once; the worker's periodic schedule pass (every 30 s, on the
    # clock's :00/:30) may also start the other connections' first runs inside the window
    assert [(c, f) for c, f, _, _ in log if c == "acme"] == [("acme", "orders")]
