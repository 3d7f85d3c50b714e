"""``mlconnector config``: look at the configuration without touching the network."""

from __future__ import annotations

import typer
from rich.markup import escape

from mlconnector.commands.context import get_context, reports_errors

app = typer.Typer(help="Validate and inspect the configuration file.", no_args_is_help=True)


@app.command("check")
@reports_errors
def check(ctx: typer.Context) -> None:
    """Validate the configuration (file + MLCONNECTOR_* environment); exit 1 on any problem.

    Nothing is sent over the network and no state is changed.
    """
    state = get_context(ctx)
    config = state.load_config()
    names = ", ".join(sorted(config.connections)) or "none"
    state.console.print(f"[green]ok[/] {escape(str(config.source))}")
    state.console.print(f"home: {escape(str(config.home))}")
    state.console.print(f"connections: {escape(names)}")


@app.command("path")
def path(ctx: typer.Context) -> None:
    """Print the path of the configuration file this run would use."""
    state = get_context(ctx)
    state.console.print(str(state.config_file()), markup=False, highlight=False, soft_wrap=True)
