"""``mlconnector users``: the operator accounts of the web UI.

There is no default account and no default password: the first account is made here. Passwords
come from a hidden prompt (asked twice) or, with ``--stdin``, from the first line of standard
input; never from the command line (argv shows in ``ps`` and the shell history). Only an argon2id
hash is stored. Changing a password or removing an account ends that account's sessions.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlconnector.commands.context import CliContext, get_context, reports_errors
from mlconnector.commands.state import opened_store
from mlconnector.errors import ConfigError
from mlconnector.passwords import check_password, check_user_name, hash_password

app = typer.Typer(help="Operator accounts of the web UI (login, roles).", no_args_is_help=True)


class RoleChoice(StrEnum):
    """The store's ``Role`` values (this module does not import the store at start-up)."""

    VIEWER = "viewer"
    OPERATOR = "operator"


def _name(name: str) -> str:
    try:
        return check_user_name(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _password(state: CliContext, stdin: bool) -> str:
    """The new password from standard input's first line, or from a hidden prompt (twice)."""
    if stdin:
        lines = state.read_stdin().splitlines()
        password = lines[0] if lines else ""
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        return check_password(password)
    except ValueError as exc:
        raise ConfigError(f"{exc}; nothing was changed") from None


StdinOption = Annotated[
    bool, typer.Option("--stdin", help="Read the password from the first line of standard input.")
]
NameArgument = Annotated[str, typer.Argument(help="Account name (what is typed at the login).")]


@app.command("add")
@reports_errors
def add(
    ctx: typer.Context,
    name: NameArgument,
    role: Annotated[
        RoleChoice,
        typer.Option("--role", help="viewer: reads every page; operator: also replays, dismisses."),
    ],
    stdin: StdinOption = False,
) -> None:
    """Create an account with a password (hidden prompt, or --stdin)."""
    state = get_context(ctx)
    config = state.load_config()
    user = _name(name)
    password = _password(state, stdin)

    async def create() -> None:
        from mlconnector.store import Role

        async with opened_store(config, state.env, state.clock, vault=False) as store:
            await store.create_user(user, Role(role.value), hash_password(password))

    asyncio.run(create())
    state.console.print(f"created {role.value} account {escape(user)}")


@app.command("passwd")
@reports_errors
def passwd(ctx: typer.Context, name: NameArgument, stdin: StdinOption = False) -> None:
    """Set a new password for an account (its sessions end: it logs in again)."""
    state = get_context(ctx)
    config = state.load_config()
    user = _name(name)
    password = _password(state, stdin)

    async def change() -> None:
        async with opened_store(config, state.env, state.clock, vault=False) as store:
            await store.set_user_password(user, hash_password(password))

    asyncio.run(change())
    state.console.print(f"password of {escape(user)} changed; its sessions were ended")


@app.command("remove")
@reports_errors
def remove(ctx: typer.Context, name: NameArgument) -> None:
    """Remove an account and end its sessions."""
    state = get_context(ctx)
    config = state.load_config()
    user = _name(name)

    async def delete() -> bool:
        async with opened_store(config, state.env, state.clock, vault=False) as store:
            return await store.delete_user(user)

    if not asyncio.run(delete()):
        raise state.fail(
            f"no user {user!r}", hint="list the accounts with `mlconnector users list`"
        )
    state.console.print(f"removed account {escape(user)}")


@app.command("list")
@reports_errors
def list_(ctx: typer.Context) -> None:
    """List the accounts with their role and open sessions."""
    state = get_context(ctx)
    config = state.load_config()

    async def rows() -> list[list[str]]:
        async with opened_store(config, state.env, state.clock, vault=False) as store:
            return [
                [
                    u.name,
                    u.role.value,
                    u.created_at.strftime("%Y-%m-%d %H:%M"),
                    u.updated_at.strftime("%Y-%m-%d %H:%M"),
                    str(await store.count_sessions(u.name)),
                ]
                for u in await store.list_users()
            ]

    found = asyncio.run(rows())
    if not found:
        state.console.print("no account yet: create one with `mlconnector users add NAME --role …`")
        return
    table = Table(title="web UI accounts")
    for column in ("name", "role", "created", "password changed", "sessions"):
        table.add_column(column)
    for row in found:
        table.add_row(*(escape(cell) for cell in row))
    state.console.print(table)
