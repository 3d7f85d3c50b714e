"""Scheduler building blocks of the engine: the flow registry, lease owner names, options and the
per-(connection, flow) schedule slot. :mod:`.engine` puts them to work."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from mlconnector.errors import RetryableError
from mlconnector.sync.base import Flow
from mlconnector.sync.runs import RunReport

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
    """A lease owner name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead_local_process(owner: str) -> bool:
    """Whether ``owner`` (``host:pid:suffix``, :func:`default_owner`) names a process of this
    host that is not running any more. Anything else (another host, a live or unknown pid, a
    name in another form) is ``False``: only expiry frees such a lease."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, owned by someone else
    return False


class FlowBusyError(RetryableError):
    """Another worker holds the lease of the flow: it is running there right now."""


@dataclass(frozen=True)
class EngineOptions:
    """Tuning of the scheduler (defaults suit production)."""

    #: how long a lease lives without renewal (a dead worker's flows wait this long)
    lease_ttl: float = 120.0
    #: seconds between scheduler passes (due retries and lease take-overs are noticed per tick)
    tick: float = 5.0
    #: seconds between runs per flow name, overriding ``[connections.X.poll]``
    intervals: Mapping[str, float] = field(default_factory=dict)
    #: the lease owner name (default: :func:`default_owner`)
    owner: str | None = None


@dataclass
class Slot:
    """Scheduler state of one (connection, flow)."""

    next_due: datetime | None = None  # None: ask the store when it last ran
    failures: int = 0
    alerted: bool = False
    nudged: bool = False
    recovered: bool = False
    started: datetime | None = None
    task: asyncio.Task[RunReport] | None = None
