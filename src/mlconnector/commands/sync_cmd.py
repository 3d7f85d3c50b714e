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
from mlconnector.commands.state import opened_store

if TYPE_CHECKING:
    from mlconnector.store import AuditEvent, Operation
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
    for column in ("action", "entity", "key", "reason", "outcome"):
        table.add_column(column, overflow="fold")
    for item in plan:
        table.add_row(
            item.action,
            item.entity,
            escape(item.key),
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


def shipment_reference(value: str | None) -> str | None:
    """The audit trail keys a shipment by the reference written into Plex (``ss-shipment-123``,
    ``ss-fulfillment-4``): a bare ShipStation shipment id is turned into that reference."""
    if value is None:
        return None
    value = value.strip()
    return f"ss-shipment-{value}" if value.isdigit() else value


@reports_errors
def audit(
    ctx: typer.Context,
    plex_order: Annotated[str | None, typer.Option("--plex-order", help="Plex order id.")] = None,
    order_key: Annotated[
        str | None, typer.Option("--order-key", help="ShipStation orderKey.")
    ] = None,
    order_number: Annotated[
        str | None, typer.Option("--order-number", help="ShipStation order number.")
    ] = None,
    shipment: Annotated[
        str | None,
        typer.Option(
            "--shipment",
            help="ShipStation shipment id (123), or the reference written to Plex "
            "(ss-shipment-123, ss-fulfillment-4).",
        ),
    ] = None,
    connection: Annotated[str | None, typer.Option("--connection", help="Connection.")] = None,
    flow: Annotated[str | None, typer.Option("--flow", help="Flow name.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10000, help="At most this many events.")
    ] = 50,
) -> None:
    """Search the audit trail (newest first): every read, write, skip, retry and failure."""
    from mlconnector.store import AuditQuery

    state = get_context(ctx)
    config = state.load_config()
    query = AuditQuery(
        connection=connection,
        flow=flow,
        plex_order_id=plex_order,
        order_key=order_key,
        ss_order_number=order_number,
        shipment_id=shipment_reference(shipment),
        limit=limit,
    )

    async def search() -> list[AuditEvent]:
        async with opened_store(config, state.env, state.clock, vault=False) as store:
            return list(await store.search_audit(query))

    events = asyncio.run(search())
    table = Table(title=f"audit ({len(events)} event(s), newest first)")
    for column in ("at", "connection", "flow", "action", "outcome", "record", "http", "details"):
        table.add_column(column, overflow="fold")
    for e in events:
        record = " ".join(
            f"{k}={v}"
            for k, v in (
                ("order", e.ss_order_number),
                ("key", e.order_key),
                ("plex", e.plex_order_id),
                ("shipment", e.shipment_id),
                ("quarantined", e.details.get("record") if e.entity == "quarantine" else None),
            )
            if v
        )
        http = " ".join(str(x) for x in (e.http_status, e.request_id) if x)
        table.add_row(
            e.at.isoformat(timespec="seconds") if e.at else "",
            escape(e.connection),
            escape(e.flow),
            escape(f"{e.entity} {e.action}"),
            escape(e.outcome),
            escape(record),
            escape(http),
            escape(json.dumps(e.details, default=str)[:300]),
        )
    state.console.print(table)


@reports_errors
def replay(
    ctx: typer.Context,
    ids: Annotated[list[int] | None, typer.Argument(help="Operation ids.")] = None,
    state_: Annotated[
        list[str] | None,
        typer.Option("--state", help="failed and/or dead (default: both)."),
    ] = None,
    connection: Annotated[str | None, typer.Option("--connection", help="Connection.")] = None,
    flow: Annotated[str | None, typer.Option("--flow", help="Flow name.")] = None,
) -> None:
    """Put failed/dead operations back in line. The next run sends each with its original
    idempotency key, after looking remotely: a replay never creates a duplicate."""
    from mlconnector.store import OperationState
    from mlconnector.sync.outbox import replay as outbox_replay

    state = get_context(ctx)
    config = state.load_config()
    wanted = state_ or ["failed", "dead"]
    bad = [s for s in wanted if s not in ("failed", "dead")]
    if bad:
        raise state.fail(f"--state must be failed or dead, not {', '.join(bad)}")
    if not ids and connection is None and flow is None:
        raise state.fail(
            "replay needs operation ids or --connection/--flow",
            hint="list them in the UI (Operations) or with `mlconnector audit`",
        )
    states = [OperationState(s) for s in wanted]

    async def go() -> list[Operation]:
        async with opened_store(config, state.env, state.clock, vault=False) as store:
            return list(
                await outbox_replay(
                    store, ids or None, connection=connection, flow=flow, states=states
                )
            )

    replayed = asyncio.run(go())
    table = Table(title=f"replayed {len(replayed)} operation(s)")
    for column in ("id", "connection", "flow", "kind", "idempotency key"):
        table.add_column(column, overflow="fold")
    for op in replayed:
        table.add_row(
            str(op.id),
            escape(op.connection),
            escape(op.flow),
            escape(op.kind),
            escape(op.idempotency_key),
        )
    state.console.print(table)
    if replayed:
        state.console.print(
            state.hint(
                "They are sent by the next run: the running scheduler, or "
                "`mlconnector sync <flow> --once`."
            )
        )
