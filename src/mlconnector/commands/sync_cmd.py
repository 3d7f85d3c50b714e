"""``mlconnector sync FLOW --once``, ``mlconnector audit`` and ``mlconnector replay``.

``sync`` runs one flow once through the engine (lease, crash recovery, due retries, the pass); with
``--dry-run`` it prints the plan (what would be created, updated, skipped and why) and writes
nothing anywhere. ``audit`` searches the audit trail. ``replay`` moves failed/dead operations back
to pending; the next run sends them with their original idempotency key, after looking remotely,
so a replay never duplicates.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlconnector.commands._engine import opened_engine, pick_connections
from mlconnector.commands.context import OUTCOME_EXIT, CliContext, get_context, reports_errors

if TYPE_CHECKING:
    from mlconnector.sync.base import PlanItem
    from mlconnector.sync.runs import RunReport

app = typer.Typer(help="Run one flow once (`--once`), or plan it (`--dry-run`).")

#: CLI name → flow name
FLOWS = {
    "orders": "orders",
    "inventory": "inventory",
    "shipments": "shipments",
    "order-status": "order_status",
}

ConnectionOpt = Annotated[
    str | None,
    typer.Option("--connection", help="Only this connection (default: every enabled one)."),
]


def _make(cli_name: str, flow: str) -> None:
    @app.command(cli_name)
    @reports_errors
    def command(
        ctx: typer.Context,
        once: Annotated[bool, typer.Option("--once", help="Run one pass now and exit.")] = False,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Print the plan; write nothing.")
        ] = False,
        connection: ConnectionOpt = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the run result as JSON (outcome, counts).")
        ] = False,
    ) -> None:
        state = get_context(ctx)
        if not once:
            raise state.fail(
                f"`sync {cli_name}` runs one pass: add --once",
                hint="for the scheduler use `mlconnector run` (or `mlconnector worker`)",
            )
        config = state.load_config()
        names = pick_connections(state, config, connection)
        from mlconnector.sync.runs import worst

        reports = asyncio.run(_sync(state, names, flow, dry_run, quiet=as_json))
        if as_json:
            outcome = worst([r.outcome for r in reports])
            body = {"outcome": outcome, "runs": [r.to_dict() for r in reports]}
            typer.echo(json.dumps(body, indent=2, default=str))
        else:
            for report in reports:
                print_report(state, report)
        code = OUTCOME_EXIT[worst([r.outcome for r in reports])]
        if code:
            raise typer.Exit(code)

    command.__doc__ = f"Run the {cli_name} flow once (`--dry-run`: show the plan only)."


for _cli, _flow in FLOWS.items():
    _make(_cli, _flow)


async def _sync(
    state: CliContext, names: list[str], flow: str, dry_run: bool, *, quiet: bool = False
) -> list[RunReport]:
    from mlconnector.commands.progress import Activity

    config = state.load_config()
    reports = []
    activity = Activity(state.console, enabled=False if quiet else None)
    async with opened_engine(state, config, connections=names, observer=activity) as (engine, _):
        with activity:
            for name in names:
                activity.step(f"{flow}@{name}" + (" (dry run)" if dry_run else ""))
                reports.append(await engine.run_once(name, flow, dry_run=dry_run))
    return reports


#: how each outcome (of a run or of one row) is shown
OUTCOME_STYLE = {"ok": "green", "done": "green", "partial": "bold yellow", "planned": "cyan"}


def styled(outcome: str) -> str:
    """``outcome`` in its colour (failed, dead and the like in red)."""
    style = OUTCOME_STYLE.get(outcome, "dim" if outcome == "skipped" else "bold red")
    return f"[{style}]{escape(outcome)}[/]"


def record_label(item: PlanItem) -> str:
    """What a person knows the record by: an order's number (its orderKey is an internal key,
    kept in the audit trail and ``--json``), else the plan's key."""
    number = item.details.get("order_number") if item.entity == "order" else None
    return str(number) if number else item.key


def print_report(state: CliContext, report: RunReport) -> None:
    """The run's outcome and summary, then its plan as a table with each row's outcome."""
    state.console.print(f"{styled(report.outcome)} {escape(report.summary())}")
    plan = report.result.plan if report.result is not None else []
    if not plan:
        return
    if report.dry_run:
        title = "plan (dry run: nothing was written)"
    else:
        title = f"what was done (run outcome: {report.outcome})"
    table = Table(title=title)
    for column in ("action", "entity", "record", "reason", "outcome"):
        table.add_column(column, overflow="fold")
    for item in plan:
        table.add_row(
            item.action,
            item.entity,
            escape(record_label(item)),
            escape(item.reason),
            styled(item.result(dry_run=report.dry_run)),
        )
    state.console.print(table)
    total = report.result.plan_total if report.result is not None else len(plan)
    if total > len(plan):
        where = (
            "the counts above cover every decision"
            if report.dry_run
            else f"every write and skip is in `{state.cmd('audit')} --connection "
            f"{report.connection} --flow {report.flow}`"
        )
        state.console.print(
            f"showing {len(plan)} of {total} decisions (a bounded sample: the first done and "
            f"the first needing attention); {escape(where)}"
        )
