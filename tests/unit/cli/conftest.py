"""Fixtures of the CLI tests: an isolated home, an in-process runner, served simulators.

The CLI runs its own event loop (``asyncio.run``) inside ``CliRunner.invoke``, so the simulators
are served on loopback from a second thread with its own loop (``serve`` from
``mlconnector.sandbox.server``), and stopped when the test ends.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Awaitable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from mlconnector.cli import app
from mlconnector.clock import FakeClock
from mlconnector.commands.context import CliContext
from mlconnector.sandbox.plex import PlexSandbox, create_plex_sandbox
from mlconnector.sandbox.server import serve
from mlconnector.sandbox.shipstation import ShipStationSandbox, create_shipstation_sandbox

T = TypeVar("T")

PLEX_KEY = "sandbox-consumer-key"
PLEX_PCN = "340884"
SS_V1_KEY, SS_V1_SECRET, SS_V2_KEY = "sandbox-v1-key", "sandbox-v1-secret", "sandbox-v2-key"


@dataclass
class Cli:
    """Runs ``mlconnector`` in-process with an injected environment and wide consoles."""

    home: Path
    env: dict[str, str]
    runner: CliRunner = field(default_factory=CliRunner)

    def context(self, stdin: str = "") -> CliContext:
        return CliContext(
            env=dict(self.env),
            console=Console(width=250, no_color=True),
            err_console=Console(width=250, no_color=True, stderr=True),
            stdin=io.StringIO(stdin),
            clock=FakeClock(),
        )

    def __call__(self, *args: str, input: str | None = None, stdin: str = "") -> Result:
        return self.runner.invoke(app, list(args), obj=self.context(stdin), input=input)

    @property
    def config_file(self) -> Path:
        return self.home / "mlconnector.toml"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A CLI whose home is a fresh temporary folder (nothing from the real environment)."""
    home = tmp_path / "home"
    return Cli(home=home, env={"HOME": str(tmp_path), "MLCONNECTOR_HOME": str(home)})


class LoopThread:
    """An event loop running in a background thread, for servers the CLI talks to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[T]) -> T:
        async def wrap() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(timeout=30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@dataclass
class Served:
    """Both simulators, served on loopback."""

    plex: PlexSandbox
    shipstation: ShipStationSandbox
    plex_url: str
    shipstation_url: str


@pytest.fixture
def served() -> Iterator[Served]:
    """The Plex and ShipStation simulators on 127.0.0.1 ephemeral ports for one test."""
    thread = LoopThread()
    servers: list[AbstractAsyncContextManager[str]] = []
    clock = FakeClock()

    async def start(app: Any) -> str:
        server = serve(app)
        url = await server.__aenter__()
        servers.append(server)
        return url

    try:
        plex = create_plex_sandbox(clock)
        shipstation = create_shipstation_sandbox(clock)
        plex_url = thread.run(start(plex.app))
        shipstation_url = thread.run(start(shipstation.app))
        yield Served(plex, shipstation, plex_url, shipstation_url)
    finally:
        for server in reversed(servers):
            thread.run(server.__aexit__(None, None, None))
        thread.close()


def sandbox_section(name: str, served: Served, **plex: Any) -> str:
    """A configuration section pointing one connection at the served simulators."""
    lines = [
        f"[connections.{name}.plex]",
        f'pcn = "{PLEX_PCN}"',
        f'rest_base_url = "{served.plex_url}"',
        f'datasource_base_url = "{served.plex_url}"',
        *(f"{k} = {json.dumps(v)}" for k, v in plex.items()),
        f"[connections.{name}.shipstation]",
        f'v1_base_url = "{served.shipstation_url}"',
        f'v2_base_url = "{served.shipstation_url}"',
    ]
    return "\n".join(lines) + "\n"
