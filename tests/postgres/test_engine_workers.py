"""PostgreSQL only: two engine workers on one database share the flows through their leases.

Each worker has its own store (its own server sessions). Virtual time is stepped only when no
store call is in flight (see ``tests/unit/engine/conftest.py``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import text

from mlconnector.config import Config, ConnectionConfig, PlexSettings
from mlconnector.store import CredentialKind, Store, Vault, generate_key, open_store
from mlconnector.store.schema import metadata
from mlconnector.sync import ConnectionRuntime, FlowResult, LogAlertSink
from mlconnector.sync.engine import Engine, EngineOptions
from tests.conftest import FAKE_START
from tests.unit.engine.conftest import (
    SECRETS,
    CountingStore,
    SteppedClock,
    refusing_factory,
    settle,
)

pytestmark = pytest.mark.postgres

NAMES = ("acme", "beta", "gamma")


class SlowFlow:
    """Records (connection, flow) of each run; a run lasts 30 virtual seconds."""

    kinds: frozenset[str] = frozenset()

    def __init__(self, name: str, clock: SteppedClock, log: list[tuple[str, str, str]]) -> None:
        self.name = name
        self.clock = clock
        self.log = log
        self.running: Counter[str] = Counter()
        self.overlap = False

    async def run(self, rt: ConnectionRuntime, *, dry_run: bool = False) -> FlowResult:
        self.running[rt.name] += 1
        self.overlap = self.overlap or self.running[rt.name] > 1
        try:
            await self.clock.sleep(30)
        finally:
            self.running[rt.name] -= 1
        self.log.append((rt.name, self.name, "done"))
        return FlowResult(self.name, rt.name)

    async def execute(self, rt: ConnectionRuntime, op: Any) -> str | None:
        raise AssertionError("no operation here")

    async def resolve(self, rt: ConnectionRuntime, op: Any) -> bool | None:
        return None


@pytest.fixture
async def pg_stores(pg_url: str) -> AsyncIterator[tuple[SteppedClock, list[CountingStore]]]:
    clock = SteppedClock(FAKE_START)
    vault = Vault([generate_key()], source="a test key")
    first = await open_store(pg_url, clock=clock, vault=vault)
    second = await open_store(pg_url, clock=clock, vault=vault)
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    async with first.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    for name in NAMES:
        await first.create_connection(name, plex_pcn="79870")
        for kind, value in SECRETS.items():
            await first.set_credential(name, kind, value)
    assert CredentialKind.SS_V1_KEY in SECRETS
    try:
        yield clock, [CountingStore(first), CountingStore(second)]
    finally:
        await first.close()
        await second.close()


async def test_two_workers_take_distinct_leases_and_run_each_flow_once(
    pg_stores: tuple[SteppedClock, list[CountingStore]], tmp_path: Path
) -> None:
    clock, stores = pg_stores
    config = Config(
        home=tmp_path,
        connections={n: ConnectionConfig(plex=PlexSettings(pcn="79870")) for n in NAMES},
    )
    log: list[tuple[str, str, str]] = []
    flows = {name: SlowFlow(name, clock, log) for name in ("orders", "inventory")}
    engines = [
        Engine(
            config,
            cast(Store, store),
            clock,
            flows=flows,
            http_factory=refusing_factory,
            alerts=LogAlertSink(),
            options=EngineOptions(owner=owner, tick=5, intervals={"orders": 600, "inventory": 600}),
        )
        for owner, store in zip(("worker-a", "worker-b"), stores, strict=True)
    ]
    tasks = [asyncio.create_task(e.run_forever()) for e in engines]
    await settle(stores)
    # mid-run: every (connection, flow) is held by exactly one worker
    leases = await stores[0].list_leases()
    assert len(leases) == len(NAMES) * 2
    assert len({(lease.connection, lease.flow) for lease in leases}) == len(leases)
    assert {lease.owner for lease in leases} <= {"worker-a", "worker-b"}
    while clock.monotonic() < 120:
        await settle(stores)
        deadline = clock.next_deadline()
        assert deadline is not None
        clock.advance(max(0.0, min(deadline, 120) - clock.monotonic()) or 1)
    for e in engines:
        e.stop()
    while not all(t.done() for t in tasks):
        await settle(stores)
        clock.advance(1)
    await asyncio.gather(*tasks)
    runs = Counter((c, f) for c, f, _ in log)
    assert runs == Counter({(n, f): 1 for n in NAMES for f in ("orders", "inventory")})
    assert not any(flow.overlap for flow in flows.values())
    assert await stores[0].list_leases() == []
