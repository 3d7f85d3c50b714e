"""``mlconnector audit``, ``mlconnector replay`` and ``mlconnector operations list``.

``audit`` searches the audit trail; ``operations list`` shows the outbox (failed and dead first
of all); ``replay`` moves failed/dead operations back to pending: the next run sends them with
their original idempotency key, after looking remotely, so a replay never duplicates
(``--now`` runs the flows at once). Each has ``--json``. The text output reads at 80 columns:
one line per record, then its details on their own indented lines.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from mlconnector.commands.context import CliContext, get_context, reports_errors
from mlconnector.commands.state import opened_store

if TYPE_CHECKING:
    from mlconnector.store import AuditEvent, Operation

operations_app = typer.Typer(help="The outbox: every write and its state.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
ConnectionOpt = Annotated[str | None, typer.Option("--connection", help="Connection.")]
FlowOpt = Annotated[str | None, typer.Option("--flow", help="Flow name (orders, shipments, …).")]
STATES = ("pending", "sent", "confirmed", "failed", "dead")


def shipment_reference(value: str | None) -> str | None:
    """The audit trail keys a shipment by the reference written into Plex (``ss-shipment-123``,
    ``ss-fulfillment-4``): a bare ShipStation shipment id is turned into that reference."""
    if value is None:
        return None
    value = value.strip()
    return f"ss-shipment-{value}" if value.isdigit() else value


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else ""


#: a detail longer than this is cut (``--json`` has it whole)
MAX_DETAIL = 600


def _kv(details: dict[str, Any], width: int) -> list[str]:
    """``key: value`` lines indented under a record, long values wrapped (and cut)."""
    lines = []
    for key, value in details.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > MAX_DETAIL:
            text = text[: MAX_DETAIL - 1] + "…"
        lines += textwrap.wrap(
            f"{key}: {text}",
            width=max(width, 40),
            initial_indent="    ",
            subsequent_indent="      ",
            break_on_hyphens=False,
        )
    return lines


def event_json(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": _when(e.at),
        "connection": e.connection,
        "flow": e.flow,
        "entity": e.entity,
        "action": e.action,
        "outcome": e.outcome,
        "idempotency_key": e.idempotency_key,
        "plex_order_id": e.plex_order_id,
        "order_key": e.order_key,
        "ss_order_number": e.ss_order_number,
        "shipment_id": e.shipment_id,
        "http_status": e.http_status,
        "request_id": e.request_id,
        "details": e.details,
    }


def print_events(state: CliContext, events: list[AuditEvent]) -> None:
    """Each event: one line (when, where, what, outcome), then its record, HTTP and details."""
    out = state.console
    out.print(f"[bold]audit ({len(events)} event(s), newest first)[/]")
    for e in events:
        out.print(
            f"{_when(e.at)}  {escape(e.connection)}/{escape(e.flow)}  "
            f"{escape(e.entity)} {escape(e.action)}  [bold]{escape(e.outcome)}[/]"
        )
        record = {
            "order": e.ss_order_number,
            "key": e.order_key,
            "plex": e.plex_order_id,
            "shipment": e.shipment_id,
            "quarantined": (e.details or {}).get("record") if e.entity == "quarantine" else None,
            "http": " ".join(str(x) for x in (e.http_status, e.request_id) if x),
        }
        shown = "  ".join(f"{k}={v}" for k, v in record.items() if v)
        if shown:
            out.print(f"    {escape(shown)}", soft_wrap=False)
        for line in _kv(dict(e.details or {}), out.width):
            out.print(escape(line), soft_wrap=True)


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
    connection: ConnectionOpt = None,
    flow: FlowOpt = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10000, help="At most this many events.")
    ] = 50,
    as_json: JsonOpt = False,
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
    if as_json:
        typer.echo(json.dumps([event_json(e) for e in events], indent=2, default=str))
    else:
        print_events(state, events)


def operation_json(op: Operation) -> dict[str, Any]:
    return {
        "id": op.id,
        "connection": op.connection,
        "flow": op.flow,
        "kind": op.kind,
        "idempotency_key": op.idempotency_key,
        "state": op.state.value,
        "attempts": op.attempts,
        "next_attempt_at": _when(op.next_attempt_at),
        "last_error": op.last_error,
        "remote_ref": op.remote_ref,
        "created_at": _when(op.created_at),
        "updated_at": _when(op.updated_at),
    }


def print_operations(state: CliContext, title: str, ops: list[Operation]) -> None:
    """Each operation: id, state, where and what on one line; key and last error below."""
    out = state.console
    out.print(f"[bold]{escape(title)}[/]")
    for op in ops:
        out.print(
            f"#{op.id}  [bold]{op.state.value}[/]  {escape(op.connection)}/{escape(op.flow)}  "
            f"{escape(op.kind)}  attempts={op.attempts}  {_when(op.updated_at)}"
        )
        out.print(f"    key: {escape(op.idempotency_key)}", soft_wrap=False)
        if op.last_error:
            out.print(f"    error: {escape(op.last_error[:300])}")


@operations_app.command("list")
@reports_errors
def list_operations(
    ctx: typer.Context,
    state_: Annotated[
        list[str] | None,
        typer.Option("--state", help="pending, sent, confirmed, failed or dead (repeatable)."),
    ] = None,
    flow: FlowOpt = None,
    connection: ConnectionOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000, help="At most.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """List operations, most recently changed first (`--state failed --state dead`: what
    needs a replay)."""
    from mlconnector.store import OperationState

    state = get_context(ctx)
    config = state.load_config()
    bad = [s for s in state_ or [] if s not in STATES]
    if bad:
        raise state.fail(f"--state must be one of {', '.join(STATES)}, not {', '.join(bad)}")
    states = [OperationState(s) for s in state_] if state_ else None

    async def go() -> list[Operation]:
        async with opened_store(config, state.env, state.clock, vault=False) as store:
            return await store.list_operations(
                connection=connection, flow=flow, states=states, limit=limit
            )

    found = asyncio.run(go())
    if as_json:
        typer.echo(json.dumps([operation_json(op) for op in found], indent=2))
        return
    print_operations(state, f"operations ({len(found)}, most recently changed first)", found)
    if any(op.state.value in ("failed", "dead") for op in found):
        state.console.print(state.hint("replay them with `mlconnector replay ID …`"))


async def _check_ids(
    state: CliContext, config: Any, ids: list[int], wanted: list[str]
) -> list[str]:
    """What is wrong with the ids given to replay (unknown, or in another state)."""
    problems = []
    async with opened_store(config, state.env, state.clock, vault=False) as store:
        for op_id in ids:
            op = await store.get_operation(op_id)
            if op is None:
                problems.append(f"operation {op_id} does not exist")
            elif op.state.value not in wanted:
                problems.append(f"operation {op_id} is {op.state.value}, not {' or '.join(wanted)}")
    return problems


@reports_errors
def replay(
    ctx: typer.Context,
    ids: Annotated[list[int] | None, typer.Argument(help="Operation ids.")] = None,
    state_: Annotated[
        list[str] | None,
        typer.Option("--state", help="failed and/or dead (default: both)."),
    ] = None,
    connection: ConnectionOpt = None,
    flow: FlowOpt = None,
    now: Annotated[
        bool,
        typer.Option("--now", help="Run the flows of the replayed operations at once."),
    ] = False,
    as_json: JsonOpt = False,
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
            hint="list them with `mlconnector operations list --state failed --state dead` "
            "or in the UI (Operations)",
        )
    if ids:
        problems = asyncio.run(_check_ids(state, config, ids, wanted))
        if problems:
            raise state.fail(
                "; ".join(problems) + "; nothing was replayed",
                hint="list them with `mlconnector operations list --state failed --state dead`",
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
    if as_json:
        typer.echo(json.dumps([operation_json(op) for op in replayed], indent=2))
    else:
        print_operations(state, f"replayed {len(replayed)} operation(s)", replayed)
    if not replayed:
        if not as_json:
            state.console.print("nothing matched: no failed/dead operation was replayed")
        return
    if now:
        _run_now(state, replayed)
    elif not as_json:
        flows = sorted({op.flow.replace("_", "-") for op in replayed})
        state.console.print(
            state.hint(
                "They are sent by the next run: the running scheduler, or now with "
                + ", ".join(f"`mlconnector sync {f} --once`" for f in flows)
                + " (or `mlconnector replay … --now`)."
            )
        )


def _run_now(state: CliContext, replayed: list[Operation]) -> None:
    """One pass of each (connection, flow) the replayed operations belong to."""
    from mlconnector.commands.context import OUTCOME_EXIT
    from mlconnector.commands.sync_cmd import _sync, print_report
    from mlconnector.sync.runs import worst

    pairs = sorted({(op.connection, op.flow) for op in replayed})
    outcomes = []
    for connection, flow in pairs:
        for report in asyncio.run(_sync(state, [connection], flow, False)):
            print_report(state, report)
            outcomes.append(report.outcome)
    code = OUTCOME_EXIT[worst(outcomes)]
    if code:
        raise typer.Exit(code)
