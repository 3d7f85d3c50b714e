"""The sync core: per-connection runtime, the idempotent outbox executor, and the flows.

* :mod:`.runtime` — :class:`ConnectionRuntime` / :func:`build_runtime` (clients, store, clock,
  shared rate limiters, redactor, alerts) for one connection;
* :mod:`.base` — :class:`Flow` protocol, :class:`FlowResult`, :class:`PlanItem`, :func:`audit`;
* :mod:`.outbox` — :class:`Outbox` (enqueue → mark_sent → call → confirm/fail), :func:`recover`,
  :func:`retry_due`, :func:`replay`;
* :mod:`.alerts` — :class:`AlertSink` and its log/webhook implementations.
"""

from mlconnector.sync.alerts import Alert, AlertSink, LogAlertSink, WebhookAlertSink
from mlconnector.sync.base import (
    BatchFlow,
    BatchResolveFlow,
    Flow,
    FlowResult,
    PlanItem,
    Resolution,
    StaleOperationError,
    audit,
    audit_event,
)
from mlconnector.sync.outbox import Outbox, recover, replay, retry_due
from mlconnector.sync.runtime import (
    ConnectionRuntime,
    HttpFactory,
    RuntimeStats,
    build_runtime,
    default_http_factory,
    missing_credential,
    plex_settings,
)

__all__ = [
    "Alert",
    "AlertSink",
    "BatchFlow",
    "BatchResolveFlow",
    "ConnectionRuntime",
    "Flow",
    "FlowResult",
    "HttpFactory",
    "LogAlertSink",
    "Outbox",
    "PlanItem",
    "Resolution",
    "RuntimeStats",
    "StaleOperationError",
    "WebhookAlertSink",
    "audit",
    "audit_event",
    "build_runtime",
    "default_http_factory",
    "missing_credential",
    "plex_settings",
    "recover",
    "replay",
    "retry_due",
]
