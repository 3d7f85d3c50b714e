"""``/metrics`` (Prometheus, through ``prometheus-client``), ``/healthz`` and ``/livez``.

Two kinds of series, one exposition:

* **Events** counted as they happen, by :class:`Metrics` (the process's
  :class:`~mlconnector.observe.Observer`): API requests, retries, 429 waits, webhook deliveries,
  operation state changes, runs by outcome (``_total`` counters) and request/run durations
  (histograms). Each :class:`Metrics` owns its :class:`~prometheus_client.CollectorRegistry`:
  nothing is registered on the library's global registry, so every app (and test) has its own.
* **State** read from the store on each scrape (gauges): operations by state, inbox backlog,
  audit events, cursors, open quarantined records per flow, and each flow's last run (when,
  how long, its outcome). The store is
  shared by every worker, so these are the deployment's truth whichever node is scraped.

**Several processes** (``mlconnector worker`` and ``serve`` on one host): set
``PROMETHEUS_MULTIPROC_DIR`` to an empty, writable directory in the environment of every process
*before it starts* (prometheus-client reads it at import). Each process then writes its counters
there and ``/metrics`` sums every process's files (``prometheus_client.multiprocess``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mlconnector import __version__
from mlconnector.clock import Clock
from mlconnector.http.client import RequestEvent
from mlconnector.store import Operation, OperationState, Store, StoreError
from mlconnector.sync.quarantine import QUARANTINE_FLOWS
from mlconnector.sync.runs import LAST_RUN_SUFFIX, OUTCOMES, LastRun, last_runs

log = logging.getLogger("mlconnector.web")

Endpoint = Callable[[Request], Awaitable[Response]]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: request latency buckets (seconds): a fast API call to a slow, retried one
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: run duration buckets (seconds): an empty pass to a long backfill-sized one
RUN_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0)


def counts_to_files() -> bool:
    """Whether this process's counters are written to the multi-process directory (decided by
    prometheus-client when it was imported)."""
    return bool(values.ValueClass.__name__ == "MmapedValue")


def system_label(service: str) -> str:
    """A client's service name as a label value: ``ShipStation V2`` → ``shipstation-v2``."""
    return "-".join(service.lower().split())


class Metrics:
    """The counters and histograms of one process, on their own registry.

    ``env`` is read for :data:`MULTIPROC_ENV` (default ``os.environ``); when it is set,
    :meth:`events` collects every process's files from that directory instead of this process's
    memory. In that mode build one per process (the files are keyed by process, not by object).
    """

    def __init__(self, *, env: Mapping[str, str] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = (env if env is not None else os.environ).get(MULTIPROC_ENV) or None
        if self.multiprocess_dir is not None and not counts_to_files():
            log.warning(
                "%s is set but was not in the environment when prometheus-client was imported: "
                "/metrics shows the other processes' counters, not this one's; set it before "
                "the process starts",
                MULTIPROC_ENV,
            )
        r = self.registry
        self.requests = Counter(
            "mlconnector_api_requests_total",
            "HTTP exchanges with Plex and ShipStation (every attempt), by system, method, "
            "endpoint template and status (0: no response).",
            ["system", "method", "endpoint", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "mlconnector_api_request_duration_seconds",
            "Latency of each HTTP exchange with Plex and ShipStation.",
            ["system", "method", "endpoint"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "mlconnector_api_retries_total",
            "Requests tried again after an error (429 waits are counted apart), by error type.",
            ["system", "error"],
            registry=r,
        )
        self.rate_limit_waits = Counter(
            "mlconnector_api_rate_limit_waits_total",
            "429 answers waited out before trying again.",
            ["system"],
            registry=r,
        )
        self.webhooks = Counter(
            "mlconnector_webhook_deliveries_total",
            "Webhook deliveries answered by the receiver, by outcome.",
            ["connection", "outcome"],
            registry=r,
        )
        self.operations = Counter(
            "mlconnector_operation_transitions_total",
            "Outbox operations entering a state (pending, sent, confirmed, failed, dead).",
            ["connection", "flow", "state"],
            registry=r,
        )
        self.runs = Counter(
            "mlconnector_runs_total",
            "Full flow runs, by outcome (ok, partial, failed).",
            ["connection", "flow", "outcome"],
            registry=r,
        )
        self.run_seconds = Histogram(
            "mlconnector_run_duration_seconds",
            "How long each full flow run took.",
            ["connection", "flow"],
            buckets=RUN_BUCKETS,
            registry=r,
        )

    # --- the Observer ----------------------------------------------------------------------------
    def http_exchange(self, event: RequestEvent) -> None:
        system = system_label(event.service)
        endpoint = event.endpoint or "/"
        status = str(event.status or 0)
        self.requests.labels(system, event.method, endpoint, status).inc()
        self.request_seconds.labels(system, event.method, endpoint).observe(event.elapsed)
        if event.retry_in is None:
            return
        if event.rate_limited:
            self.rate_limit_waits.labels(system).inc()
        else:
            self.retries.labels(system, event.error_type or "unknown").inc()

    def operation_changed(self, connection: str, flow: str, state: str) -> None:
        self.operations.labels(connection, flow, state).inc()

    def run_finished(self, connection: str, flow: str, outcome: str, seconds: float) -> None:
        self.runs.labels(connection, flow, outcome).inc()
        self.run_seconds.labels(connection, flow).observe(seconds)

    def webhook_delivery(self, connection: str, outcome: str) -> None:
        self.webhooks.labels(connection, outcome).inc()

    # --- exposition ------------------------------------------------------------------------------
    def events(self) -> Collector:
        """What to expose of the counted events: this process's registry, or (multi-process
        mode) every process's files in :attr:`multiprocess_dir`."""
        if self.multiprocess_dir is None:
            return self.registry
        merged = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(merged, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return merged

    async def render(self, store: Store) -> bytes:
        """The exposition text: the events, then the store's state read now."""
        scrape = CollectorRegistry(auto_describe=False)
        scrape.register(_Fixed(await store_families(store)))
        scrape.register(self.events())
        return generate_latest(scrape)


class _Fixed(Collector):
    """Families read before the (synchronous) collection."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


async def store_families(store: Store) -> list[Metric]:
    """The state gauges, read from ``store`` now (see the module doc)."""
    cf = ["connection", "flow"]
    build = _gauge("mlconnector_build_info", "The running version (always 1).", ["version"])
    build.add_metric([__version__], 1)
    ops = _gauge(
        "mlconnector_operations",
        "Outbox operations by connection and state.",
        ["connection", "state"],
    )
    backlog = _gauge(
        "mlconnector_webhook_inbox_pending",
        "Webhook deliveries received but not processed yet.",
        ["connection"],
    )
    audit = _gauge("mlconnector_audit_events", "Audit events recorded (all connections).", [])
    cursor = _gauge(
        "mlconnector_flow_cursor_advanced_timestamp_seconds",
        "When each flow's cursor last advanced (it advances only after a committed batch).",
        cf,
    )
    last_at = _gauge(
        "mlconnector_flow_last_run_timestamp_seconds",
        "When the engine last finished a full run of each flow (any outcome).",
        cf,
    )
    last_ok = _gauge(
        "mlconnector_flow_last_run_ok", "1 when the last run of each flow was ok, else 0.", cf
    )
    last_outcome = _gauge(
        "mlconnector_flow_last_run_outcome",
        "1 for the outcome (ok, partial, failed) of the last run of each flow, 0 for the others.",
        [*cf, "outcome"],
    )
    last_seconds = _gauge(
        "mlconnector_flow_last_run_duration_seconds", "How long the last run of each flow took.", cf
    )
    quarantined = _gauge(
        "mlconnector_quarantined_records",
        "Records a flow could not read or map, set aside and retried every pass (open).",
        cf,
    )
    open_quarantined = await store.count_open_quarantined()
    pending = await store.count_pending_webhooks()
    for conn in await store.list_connections():
        name = conn.name
        counts = await store.count_operations(connection=name)
        for state in OperationState:
            ops.add_metric([name, state.value], counts[state])
        backlog.add_metric([name], pending.get(name, 0))
        mine = {f for c, f in open_quarantined if c == name} | set(QUARANTINE_FLOWS)
        for flow in sorted(mine):
            quarantined.add_metric([name, flow], open_quarantined.get((name, flow), 0))
        runs: dict[str, LastRun] = {}
        for c in await store.list_cursors(name):
            if c.flow.endswith(LAST_RUN_SUFFIX):  # the engine's run records: exposed as last_run
                run = LastRun.from_json(c.flow.removesuffix(LAST_RUN_SUFFIX), c.value)
                if run is not None:
                    runs[run.flow] = run
            else:
                cursor.add_metric([name, c.flow], c.updated_at.timestamp())
        for flow, run in sorted(runs.items()):
            last_at.add_metric([name, flow], run.at.timestamp())
            last_ok.add_metric([name, flow], 1 if run.ok else 0)
            last_seconds.add_metric([name, flow], run.seconds)
            for outcome in OUTCOMES:
                last_outcome.add_metric([name, flow, outcome], 1 if run.result == outcome else 0)
    audit.add_metric([], await store.count_audit_events())
    return [
        build,
        ops,
        backlog,
        audit,
        cursor,
        last_at,
        last_ok,
        last_outcome,
        last_seconds,
        quarantined,
    ]


# --- health ------------------------------------------------------------------------------------
async def health(store: Store) -> dict[str, Any]:
    """``ok`` or ``degraded`` for the enabled connections: degraded when a flow's last run was
    not ok or an operation is failed or dead. Names the flows and counts the operations; no
    error text (the endpoint is unauthenticated: the dashboard has the details)."""
    flows: list[dict[str, Any]] = []
    totals = {"failed": 0, "dead": 0}
    per_connection: dict[str, dict[str, int]] = {}
    for conn in await store.list_connections(enabled_only=True):
        counts = await store.count_operations(connection=conn.name)
        mine = {"failed": counts[OperationState.FAILED], "dead": counts[OperationState.DEAD]}
        per_connection[conn.name] = mine
        for key, value in mine.items():
            totals[key] += value
        for flow, run in sorted((await last_runs(store, conn.name)).items()):
            if not run.ok:
                flows.append(
                    {
                        "connection": conn.name,
                        "flow": flow,
                        "outcome": run.result,
                        "at": run.at.isoformat(),
                    }
                )
    degraded = bool(flows) or any(totals.values())
    return {
        "status": "degraded" if degraded else "ok",
        "flows": flows,
        "operations": totals,
        "connections": per_connection,
    }


def health_endpoint(store: Store, clock: Clock) -> Endpoint:
    """``GET /healthz``: 200 ``ok``; **503** ``degraded`` (a flow's last run partial or failed,
    or failed/dead operations; the body names them); 503 ``unavailable`` without a database."""

    async def healthz(request: Request) -> Response:
        try:
            await store.ping()
            body = await health(store)
        except StoreError as exc:
            log.warning("health check: %s", exc)
            return JSONResponse(
                {"status": "unavailable", "database": "unreachable"}, status_code=503
            )
        body = {"database": store.dialect, "time": clock.now().isoformat(), **body}
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    return healthz


async def livez(request: Request) -> Response:
    """``GET /livez``: 200 while the process serves requests (no database, no flows): for
    liveness probes and load balancers, which must not drop a node because a flow failed."""
    return JSONResponse({"status": "alive"})


def metrics_endpoint(store: Store, metrics: Metrics) -> Endpoint:
    """``GET /metrics``: Prometheus text format."""

    async def endpoint(request: Request) -> Response:
        return Response(await metrics.render(store), media_type=CONTENT_TYPE)

    return endpoint


# --- webhook deliveries ------------------------------------------------------------------------
def delivery_outcome(response: Response) -> str:
    """A bounded name for the receiver's answer (``accepted``, ``duplicate``, ``refused`` ...)."""
    status = response.status_code
    if status == 200:
        try:
            duplicate = bool(json.loads(bytes(response.body)).get("duplicate"))
        except (ValueError, AttributeError):
            duplicate = False
        return "duplicate" if duplicate else "accepted"
    return {
        400: "rejected",
        404: "refused",
        413: "too_large",
        429: "throttled",
        503: "unavailable",
    }.get(status, f"http_{status // 100}xx")


def counting_deliveries(
    handle: Endpoint, metrics: Metrics, known: Callable[[str], bool]
) -> Endpoint:
    """``handle`` (the receiver), counting each answer by connection and outcome. A connection
    name that is not configured is counted as ``unknown`` (the path is the sender's to choose:
    it must not grow the label set)."""

    async def counted(request: Request) -> Response:
        response = await handle(request)
        name = str(request.path_params.get("connection", ""))
        metrics.webhook_delivery(name if known(name) else "unknown", delivery_outcome(response))
        return response

    return counted


def counting_replays(
    replay: Callable[..., Awaitable[list[Operation]]], metrics: Metrics
) -> Callable[..., Awaitable[list[Operation]]]:
    """The UI's replay, counting each operation it puts back to ``pending``."""

    async def counted(*args: Any, **kwargs: Any) -> list[Operation]:
        replayed = await replay(*args, **kwargs)
        for op in replayed:
            metrics.operation_changed(op.connection, op.flow, op.state.value)
        return replayed

    return counted
