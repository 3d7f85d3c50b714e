"""``mlconnector connections``: add a connection to the configuration, list what exists.

The configuration file is the source of every connection setting. ``add`` appends a
``[connections.NAME]`` section to it (validated before the file is replaced) and registers the
connection in the store, where its credentials, cursors and outbox live. ``list`` shows both
sides, so a section added by hand (not yet in the store) or a stale store row is visible.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mlconnector.commands._toml import append_connection
from mlconnector.commands.context import CliContext, get_context, reports_errors
from mlconnector.commands.credentials import required_kinds
from mlconnector.commands.state import ensure_connection_row, opened_store, store_env
from mlconnector.config import Config, check_connection_name, parse_config
from mlconnector.errors import ConfigError, VaultError

if TYPE_CHECKING:
    from mlconnector.store import Connection

app = typer.Typer(help="Add and list Plex ⇄ ShipStation connections.", no_args_is_help=True)


def _section(options: dict[str, Any]) -> dict[str, Any]:
    """The TOML section for the options given (unset options keep the defaults)."""
    section: dict[str, Any] = {}
    for dotted, value in options.items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        table = section
        for parent in parents:
            table = table.setdefault(parent, {})
        table[leaf] = value
    return section


@app.command("add")
@reports_errors
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Connection name: lower-case letters, digits, _ -.")],
    pcn: Annotated[
        str | None, typer.Option(help="Plex PCN (tenant routing by customer id).")
    ] = None,
    tenant_id: Annotated[str | None, typer.Option(help="Plex tenant id (uuid).")] = None,
    auth_mode: Annotated[str | None, typer.Option(help="Plex auth: api_key or oauth2.")] = None,
    plex_url: Annotated[str | None, typer.Option(help="Plex Connect REST base URL.")] = None,
    plex_datasource_url: Annotated[
        str | None, typer.Option(help="Plex Data Source API base URL.")
    ] = None,
    plex_soap_url: Annotated[str | None, typer.Option(help="Plex SOAP DataSource URL.")] = None,
    token_url: Annotated[str | None, typer.Option(help="OAuth2 token URL (oauth2).")] = None,
    web_service_user: Annotated[
        str | None, typer.Option(help="Plex web-service user name (its password is vaulted).")
    ] = None,
    shipstation_v1_url: Annotated[str | None, typer.Option(help="ShipStation V1 base URL.")] = None,
    shipstation_v2_url: Annotated[str | None, typer.Option(help="ShipStation V2 base URL.")] = None,
    grouping: Annotated[str | None, typer.Option(help="ship_date or order.")] = None,
    write_back: Annotated[str | None, typer.Option(help="shipper or datasource.")] = None,
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox",
            help="A connection to `mlconnector sandbox`: its URLs (or --plex-url / "
            "--shipstation-v1-url), PCN, web-service user, mappings and credentials.",
        ),
    ] = False,
) -> None:
    """Append a \\[connections.NAME] section to the configuration and register it in the store.

    Only the options given are written; everything else keeps its default and can be edited in
    the file afterwards. Credentials are set separately with `mlconnector credentials set`.
    With --sandbox, everything the standalone sandbox needs is written and its sandbox-only
    credentials are encrypted into the vault, so the connection works at once.
    """
    state = get_context(ctx)
    try:
        check_connection_name(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    profile = None
    if sandbox:
        from mlconnector.sandbox.profile import sandbox_connection

        profile = sandbox_connection(
            plex_url, shipstation_v1_url or shipstation_v2_url, pcn=int(pcn) if pcn else None
        )
    section = _section(
        {
            "grouping": grouping,
            "write_back": write_back,
            "plex.pcn": pcn,
            "plex.tenant_id": tenant_id,
            "plex.auth_mode": auth_mode,
            "plex.rest_base_url": plex_url,
            "plex.datasource_base_url": plex_datasource_url,
            "plex.soap_url": plex_soap_url,
            "plex.token_url": token_url,
            "plex.web_service_user": web_service_user,
            "shipstation.v1_base_url": shipstation_v1_url,
            "shipstation.v2_base_url": shipstation_v2_url,
        }
    )
    if profile is not None:
        section = _merged(profile.settings, section)
    path = state.config_file()
    home = state.load_config(missing_ok=True).home
    if not home.is_dir():
        raise ConfigError(f"the home {home} does not exist", hint="run `mlconnector init` first")
    holder: dict[str, Config] = {}

    def validate(text: str) -> None:
        holder["config"] = parse_config(text, path, state.env)

    append_connection(path, name, section, validate)
    config = holder["config"]
    state.console.print(f"added [bold]{escape(name)}[/] to {escape(str(path))}")
    asyncio.run(_register(state, config, name))
    if profile is not None:
        asyncio.run(_store_secrets(state, config, name, profile.secrets))
        state.console.print(
            state.hint(
                "next: start `mlconnector sandbox` (if it is not running), then "
                f"`mlconnector ping --connection {escape(name)}` and "
                f"`mlconnector sync orders --once --dry-run --connection {escape(name)}`"
            )
        )
        return
    state.console.print(
        state.hint(
            f"next: `mlconnector credentials set plex --connection {escape(name)}` and "
            f"`mlconnector credentials set shipstation --connection {escape(name)}`"
        )
    )


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s values on top, table by table."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


async def _store_secrets(
    state: CliContext, config: Config, name: str, secrets: dict[str, str]
) -> None:
    """Encrypt the sandbox-only credentials into the vault (as `credentials set` does)."""
    async with opened_store(config, state.env, state.clock) as store:
        for kind, value in secrets.items():
            if value:
                info = await store.set_credential(name, kind, value)
                state.console.print(
                    f"stored {escape(kind)} for {escape(name)}: {escape(info.masked)} "
                    "(a sandbox-only value)"
                )


async def _register(state: CliContext, config: Config, name: str) -> None:
    async with opened_store(config, state.env, state.clock, vault=False) as store:
        await ensure_connection_row(store, name, config.connection(name))
    state.console.print(f"registered [bold]{escape(name)}[/] in the store")


@app.command("list")
@reports_errors
def list_(ctx: typer.Context) -> None:
    """Show every connection: configuration, store registration and which credentials are set."""
    state = get_context(ctx)
    config = state.load_config()
    rows, note = asyncio.run(_store_side(state, config))
    table = Table(title="connections")
    for column in ("name", "config", "store", "enabled", "Plex", "ShipStation V1", "credentials"):
        table.add_column(column, overflow="fold")
    for name in sorted(set(config.connections) | set(rows)):
        settings = config.connections.get(name)
        row, kinds = rows.get(name, (None, None))
        plex = ship = "-"
        if settings is not None:
            tenant = settings.plex.pcn and f"PCN {settings.plex.pcn}"
            tenant = tenant or settings.plex.tenant_id or "default tenant"
            plex = f"{tenant} @ {settings.plex.rest_base_url}"
            ship = settings.shipstation.v1_base_url
        enabled = settings.enabled if settings else row.enabled if row else False
        table.add_row(
            escape(name),
            "yes" if settings else "[red]no[/]",
            "yes" if row else "[yellow]no[/]",
            "yes" if enabled else "no",
            escape(plex),
            escape(ship),
            _credential_summary(settings, kinds),
        )
    state.console.print(table)
    if note:
        state.console.print(f"[yellow]note:[/] {escape(note)}")


def _credential_summary(settings: Any, kinds: set[str] | None) -> str:
    if kinds is None:
        return "?"
    if settings is None:
        return ", ".join(sorted(kinds)) or "none"
    parts = []
    for system in ("plex", "shipstation"):
        missing = required_kinds(system, settings) - kinds
        parts.append(f"{system} {'[green]ok[/]' if not missing else '[red]missing[/]'}")
    return ", ".join(parts)


async def _store_side(
    state: CliContext, config: Config
) -> tuple[dict[str, tuple[Connection, set[str] | None]], str | None]:
    """Store rows and the credential kinds each has (``None`` when the vault cannot open)."""
    if not config.home.exists():
        return {}, "the home does not exist yet: run `mlconnector init`"
    from mlconnector.store import load_vault, open_store

    note = None
    try:
        vault = load_vault(store_env(config, state.env))
    except VaultError as exc:
        vault, note = None, f"credentials not shown: {exc.message}"
    async with await open_store(config.database_url, clock=state.clock, vault=vault) as store:
        connections = await store.list_connections()
        kinds: dict[str, set[str] | None] = dict.fromkeys((c.name for c in connections), None)
        if vault is not None:
            try:
                for c in connections:
                    kinds[c.name] = {i.kind for i in await store.list_credentials_masked(c.name)}
            except VaultError as exc:
                note = f"credentials not shown: {exc.message}"
    return {c.name: (c, kinds[c.name]) for c in connections}, note
