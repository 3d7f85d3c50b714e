"""``mlconnector reconcile``: list the drift between Plex and ShipStation for a period.

Thin over :mod:`mlconnector.sync.reconcile` (read-only). A Rich table for people, ``--json`` for
machines; exit status 1 when any drift is found, 0 when both systems agree.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlconnector.commands.context import CliContext, get_context, reports_errors
from mlconnector.commands.periods import opened_runtime, period, pick_connection
from mlconnector.config import Config

if TYPE_CHECKING:
    from datetime import datetime

    from mlconnector.sync.reconcile import ReconcileReport


@reports_errors
def reconcile(
    ctx: typer.Context,
    since: Annotated[
        str,
        typer.Option("--since", help="Start of the period (YYYY-MM-DD or ISO, UTC)."),
    ],
    until: Annotated[
        str | None,
        typer.Option("--until", help="End of the period (default: now).", show_default=False),
    ] = None,
    connection: Annotated[
        str | None,
        typer.Option("--connection", help="Connection name (default: the only one configured)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Compare Plex and ShipStation and list what differs; nothing is changed.

    Checks Plex orders modified in the period (missing or stale ShipStation orders), ShipStation
    shipments/fulfilments created in the period (not written back to Plex, or written back but
    gone from Plex), and the current inventory levels. Exits 1 when drift is found.
    """
    state = get_context(ctx)
    config = state.load_config()
    name = pick_connection(config, connection)
    start, end = period(state, since, until)
    report = asyncio.run(_run(state, config, name, start, end, quiet=as_json))
    if as_json:
        # plain print: Rich would wrap or colour the JSON
        typer.echo(report.to_json())
    else:
        _print(state, report)
    if not report.clean:
        raise typer.Exit(1)


async def _run(
    state: CliContext,
    config: Config,
    name: str,
    since: datetime,
    until: datetime,
    *,
    quiet: bool = False,
) -> ReconcileReport:
    from mlconnector.commands.progress import Activity
    from mlconnector.sync.reconcile import reconcile as compare

    activity = Activity(state.console, enabled=False if quiet else None)
    async with opened_runtime(state, config, name, observer=activity) as rt:
        with activity:
            activity.step(f"reconcile {name}: {since:%Y-%m-%d} → {until:%Y-%m-%d}")
            return await compare(rt, since, until)


def _print(state: CliContext, report: ReconcileReport) -> None:
    console = state.console
    if report.drifts:
        table = Table(title=f"drift: {report.connection}")
        for column in ("kind", "record", "detail", "what to do"):
            table.add_column(column, overflow="fold")
        for drift in report.drifts:
            table.add_row(
                drift.kind, escape(drift.key), escape(drift.detail), escape(state.hint(drift.hint))
            )
        console.print(table)
    for note in report.notes:
        console.print(f"note: {escape(state.hint(note))}")
    counts = ", ".join(f"{k}={v}" for k, v in report.by_kind().items() if v)
    checked = ", ".join(f"{k}={v}" for k, v in sorted(report.checked.items()))
    console.print(f"checked: {checked or 'nothing'}")
    if report.clean:
        console.print(f"[green]no drift[/] for {escape(report.connection)}")
    else:
        console.print(f"[bold red]{len(report.drifts)} drift(s)[/]: {counts}")
