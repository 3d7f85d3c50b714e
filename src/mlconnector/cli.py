"""The ``mlconnector`` command line: thin commands over the library.

Commands live in :mod:`mlconnector.commands`; this module assembles them under one Typer app and
sets up the injected :class:`~mlconnector.commands.context.CliContext` (tests pass their own
with ``CliRunner().invoke(app, args, obj=CliContext(...))``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperOption

from mlconnector import __version__
from mlconnector.commands import (
    backfill_cmd,
    config_cmd,
    connections,
    credentials,
    demo,
    lookup_cmd,
    ops_cmd,
    ping,
    quarantine_cmd,
    reconcile_cmd,
    service,
    setup,
    sync_cmd,
    users,
)
from mlconnector.commands.context import CliContext, get_context


def _flag_type(self: TyperOption, ctx: Any) -> str | None:
    # Typer labels every flag "<bool>" in the help's type column; a flag takes no value.
    return None if self.is_flag else _option_type(self, ctx)


_option_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]

app = typer.Typer(
    name="mlconnector",
    help="Keep a Plex ERP tenant and a ShipStation account in sync.",
    no_args_is_help=True,
    add_completion=False,
    # a traceback's local variables could hold a secret: never print them
    pretty_exceptions_show_locals=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Configuration file (default: $MLCONNECTOR_CONFIG, "
            "else $MLCONNECTOR_HOME/mlconnector.toml, home ~/.mlconnector).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Keep a Plex ERP tenant and a ShipStation account in sync."""
    if not isinstance(ctx.obj, CliContext):
        ctx.obj = CliContext()
    if config is not None:
        ctx.obj.config_path = config


@app.command()
def version(ctx: typer.Context) -> None:
    """Print the version."""
    get_context(ctx).console.print(f"ml-connector {__version__}")


app.command("init")(setup.init)
app.add_typer(config_cmd.app, name="config")
app.add_typer(connections.app, name="connections")
app.add_typer(credentials.app, name="credentials")
app.add_typer(setup.keys_app, name="keys")
app.add_typer(users.app, name="users")
app.command("ping")(ping.ping)
app.command("lookup")(lookup_cmd.lookup)
# operating commands (engine, web, sandbox)
app.add_typer(sync_cmd.app, name="sync")
app.command("audit")(ops_cmd.audit)
app.command("replay")(ops_cmd.replay)
app.add_typer(ops_cmd.operations_app, name="operations")
app.add_typer(quarantine_cmd.app, name="quarantine")
app.command("run")(service.run)
app.command("worker")(service.worker)
app.command("serve")(service.serve)
app.add_typer(service.webhooks_app, name="webhooks")
app.command("sandbox")(service.sandbox)
app.command("demo")(demo.demo)
app.add_typer(backfill_cmd.app, name="backfill")
app.command("reconcile")(reconcile_cmd.reconcile)


def main() -> None:
    """Entry point of the ``mlconnector`` script."""
    app()


if __name__ == "__main__":
    main()
