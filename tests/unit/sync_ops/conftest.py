"""Fixtures of the backfill and reconcile tests: both simulators mounted in-process
(``httpx.ASGITransport``), a SQLite store with every credential (web-service password included)
and a runtime built the production way (``build_runtime`` with an injected ``http_factory``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.config import Config, ConnectionConfig, PlexSettings, ShipStationSettings
from mlconnector.sandbox.plex import (
    DEFAULT_CONSUMER_KEY,
    DEFAULT_WS_PASSWORD,
    PlexSandbox,
    TenantSpec,
    create_plex_sandbox,
)
from mlconnector.sandbox.shipstation import (
    ShipStationAccount,
    ShipStationSandbox,
    create_shipstation_sandbox,
)
from mlconnector.store import CredentialKind, Store, Vault, generate_key, open_store
from mlconnector.sync import ConnectionRuntime, LogAlertSink, build_runtime
from tests.conftest import FAKE_START
from tests.dbutil import migrated_sqlite
from tests.unit.cli.conftest import cli, served  # noqa: F401 (fixtures of the command tests)

PCN = 340884
CONNECTION = "acme"
PLEX_URL = "http://plex.test"
SS_URL = "http://shipstation.test"


@dataclass
class OpsEnv:
    """Both simulators, the store, and the runtimes built on them (closed at the end)."""

    clock: FakeClock
    plex: PlexSandbox
    ss: ShipStationSandbox
    store: Store
    tmp_path: Path
    #: every request the simulators saw: (service, method, path, body)
    calls: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    runtimes: list[ConnectionRuntime] = field(default_factory=list)

    def http_factory(self, service: str, base_url: str) -> httpx.AsyncClient:
        app = self.plex.app if service.startswith("plex") else self.ss.app
        calls = self.calls

        async def record(request: httpx.Request) -> None:
            calls.append((service, request.method, request.url.path, request.content))

        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), event_hooks={"request": [record]}
        )

    def config(self, **overrides: Any) -> Config:
        conn = ConnectionConfig(
            plex=PlexSettings(
                pcn=str(PCN),
                rest_base_url=PLEX_URL,
                datasource_base_url=PLEX_URL,
                soap_url=f"{PLEX_URL}/DataSource/Service.asmx",
                web_service_user=PlexSandbox.ws_username(PCN),
                read_window_hours=24 * 31,
            ),
            shipstation=ShipStationSettings(v1_base_url=SS_URL, v2_base_url=SS_URL),
            **overrides,
        )
        return Config(home=self.tmp_path, connections={CONNECTION: conn})

    async def runtime(self, **overrides: Any) -> ConnectionRuntime:
        rt = await build_runtime(
            self.config(**overrides),
            CONNECTION,
            self.store,
            self.clock,
            self.http_factory,
            alerts=LogAlertSink(),
        )
        self.runtimes.append(rt)
        return rt

    def ss_order_keys(self) -> list[str]:
        """The orderKey of every (not deleted) ShipStation order, with repeats."""
        return [o["orderKey"] for o in self.ss.all_orders()]

    def count(self, service: str, path_part: str, method: str = "POST") -> int:
        return sum(
            1 for s, m, p, _ in self.calls if s == service and m == method and path_part in p
        )


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


async def make_env(tmp_path: Path, *, orders: int = 12) -> OpsEnv:
    tmp_path = _folder(tmp_path)
    clock = FakeClock(FAKE_START)
    spec = TenantSpec(pcn=PCN, code="mlauto", name="Midland", customers=3, parts=8, orders=orders)
    plex = create_plex_sandbox(clock, tenants=[spec])
    ss = create_shipstation_sandbox(clock, accounts=[ShipStationAccount()])
    store = await open_store(
        migrated_sqlite(tmp_path / "mlc.db"),
        clock=clock,
        vault=Vault([generate_key()], source="test"),
    )
    await store.create_connection(CONNECTION, plex_pcn=str(PCN))
    account = ShipStationAccount()
    secrets = {
        CredentialKind.PLEX_API_KEY: DEFAULT_CONSUMER_KEY,
        CredentialKind.PLEX_WS_PASSWORD: DEFAULT_WS_PASSWORD,
        CredentialKind.SS_V1_KEY: account.api_key,
        CredentialKind.SS_V1_SECRET: account.api_secret,
        CredentialKind.SS_V2_KEY: account.v2_api_key or "",
    }
    for kind, value in secrets.items():
        await store.set_credential(CONNECTION, kind, value)
    return OpsEnv(clock, plex, ss, store, tmp_path)


async def close_env(env: OpsEnv) -> None:
    for rt in env.runtimes:
        await rt.aclose()
    await env.store.close()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[OpsEnv]:
    opened = await make_env(tmp_path)
    try:
        yield opened
    finally:
        await close_env(opened)
