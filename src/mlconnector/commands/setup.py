"""``mlconnector init`` and ``mlconnector keys rotate``: the home, the master key, the database."""

from __future__ import annotations

import asyncio
from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mlconnector.commands._toml import write_atomically
from mlconnector.commands.context import CliContext, get_context, reports_errors
from mlconnector.commands.state import opened_store, store_env
from mlconnector.config import Config
from mlconnector.errors import VaultError

MASTER_KEY_ENV = "MLCONNECTOR_MASTER_KEY"  # the store's vault reads the master key from here


def example_config() -> str:
    """The commented example configuration shipped with the package."""
    return files("mlconnector").joinpath("example-config.toml").read_text(encoding="utf-8")


@reports_errors
def init(ctx: typer.Context) -> None:
    """Create the home (0700), the master key (0600), the database and an example config.

    Safe to run again: an existing key, database or configuration file is kept as it is (the
    database is only migrated to the latest schema).
    """
    from mlconnector.store import init_home, key_file

    state = get_context(ctx)
    config_path = state.config_file()
    config = state.load_config(missing_ok=True)
    env = store_env(config, state.env)
    key_path = key_file(env)
    had_key = key_path.exists()
    home = init_home(env)
    out = state.console
    out.print(f"home      {escape(str(home))} (mode 700)")
    if env.get(MASTER_KEY_ENV):
        out.print(f"key       from the environment variable {MASTER_KEY_ENV} (no key file)")
    else:
        out.print(
            f"key       {escape(str(key_path))} ({'kept' if had_key else 'created'}, mode 600)"
        )
    dialect = asyncio.run(_migrate(state, config))
    out.print(f"database  {escape(_safe_url(config.database_url))} ({dialect}, migrated)")
    if config_path.exists():
        out.print(f"config    {escape(str(config_path))} (kept)")
    else:
        write_atomically(config_path, example_config(), mode=0o644)
        out.print(f"config    {escape(str(config_path))} (example written)")
    out.print(
        state.hint(
            "next: `mlconnector connections add NAME --pcn …` (or `mlconnector connections add "
            "NAME --sandbox` to try it against `mlconnector sandbox`), then "
            "`mlconnector credentials set`"
        )
    )


async def _migrate(state: CliContext, config: Config) -> str:
    async with opened_store(config, state.env, state.clock, vault=False) as store:
        return store.dialect


def _safe_url(url: str) -> str:
    """A database URL without its password (``user:***@host``)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{userinfo}{at}{host}"


keys_app = typer.Typer(help="Manage the vault's master key.", no_args_is_help=True)


@keys_app.command("rotate")
@reports_errors
def rotate(
    ctx: typer.Context,
    new_key_file: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the new key (mode 600) when the key comes from "
            f"{MASTER_KEY_ENV}; required in that case, since the key is never printed.",
        ),
    ] = None,
) -> None:
    """Re-encrypt every credential under a new master key (all or nothing).

    With the key file {home}/master.key the file is replaced; with the key in
    MLCONNECTOR_MASTER_KEY the new key is written to --new-key-file and the variable must then
    be set to it.
    """
    state = get_context(ctx)
    config = state.load_config()
    env = store_env(config, state.env)
    if env.get(MASTER_KEY_ENV) and new_key_file is None:
        raise VaultError(
            f"the master key comes from {MASTER_KEY_ENV}, so the new key has nowhere to go",
            hint="pass --new-key-file PATH (written with mode 600), then set the variable to it",
        )
    from mlconnector.store import generate_key

    new_key = generate_key()
    if env.get(MASTER_KEY_ENV) and new_key_file is not None:
        # Saved before anything is re-encrypted: a crash after this point must not lose the key.
        write_atomically(new_key_file, new_key.decode("ascii") + "\n", mode=0o600)
    count, version = asyncio.run(_rotate(state, config, new_key))
    state.console.print(f"re-encrypted {count} credential(s); new key version {version}")
    if new_key_file is not None and env.get(MASTER_KEY_ENV):
        state.console.print(
            f"set {MASTER_KEY_ENV} to the content of {escape(str(new_key_file))} "
            "before the next run"
        )


async def _rotate(state: CliContext, config: Config, new_key: bytes) -> tuple[int, str]:
    from mlconnector.store import load_vault, rotate_keys

    vault = load_vault(store_env(config, state.env))
    async with opened_store(config, state.env, state.clock) as store:
        count = await store.verify_credentials(vault)
        new_vault = await rotate_keys(store, vault, new_key)
    return count, new_vault.key_version
