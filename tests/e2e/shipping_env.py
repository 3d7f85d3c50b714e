"""Shared set-up of the shipments and inventory end-to-end tests (real loopback HTTP).

Served by uvicorn on 127.0.0.1 (ephemeral ports): the Plex simulator, the ShipStation simulator
(V1 + V2), a tiny webhook receiver that persists each delivery into the store's inbox (the web
receiver's job, reduced to its essence) and a "foreign" server that must never be called. Every
server is wrapped in a :class:`Recorder` so tests count the requests each one saw.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlconnector.clock import FakeClock
from mlconnector.config import Config, ConnectionConfig, PlexSettings, ShipStationSettings
from mlconnector.sandbox.plex import (
    DEFAULT_CONSUMER_KEY,
    PlexSandbox,
    TenantSpec,
    create_plex_sandbox,
)
from mlconnector.sandbox.server import serve
from mlconnector.sandbox.shipstation import (
    ShipStationAccount,
    ShipStationSandbox,
    create_shipstation_sandbox,
)
from mlconnector.store import CredentialKind, Link, Store, Vault, generate_key, open_store
from mlconnector.sync import ConnectionRuntime, LogAlertSink, build_runtime
from mlconnector.sync.orders import OrdersFlow

PCN = 340884
CONNECTION = "acme"
STEP = 600.0  # seconds the clock moves between runs (past the 2-minute safety lag)


class Recorder:
    """ASGI wrapper that remembers every request (method, path, query, body) the app saw."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.calls: list[tuple[str, str, str, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        await self.app(scope, recording, send)
        query = scope.get("query_string", b"").decode()
        self.calls.append((scope["method"], scope["path"], query, b"".join(chunks)))

    def count(self, method: str, path: str) -> int:
        """Requests with exactly this method and path."""
        return sum(1 for m, p, _, _ in self.calls if m == method and p == path)


def open_releases(plex: PlexSandbox) -> dict[str, float]:
    """Plex open quantity per release id, from the simulator's own state."""
    data = plex.tenant(PCN)
    open_orders = {o.id for o in data.orders.values() if o.status in ("Open", "Hold")}
    result: dict[str, float] = {}
    for release in data.releases.values():
        line = data.lines[release.order_line_id]
        left = release.quantity - release.quantity_shipped
        still_open = release.status in ("Open", "Scheduled", "Hold")
        if line.order_id in open_orders and still_open and left > 0:
            result[release.id] = left
    return result


def receiver_app(store: Store, connection: str) -> Starlette:
    """Persist each delivery into the inbox before answering 200 (what the web receiver does)."""

    async def hook(request: Request) -> Response:
        body = await request.body()
        await store.receive_webhook(connection, body, dict(request.headers))
        return Response(status_code=200)

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


def nowhere_app() -> Starlette:
    """A server that answers anything; tests assert it was never called."""

    async def anything(request: Request) -> Response:
        return Response('{"shipments": [], "page": 1, "pages": 1}', media_type="application/json")

    return Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])


@dataclass
class ShipEnv:
    clock: FakeClock
    plex: PlexSandbox
    ss: ShipStationSandbox
    ss_rec: Recorder
    plex_rec: Recorder
    foreign: Recorder
    store: Store
    plex_url: str
    ss_url: str
    receiver_url: str
    foreign_url: str
    tmp_path: Path
    runtimes: list[ConnectionRuntime] = field(default_factory=list)

    def config(self, plex: dict[str, Any] | None = None, **overrides: Any) -> Config:
        """The connection's configuration; ``plex`` adds Plex settings, the rest are connection
        settings (``mappings=``, ``write_back=`` ...)."""
        conn = ConnectionConfig(
            plex=PlexSettings(
                pcn=str(PCN),
                rest_base_url=self.plex_url,
                read_window_hours=24 * 31,
                **(plex or {}),
            ),
            shipstation=ShipStationSettings(v1_base_url=self.ss_url, v2_base_url=self.ss_url),
            **overrides,
        )
        return Config(home=self.tmp_path, connections={CONNECTION: conn})

    async def runtime(
        self, plex: dict[str, Any] | None = None, **overrides: Any
    ) -> ConnectionRuntime:
        rt = await build_runtime(
            self.config(plex, **overrides),
            CONNECTION,
            self.store,
            self.clock,
            alerts=LogAlertSink(),
        )
        self.runtimes.append(rt)
        return rt

    def step(self, seconds: float = STEP) -> None:
        self.clock.advance(seconds)

    def set_time(self, when: datetime) -> None:
        """Jump the virtual clock forward to ``when`` (never backwards)."""
        delta = (when - self.clock.now()).total_seconds()
        assert delta >= 0, "the clock never goes back"
        self.clock.advance(delta)

    async def link_orders(self, rt: ConnectionRuntime) -> list[Link]:
        """Run the orders flow once: the open Plex releases become linked ShipStation orders."""
        result = await OrdersFlow().run(rt)
        assert result.failed == 0, result.errors
        links = [link for link in await self.store.list_links(CONNECTION) if link.ss_order_id]
        assert links
        return links

    async def subscribe(self, rt: ConnectionRuntime, event: str = "SHIP_NOTIFY") -> None:
        await rt.ss_v1.subscribe_webhook(target_url=self.receiver_url + "/hook", event=event)

    def shippers_for(self, reference: str) -> list[Any]:
        """The Plex shippers whose note names ``reference``."""
        return [
            s
            for s in self.plex.shippers(tenant=PCN)
            if reference in (s.shipper_note or "") or reference in (s.note or "")
        ]

    def part_of(self, release_id: str) -> str:
        data = self.plex.tenant(PCN)
        return data.lines[data.releases[release_id].order_line_id].part_id


@asynccontextmanager
async def ship_env(tmp_path: Path, start: datetime, *, orders: int = 4) -> AsyncIterator[ShipEnv]:
    """Both simulators, the receiver and the foreign server on loopback; SQLite store."""
    clock = FakeClock(start)
    spec = TenantSpec(pcn=PCN, code="mlauto", name="Midland", customers=3, parts=8, orders=orders)
    plex = create_plex_sandbox(clock, tenants=[spec])
    account = ShipStationAccount()
    ss = create_shipstation_sandbox(clock, accounts=[account])
    ss_rec, plex_rec = Recorder(ss.app), Recorder(plex.app)
    store = await open_store(
        f"sqlite+aiosqlite:///{tmp_path / 'mlc.db'}",
        clock=clock,
        vault=Vault([generate_key()], source="test"),
    )
    await store.create_connection(CONNECTION, plex_pcn=str(PCN))
    secrets = {
        CredentialKind.PLEX_API_KEY: DEFAULT_CONSUMER_KEY,
        CredentialKind.SS_V1_KEY: account.api_key,
        CredentialKind.SS_V1_SECRET: account.api_secret,
        CredentialKind.SS_V2_KEY: account.v2_api_key or "",
    }
    for kind, value in secrets.items():
        await store.set_credential(CONNECTION, kind, value)
    foreign = Recorder(nowhere_app())
    async with (
        serve(plex_rec) as plex_url,
        serve(ss_rec) as ss_url,
        serve(receiver_app(store, CONNECTION)) as receiver_url,
        serve(foreign) as foreign_url,
    ):
        ss.public_url = ss_url  # webhook resource_urls point back at the served simulator
        env = ShipEnv(
            clock,
            plex,
            ss,
            ss_rec,
            plex_rec,
            foreign,
            store,
            plex_url,
            ss_url,
            receiver_url,
            foreign_url,
            tmp_path,
        )
        try:
            yield env
        finally:
            for rt in env.runtimes:
                await rt.aclose()
            await store.close()
