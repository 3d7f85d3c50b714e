"""Shared set-up of the flow benchmarks: both simulators in-process (``httpx.ASGITransport``) on
one :class:`FakeClock`, a SQLite store in a temporary folder, a runtime built the production way,
and counters of every request (per service, per path) with the virtual time it was sent at.

Each simulator is wrapped so the CPU it spends serving requests is measured apart
(``time.process_time`` around each ASGI call): engine CPU = total − simulators.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from mlconnector.clock import FakeClock
from mlconnector.config import Config, ConnectionConfig, PlexSettings, ShipStationSettings
from mlconnector.sandbox.plex import (
    DEFAULT_CONSUMER_KEY,
    DEFAULT_WS_PASSWORD,
    LinePlan,
    PlexSandbox,
    ReleasePlan,
    create_plex_sandbox,
)
from mlconnector.sandbox.shipstation import (
    ShipStationAccount,
    ShipStationSandbox,
    create_shipstation_sandbox,
)
from mlconnector.store import CredentialKind, Store, Vault, generate_key, open_store
from mlconnector.sync import ConnectionRuntime, LogAlertSink, build_runtime

START = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
PCN = 340884
CONNECTION = "bench"
PLEX_URL = "http://plex.bench"
SS_URL = "http://shipstation.bench"


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


class Metered:
    """ASGI wrapper: CPU seconds spent inside the app, and each request's virtual send time."""

    def __init__(self, app: ASGIApp, clock: FakeClock) -> None:
        self.app = app
        self.clock = clock
        self.cpu = 0.0
        self.calls: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {}
        #: called before each ``POST /orders/createorders`` (memory snapshots)
        self.on_request: Callable[[], None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            key = f"{scope['method']} {_UUID.sub('{id}', scope['path'])}"
            self.calls[key] += 1
            self.times.setdefault(key, []).append(self.clock.monotonic())
            if self.on_request is not None and key == "POST /orders/createorders":
                self.on_request()
        started = time.process_time()
        try:
            await self.app(scope, receive, send)
        finally:
            self.cpu += time.process_time() - started


@dataclass
class Bench:
    clock: FakeClock
    plex: PlexSandbox
    ss: ShipStationSandbox
    plex_app: Metered
    ss_app: Metered
    store: Store
    home: Path
    runtimes: list[ConnectionRuntime] = field(default_factory=list)

    def http_factory(self, service: str, base_url: str) -> httpx.AsyncClient:
        app = self.plex_app if service.startswith("plex") else self.ss_app
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app))

    def config(self, plex_overrides: dict[str, Any] | None = None, **overrides: Any) -> Config:
        conn = ConnectionConfig(
            plex=PlexSettings(
                pcn=str(PCN),
                rest_base_url=PLEX_URL,
                datasource_base_url=PLEX_URL,
                soap_url=f"{PLEX_URL}/DataSource/Service.asmx",
                web_service_user=PlexSandbox.ws_username(PCN),
                **(plex_overrides or {}),
            ),
            shipstation=ShipStationSettings(v1_base_url=SS_URL, v2_base_url=SS_URL),
            **overrides,
        )
        return Config(home=self.home, connections={CONNECTION: conn})

    async def runtime(
        self, plex_overrides: dict[str, Any] | None = None, **overrides: Any
    ) -> ConnectionRuntime:
        rt = await build_runtime(
            self.config(plex_overrides, **overrides),
            CONNECTION,
            self.store,
            self.clock,
            self.http_factory,
            alerts=LogAlertSink(),
        )
        self.runtimes.append(rt)
        return rt

    def add_orders(self, count: int) -> None:
        """``count`` new open orders (one line, one release each), spread over the customers
        and parts, through the Plex simulator's operator method."""
        data = self.plex.tenant(PCN)
        customers = list(data.customers)
        parts = [p.id for p in data.parts.values() if p.status == "Active"]
        now = self.clock.now()
        for n in range(count):
            plan = ReleasePlan(float(1 + n % 20), now + timedelta(days=3 + n % 20))
            self.plex.add_order(
                customers[n % len(customers)], [LinePlan(parts[n % len(parts)], [plan])], tenant=PCN
            )

    async def close(self) -> None:
        for rt in self.runtimes:
            await rt.aclose()
        await self.store.close()


async def open_sandbox_store(folder: Path, clock: FakeClock, account: ShipStationAccount) -> Store:
    """A fresh SQLite store in ``folder`` with connection ``CONNECTION`` holding the Plex
    sandbox's credentials and ``account``'s ShipStation keys."""
    store = await open_store(
        f"sqlite+aiosqlite:///{folder / 'bench.db'}",
        clock=clock,
        vault=Vault([generate_key()], source="benchmark"),
    )
    await store.create_connection(CONNECTION, plex_pcn=str(PCN))
    secrets = {
        CredentialKind.PLEX_API_KEY: DEFAULT_CONSUMER_KEY,
        CredentialKind.PLEX_WS_PASSWORD: DEFAULT_WS_PASSWORD,
        CredentialKind.SS_V1_KEY: account.api_key,
        CredentialKind.SS_V1_SECRET: account.api_secret,
        CredentialKind.SS_V2_KEY: account.v2_api_key or "",
    }
    for kind, value in secrets.items():
        await store.set_credential(CONNECTION, kind, value)
    return store


async def make_bench(home: Path | None = None) -> Bench:
    """Both simulators (Plex: the default seed, ~40 orders in PCN 340884) and a fresh store."""
    folder = home or Path(tempfile.mkdtemp(prefix="mlc-bench-"))
    clock = FakeClock(START)
    plex = create_plex_sandbox(clock)
    account = ShipStationAccount()
    ss = create_shipstation_sandbox(clock, accounts=[account])
    store = await open_sandbox_store(folder, clock, account)
    return Bench(clock, plex, ss, Metered(plex.app, clock), Metered(ss.app, clock), store, folder)
