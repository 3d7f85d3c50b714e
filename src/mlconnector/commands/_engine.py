"""What the operating commands share: the engine for a CLI run, its HTTP clients, the web server.

**Test hook** (documented, off unless set): ``MLCONNECTOR_TEST_EXIT_AFTER="METHOD /path"`` in the
command's environment makes the process exit at once (``os._exit(1)``, no clean-up) right after
the response to the first such request arrives, i.e. after the remote system applied the write
and before the connector confirms it. ``tests/e2e/test_crash_restart.py`` uses it to prove that a
restart resolves the operation by looking remotely instead of sending it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

import httpx

from mlconnector.commands.context import CliContext
from mlconnector.commands.state import ensure_connection_row, opened_store
from mlconnector.config import Config, WebSettings

if TYPE_CHECKING:
    import socket

    import uvicorn
    from starlette.types import ASGIApp

    from mlconnector.observe import Observer
    from mlconnector.store import Store
    from mlconnector.sync.engine import Engine, EngineOptions

EXIT_AFTER_ENV = "MLCONNECTOR_TEST_EXIT_AFTER"


def http_factory(state: CliContext) -> Callable[[str, str], httpx.AsyncClient]:
    """``http_factory(service, base_url)`` for the runtimes, from the context's client maker
    (with the crash test hook when its variable is set)."""
    target = state.env.get(EXIT_AFTER_ENV, "").strip()

    def factory(service: str, base_url: str) -> httpx.AsyncClient:
        client = state.http()
        if target:
            method, _, path = target.partition(" ")

            async def exit_after(response: httpx.Response) -> None:
                request = response.request
                if request.method == method.upper() and request.url.path == path:
                    os._exit(1)  # the test hook: die between send and confirm

            client.event_hooks["response"].append(exit_after)
        return client

    return factory


@contextlib.asynccontextmanager
async def opened_engine(
    state: CliContext,
    config: Config,
    *,
    connections: list[str] | None = None,
    options: EngineOptions | None = None,
    observer: Observer | None = None,
) -> AsyncIterator[tuple[Engine, Store]]:
    """The store (every configured connection has its row) and an engine over it; closed on
    exit. ``observer`` receives the engine's metrics events (default: none)."""
    from mlconnector.observe import NULL_OBSERVER
    from mlconnector.sync.engine import Engine

    async with opened_store(config, state.env, state.clock) as store:
        for name, settings in config.connections.items():
            await ensure_connection_row(store, name, settings)
        engine = Engine(
            config,
            store,
            state.clock,
            http_factory=http_factory(state),
            options=options,
            connections=connections,
            observer=observer or NULL_OBSERVER,
        )
        try:
            yield engine, store
        finally:
            await engine.aclose()


def pick_connections(state: CliContext, config: Config, connection: str | None) -> list[str]:
    """``[connection]`` (checked), or every enabled connection; an error when there is none."""
    if connection:
        config.connection(connection)
        return [connection]
    names = sorted(n for n, c in config.connections.items() if c.enabled)
    if not names:
        raise state.fail("no enabled connection", hint="add one with `mlconnector connections add`")
    return names


def web_server(app: ASGIApp, settings: WebSettings) -> uvicorn.Server:
    """A uvicorn server with the ``[web]`` limits and read timeouts
    (:func:`mlconnector.web.server_config`: no access log, webhook paths carry a secret token)
    that leaves signal handling to the command."""
    import uvicorn

    from mlconnector.web.server import freeze_startup_heap, server_config

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            freeze_startup_heap()

    return _Server(server_config(app, settings))


@contextlib.contextmanager
def on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Call ``stop`` on SIGTERM/SIGINT while the block runs (main thread only)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
