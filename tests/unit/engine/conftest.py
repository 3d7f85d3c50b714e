"""Fixtures of the engine tests: a SQLite store with a connection and its (fake) credentials, a
config, fake flows that record what the engine asked of them, and an engine factory.

Virtual time is stepped by hand. ``FakeClock`` jumps to the next sleeper once the event loop has
been idle for a few turns, but aiosqlite runs every query in a thread, so the loop looks idle while
a query is in flight and time would jump past the engine's own schedule. :class:`SteppedClock`
turns the jump off; :func:`run_for` moves time to the next deadline only once every store call has
returned (:class:`CountingStore` counts them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.config import Config, ConnectionConfig, PlexSettings, RetryBudget
from mlconnector.errors import ConnectorError
from mlconnector.store import CredentialKind, Operation, Store, Vault, generate_key, open_store
from mlconnector.sync import ConnectionRuntime, FlowResult, LogAlertSink, Resolution
from mlconnector.sync.engine import Engine, EngineOptions
from tests.conftest import FAKE_START

CONNECTION = "acme"
SECRETS = {
    CredentialKind.PLEX_API_KEY: "plex-key-0123456789",
    CredentialKind.SS_V1_KEY: "ss-v1-key-0123456789",
    CredentialKind.SS_V1_SECRET: "ss-v1-secret-0123456789",
}


def refusing_factory(service: str, base_url: str) -> httpx.AsyncClient:
    """Clients that fail every request: the fake flows never use the network."""
    return httpx.AsyncClient(
        transport=httpx.MockTransport(lambda request: httpx.Response(599, json={}))
    )


def make_config(tmp_path: Path, *, max_attempts: int = 3) -> Config:
    conn = ConnectionConfig(
        plex=PlexSettings(pcn="79870"),
        retry=RetryBudget(max_attempts=max_attempts, base_delay_seconds=10, max_delay_seconds=100),
    )
    return Config(home=tmp_path, connections={CONNECTION: conn})


@dataclass
class FakeFlow:
    """A flow that records each call with the virtual time; ``duration`` makes a run last."""

    name: str
    clock: FakeClock
    kinds: frozenset[str] = frozenset()
    duration: float = 0.0
    execute_error: ConnectorError | None = None
    resolutions: dict[str, Resolution] = field(default_factory=dict)
    runs: list[tuple[datetime, datetime, str]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    running: int = 0
    max_running: int = 0

    async def run(self, rt: ConnectionRuntime, *, dry_run: bool = False) -> FlowResult:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        start = self.clock.now()
        try:
            if self.duration:
                await self.clock.sleep(self.duration)
        finally:
            self.running -= 1
        self.runs.append((start, self.clock.now(), "dry" if dry_run else "real"))
        self.calls.append(("run", "dry" if dry_run else "real"))
        return FlowResult(self.name, rt.name, dry_run=dry_run)

    async def execute(self, rt: ConnectionRuntime, op: Operation) -> str | None:
        self.calls.append(("execute", op.idempotency_key))
        if self.execute_error is not None:
            raise self.execute_error
        return f"remote-{op.id}"

    async def resolve(self, rt: ConnectionRuntime, op: Operation) -> Resolution:
        self.calls.append(("resolve", op.idempotency_key))
        return self.resolutions.get(op.idempotency_key)


@dataclass
class EngineEnv:
    tmp_path: Path
    clock: SteppedClock
    store: Store
    counted: list[CountingStore]

    async def second_store(self) -> Store:
        """Another store on the same database file (a second worker process)."""
        other = await open_store(self.url, clock=self.clock, vault=self.store.vault)
        self.counted.append(CountingStore(other))
        return cast(Store, self.counted[-1])

    @property
    def stores(self) -> list[CountingStore]:
        return self.counted[1:]

    async def run(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass, waking every sleeper in deadline order."""
        end = self.clock.monotonic() + seconds
        while True:
            await settle(self.counted)
            deadline = self.clock.next_deadline()
            if deadline is None or deadline > end:
                break
            self.clock.advance(max(0.0, deadline - self.clock.monotonic()))
        self.clock.advance(max(0.0, end - self.clock.monotonic()))
        await settle(self.counted)

    @property
    def url(self) -> str:
        return f"sqlite+aiosqlite:///{self.tmp_path / 'mlc.db'}"

    def engine(
        self,
        flows: Mapping[str, Any],
        *,
        store: Store | None = None,
        owner: str = "worker-a",
        intervals: Mapping[str, float] | None = None,
        alerts: LogAlertSink | None = None,
        max_attempts: int = 3,
        concurrency: int = 32,
    ) -> Engine:
        return Engine(
            make_config(self.tmp_path, max_attempts=max_attempts),
            store or cast(Store, self.counted[0]),
            self.clock,
            flows=flows,
            http_factory=refusing_factory,
            alerts=alerts or LogAlertSink(),
            options=EngineOptions(
                owner=owner, intervals=dict(intervals or {}), tick=5.0, concurrency=concurrency
            ),
        )


class SteppedClock(FakeClock):
    """A FakeClock that moves only when the test says so."""

    def _schedule_jump(self, loop: asyncio.AbstractEventLoop) -> None:
        return None

    def next_deadline(self) -> float | None:
        """Elapsed seconds at which the earliest live sleeper wakes."""
        live = [deadline for deadline, _, fut in self._sleepers if not fut.done()]
        return min(live) if live else None


class CountingStore:
    """The store, counting the calls in flight (so a test knows when the engine waits only on
    the clock)."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.in_flight = 0

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not asyncio.iscoroutinefunction(value):
            if name == "flow_lock":
                # An async context manager, not a coroutine function: counted too, so the loop
                # never looks idle while it awaits (it took a thread hand-off before bc8399a;
                # uncounted, time jumped ahead meanwhile).
                return lambda *args, **kwargs: _CountedContext(self, value(*args, **kwargs))
            return value

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.in_flight += 1
            try:
                return await value(*args, **kwargs)
            finally:
                self.in_flight -= 1

        return counted


class _CountedContext:
    """An async context manager of the store whose entering and leaving are counted as calls
    in flight (not the block between: a flow may wait on the clock while it holds the lock)."""

    def __init__(self, owner: CountingStore, inner: Any) -> None:
        self._owner = owner
        self._inner = inner

    async def __aenter__(self) -> Any:
        self._owner.in_flight += 1
        try:
            return await self._inner.__aenter__()
        finally:
            self._owner.in_flight -= 1

    async def __aexit__(self, *exc: Any) -> Any:
        self._owner.in_flight += 1
        try:
            return await self._inner.__aexit__(*exc)
        finally:
            self._owner.in_flight -= 1


async def settle(stores: list[CountingStore]) -> None:
    """Return once no store call has been in flight for a few consecutive loop turns."""
    quiet = 0
    while quiet < 4:
        await asyncio.sleep(0.001)
        quiet = quiet + 1 if all(s.in_flight == 0 for s in stores) else 0


@pytest.fixture
def fake_clock() -> SteppedClock:
    return SteppedClock(FAKE_START)


@pytest.fixture
async def env(tmp_path: Path, fake_clock: FakeClock) -> AsyncIterator[EngineEnv]:
    vault = Vault([generate_key()], source="a test key")
    store = await open_store(
        f"sqlite+aiosqlite:///{tmp_path / 'mlc.db'}", clock=fake_clock, vault=vault
    )
    await store.create_connection(CONNECTION, plex_pcn="79870")
    for kind, value in SECRETS.items():
        await store.set_credential(CONNECTION, kind, value)
    e = EngineEnv(tmp_path, fake_clock, store, [CountingStore(store)])
    try:
        yield e
    finally:
        for other in e.stores:
            await other._inner.close()
        await store.close()


async def run_for(env: EngineEnv, seconds: float, *engines: Engine) -> None:
    """Run the engines' schedulers for ``seconds`` of virtual time, then stop them (the running
    steps finish, virtual time moving on as they need)."""
    tasks = [asyncio.create_task(e.run_forever()) for e in engines]
    await env.run(seconds)
    for e in engines:
        e.stop()
    while not all(t.done() for t in tasks):
        await env.run(1.0)
    await asyncio.gather(*tasks)
