"""The ``mlconnector`` command line: thin commands over the library."""

from __future__ import annotations

import typer
from rich.console import Console

from mlconnector import __version__

app = typer.Typer(
    name="mlconnector",
    help="Keep a Plex ERP tenant and a ShipStation account in sync.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"ml-connector {__version__}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
