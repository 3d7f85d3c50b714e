"""A live line for long commands (``sync … --once``, ``reconcile``, ``ping``), on a terminal only.

:class:`Activity` is an :class:`~mlconnector.observe.Observer`: the engine and the runtime tell it
about every HTTP exchange and outbox change, and it shows what is being done, the last request,
how many requests and writes so far, and the time spent. Standard output that is not a terminal
(a pipe, a file, ``--json``, the tests) gets nothing: the line is never mixed into output meant
for a program.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from mlconnector.http.client import endpoint_template

if TYPE_CHECKING:
    from mlconnector.http.client import RequestEvent


class Activity:
    """What a long command is doing right now (see the module doc)."""

    def __init__(self, console: Console, *, enabled: bool | None = None) -> None:
        self.enabled = console.is_terminal if enabled is None else enabled
        self.requests = 0
        self.writes = 0
        self.doing = ""
        self.last = ""
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,  # gone when done: the command's own output follows
        )
        self._task: TaskID | None = None

    # --- what the command says -----------------------------------------------------------------
    def step(self, doing: str) -> None:
        """Now doing ``doing`` (``orders@acme``, ``acme: credentials``)."""
        self.doing = doing
        self._refresh()

    def line(self) -> str:
        """The text shown: ``orders@acme · 42 requests, 3 writes · last GET /orders``."""
        parts = [self.doing or "working"]
        counts = f"{self.requests} request(s)"
        if self.writes:
            counts += f", {self.writes} write(s) confirmed"
        parts.append(counts)
        if self.last:
            parts.append(f"last {self.last}")
        return " · ".join(parts)

    def _refresh(self) -> None:
        if self._task is not None:
            self._progress.update(self._task, description=escape(self.line()))

    # --- the Observer --------------------------------------------------------------------------
    def http_exchange(self, event: RequestEvent) -> None:
        self.requests += 1
        self.last = f"{event.method} {event.endpoint or '/'} → {event.status or 'no answer'}"
        self._refresh()

    def operation_changed(self, connection: str, flow: str, state: str) -> None:
        if state == "confirmed":
            self.writes += 1
            self._refresh()

    def run_finished(self, connection: str, flow: str, outcome: str, seconds: float) -> None:
        return None

    def webhook_delivery(self, connection: str, outcome: str) -> None:
        return None

    # --- for plain httpx clients (ping) ----------------------------------------------------------
    def watch(self, client: httpx.AsyncClient) -> httpx.AsyncClient:
        """Count the responses of ``client`` too (checks that use a client directly)."""

        async def seen(response: httpx.Response) -> None:
            self.requests += 1
            path = endpoint_template(response.request.url.path)
            self.last = f"{response.request.method} {path} → {response.status_code}"
            self._refresh()

        client.event_hooks["response"].append(seen)
        return client

    # --- showing it ----------------------------------------------------------------------------
    def __enter__(self) -> Activity:
        if self.enabled:
            self._progress.start()
            self._task = self._progress.add_task(escape(self.line()), total=None)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._progress.stop()
            self._task = None
