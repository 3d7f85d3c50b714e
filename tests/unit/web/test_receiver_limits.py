"""Receiver back-pressure and probing cost: a full inbox answers 503 + Retry-After and loses
nothing; an unknown connection costs the same decryption as a known one."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from mlconnector.clock import FakeClock
from mlconnector.config import WebSettings
from mlconnector.store import Store, Vault, generate_key, open_store
from mlconnector.web import create_web_app
from mlconnector.web.tokens import TokenCache
from tests.unit.web.conftest import HOOK, SS_BASE, TOKEN, make_config


def delivery(n: int) -> bytes:
    return json.dumps(
        {"resource_url": f"{SS_BASE}/shipments?batchId={n}", "resource_type": "SHIP_NOTIFY"}
    ).encode()


async def test_a_full_inbox_answers_retry_after_and_loses_nothing(
    store: Store, tmp_path: Path, fake_clock: FakeClock
) -> None:
    web = WebSettings(
        allowed_hosts=("testserver",), inbox_max_pending=3, inbox_retry_after_seconds=90
    )
    config = make_config(tmp_path).model_copy(update={"web": web})
    app = create_web_app(store=store, config=config, clock=fake_clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as c,
    ):
        accepted = [await c.post(HOOK, content=delivery(n)) for n in range(3)]
        assert [r.status_code for r in accepted] == [200, 200, 200]
        full = await c.post(HOOK, content=delivery(3))
        assert full.status_code == 503
        assert full.headers["retry-after"] == "90"
        assert "inbox of this connection is full" in full.text
        # the three accepted ones are all there; the refused one was not half-stored
        pending = await store.pending_webhooks(connection="acme")
        assert [json.loads(i.body)["resource_url"][-1] for i in pending] == ["0", "1", "2"]

        await store.finish_webhook(pending[0].id, "ok")  # the engine works one off
        retried = await c.post(HOOK, content=delivery(3))  # ShipStation's retry
        assert retried.status_code == 200
    stored = await store.list_webhooks(connection="acme")
    assert sorted(json.loads(i.body)["resource_url"][-1] for i in stored) == ["0", "1", "2", "3"]


class CountingVault(Vault):
    decryptions = 0

    def decrypt(self, token: str, *, record: str | None = None) -> str:
        CountingVault.decryptions += 1
        return super().decrypt(token, record=record)


async def test_known_and_unknown_connections_cost_one_read_and_one_decryption(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    vault = CountingVault([generate_key()], source="a test key")
    store = await open_store(
        f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", clock=fake_clock, vault=vault
    )
    try:
        await store.create_connection("acme")
        await store.create_connection("bare")  # a connection without a webhook token
        await store.set_credential("acme", "webhook_token", TOKEN)
        cache = TokenCache(store, fake_clock, ttl=0.0)  # every call misses the cache
        costs = {}
        for name in ("acme", "bare", "nobody"):
            CountingVault.decryptions = 0
            token = await cache.expected(name)
            costs[name] = (token, CountingVault.decryptions)
        assert costs == {"acme": (TOKEN, 1), "bare": (None, 1), "nobody": (None, 1)}
    finally:
        await store.close()
