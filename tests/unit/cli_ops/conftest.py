"""Fixtures of the operating-command tests: a home with a configured connection (credentials in
its vault) pointing at both simulators served on loopback from a background loop.

One virtual timeline: the simulators' FakeClock (``Ops.clock``). Each command run gets its own
FakeClock starting at that instant (the CLI runs its own event loop, and a FakeClock's sleepers
belong to one loop), and the shared clock is moved to where the run's clock ended. So a label
the simulator makes at ``ops.clock.now()`` falls inside the window of a later
``sync shipments --once``, as it would with real clocks. Tests move time with ``ops.step()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import traceback
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from mlconnector.cli import app
from mlconnector.clock import FakeClock
from mlconnector.commands.context import CliContext
from mlconnector.sandbox.plex import (
    DEFAULT_CONSUMER_KEY,
    PlexSandbox,
    TenantSpec,
    create_plex_sandbox,
)
from mlconnector.sandbox.server import serve
from mlconnector.sandbox.shipstation import (
    ShipStationAccount,
    ShipStationSandbox,
    create_shipstation_sandbox,
)
from mlconnector.store import CredentialKind, Store, init_home, load_vault, open_store
from tests.conftest import FAKE_START
from tests.e2e.shipping_env import Recorder
from tests.unit.cli.conftest import LoopThread

PCN = 340884
STEP = 600.0  # seconds ``Ops.step`` moves the clock (past the flows' 2-minute safety lag)


@dataclass
class Ops:
    home: Path
    env: dict[str, str]
    ss: ShipStationSandbox
    ss_rec: Recorder
    clock: FakeClock
    plex: PlexSandbox
    ss_url: str
    runner: CliRunner = field(default_factory=CliRunner)

    def step(self, seconds: float = STEP) -> None:
        """Move the shared virtual time forward."""
        self.clock.advance(seconds)

    def __call__(self, *args: str) -> Result:
        run_clock = FakeClock(self.clock.now())
        context = CliContext(
            env=dict(self.env),
            console=Console(width=250, no_color=True),
            err_console=Console(width=250, no_color=True, stderr=True),
            stdin=io.StringIO(""),
            clock=run_clock,
        )
        try:
            result = self.runner.invoke(app, list(args), obj=context)
        finally:
            self.clock.set(run_clock.now())  # the run's own sleeps moved time on
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            # a crash, not a refusal: show where
            trace = "".join(traceback.format_exception(result.exception))
            raise AssertionError(f"mlconnector {' '.join(args)} crashed:\n{trace}")
        return result

    def with_store(self, action: Any) -> Any:
        """Run ``action(store)`` against the home's store (own event loop)."""

        async def go() -> Any:
            store = await open_store(
                f"sqlite+aiosqlite:///{self.home / 'mlconnector.db'}",
                clock=FakeClock(self.clock.now()),
                vault=load_vault(self.env),
            )
            try:
                return await action(store)
            finally:
                await store.close()

        return asyncio.run(go())

    def creates(self) -> int:
        return self.ss_rec.count("POST", "/orders/createorders")


async def _setup(store: Store) -> None:
    account = ShipStationAccount()
    await store.create_connection("acme", plex_pcn=str(PCN))
    for kind, value in {
        CredentialKind.PLEX_API_KEY: DEFAULT_CONSUMER_KEY,
        CredentialKind.SS_V1_KEY: account.api_key,
        CredentialKind.SS_V1_SECRET: account.api_secret,
        CredentialKind.SS_V2_KEY: account.v2_api_key or "",
    }.items():
        await store.set_credential("acme", kind, value)


@pytest.fixture
def ops(tmp_path: Path) -> Iterator[Ops]:
    spec = TenantSpec(pcn=PCN, code="mlauto", name="Midland", customers=3, parts=8, orders=4)
    with ops_env(tmp_path, spec) as result:
        yield result


@contextlib.contextmanager
def ops_env(tmp_path: Path, spec: TenantSpec) -> Iterator[Ops]:
    """A configured home and both simulators (Plex seeded from ``spec``) on loopback."""
    thread = LoopThread()
    servers: list[AbstractAsyncContextManager[str]] = []

    async def start(app_: Any) -> str:
        server = serve(app_)
        url = await server.__aenter__()
        servers.append(server)
        return url

    clock = FakeClock(FAKE_START)
    plex = create_plex_sandbox(clock, tenants=[spec])
    ss = create_shipstation_sandbox(clock)
    rec = Recorder(ss.app)
    try:
        plex_url = thread.run(start(plex.app))
        ss_url = thread.run(start(rec))
        home = tmp_path / "home"
        env = {"HOME": str(tmp_path), "MLCONNECTOR_HOME": str(home)}
        init_home(env)
        (home / "mlconnector.toml").write_text(
            f"""[connections.acme.plex]
pcn = "{PCN}"
rest_base_url = "{plex_url}"
read_window_hours = 744
[connections.acme.shipstation]
v1_base_url = "{ss_url}"
v2_base_url = "{ss_url}"
"""
        )
        result = Ops(home, env, ss, rec, clock, plex, ss_url)
        result.with_store(_setup)
        yield result
    finally:
        for server in reversed(servers):
            thread.run(server.__aexit__(None, None, None))
        thread.close()
