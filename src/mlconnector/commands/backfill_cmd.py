"""``mlconnector backfill orders``: a one-off historical load of Plex sales orders/releases.

Thin over :mod:`mlconnector.sync.backfill`: reads the history datasource window by window (JSON
Data Source API or SOAP), sends the open release groups through the orders flow's own path
(idempotent with ``mlconnector sync``), shows a progress bar, and resumes where an interrupted
run stopped (same ``--since``/``--until``).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from mlconnector.commands.context import CliContext, get_context, reports_errors
from mlconnector.commands.periods import opened_runtime, period, pick_connection
from mlconnector.config import Config

if TYPE_CHECKING:
    from mlconnector.sync.backfill import BackfillPlan, BackfillResult, WindowDone

app = typer.Typer(help="One-off historical loads from Plex.", no_args_is_help=True)

#: the default of --datasource: ``Sales_Release_History_Get`` (confirm the id in your tenant)
DEFAULT_DATASOURCE = 18120


@app.command("orders")
@reports_errors
def orders(
    ctx: typer.Context,
    since: Annotated[
        str, typer.Option("--since", help="First release ship date (YYYY-MM-DD or ISO, UTC).")
    ],
    until: Annotated[
        str | None,
        typer.Option("--until", help="Last release ship date (default: now).", show_default=False),
    ] = None,
    connection: Annotated[
        str | None,
        typer.Option("--connection", help="Connection name (default: the only one configured)."),
    ] = None,
    source: Annotated[
        str, typer.Option("--source", help="Plex surface: json (Data Source API) or soap.")
    ] = "json",
    datasource: Annotated[
        int,
        typer.Option(
            "--datasource",
            help="Id of the sales-release history datasource (inputs Begin_Date/End_Date, "
            "column PO_Key); default 18120, confirm it on Plex's Data Sources screen.",
        ),
    ] = DEFAULT_DATASOURCE,
    window_days: Annotated[
        float, typer.Option("--window-days", help="Days per datasource call.")
    ] = 7.0,
    min_window_hours: Annotated[
        float,
        typer.Option(
            "--min-window-hours",
            help="Narrowest window when Plex reports rowLimitExceeded (then the run stops).",
        ),
    ] = 1.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read and show what would be sent; write nothing.")
    ] = False,
) -> None:
    """Load the open Plex release groups of a past period into ShipStation, resumably.

    Each window is committed before the next; re-running the same command continues after the
    last committed window. Orders already in ShipStation are left alone (same orderKey and
    outbox as `mlconnector sync`), so a backfill never creates an order twice.
    """
    from mlconnector.sync.backfill import BackfillPlan

    state = get_context(ctx)
    if source not in ("json", "soap"):
        raise state.fail(f"--source {source!r} is not json or soap", hint="use --source json|soap")
    config = state.load_config()
    name = pick_connection(config, connection)
    start, end = period(state, since, until)
    chosen: Literal["json", "soap"] = "soap" if source == "soap" else "json"
    plan = BackfillPlan(
        since=start,
        until=end,
        source=chosen,
        datasource_id=datasource,
        window=timedelta(days=window_days),
        min_window=timedelta(hours=min_window_hours),
    )
    outcome = asyncio.run(_run(state, config, name, plan, dry_run))
    _report(state, outcome)
    if outcome.result.failed:
        raise typer.Exit(1)


async def _run(
    state: CliContext, config: Config, name: str, plan: BackfillPlan, dry_run: bool
) -> BackfillResult:
    from mlconnector.sync.backfill import Backfill, open_history

    total = (plan.until - plan.since).total_seconds()
    progress = Progress(
        TextColumn("[bold]backfill[/] {task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[orders]} orders"),
        TimeElapsedColumn(),
        console=state.console,
        transient=False,
    )
    task = progress.add_task(name, total=total, orders=0)

    def on_window(event: WindowDone) -> None:
        done = (event.end - event.since).total_seconds()
        orders = progress.tasks[0].fields["orders"] + event.orders
        progress.update(
            task, completed=done, orders=orders, description=f"{name} → {event.end:%Y-%m-%d}"
        )

    async with (
        opened_runtime(state, config, name) as rt,
        open_history(rt, plan.source) as reader,
    ):
        backfill = Backfill(rt, plan, reader, on_window=on_window)
        _, resumed = await backfill.start_state()
        if resumed is not None and resumed >= plan.until:
            state.console.print(
                "this period is already backfilled (stored progress); nothing to do"
            )
        elif resumed is not None:
            state.console.print(f"resuming after {resumed.isoformat()} (stored progress)")
            progress.update(task, completed=(resumed - plan.since).total_seconds())
        with progress:
            return await backfill.run(dry_run=dry_run)


def _report(state: CliContext, outcome: BackfillResult) -> None:
    state.console.print(escape(outcome.summary()))
    for error in outcome.result.errors[:20]:
        state.err_console.print(f"[red]failed:[/] {escape(error)}")
    if outcome.unknown_keys:
        state.console.print(
            f"{len(outcome.unknown_keys)} sales order key(s) unknown to Plex's Id Conversion "
            f"API (e.g. {escape(outcome.unknown_keys[0])})"
        )
