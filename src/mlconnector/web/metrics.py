"""``/healthz`` and ``/metrics``.

The Prometheus exposition is written by hand: a handful of gauges read from the store on each
scrape does not justify a client-library dependency (and its process-global registry, which an app
factory building several apps in one process would have to work around). The text format is
simple and stable: ``# HELP``, ``# TYPE``, then ``name{label="value"} number`` lines.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from mlconnector.clock import Clock
from mlconnector.store import OperationState, Store, StoreError
from mlconnector.sync.runs import LAST_RUN_SUFFIX, last_runs

log = logging.getLogger("mlconnector.web")

Endpoint = Callable[[Request], Awaitable[Response]]
#: one sample: its labels (name, value) and its value
Sample = tuple[Sequence[tuple[str, str]], float]

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
        samples: Iterable[Sample],
    ) -> None:
        """One metric family: its HELP and TYPE lines, then every sample."""
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            number = repr(float(value)) if not float(value).is_integer() else str(int(value))
            self.lines.append(f"{name}{_labels(labels)} {number}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


#: every family exposed (all gauges), in output order, with its HELP text
FAMILIES = {
    "mlconnector_operations": "Outbox operations by connection and state.",
    "mlconnector_webhook_inbox_pending": "Webhook deliveries received but not processed yet.",
    "mlconnector_audit_events": "Audit events recorded (all connections).",
    "mlconnector_flow_cursor_advanced_timestamp_seconds": (
        "When each flow's cursor last advanced (it advances only after a committed batch)."
    ),
    "mlconnector_flow_last_run_timestamp_seconds": (
        "When the engine last finished a full run of each flow (any outcome)."
    ),
    "mlconnector_flow_last_run_ok": "1 when the last run of each flow succeeded, 0 when it failed.",
    "mlconnector_flow_last_run_duration_seconds": "How long the last run of each flow took.",
}


async def _connection_samples(
    store: Store, name: str, pending: dict[str, int], samples: dict[str, list[Sample]]
) -> None:
    """Add the samples of connection ``name`` to ``samples`` (by family)."""
    counts = await store.count_operations(connection=name)
    for state in OperationState:
        labels = (("connection", name), ("state", state.value))
        samples["mlconnector_operations"].append((labels, counts[state]))
    samples["mlconnector_webhook_inbox_pending"].append(
        ((("connection", name),), pending.get(name, 0))
    )
    for cursor in await store.list_cursors(name):
        if cursor.flow.endswith(LAST_RUN_SUFFIX):
            continue  # the engine's run records, exposed as last_run below
        labels = (("connection", name), ("flow", cursor.flow))
        samples["mlconnector_flow_cursor_advanced_timestamp_seconds"].append(
            (labels, cursor.updated_at.timestamp())
        )
    for flow, run in sorted((await last_runs(store, name)).items()):
        labels = (("connection", name), ("flow", flow))
        samples["mlconnector_flow_last_run_timestamp_seconds"].append((labels, run.at.timestamp()))
        samples["mlconnector_flow_last_run_ok"].append((labels, 1 if run.ok else 0))
        samples["mlconnector_flow_last_run_duration_seconds"].append((labels, run.seconds))


async def render_metrics(store: Store) -> str:
    """The exposition text for the current state of ``store``."""
    samples: dict[str, list[Sample]] = {name: [] for name in FAMILIES}
    pending = await store.count_pending_webhooks()
    for conn in await store.list_connections():
        await _connection_samples(store, conn.name, pending, samples)
    samples["mlconnector_audit_events"].append(((), await store.count_audit_events()))
    out = Exposition()
    for name, help_text in FAMILIES.items():
        out.family(name, "gauge", help_text, samples[name])
    return out.text()


def health_endpoint(store: Store, clock: Clock) -> Endpoint:
    """``GET /healthz``: 200 when the database answers, 503 when it does not."""

    async def healthz(request: Request) -> Response:
        try:
            await store.ping()
        except StoreError as exc:
            log.warning("health check: %s", exc)
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
