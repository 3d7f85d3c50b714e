"""Hints print the command the way the program was started (``uv run mlconnector …``)."""

from __future__ import annotations

import io

from rich.console import Console
from typer.testing import CliRunner

from mlconnector.cli import app
from mlconnector.clock import FakeClock
from mlconnector.commands.context import CliContext
from mlconnector.commands.invocation import as_invoked, invoked_as
from tests.unit.cli.conftest import Cli


def test_invoked_as_reads_uv_run_and_python_m() -> None:
    uv = {"UV_RUN_RECURSION_DEPTH": "1"}
    assert invoked_as(uv, ["/repo/.venv/bin/mlconnector", "ping"]) == "uv run mlconnector"
    assert invoked_as({}, ["/usr/local/bin/mlconnector", "ping"]) == "mlconnector"
    assert invoked_as({}, ["/repo/src/mlconnector/cli.py"]) == "python -m mlconnector.cli"
    assert invoked_as(uv, ["/repo/src/mlconnector/cli.py"]) == "uv run python -m mlconnector.cli"
    # embedded in another program (pytest, a script): the script's own name
    assert invoked_as(uv, ["/repo/.venv/bin/pytest"]) == "mlconnector"
    assert invoked_as({}, []) == "mlconnector"


def test_as_invoked_rewrites_only_named_commands() -> None:
    text = "run `mlconnector sync orders --once`, or `mlconnector`; mlconnector.toml stays"
    assert as_invoked(text, "uv run mlconnector") == (
        "run `uv run mlconnector sync orders --once`, or `uv run mlconnector`; "
        "mlconnector.toml stays"
    )
    assert as_invoked(text, "mlconnector") == text


def _uv_cli(cli: Cli) -> CliContext:
    context = cli.context()
    context.program = "uv run mlconnector"
    return context


def test_next_lines_and_errors_use_the_invoked_form(cli: Cli) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["init"], obj=_uv_cli(cli))
    assert result.exit_code == 0, result.output
    assert "next: `uv run mlconnector connections add NAME --pcn …`" in result.output
    result = runner.invoke(app, ["connections", "add", "acme", "--pcn", "1"], obj=_uv_cli(cli))
    assert result.exit_code == 0, result.output
    assert "`uv run mlconnector credentials set plex --connection acme`" in result.output
    # an error's hint (ConfigError from the library) is rewritten too
    result = runner.invoke(app, ["ping", "--connection", "nope"], obj=_uv_cli(cli))
    assert result.exit_code != 0
    assert "`uv run mlconnector connections add`" in result.output
    assert " `mlconnector " not in result.output


def test_program_defaults_to_the_injected_environment() -> None:
    context = CliContext(
        env={"UV_RUN_RECURSION_DEPTH": "1"},
        console=Console(file=io.StringIO()),
        clock=FakeClock(),
    )
    # under pytest argv[0] is not the console script: the plain name
    assert context.cmd("audit") == "mlconnector audit"
