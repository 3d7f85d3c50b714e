"""``mlconnector ping``: can every connection reach Plex and ShipStation with its credentials?

The checks themselves are in :mod:`mlconnector.commands.checks`; this prints them as a table with
what to do for each failure, and exits 1 if any failed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlconnector.commands.context import CliContext, get_context, reports_errors
from mlconnector.commands.credentials import FIELDS
from mlconnector.commands.state import opened_store
from mlconnector.config import Config

if TYPE_CHECKING:
    from mlconnector.commands.checks import CheckResult


@reports_errors
def ping(
    ctx: typer.Context,
    connection: Annotated[
        str | None,
        typer.Option("--connection", help="Only this connection (default: every enabled one)."),
    ] = None,
) -> None:
    """Check each connection: Plex auth, tenant, read and write access; ShipStation V1 and V2;
    then its mappings (mapped warehouses, stores and inventory locations exist in ShipStation,
    and the Plex buildings of open releases are mapped).

    Nothing is created or changed remotely (see docs/configuration.md for exactly what is sent).
    Exits 1 if any check fails, with a hint per failure.
    """
    state = get_context(ctx)
    config = state.load_config()
    if connection:
        config.connection(connection)
        names = [connection]
    else:
        names = sorted(n for n, c in config.connections.items() if c.enabled)
    if not names:
        raise state.fail(
            "no enabled connection to ping", hint="add one with `mlconnector connections add`"
        )
    results = asyncio.run(ping_connections(state, config, names))
    print_checks(state, results)
    failed = [r for r in results if not r.ok]
    state.console.print(f"{len(results)} checks, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


async def remote_mapping_checks(
    state: CliContext, config: Config, names: list[str], *, days: int
) -> list[CheckResult]:
    """Only the mapping checks of the named connections (``config check --remote``)."""
    from mlconnector.commands.checks import _missing, container_split_check
    from mlconnector.commands.credentials import System
    from mlconnector.commands.mappings import mapping_checks

    secrets = await _secrets(state, config, names)
    results: list[CheckResult] = []
    async with state.http() as http:
        for name in names:
            conn = config.connections[name]
            missing = [
                m
                for system in (System.PLEX, System.SHIPSTATION)
                if (m := _missing(name, system, conn, secrets[name])) is not None
            ]
            if missing:
                results += missing
                continue
            results += await mapping_checks(name, conn, secrets[name], http, state.clock, days=days)
            split = await container_split_check(name, conn, secrets[name], http, state.clock)
            results += [split] if split is not None else []
    return results


async def _secrets(
    state: CliContext, config: Config, names: list[str]
) -> dict[str, dict[str, str]]:
    secrets: dict[str, dict[str, str]] = {}
    async with opened_store(config, state.env, state.clock) as store:
        for name in names:
            values = {f.kind: await store.get_credential(name, f.kind) for f in FIELDS}
            secrets[name] = {kind: v for kind, v in values.items() if v}
    return secrets


async def ping_connections(
    state: CliContext, config: Config, names: list[str], *, mappings: bool = True
) -> list[CheckResult]:
    """Every check of the named connections, in order; with ``mappings``, once a connection's
    credentials work, its mappings are checked against both systems too."""
    # the clients are imported here, not at start-up: `--help` should not pay for them
    from mlconnector.commands.checks import check_connection
    from mlconnector.commands.mappings import PING_MAX_ORDERS, mapping_checks
    from mlconnector.commands.progress import Activity

    secrets = await _secrets(state, config, names)
    results: list[CheckResult] = []
    activity = Activity(state.console)
    async with activity.watch(state.http()) as http:
        with activity:
            for name in names:
                activity.step(f"{name}: credentials and access")
                found = await check_connection(
                    name, config.connections[name], secrets[name], http, state.clock
                )
                results += found
                if mappings and all(r.ok for r in found):
                    activity.step(f"{name}: mappings")
                    results += await mapping_checks(
                        name,
                        config.connections[name],
                        secrets[name],
                        http,
                        state.clock,
                        max_orders=PING_MAX_ORDERS,
                    )
    return results


def print_checks(state: CliContext, results: list[CheckResult], title: str = "ping") -> None:
    """The checks as a table, with what to do for each failure."""
    table = Table(title=title)
    for column in ("connection", "system", "check", "result", "detail", "what to do"):
        table.add_column(column, overflow="fold")
    for r in results:
        table.add_row(
            escape(r.connection),
            r.system,
            escape(r.check),
            "[green]ok[/]" if r.ok else "[bold red]FAIL[/]",
            escape(r.detail),
            escape(state.hint(r.hint or "")),
        )
    state.console.print(table)
