"""PostgreSQL only: real ``mlconnector worker`` processes (procrastinate) against both
simulators served by this test on loopback, on real time.

* Four workers and many connections sharing one ShipStation V1 credential cause no 429 on the
  simulator's strict fixed window (made fast here, 40 requests per 10 s, so the test is
  bounded): they spend one budget, the ``rate_budgets`` row.
* A worker SIGKILLed in the middle of its orders run — after ShipStation applied the
  ``createorders`` batch, before the worker could confirm it — leaves no duplicate: another
  worker takes the job over through procrastinate's stalled-job recovery, resolves the
  operations left ``sent`` by looking in ShipStation, and finishes the flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlconnector.clock import SystemClock
from mlconnector.sandbox.plex import DEFAULT_CONSUMER_KEY, TenantSpec, create_plex_sandbox
from mlconnector.sandbox.server import serve
from mlconnector.sandbox.shipstation import ShipStationAccount, create_shipstation_sandbox
from mlconnector.sandbox.shipstation.limits import FixedWindowLimiter
from mlconnector.store import (
    CredentialKind,
    OperationState,
    Store,
    init_home,
    load_vault,
    open_store,
)
from tests.dbutil import temporary_database
from tests.e2e.shipping_env import Recorder

# several worker processes on real time: under pytest-xdist these files share one worker (.ci/run)
pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("pg-processes")]

PCN = 340884
CREATE = ("POST", "/orders/createorders")
GUARD = 150.0  # a guard against a hang, not a timing assertion


@dataclass
class Site:
    home: Path
    env: dict[str, str]
    store: Store
    recorder: Recorder
    statuses: list[tuple[str, int]] = field(default_factory=list)
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)
    files: list[Any] = field(default_factory=list)

    async def worker(self, *args: str) -> asyncio.subprocess.Process:
        log = open(self.home / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115, ASYNC230
        self.files.append(log)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mlconnector.cli",
            "worker",
            "--stalled-after",
            "3",
            *args,
            env=self.env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.home.glob("worker-*.log"))


class Statuses:
    """ASGI wrapper remembering (path, status) of every answer."""

    def __init__(self, app: ASGIApp, seen: list[tuple[str, int]]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((scope.get("path", ""), int(message["status"])))
            await send(message)

        await self.app(scope, receive, sending)


class KillBeforeAnswer:
    """ASGI wrapper: on the first ``createorders``, let the simulator apply it, then SIGKILL
    the worker before it can read the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.victim: asyncio.subprocess.Process | None = None
        self.killed = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = (scope.get("method"), scope.get("path")) == CREATE
        if not target or self.killed.is_set() or self.victim is None:
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def holding(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, holding)  # the orders now exist in ShipStation
        os.kill(self.victim.pid, signal.SIGKILL)
        self.killed.set()
        for message in held:
            with contextlib.suppress(Exception):
                await send(message)


def _config(home: Path, names: list[str], plex_url: str, ss_url: str) -> str:
    parts = [f'home = "{home}"']
    for name in names:
        parts.append(
            f"""[connections.{name}.plex]
pcn = "{PCN}"
rest_base_url = "{plex_url}"
read_window_hours = 744
requests_per_minute = 5000
[connections.{name}.shipstation]
v1_base_url = "{ss_url}"
v2_base_url = "{ss_url}"
"""
        )
    return "\n".join(parts)


@contextlib.asynccontextmanager
async def site(
    tmp_path: Path,
    names: list[str],
    wrap: Callable[[ASGIApp], ASGIApp] = lambda a: a,
    orders: int = 30,
) -> AsyncIterator[tuple[Site, object]]:
    clock = SystemClock()
    plex = create_plex_sandbox(
        clock, tenants=[TenantSpec(pcn=PCN, code="mlauto", name="Midland", parts=10, orders=orders)]
    )
    plex.set_rate_limit(5000)  # Plex is not what this test is about: only V1 binds
    ss = create_shipstation_sandbox(clock)
    ss.v1_limiter = FixedWindowLimiter(clock, limit=40, window=10.0)
    recorder = Recorder(ss.app)
    statuses: list[tuple[str, int]] = []
    home = tmp_path / "home"
    account = ShipStationAccount()
    with temporary_database() as url:
        env = {
            "HOME": str(tmp_path),
            "MLCONNECTOR_HOME": str(home),
            "MLCONNECTOR_DATABASE_URL": url,
            "PATH": os.environ.get("PATH", ""),
            "COLUMNS": "200",
        }
        init_home(env)
        front = wrap(Statuses(recorder, statuses))
        async with serve(plex.app) as plex_url, serve(front) as ss_url:
            (home / "mlconnector.toml").write_text(_config(home, names, plex_url, ss_url))
            store = await open_store(url, clock=clock, vault=load_vault(env))
            the_site = Site(home, env, store, recorder, statuses)
            try:
                for name in names:
                    await store.create_connection(name, plex_pcn=str(PCN))
                    for kind, value in {
                        CredentialKind.PLEX_API_KEY: DEFAULT_CONSUMER_KEY,
                        CredentialKind.SS_V1_KEY: account.api_key,
                        CredentialKind.SS_V1_SECRET: account.api_secret,
                        CredentialKind.SS_V2_KEY: account.v2_api_key or "",
                    }.items():
                        await store.set_credential(name, kind, value)
                yield the_site, (front, ss)
            finally:
                for proc in the_site.procs:
                    if proc.returncode is None:
                        proc.kill()
                        await proc.wait()
                for log in the_site.files:
                    log.close()
                await store.close()


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(GUARD):
        while not await check():  # noqa: ASYNC110 - polling the store of other processes
            await asyncio.sleep(0.3)


async def _stop(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(GUARD):
        return await proc.wait()


async def test_four_workers_sharing_one_v1_credential_cause_no_429(tmp_path: Path) -> None:
    names = [f"plant{i:02d}" for i in range(28)]
    async with site(tmp_path, names, orders=8) as (the_site, _):

        async def all_ran() -> bool:
            for name in names:
                for flow in ("orders", "order_status", "shipments"):
                    if await the_site.store.get_cursor(name, f"{flow}.last_run") is None:
                        return False
            return True

        workers = [await the_site.worker("--concurrency", "6") for _ in range(4)]
        try:
            await _until(all_ran)
        except TimeoutError:
            pytest.fail("the flows did not all run:\n" + the_site.logs()[-4000:])
        codes = [await _stop(w) for w in workers]
        v1 = [s for p, s in the_site.statuses if not p.startswith("/v2")]
        rejected = sum(1 for s in v1 if s == 429)
        print(
            f"\n4 workers, {len(names)} connections, one V1 key: {len(v1)} V1 requests, "
            f"{rejected} x 429"
        )
        assert len(v1) >= 100  # enough to cross several of the simulator's windows
        assert rejected == 0, the_site.logs()[-3000:]
        assert codes == [0, 0, 0, 0]


async def test_a_sigkilled_worker_leaves_no_duplicate_and_another_finishes(
    tmp_path: Path,
) -> None:
    killer: list[KillBeforeAnswer] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        killer.append(KillBeforeAnswer(app))
        return killer[0]

    async with site(tmp_path, ["acme"], wrap) as (the_site, sims):
        ss = sims[1]  # type: ignore[index]
        store = the_site.store
        first = await the_site.worker()
        killer[0].victim = first
        try:
            async with asyncio.timeout(GUARD):
                await killer[0].killed.wait()
                assert await first.wait() == -signal.SIGKILL
        except TimeoutError:
            pytest.fail("no createorders reached the simulator:\n" + the_site.logs()[-4000:])
        created = ss.all_orders()
        sent = await store.list_operations(
            connection="acme", states=[OperationState.SENT], limit=1000
        )
        assert created
        assert sent  # in flight when the worker died: applied remotely, never confirmed
        calls_before = len(the_site.recorder.calls)

        await asyncio.sleep(4)  # longer than --stalled-after: the dead worker's heartbeat is old
        second = await the_site.worker()

        async def finished() -> bool:
            ops = await store.list_operations(connection="acme", limit=1000)
            last = await store.get_cursor("acme", "orders.last_run")
            return (
                bool(ops)
                and {op.state for op in ops} == {OperationState.CONFIRMED}
                and last is not None
            )

        try:
            await _until(finished)
        except TimeoutError:
            pytest.fail("not resumed:\n" + the_site.logs()[-4000:])
        assert await _stop(second) == 0
        resent = {
            order["orderKey"]
            for method, path, _, body in the_site.recorder.calls[calls_before:]
            if (method, path) == CREATE
            for order in json.loads(body)
        }
        assert resent  # the groups never sent were sent by the second worker...
        assert resent.isdisjoint(o["orderKey"] for o in created)  # ...which looked, not resent
        orders = ss.all_orders(include_deleted=True)
        keys = [o["orderKey"] for o in orders]
        assert len(keys) == len(set(keys))  # no duplicate
        ops = await store.list_operations(connection="acme", limit=1000)
        assert {op.id for op in sent} <= {op.id for op in ops}
        assert len(keys) == len({op.idempotency_key for op in ops if op.kind.startswith("ss.")})
        last = await store.get_cursor("acme", "orders.last_run")
        assert last is not None
        assert '"ok": true' in last.value
