"""What a command may touch outside itself, injected so tests can replace every piece."""

from __future__ import annotations

import functools
import os
import ssl
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ParamSpec, TextIO, TypeVar, cast

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from mlconnector.clock import Clock, SystemClock
from mlconnector.commands.invocation import PROGRAM, as_invoked, invoked_as
from mlconnector.config import Config, load_config, resolve_config_path
from mlconnector.errors import ConnectorError

#: exit statuses (docs/operations.md): a run's outcome decides it for the commands that run flows
EXIT_OK = 0
EXIT_FAILED = 1
#: Typer/Click's own status for a wrong command line (unknown option, missing argument)
EXIT_USAGE = 2
EXIT_PARTIAL = 3
OUTCOME_EXIT = {"ok": EXIT_OK, "partial": EXIT_PARTIAL, "failed": EXIT_FAILED}

P = ParamSpec("P")
R = TypeVar("R")


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS client context (httpx's default: certifi, or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR``). Loading the CA bundle costs ~20-80 ms of CPU; without a shared context
    every client paid it again, and a worker makes 2-3 clients per connection it runs."""
    return httpx.create_ssl_context()


def _default_http() -> httpx.AsyncClient:
    # Real hosts: bounded timeouts so a dead host fails a ping instead of hanging it.
    return httpx.AsyncClient(timeout=httpx.Timeout(20.0, connect=10.0), verify=tls_context())


@dataclass
class CliContext:
    """The environment of one command run.

    ``env`` replaces ``os.environ`` for every setting the commands read; ``http`` makes the
    ``httpx.AsyncClient`` the remote checks use (tests give one with an ``ASGITransport`` or
    point the config at simulators served on loopback).
    """

    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    config_path: Path | None = None
    console: Console = field(default_factory=Console)
    err_console: Console = field(default_factory=lambda: Console(stderr=True))
    stdin: TextIO | None = None
    http: Callable[[], httpx.AsyncClient] = _default_http
    clock: Clock = field(default_factory=SystemClock)
    #: configure the process's logging when the configuration is first loaded
    configure_logging: bool = True
    _logging_done: bool = field(default=False, repr=False)
    #: how the program was started (``uv run mlconnector``…); default: from ``env`` and argv
    program: str | None = None

    def __post_init__(self) -> None:
        if self.program is None:
            self.program = invoked_as(self.env, sys.argv)

    def cmd(self, args: str) -> str:
        """``mlconnector ARGS`` written the way this program was started (for hints)."""
        return f"{self.program} {args}"

    def hint(self, text: str) -> str:
        """``text`` with each `` `mlconnector …` `` command as this program was started."""
        return as_invoked(text, self.program or PROGRAM)

    def config_file(self) -> Path:
        """The configuration file this run uses (it may not exist yet)."""
        return resolve_config_path(self.config_path, self.env)

    def load_config(self, *, missing_ok: bool = False) -> Config:
        """Load and validate the configuration (``ConfigError`` on any problem). The first load
        configures logging from it (``log_level``, ``log_format``), once per command run."""
        config = load_config(self.config_path, self.env, missing_ok=missing_ok)
        if self.configure_logging and not self._logging_done:
            from mlconnector.logsetup import configure_logging

            configure_logging(config.log_level, config.log_format)
            self._logging_done = True
        return config

    def read_stdin(self) -> str:
        """All of standard input (the injected stream, or the process's)."""
        return (self.stdin or sys.stdin).read()

    def fail(self, message: str, *, hint: str | None = None, code: int = 1) -> typer.Exit:
        """Print an error (and what to do) on stderr; return the ``Exit`` to raise."""
        self.err_console.print(f"[bold red]error:[/] {escape(self.hint(message))}")
        if hint:
            self.err_console.print(f"[bold]what to do:[/] {escape(self.hint(hint))}")
        return typer.Exit(code)


def get_context(ctx: typer.Context) -> CliContext:
    """The ``CliContext`` of this invocation (created by the root callback)."""
    state = ctx.find_root().obj
    if not isinstance(state, CliContext):
        raise RuntimeError("the root callback did not set up a CliContext")
    return state


def reports_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a ``ConnectorError`` raised by a command into a clear message and exit status 1.

    The decorated command must take the ``typer.Context`` as a parameter.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ConnectorError as exc:
            # Typer hands over its base Context class, so look for the context by behaviour.
            ctx = cast(
                typer.Context, next(a for a in (*args, *kwargs.values()) if hasattr(a, "find_root"))
            )
            raise get_context(ctx).fail(describe_error(exc), hint=exc.hint) from None

    return wrapper


def describe_error(exc: ConnectorError) -> str:
    """The error's message and identifying details, without the hint (printed on its own)."""
    parts = [exc.message]
    if exc.record:
        parts.append(f"record: {exc.record}")
    if exc.status is not None:
        parts.append(f"HTTP {exc.status}")
    if exc.request_id:
        parts.append(f"request id {exc.request_id}")
    return " | ".join(parts)
