"""Building blocks shared by both schedulers: the flow registry, the process name recorded with
each run, the in-process scheduler's options and :class:`FlowBusyError`."""

from __future__ import annotations

import importlib
import logging
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from mlconnector.errors import RetryableError
from mlconnector.sync.base import Flow

log = logging.getLogger("mlconnector.engine")

#: every flow the product knows, in the order a cycle runs them (module, class)
FLOW_CLASSES: dict[str, tuple[str, str]] = {
    "orders": ("mlconnector.sync.orders", "OrdersFlow"),
    "order_status": ("mlconnector.sync.order_status", "OrderStatusFlow"),
    "shipments": ("mlconnector.sync.shipments", "ShipmentsFlow"),
    "inventory": ("mlconnector.sync.inventory", "InventoryFlow"),
}
#: the flow that processes the webhook inbox (nudged by the receiver)
INBOX_FLOW = "shipments"

Key = tuple[str, str]
Mode = Literal["run", "retry"]


def default_flows() -> dict[str, Flow]:
    """One instance of every flow present in this build, by name (imported lazily, so a flow
    still being written elsewhere does not stop the others)."""
    flows: dict[str, Flow] = {}
    for name, (module, cls) in FLOW_CLASSES.items():
        try:
            flow_cls = getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError):
            log.warning("flow %s is not available in this build; skipped", name)
            continue
        flows[name] = flow_cls()
    return flows


def default_owner() -> str:
    """A name unique to this process (host, pid, random suffix), recorded with each run."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class FlowBusyError(RetryableError):
    """The flow is running right now (in this process, or as a job of the engine)."""


@dataclass(frozen=True)
class EngineOptions:
    """Tuning of the in-process scheduler (defaults suit production)."""

    #: longest sleep between scheduler passes (due retries are noticed per pass; due runs wake
    #: the scheduler at their time)
    tick: float = 5.0
    #: seconds between runs per flow name, overriding ``[connections.X.poll]``
    intervals: Mapping[str, float] = field(default_factory=dict)
    #: the name recorded with each run (default: :func:`default_owner`)
    owner: str | None = None
    #: flow runs in progress at once in this process (the others wait their turn, FIFO)
    concurrency: int = 32
