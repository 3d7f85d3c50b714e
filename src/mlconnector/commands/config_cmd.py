"""``mlconnector config``: look at the configuration without touching the network."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.markup import escape

from mlconnector.commands.context import get_context, reports_errors

app = typer.Typer(help="Validate and inspect the configuration file.", no_args_is_help=True)


@app.command("check")
@reports_errors
def check(
    ctx: typer.Context,
    remote: Annotated[
        bool,
        typer.Option(
            "--remote",
            help="Also check the mappings against Plex and ShipStation (reads only).",
        ),
    ] = False,
    connection: Annotated[
        str | None,
        typer.Option("--connection", help="With --remote: only this connection."),
    ] = None,
    days: Annotated[
        int,
        typer.Option(
            "--days", min=1, max=31, help="With --remote: open releases modified this far back."
        ),
    ] = 7,
) -> None:
    """Validate the configuration (file + MLCONNECTOR_* environment); exit 1 on any problem.

    Without --remote nothing is sent over the network and no state is changed. With --remote,
    every mapped ShipStation warehouse, store and inventory location must exist, and every Plex
    building of the open releases modified in the last --days days must have a warehouse.
    """
    state = get_context(ctx)
    config = state.load_config()
    names = ", ".join(sorted(config.connections)) or "none"
    state.console.print(f"[green]ok[/] {escape(str(config.source))}")
    state.console.print(f"home: {escape(str(config.home))}")
    state.console.print(f"connections: {escape(names)}")
    if not remote:
        return
    from mlconnector.commands._engine import pick_connections
    from mlconnector.commands.ping import print_checks, remote_mapping_checks

    chosen = pick_connections(state, config, connection)
    results = asyncio.run(remote_mapping_checks(state, config, chosen, days=days))
    print_checks(state, results, title="mappings")
    failed = [r for r in results if not r.ok]
    state.console.print(f"{len(results)} checks, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


@app.command("path")
def path(ctx: typer.Context) -> None:
    """Print the path of the configuration file this run would use."""
    state = get_context(ctx)
    state.console.print(str(state.config_file()), markup=False, highlight=False, soft_wrap=True)
