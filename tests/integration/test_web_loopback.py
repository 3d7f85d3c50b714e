"""The ShipStation simulator delivers its webhooks to the web app over real loopback HTTP.

Both apps are served with :func:`mlconnector.sandbox.server.serve` on 127.0.0.1 (ephemeral
ports). V1 deliveries are unsigned; V2 deliveries are signed by the simulator and verified by the
receiver with keys it fetches from the simulator's JWKS through the V2 client, over HTTP too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.config import Config, ConnectionConfig, PlexSettings, ShipStationSettings
from mlconnector.sandbox.server import serve
from mlconnector.sandbox.shipstation import ShipStationSandbox, create_shipstation_sandbox
from mlconnector.store import CredentialKind, Store, Vault, generate_key, open_store
from mlconnector.web import create_web_app

TOKEN = "loopback-token-8c1f2e9d7a"
V1_AUTH = ("sandbox-v1-key", "sandbox-v1-secret")
V2_HEADERS = {"API-Key": "sandbox-v2-key"}


@dataclass
class Rig:
    sandbox: ShipStationSandbox
    store: Store
    ss: httpx.AsyncClient  # talks to the simulator as an operator's script would
    hook_url: str
    nudged: list[str]


@pytest.fixture
async def rig(tmp_path: Path, fake_clock: FakeClock) -> AsyncIterator[Rig]:
    vault = Vault([generate_key()], source="a test key")
    store = await open_store(
        f"sqlite+aiosqlite:///{tmp_path / 'mlc.db'}", clock=fake_clock, vault=vault
    )
    await store.create_connection("acme")
    await store.set_credential("acme", CredentialKind.WEBHOOK_TOKEN, TOKEN)
    await store.set_credential("acme", CredentialKind.SS_V2_KEY, "sandbox-v2-key")
    sandbox = create_shipstation_sandbox(fake_clock)
    nudged: list[str] = []
    try:
        async with serve(sandbox.app) as ss_url:
            sandbox.public_url = ss_url
            settings = ShipStationSettings(v1_base_url=ss_url, v2_base_url=ss_url)
            config = Config(
                home=tmp_path,
                connections={
                    "acme": ConnectionConfig(plex=PlexSettings(pcn="1"), shipstation=settings)
                },
            )
            app = create_web_app(
                store=store, config=config, clock=fake_clock, on_webhook=nudged.append
            )
            async with (
                app.router.lifespan_context(app),
                serve(app) as web_url,
                httpx.AsyncClient(base_url=ss_url, timeout=10) as ss,
            ):
                hook_url = f"{web_url}/webhooks/shipstation/acme/{TOKEN}"
                yield Rig(sandbox, store, ss, hook_url, nudged)
    finally:
        await store.close()


async def create_order(ss: httpx.AsyncClient, n: int) -> int:
    order = {
        "orderNumber": f"PLX-{n}",
        "orderKey": f"plex-1-{n}-2026-01-15",
        "orderDate": "2026-01-15T04:00:00.0000000",
        "orderStatus": "awaiting_shipment",
        "shipTo": {
            "name": "Receiving",
            "street1": "1 Main St",
            "city": "Portland",
            "state": "OR",
            "postalCode": "97201",
            "country": "US",
        },
        "items": [{"lineItemKey": f"rel-{n}", "sku": "PART-1", "name": "Widget", "quantity": 2}],
    }
    response = await ss.post("/orders/createorder", json=order, auth=V1_AUTH)
    response.raise_for_status()
    return int(response.json()["orderId"])


async def subscribe(rig: Rig, url: str) -> None:
    v1 = await rig.ss.post(
        "/webhooks/subscribe",
        json={"target_url": url, "event": "SHIP_NOTIFY", "friendly_name": "connector"},
        auth=V1_AUTH,
    )
    v1.raise_for_status()
    v2 = await rig.ss.post(
        "/v2/environment/webhooks",
        json={
            "name": "connector",
            "event": "label_created_v2",
            "url": url,
            "headers": [{"key": "X-Relay-Secret", "value": "relay-secret-value"}],
        },
        headers=V2_HEADERS,
    )
    v2.raise_for_status()


async def test_simulator_deliveries_land_in_the_inbox_once(rig: Rig) -> None:
    await subscribe(rig, rig.hook_url)
    rig.sandbox.create_label(await create_order(rig.ss, 1))

    results = await rig.sandbox.deliver_webhooks()

    assert sorted((r.resource_type, r.status) for r in results) == [
        ("LABEL_CREATED_V2", 200),
        ("SHIP_NOTIFY", 200),
    ]
    items = await rig.store.pending_webhooks(connection="acme")
    kinds = sorted(json.loads(item.body)["resource_type"] for item in items)
    assert kinds == ["LABEL_CREATED_V2", "SHIP_NOTIFY"]
    v2 = next(i for i in items if b"LABEL_CREATED_V2" in i.body)
    assert v2.headers["x-shipengine-rsa-sha256-key-id"] == rig.sandbox.signer.key_id
    assert "x-relay-secret" not in v2.headers
    assert rig.nudged == ["acme", "acme"]

    # duplicated deliveries (the simulator's fault flag) are acknowledged but stored once
    rig.sandbox.faults.configure(duplicate_webhooks=True)
    rig.sandbox.create_label(await create_order(rig.ss, 2))
    again = await rig.sandbox.deliver_webhooks()
    assert len(again) == 4
    assert {r.status for r in again} == {200}
    assert len(await rig.store.pending_webhooks(connection="acme")) == 4
    assert len(rig.nudged) == 4


async def test_a_subscription_with_the_wrong_token_is_refused(rig: Rig) -> None:
    await subscribe(rig, rig.hook_url.replace(TOKEN, "guessed-token"))
    rig.sandbox.create_label(await create_order(rig.ss, 3))

    results = await rig.sandbox.deliver_webhooks()

    assert [r.status for r in results] == [404, 404]
    assert await rig.store.list_webhooks(connection="acme") == []
    assert rig.nudged == []
