"""``mlconnector credentials``: put secrets into the vault and show them masked.

Secrets come from a hidden prompt, from standard input (``--stdin``: ``name=value`` lines) or
from environment variables (``--from-env``). There is deliberately no option that takes a secret
on the command line: argv is visible to every user of the machine (``ps``) and lands in shell
history. Nothing here ever prints a secret; ``show`` prints the store's mask (at most the last
four characters of a long secret).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlconnector.commands.context import CliContext, get_context, reports_errors
from mlconnector.commands.state import ensure_connection_row, opened_store
from mlconnector.config import Config, ConnectionConfig
from mlconnector.errors import ConfigError

#: the store's ``CredentialKind`` values (as strings, so this module does not import the store)
PLEX_API_KEY = "plex_api_key"
PLEX_CLIENT_SECRET = "plex_client_secret"  # noqa: S105 - a name, not a secret
PLEX_WS_PASSWORD = "plex_ws_password"  # noqa: S105 - a name, not a secret
SS_V1_KEY = "ss_v1_key"
SS_V1_SECRET = "ss_v1_secret"  # noqa: S105 - a name, not a secret
SS_V2_KEY = "ss_v2_key"


class System(StrEnum):
    PLEX = "plex"
    SHIPSTATION = "shipstation"


@dataclass(frozen=True)
class SecretField:
    """One secret a system needs: its ``--stdin`` name, store kind, prompt and variable."""

    system: System
    name: str
    kind: str
    label: str
    required: Callable[[ConnectionConfig], bool]

    @property
    def env_var(self) -> str:
        """The variable ``--from-env`` reads, e.g. ``MLCONNECTOR_PLEX_CONSUMER_KEY``."""
        return f"MLCONNECTOR_{self.system.value.upper()}_{self.name.upper()}"


def _always(_: ConnectionConfig) -> bool:
    return True


FIELDS: tuple[SecretField, ...] = (
    SecretField(System.PLEX, "consumer_key", PLEX_API_KEY, "Plex Consumer Key", _always),
    SecretField(
        System.PLEX,
        "consumer_secret",
        PLEX_CLIENT_SECRET,
        "Plex Consumer Secret",
        lambda c: c.plex.auth_mode == "oauth2" or c.plex.send_api_secret_header,
    ),
    SecretField(
        System.PLEX,
        "ws_password",
        PLEX_WS_PASSWORD,
        "Plex web-service user password",
        lambda c: c.write_back == "datasource",
    ),
    SecretField(System.SHIPSTATION, "v1_key", SS_V1_KEY, "ShipStation V1 API key", _always),
    SecretField(
        System.SHIPSTATION,
        "v1_secret",
        SS_V1_SECRET,
        "ShipStation V1 API secret",
        _always,
    ),
    SecretField(System.SHIPSTATION, "v2_key", SS_V2_KEY, "ShipStation V2 API key", _always),
)


def fields_of(system: System | str) -> list[SecretField]:
    """The secrets of one system, in prompt order."""
    return [f for f in FIELDS if f.system == system]


def set_command(connection: str, kind: str) -> str:
    """The exact command that stores a credential kind, for hints elsewhere (sync, web).

    >>> set_command("acme", "ss_v2_key")
    'mlconnector credentials set shipstation --connection acme'
    """
    system = next((f.system.value for f in FIELDS if f.kind == kind), "plex|shipstation")
    return f"mlconnector credentials set {system} --connection {connection}"


def required_kinds(system: System | str, settings: ConnectionConfig) -> set[str]:
    """Store kinds this connection cannot work without, for one system."""
    return {f.kind for f in fields_of(system) if f.required(settings)}


app = typer.Typer(help="Store secrets in the encrypted vault; show them masked.")


def parse_stdin(text: str, fields: list[SecretField]) -> dict[str, str]:
    """``name=value`` lines (blank lines and ``#`` comments ignored) → ``{name: value}``.

    Errors name the line number and the name, never the value.
    """
    known = {f.name for f in fields}
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = stripped.partition("=")
        name = name.strip()
        if not sep or name not in known:
            raise ConfigError(
                f"standard input line {number}: expected NAME=VALUE with NAME one of "
                f"{', '.join(sorted(known))}"
                + (f" (got name {name!r})" if sep else " (no '=' found)"),
            )
        values[name] = value.strip()
    return values


@app.command(
    "set",
    # extra words are caught (not declared as an argument, so the usage line stays clean) and
    # refused below without being echoed: Click's own error would print a pasted secret
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
@reports_errors
def set_(
    ctx: typer.Context,
    system: Annotated[System, typer.Argument(help="Which system's credentials: plex|shipstation.")],
    connection: Annotated[str, typer.Option("--connection", help="Connection name.")],
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read NAME=VALUE lines from standard input.")
    ] = False,
    from_env: Annotated[
        bool,
        typer.Option(
            "--from-env", help="Read MLCONNECTOR_PLEX_* / MLCONNECTOR_SHIPSTATION_* variables."
        ),
    ] = False,
) -> None:
    """Encrypt and store a connection's Plex or ShipStation secrets.

    Without --stdin or --from-env, each secret is asked for at a hidden prompt (leave an
    optional one empty to skip it). Names for --stdin and variables for --from-env:
    plex: consumer_key, consumer_secret, ws_password (MLCONNECTOR_PLEX_CONSUMER_KEY, …);
    shipstation: v1_key, v1_secret, v2_key (MLCONNECTOR_SHIPSTATION_V1_KEY, …).
    """
    state = get_context(ctx)
    if ctx.args:
        raise state.fail(
            "secrets are never taken from the command line (they would show in `ps` and in the "
            "shell history); nothing was stored",
            hint="use the hidden prompt (no option), --stdin or --from-env",
            code=2,
        )
    if stdin and from_env:
        raise ConfigError("choose one of --stdin and --from-env")
    config = state.load_config()
    settings = config.connection(connection)
    fields = fields_of(system)
    asyncio.run(_set(state, config, connection, settings, fields, stdin=stdin, from_env=from_env))


async def _set(
    state: CliContext,
    config: Config,
    name: str,
    settings: ConnectionConfig,
    fields: list[SecretField],
    *,
    stdin: bool,
    from_env: bool,
) -> None:
    async with opened_store(config, state.env, state.clock) as store:
        await ensure_connection_row(store, name, settings)
        stored = {i.kind for i in await store.list_credentials_masked(name)}
        if stdin:
            values = parse_stdin(state.read_stdin(), fields)
        elif from_env:
            values = {f.name: state.env[f.env_var] for f in fields if state.env.get(f.env_var)}
        else:
            values = _prompt(fields, settings, stored)
        missing = [
            f
            for f in fields
            if f.required(settings) and f.kind not in stored and not values.get(f.name)
        ]
        if missing:
            source = "standard input" if stdin else "the environment" if from_env else "the prompt"
            wanted = ", ".join(f.env_var if from_env else f.name for f in missing)
            raise ConfigError(
                f"connection {name!r} needs {wanted}, which {source} did not give; "
                "nothing was stored"
            )
        for field in fields:
            secret = values.get(field.name)
            if secret:
                info = await store.set_credential(name, field.kind, secret)
                state.console.print(
                    f"stored {escape(field.label)} for {escape(name)}: {escape(info.masked)}"
                )


def _prompt(
    fields: list[SecretField], settings: ConnectionConfig, stored: set[str]
) -> dict[str, str]:
    """Ask for each secret with the input hidden; optional or already-stored ones may be empty."""
    values: dict[str, str] = {}
    for field in fields:
        if field.required(settings) and field.kind not in stored:
            values[field.name] = typer.prompt(field.label, hide_input=True)
        else:
            suffix = " (empty keeps the stored one)" if field.kind in stored else " (optional)"
            values[field.name] = typer.prompt(
                field.label + suffix, hide_input=True, default="", show_default=False
            )
    return values


@app.command("show")
@reports_errors
def show(
    ctx: typer.Context,
    connection: Annotated[
        str | None, typer.Option("--connection", help="Only this connection.")
    ] = None,
) -> None:
    """List stored credentials, masked (never the secret), and the required ones still missing."""
    state = get_context(ctx)
    config = state.load_config()
    names = [connection] if connection else sorted(config.connections)
    if connection:
        config.connection(connection)
    table = Table(title="credentials")
    for column in ("connection", "system", "name", "value", "key version", "updated"):
        table.add_column(column, overflow="fold")
    for row in asyncio.run(_show_rows(state, config, names)):
        table.add_row(*(escape(cell) for cell in row))
    state.console.print(table)


async def _show_rows(state: CliContext, config: Config, names: list[str]) -> list[list[str]]:
    rows: list[list[str]] = []
    by_kind = {f.kind: f for f in FIELDS}
    async with opened_store(config, state.env, state.clock) as store:
        for name in names:
            infos = {i.kind: i for i in await store.list_credentials_masked(name)}
            settings = config.connections[name]
            for field in FIELDS:
                info = infos.get(field.kind)
                if info is not None:
                    rows.append(
                        [
                            name,
                            field.system.value,
                            field.name,
                            info.masked,
                            info.key_version,
                            info.updated_at.isoformat(timespec="seconds"),
                        ]
                    )
                elif field.required(settings):
                    rows.append([name, field.system.value, field.name, "(not set)", "", ""])
            for kind, info in sorted(infos.items()):
                if kind not in by_kind:
                    rows.append([name, "", kind, info.masked, info.key_version, ""])
    return rows


def secrets_for(values: Mapping[str, str], system: System) -> dict[str, str]:
    """``{field name: secret}`` of one system from ``{store kind: secret}``."""
    return {f.name: values[f.kind] for f in fields_of(system) if f.kind in values}
