"""The README's "Trying it against the sandbox" steps, run as printed, in-process, against the
simulators served on loopback.

The one change: ``mlconnector sandbox`` is the fixture here (served on free ports, prepared as the
command prepares it), so ``connections add … --sandbox`` gets ``--plex-url`` and
``--shipstation-v1-url`` with those ports, as the README says to do with other ports.
"""

from __future__ import annotations

import io
import re
import shlex
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from mlconnector.cli import app
from mlconnector.clock import FakeClock
from mlconnector.commands.context import CliContext
from mlconnector.sandbox.plex import TenantSpec, create_plex_sandbox
from mlconnector.sandbox.profile import prepare
from mlconnector.sandbox.server import serve
from mlconnector.sandbox.shipstation import ShipStationSandbox, create_shipstation_sandbox
from tests.conftest import FAKE_START
from tests.unit.cli.conftest import LoopThread

README = Path(__file__).parents[3] / "README.md"


def readme_sandbox_steps() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Trying it against the sandbox") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the section has no shell block"
    steps = []
    for line in block.group(1).splitlines():
        command = line.split("  #", 1)[0].strip()
        words = shlex.split(command)
        assert words[:3] == ["uv", "run", "mlconnector"], line
        steps.append(words[3:])
    return steps


def test_the_readme_has_the_sandbox_steps() -> None:
    steps = readme_sandbox_steps()
    assert ["init"] in steps
    assert any(s[:2] == ["connections", "add"] and "--sandbox" in s for s in steps)
    assert any(s[:2] == ["sync", "inventory"] for s in steps)
    assert any(s[:2] == ["backfill", "orders"] for s in steps)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[str, str, ShipStationSandbox, FakeClock]]:
    """Both simulators, prepared as ``mlconnector sandbox`` prepares them, on one virtual
    timeline with the commands (each command's clock continues where the last one ended)."""
    thread = LoopThread()
    servers: list[AbstractAsyncContextManager[str]] = []
    clock = FakeClock(FAKE_START)

    async def start(app: Any) -> str:
        server = serve(app)
        url = await server.__aenter__()
        servers.append(server)
        return url

    spec = TenantSpec(pcn=340884, code="mlauto", name="Midland", customers=3, parts=8, orders=4)
    plex = create_plex_sandbox(clock, tenants=[spec])
    ss = create_shipstation_sandbox(clock)
    prepare(ss)
    try:
        yield thread.run(start(plex.app)), thread.run(start(ss.app)), ss, clock
    finally:
        for server in reversed(servers):
            thread.run(server.__aexit__(None, None, None))
        thread.close()


def test_the_readme_sandbox_steps_work_as_printed(
    tmp_path: Path, sandbox: tuple[str, str, ShipStationSandbox, FakeClock]
) -> None:
    plex_url, ss_url, ss, clock = sandbox
    home = tmp_path / "home"
    env = {"HOME": str(tmp_path), "MLCONNECTOR_HOME": str(home)}
    outputs = {}
    for step in readme_sandbox_steps():
        if step[:2] == ["connections", "add"]:
            step = [*step, "--plex-url", plex_url, "--shipstation-v1-url", ss_url]
        run_clock = FakeClock(clock.now())
        context = CliContext(
            env=dict(env),
            console=Console(width=250, no_color=True),
            err_console=Console(width=250, no_color=True, stderr=True),
            stdin=io.StringIO(""),
            clock=run_clock,
        )
        result = CliRunner().invoke(app, step, obj=context)
        clock.set(run_clock.now())
        clock.advance(600)  # past the flows' safety lag, as time passes between commands
        assert result.exit_code == 0, f"mlconnector {' '.join(step)}:\n{result.output}"
        outputs[" ".join(step[:2])] = result.output
    # the credentials went through the vault, not into the file
    config_text = (home / "mlconnector.toml").read_text(encoding="utf-8")
    assert "sandbox-consumer-key" not in config_text
    # partial quantities split off a container through the sandbox's Data Source, no task
    assert "[connections.sandbox.plex.container_split]\ndatasource_id = 990001" in config_text
    assert "stored plex_api_key for sandbox" in outputs["connections add"]
    # orders reached ShipStation with a warehouse, inventory was set, backfill ran
    orders = list(ss.state.orders.values())
    assert orders
    assert all(o.advanced.get("warehouseId") in (200, 201) for o in orders)
    assert "adjusted=" in outputs["sync inventory"]
    assert "failed=" not in outputs["sync inventory"]
    assert ss.inventory.levels
    assert "12 checks, 0 failed" in outputs["ping --connection"]  # + the container split
