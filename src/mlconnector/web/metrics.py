"""``/healthz`` and ``/metrics``.

The Prometheus exposition is written by hand: a handful of gauges read from the store on each
scrape does not justify a client-library dependency (and its process-global registry, which an app
factory building several apps in one process would have to work around). The text format is
simple and stable: ``# HELP``, ``# TYPE``, then ``name{label="value"} number`` lines.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from mlconnector.clock import Clock
from mlconnector.store import OperationState, Store
from mlconnector.store.repository import READ_ONLY_OPTION
from mlconnector.store.schema import audit_events, webhook_inbox

log = logging.getLogger("mlconnector.web")

Endpoint = Callable[[Request], Awaitable[Response]]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    """A label value as the exposition format wants it."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Sequence[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


class Exposition:
    """Builds one exposition text, family by family."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[Sequence[tuple[str, str]], float]],
    ) -> None:
        """One metric family: its HELP and TYPE lines, then every sample."""
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            number = repr(float(value)) if not float(value).is_integer() else str(int(value))
            self.lines.append(f"{name}{_labels(labels)} {number}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


# --- read-only aggregates ----------------------------------------------------------------------
# The Store has no counting methods for these yet; they live here, together, until they move
# into ``store/repository.py``. They run on the store's read-only connections (on SQLite a plain
# connection would BEGIN IMMEDIATE and take the write lock for a scrape).


def _reader(store: Store) -> AsyncEngine:
    return store.engine.execution_options(**{READ_ONLY_OPTION: True})


async def ping(store: Store) -> None:
    """Raise if the database does not answer a trivial query."""
    async with _reader(store).connect() as conn:
        await conn.execute(select(1))


async def count_audit_events(store: Store) -> int:
    """Total audit events, all connections."""
    query = select(func.count()).select_from(audit_events)
    async with _reader(store).connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def count_pending_webhooks(store: Store) -> dict[str, int]:
    """Unprocessed inbox deliveries per connection (connections with none are absent)."""
    query = (
        select(webhook_inbox.c.connection, func.count())
        .where(webhook_inbox.c.processed_at.is_(None))
        .group_by(webhook_inbox.c.connection)
    )
    async with _reader(store).connect() as conn:
        return {name: int(n) for name, n in await conn.execute(query)}


async def render_metrics(store: Store) -> str:
    """The exposition text for the current state of ``store``."""
    out = Exposition()
    connections = [c.name for c in await store.list_connections()]
    pending = await count_pending_webhooks(store)
    op_samples: list[tuple[Sequence[tuple[str, str]], float]] = []
    inbox_samples: list[tuple[Sequence[tuple[str, str]], float]] = []
    cursor_samples: list[tuple[Sequence[tuple[str, str]], float]] = []
    for name in connections:
        counts = await store.count_operations(connection=name)
        for state in OperationState:
            op_samples.append(((("connection", name), ("state", state.value)), counts[state]))
        inbox_samples.append(((("connection", name),), pending.get(name, 0)))
        for cursor in await store.list_cursors(name):
            when = cursor.updated_at.timestamp()
            cursor_samples.append(((("connection", name), ("flow", cursor.flow)), when))
    out.family(
        "mlconnector_operations",
        "gauge",
        "Outbox operations by connection and state.",
        op_samples,
    )
    out.family(
        "mlconnector_webhook_inbox_pending",
        "gauge",
        "Webhook deliveries received but not processed yet.",
        inbox_samples,
    )
    out.family(
        "mlconnector_audit_events",
        "gauge",
        "Audit events recorded (all connections).",
        [((), await count_audit_events(store))],
    )
    out.family(
        "mlconnector_flow_last_success_timestamp_seconds",
        "gauge",
        "When each flow's cursor last advanced (it advances only after a committed batch).",
        cursor_samples,
    )
    return out.text()


def health_endpoint(store: Store, clock: Clock) -> Endpoint:
    """``GET /healthz``: 200 when the database answers, 503 when it does not."""

    async def healthz(request: Request) -> Response:
        try:
            await ping(store)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("health check: database unreachable: %s", type(exc).__name__)
            return JSONResponse(
                {"status": "unavailable", "database": "unreachable"}, status_code=503
            )
        return JSONResponse(
            {"status": "ok", "database": store.dialect, "time": clock.now().isoformat()}
        )

    return healthz


def metrics_endpoint(store: Store) -> Endpoint:
    """``GET /metrics``: Prometheus text format."""

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(await render_metrics(store), media_type=CONTENT_TYPE)

    return metrics
