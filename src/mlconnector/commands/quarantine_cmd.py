"""``mlconnector quarantine list|dismiss``: the records a flow could not read or map.

A quarantined record is retried by its flow on every pass until it reads (then it is resolved
and processed) or an operator dismisses it here (audited, with the reason).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlconnector.commands.context import get_context, reports_errors
from mlconnector.commands.state import opened_store

if TYPE_CHECKING:
    from mlconnector.store import Quarantined

app = typer.Typer(
    help="Records a flow could not read or map (retried every pass until they read).",
    no_args_is_help=True,
)

STATES = ("open", "resolved", "dismissed", "all")


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    connection: Annotated[str | None, typer.Option("--connection", help="Connection.")] = None,
    flow: Annotated[str | None, typer.Option("--flow", help="Flow name.")] = None,
    state_: Annotated[
        str, typer.Option("--state", help="open, resolved, dismissed or all.")
    ] = "open",
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000, help="At most.")] = 200,
) -> None:
    """List quarantined records (most recently seen first): what is wrong and what to do."""
    from mlconnector.store import QuarantineState

    state = get_context(ctx)
    if state_ not in STATES:
        raise state.fail(f"--state must be one of {', '.join(STATES)}, not {state_!r}")
    config = state.load_config()
    wanted = None if state_ == "all" else QuarantineState(state_)

    async def go() -> list[Quarantined]:
        async with opened_store(config, state.env, state.clock, vault=False) as store:
            return await store.list_quarantined(
                connection=connection, flow=flow, state=wanted, limit=limit
            )

    rows = asyncio.run(go())
    table = Table(title=f"quarantine: {len(rows)} {state_} record(s)")
    for column in ("id", "connection/flow", "record", "field = value", "error", "seen", "state"):
        table.add_column(column, overflow="fold")
    for q in rows:
        table.add_row(
            str(q.id),
            escape(f"{q.connection}/{q.flow}"),
            escape(f"{q.record_kind} {q.record_id}"),
            escape(f"{q.field} = {q.value_excerpt}"),
            escape(q.error),
            f"{q.attempts}× last {q.last_seen.isoformat(timespec='seconds')}",
            escape(q.state.value + (f" by {q.dismissed_by}" if q.dismissed_by else "")),
        )
    state.console.print(table)
    for q in rows[:1]:
        state.console.print(f"what to do ({q.id}): {escape(state.hint(q.what_to_do))}")


@app.command("dismiss")
@reports_errors
def dismiss(
    ctx: typer.Context,
    quarantine_id: Annotated[int, typer.Argument(metavar="ID", help="Quarantine id (list).")],
    reason: Annotated[str, typer.Option("--reason", help="Why it may be left as it is (audited).")],
) -> None:
    """Stop retrying one quarantined record (audited with the reason)."""
    state = get_context(ctx)
    if not reason.strip():
        raise state.fail("--reason must say why (it is kept in the audit trail)")
    config = state.load_config()

    async def go() -> Quarantined | None:
        async with opened_store(config, state.env, state.clock, vault=False) as store:
            return await store.dismiss_quarantined(quarantine_id, reason=reason, actor="cli")

    row = asyncio.run(go())
    if row is None:
        raise state.fail(
            f"no quarantined record {quarantine_id}",
            hint="list them with `mlconnector quarantine list --state all`",
        )
    if row.dismissed_reason != reason.strip() or row.state.value != "dismissed":
        raise state.fail(
            f"quarantined record {quarantine_id} is {row.state.value}; nothing to dismiss"
        )
    state.console.print(
        f"dismissed {row.id}: {escape(row.record_kind)} {escape(row.record_id)} "
        f"({escape(row.connection)}/{escape(row.flow)}) — no longer retried"
    )
