"""Every rule of the webhook receiver, in process (httpx.ASGITransport), with the ShipStation
simulator's own signer for V2 deliveries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette

from mlconnector.clock import FakeClock
from mlconnector.config import Config
from mlconnector.sandbox.shipstation import ShipStationSandbox, create_shipstation_sandbox
from mlconnector.shipstation import keys_from_jwks
from mlconnector.store import AuditQuery, CredentialKind, Store
from mlconnector.web import ReceiverOptions, close_web_app, create_web_app
from tests.unit.web.conftest import HOOK, SS_BASE, TOKEN

V1_BODY = json.dumps(
    {"resource_url": f"{SS_BASE}/shipments?batchId=7", "resource_type": "SHIP_NOTIFY"}
).encode()
V2_BODY = json.dumps(
    {"resource_url": f"{SS_BASE}/shipments?batchId=8", "resource_type": "LABEL_CREATED_V2"}
).encode()
JSON = {"content-type": "application/json"}


async def inbox(store: Store) -> list[bytes]:
    return [item.body for item in await store.list_webhooks(connection="acme")]


async def rejections(store: Store) -> list[str]:
    """The reasons of the ``rejected`` webhook audit events, newest first."""
    events = await store.search_audit(AuditQuery(connection="acme", outcome="rejected"))
    return [str(e.details["reason"]) for e in events if e.entity == "webhook"]


# --- authentication -----------------------------------------------------------------------------
async def test_valid_delivery_is_stored_once_even_when_delivered_twice(
    client: httpx.AsyncClient, store: Store
) -> None:
    first = await client.post(HOOK, content=V1_BODY, headers=JSON)
    second = await client.post(HOOK, content=V1_BODY, headers=JSON)

    assert first.status_code == 200
    assert first.json()["duplicate"] is False
    assert second.status_code == 200
    assert second.json() == {"status": "ok", "id": first.json()["id"], "duplicate": True}
    assert await inbox(store) == [V1_BODY]
    pending = await store.pending_webhooks(connection="acme")
    assert [p.id for p in pending] == [first.json()["id"]]


async def test_wrong_token_is_404_like_an_unknown_address_and_stores_nothing(
    client: httpx.AsyncClient, store: Store
) -> None:
    wrong = await client.post("/webhooks/shipstation/acme/not-the-token", content=V1_BODY)
    prefix = await client.post(f"/webhooks/shipstation/acme/{TOKEN[:-1]}", content=V1_BODY)
    unknown = await client.post(f"/webhooks/shipstation/nobody/{TOKEN}", content=V1_BODY)
    # the same as a route that does not exist (behind /webhooks/, which needs no login)
    nowhere = await client.post("/webhooks/no/such/route", content=V1_BODY)

    for response in (wrong, prefix, unknown):
        assert response.status_code == 404
        assert response.content == nowhere.content
        assert response.headers["content-type"] == nowhere.headers["content-type"]
    assert await inbox(store) == []
    assert await store.search_audit(AuditQuery()) == []  # nothing recorded for strangers


async def test_connection_without_a_token_accepts_nothing(
    client: httpx.AsyncClient, store: Store
) -> None:
    await store.delete_credential("acme", CredentialKind.WEBHOOK_TOKEN)
    response = await client.post(HOOK, content=V1_BODY)
    empty = await client.post("/webhooks/shipstation/acme/%00no-token", content=V1_BODY)
    assert response.status_code == 404
    assert empty.status_code == 404
    assert await inbox(store) == []


# --- size, shape, allow-list --------------------------------------------------------------------
@pytest.mark.parametrize("options", [ReceiverOptions(max_body_bytes=1024)])
async def test_oversize_body_is_413_whether_declared_or_streamed(
    client: httpx.AsyncClient, store: Store
) -> None:
    padding = " " * 2000
    big = V1_BODY[:-1] + f', "pad": "{padding}"}}'.encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 256):
            yield big[start : start + 256]

    declared = await client.post(HOOK, content=big, headers=JSON)
    streamed = await client.post(HOOK, content=chunks(), headers=JSON)

    assert "content-length" not in {k.lower() for k in streamed.request.headers}
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert await inbox(store) == []


@pytest.mark.parametrize("options", [ReceiverOptions(max_body_bytes=1024)])
async def test_body_at_the_cap_is_accepted(client: httpx.AsyncClient, store: Store) -> None:
    body = V1_BODY[:-1] + b', "pad": "' + b"x" * 1024 + b'"}'
    body = body[: 1024 - 2] + b'"}'
    assert len(body) == 1024
    response = await client.post(HOOK, content=body, headers=JSON)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"resource_type": "SHIP_NOTIFY"}',
        json.dumps({"resource_url": f"{SS_BASE}/x", "resource_type": "DROP_TABLES"}).encode(),
        b"",
    ],
    ids=["not-json", "not-object", "no-url", "unknown-type", "empty"],
)
async def test_malformed_body_is_400_and_not_stored(
    client: httpx.AsyncClient, store: Store, body: bytes
) -> None:
    response = await client.post(HOOK, content=body, headers=JSON)
    assert response.status_code == 400
    assert await inbox(store) == []


@pytest.mark.parametrize(
    ("resource_url", "resource_type"),
    [
        ("https://evil.example/shipments?batchId=1", "SHIP_NOTIFY"),
        ("http://ss.test@evil.example/shipments", "SHIP_NOTIFY"),
        ("http://ss.test:8443/shipments", "ORDER_NOTIFY"),
        ("http://ssapi9.shipstation.com/shipments", "SHIP_NOTIFY"),  # production host, plain http
        ("https://evil.example/v2/labels/se-1", "LABEL_CREATED_V2"),
    ],
)
async def test_foreign_resource_url_is_rejected_audited_and_nothing_is_sent(
    client: httpx.AsyncClient,
    store: Store,
    outbound: list[str],
    resource_url: str,
    resource_type: str,
) -> None:
    body = json.dumps({"resource_url": resource_url, "resource_type": resource_type}).encode()
    # V2 headers present and bogus: the allow-list must refuse before any key fetch
    headers = {
        **JSON,
        "x-shipengine-rsa-sha256-key-id": "forged",
        "x-shipengine-rsa-sha256-signature": "AAAA",
        "x-shipengine-timestamp": "2026-01-15T12:00:00.000Z",
    }
    response = await client.post(HOOK, content=body, headers=headers)

    assert response.status_code == 400
    assert outbound == []
    assert await inbox(store) == []
    events = await store.search_audit(AuditQuery(connection="acme"))
    assert [(e.entity, e.action, e.outcome) for e in events] == [("webhook", "receive", "rejected")]
    assert events[0].details["resource_url"] == resource_url
    assert TOKEN not in json.dumps(events[0].details)


async def test_production_shipstation_host_is_allowed(
    client: httpx.AsyncClient, store: Store
) -> None:
    body = json.dumps(
        {
            "resource_url": "https://ssapi11.shipstation.com/orders?importBatch=1",
            "resource_type": "ORDER_NOTIFY",
        }
    ).encode()
    response = await client.post(HOOK, content=body, headers=JSON)
    assert response.status_code == 200
    assert await inbox(store) == [body]


async def test_only_known_headers_are_stored(client: httpx.AsyncClient, store: Store) -> None:
    headers = {**JSON, "x-custom-secret": "hunter2-secret-value", "authorization": "Basic abc"}
    response = await client.post(HOOK, content=V1_BODY, headers=headers)
    assert response.status_code == 200
    (item,) = await store.list_webhooks(connection="acme")
    assert item.headers["content-type"] == "application/json"
    assert "x-custom-secret" not in item.headers
    assert "authorization" not in item.headers
    assert "hunter2" not in json.dumps(item.headers)


# --- on_webhook ---------------------------------------------------------------------------------
async def test_on_webhook_nudges_once_per_new_delivery(
    store: Store, config: Config, fake_clock: FakeClock
) -> None:
    nudged: list[str] = []

    async def nudge(connection: str) -> None:
        nudged.append(connection)

    app = create_web_app(store=store, config=config, clock=fake_clock, on_webhook=nudge)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://testserver"
    ) as client:
        await client.post(HOOK, content=V1_BODY)
        await client.post(HOOK, content=V1_BODY)
        await client.post("/webhooks/shipstation/acme/wrong", content=V2_BODY)
    assert nudged == ["acme"]


async def test_a_failing_nudge_still_acknowledges_the_stored_delivery(
    store: Store, config: Config, fake_clock: FakeClock
) -> None:
    def nudge(connection: str) -> None:
        raise RuntimeError("engine is busy")

    app = create_web_app(store=store, config=config, clock=fake_clock, on_webhook=nudge)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://testserver"
    ) as client:
        response = await client.post(HOOK, content=V1_BODY)
    assert response.status_code == 200
    assert await inbox(store) == [V1_BODY]


# --- V2 signatures with the simulator's signer --------------------------------------------------
@pytest.fixture
def sandbox(fake_clock: FakeClock) -> ShipStationSandbox:
    return create_shipstation_sandbox(fake_clock)


@pytest.fixture
async def v2_app(
    store: Store, config: Config, fake_clock: FakeClock, sandbox: ShipStationSandbox
) -> AsyncIterator[tuple[Starlette, list[str]]]:
    """The app with the default key source: the V2 client fetches the simulator's JWKS."""
    await store.set_credential("acme", CredentialKind.SS_V2_KEY, "sandbox-v2-key")
    fetched: list[str] = []

    async def record(request: httpx.Request) -> None:
        fetched.append(request.url.path)

    def factory(service: str, base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(sandbox.app), event_hooks={"request": [record]}
        )

    app = create_web_app(store=store, config=config, clock=fake_clock, http_factory=factory)
    async with app.router.lifespan_context(app):
        yield app, fetched


@pytest.fixture
async def v2_client(v2_app: tuple[Starlette, list[str]]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(v2_app[0]), base_url="http://testserver"
    ) as client:
        yield client


def signed(sandbox: ShipStationSandbox, body: bytes, clock: FakeClock) -> dict[str, str]:
    return {**JSON, **sandbox.signer.signed_headers(body, clock.now())}


async def test_signed_v2_delivery_is_accepted_with_keys_fetched_once(
    v2_client: httpx.AsyncClient,
    v2_app: tuple[Starlette, list[str]],
    sandbox: ShipStationSandbox,
    store: Store,
    fake_clock: FakeClock,
) -> None:
    other = V2_BODY.replace(b"batchId=8", b"batchId=9")
    first = await v2_client.post(
        HOOK, content=V2_BODY, headers=signed(sandbox, V2_BODY, fake_clock)
    )
    second = await v2_client.post(HOOK, content=other, headers=signed(sandbox, other, fake_clock))

    assert (first.status_code, second.status_code) == (200, 200)
    assert sorted(await inbox(store)) == sorted([V2_BODY, other])
    assert v2_app[1] == ["/jwks"]
    (item, _) = await store.list_webhooks(connection="acme")
    assert item.headers["x-shipengine-rsa-sha256-key-id"] == sandbox.signer.key_id


async def test_concurrent_v2_deliveries_wait_for_the_first_key_fetch(
    store: Store, config: Config, fake_clock: FakeClock, sandbox: ShipStationSandbox
) -> None:
    fetches: list[str] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_keys(connection: str) -> dict[str, rsa.RSAPublicKey]:
        fetches.append(connection)
        started.set()
        await release.wait()  # the other deliveries arrive while this fetch is in flight
        return keys_from_jwks(sandbox.signer.jwks())

    options = ReceiverOptions(key_source=slow_keys)
    app = create_web_app(store=store, config=config, clock=fake_clock, receiver_options=options)
    bodies = [V2_BODY.replace(b"batchId=8", f"batchId={n}".encode()) for n in range(10, 14)]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://testserver"
    ) as client:
        posts = [
            asyncio.ensure_future(
                client.post(HOOK, content=b, headers=signed(sandbox, b, fake_clock))
            )
            for b in bodies
        ]
        await started.wait()
        # give the other deliveries (database reads in aiosqlite's thread) time to reach the
        # verifier; without the per-connection lock they would be refused meanwhile
        await asyncio.sleep(0.3)
        release.set()
        responses = await asyncio.gather(*posts)
    assert [r.status_code for r in responses] == [200] * 4
    assert sorted(await inbox(store)) == sorted(bodies)
    assert fetches == ["acme"]


async def test_v2_delivery_with_a_tampered_body_is_400(
    v2_client: httpx.AsyncClient, sandbox: ShipStationSandbox, store: Store, fake_clock: FakeClock
) -> None:
    headers = signed(sandbox, V2_BODY, fake_clock)
    tampered = V2_BODY.replace(b"batchId=8", b"batchId=9")
    response = await v2_client.post(HOOK, content=tampered, headers=headers)
    assert response.status_code == 400
    assert await inbox(store) == []
    assert await rejections(store) == ["V2 signature does not verify"]


async def test_v2_delivery_without_signature_headers_is_404(
    v2_client: httpx.AsyncClient, store: Store
) -> None:
    response = await v2_client.post(HOOK, content=V2_BODY, headers=JSON)
    assert response.status_code == 404
    assert await inbox(store) == []
    assert await rejections(store) == ["V2 signature headers missing"]


async def test_stale_v2_delivery_is_400(
    v2_client: httpx.AsyncClient, sandbox: ShipStationSandbox, store: Store, fake_clock: FakeClock
) -> None:
    headers = {
        **JSON,
        **sandbox.signer.signed_headers(V2_BODY, fake_clock.now() - timedelta(minutes=6)),
    }
    response = await v2_client.post(HOOK, content=V2_BODY, headers=headers)
    assert response.status_code == 400
    assert await inbox(store) == []


async def test_v2_delivery_signed_by_another_key_is_400(
    v2_client: httpx.AsyncClient, store: Store, fake_clock: FakeClock
) -> None:
    impostor = create_shipstation_sandbox(fake_clock)  # same key id, different key pair
    response = await v2_client.post(
        HOOK, content=V2_BODY, headers=signed(impostor, V2_BODY, fake_clock)
    )
    assert response.status_code == 400
    assert await inbox(store) == []


async def test_injected_key_source_is_used_instead_of_fetching(
    store: Store, config: Config, fake_clock: FakeClock, sandbox: ShipStationSandbox
) -> None:
    asked: list[str] = []

    async def keys(connection: str) -> dict[str, rsa.RSAPublicKey]:
        asked.append(connection)
        return keys_from_jwks(sandbox.signer.jwks())

    options = ReceiverOptions(key_source=keys)
    app = create_web_app(store=store, config=config, clock=fake_clock, receiver_options=options)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://testserver"
    ) as client:
        response = await client.post(
            HOOK, content=V2_BODY, headers=signed(sandbox, V2_BODY, fake_clock)
        )
    assert response.status_code == 200
    assert asked == ["acme"]


async def test_v2_without_a_v2_key_to_fetch_keys_is_503(
    client: httpx.AsyncClient,
    store: Store,
    sandbox: ShipStationSandbox,
    fake_clock: FakeClock,
    outbound: list[str],
) -> None:
    response = await client.post(
        HOOK, content=V2_BODY, headers=signed(sandbox, V2_BODY, fake_clock)
    )
    assert response.status_code == 503
    assert outbound == []
    assert await inbox(store) == []


async def test_v2_with_the_key_endpoint_failing_is_503(
    client: httpx.AsyncClient,
    store: Store,
    sandbox: ShipStationSandbox,
    fake_clock: FakeClock,
    outbound: list[str],
) -> None:
    # this module's HTTP factory answers every request with a 599
    await store.set_credential("acme", CredentialKind.SS_V2_KEY, "sandbox-v2-key")
    response = await client.post(
        HOOK, content=V2_BODY, headers=signed(sandbox, V2_BODY, fake_clock)
    )
    assert response.status_code == 503
    assert outbound
    assert {httpx.URL(u).path for u in outbound} == {"/jwks"}
    assert await inbox(store) == []


# --- lifespan -----------------------------------------------------------------------------------
async def test_lifespan_closes_the_key_fetch_client(
    store: Store, config: Config, fake_clock: FakeClock, sandbox: ShipStationSandbox
) -> None:
    await store.set_credential("acme", CredentialKind.SS_V2_KEY, "sandbox-v2-key")
    made: list[httpx.AsyncClient] = []

    def factory(service: str, base_url: str) -> httpx.AsyncClient:
        made.append(httpx.AsyncClient(transport=httpx.ASGITransport(sandbox.app)))
        return made[-1]

    app = create_web_app(store=store, config=config, clock=fake_clock, http_factory=factory)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://testserver"
        ) as client,
    ):
        response = await client.post(
            HOOK, content=V2_BODY, headers=signed(sandbox, V2_BODY, fake_clock)
        )
        assert response.status_code == 200
        assert [c.is_closed for c in made] == [False]
    assert [c.is_closed for c in made] == [True]
    await close_web_app(app)  # idempotent after the lifespan
    assert len(made) == 1
