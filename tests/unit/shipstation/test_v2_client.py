"""V2 client behaviour against a recording MockTransport."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.errors import AuthenticationError, ForeignURLError, RemoteValidationError
from mlconnector.shipstation import RepeatedPageError, WebhookDelivery
from tests.unit.shipstation.conftest import V2_KEY, json_response
from tests.unit.shipstation.test_webhooks import _jwk


async def test_api_key_header(make_v2: Any) -> None:
    async with make_v2(lambda r: json_response([])) as (client, rec):
        await client.list_webhooks()
    request = rec.requests[0]
    assert request.headers["API-Key"] == V2_KEY
    assert "Authorization" not in request.headers
    assert str(request.url) == "https://api.shipstation.com/v2/environment/webhooks"


async def test_list_inventory_follows_next_links(make_v2: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        body: dict[str, Any] = {
            "inventory": [{"sku": f"S{page}", "on_hand": page, "inventory_location_id": "L"}],
            "total": 2,
            "page": page,
            "pages": 2,
            "links": {},
        }
        if page == 1:
            body["links"]["next"] = {
                "href": "https://api.shipstation.com/v2/inventory?sku=S&page=2"
            }
        return json_response(body)

    async with make_v2(handler) as (client, rec):
        levels = [lvl async for lvl in client.list_inventory(sku="S")]
    assert [(lvl.sku, lvl.on_hand) for lvl in levels] == [("S1", 1), ("S2", 2)]
    assert len(rec.requests) == 2
    assert rec.requests[0].url.params["sku"] == "S"


async def test_list_inventory_uses_page_numbers_without_links(make_v2: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        return json_response(
            {"inventory": [{"sku": f"S{page}"}], "total": 3, "page": page, "pages": 3}
        )

    async with make_v2(handler) as (client, rec):
        skus = [lvl.sku async for lvl in client.list_inventory()]
    assert skus == ["S1", "S2", "S3"]
    assert [r.url.params.get("page") for r in rec.requests] == [None, "2", "3"]


async def test_list_inventory_refuses_a_repeated_page(make_v2: Any) -> None:
    body = {
        "inventory": [{"sku": "S"}],
        "pages": 9,
        "links": {"next": {"href": "https://api.shipstation.com/v2/inventory"}},
    }
    async with make_v2(lambda r: json_response(body)) as (client, rec):
        with pytest.raises(RepeatedPageError):
            _ = [lvl async for lvl in client.list_inventory()]
    assert len(rec.requests) == 2


async def test_next_link_to_foreign_host_gets_no_key(make_v2: Any) -> None:
    body = {
        "inventory": [{"sku": "S"}],
        "links": {"next": {"href": "https://evil.example.com/steal"}},
    }
    async with make_v2(lambda r: json_response(body)) as (client, rec):
        with pytest.raises(ForeignURLError):
            _ = [lvl async for lvl in client.list_inventory()]
    assert all(r.url.host == "api.shipstation.com" for r in rec.requests)


@pytest.mark.parametrize("kind", ["adjust", "increment", "decrement", "modify"])
async def test_inventory_transactions_post_and_accept_204(make_v2: Any, kind: str) -> None:
    async with make_v2(lambda r: httpx.Response(204)) as (client, rec):
        method = getattr(client, f"{kind}_inventory")
        await method("SKU-1", "loc-1", 42, reason="Plex sync")
    request = rec.requests[0]
    assert (request.method, request.url.path) == ("POST", "/v2/inventory")
    assert rec.bodies()[0] == {
        "transaction_type": kind,
        "sku": "SKU-1",
        "inventory_location_id": "loc-1",
        "quantity": 42,
        "reason": "Plex sync",
    }


async def test_v2_error_body_becomes_message_and_request_id(make_v2: Any) -> None:
    body = {
        "request_id": "req-123",
        "errors": [
            {
                "error_source": "ShipStation",
                "error_type": "business_rules",
                "error_code": "invalid_field_value",
                "message": "Not enough stock to decrement",
            }
        ],
    }
    async with make_v2(lambda r: json_response(body, 400)) as (client, _):
        with pytest.raises(RemoteValidationError) as info:
            await client.decrement_inventory("S", "L", 5)
    assert "Not enough stock" in str(info.value)
    assert info.value.request_id == "req-123"


async def test_401_names_the_v2_api_key_and_connection(make_v2: Any) -> None:
    body = {
        "request_id": "r",
        "errors": [{"message": "unauthorized", "error_code": "unauthorized"}],
    }
    async with make_v2(lambda r: json_response(body, 401), connection="acme") as (client, _):
        with pytest.raises(AuthenticationError) as info:
            await client.list_inventory_warehouses()
    text = str(info.value)
    assert "V2 refused the API key" in text
    assert "'acme'" in text
    assert "api.shipstation.com" in text
    assert V2_KEY not in text


async def test_429_retry_after_is_waited_out(make_v2: Any, fake_clock: FakeClock) -> None:
    answers = [
        json_response({"errors": [{"message": "slow down"}]}, 429, **{"Retry-After": "17"}),
        json_response([]),
    ]
    async with make_v2(lambda r: answers.pop(0)) as (client, rec):
        assert await client.list_webhooks() == []
    assert len(rec.requests) == 2
    assert fake_clock.monotonic() >= 17


async def test_sliding_window_limit_is_200_per_minute(make_v2: Any, fake_clock: FakeClock) -> None:
    async with make_v2(lambda r: json_response([])) as (client, rec):
        for _ in range(201):
            await client.list_webhooks()
    assert len(rec.requests) == 201
    assert fake_clock.monotonic() >= 60  # the 201st had to wait for the window


async def test_warehouses_locations_and_webhooks(make_v2: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/v2/inventory_warehouses" and method == "GET":
            return json_response(
                {
                    "inventory_warehouses": [{"inventory_warehouse_id": "w1", "name": "Main"}],
                    "pages": 1,
                }
            )
        if path == "/v2/inventory_warehouses":
            return json_response(
                {
                    "inventory_warehouse_id": "w2",
                    "name": "New",
                    "created_at": "2026-01-15T12:00:00Z",
                }
            )
        if path == "/v2/inventory_locations" and method == "GET":
            return json_response(
                {
                    "inventory_locations": [
                        {"inventory_location_id": "l1", "inventory_warehouse_id": "w1"}
                    ],
                    "pages": 1,
                }
            )
        if path == "/v2/inventory_locations":
            return json_response(
                {"inventory_location_id": "l2", "name": "Bin", "inventory_warehouse_id": "w2"}
            )
        if path == "/v2/environment/webhooks":
            return json_response({"webhook_id": "h1", "url": "https://me/h", "event": "track"})
        return httpx.Response(204)

    async with make_v2(handler) as (client, rec):
        assert [w.inventory_warehouse_id for w in await client.list_inventory_warehouses()] == [
            "w1"
        ]
        created = await client.create_inventory_warehouse("New")
        assert [loc.inventory_location_id for loc in await client.list_inventory_locations()] == [
            "l1"
        ]
        location = await client.create_inventory_location("Bin", "w2")
        hook = await client.create_webhook(
            url="https://me/h", event="track", headers={"x-token": "t"}
        )
        await client.delete_webhook("h1")
    assert created.created_at is not None
    assert created.created_at.tzinfo is not None
    assert location.inventory_warehouse_id == "w2"
    assert hook.webhook_id == "h1"
    bodies = rec.bodies()
    assert bodies[3] == {"name": "Bin", "inventory_warehouse_id": "w2"}
    assert bodies[4] == {
        "url": "https://me/h",
        "event": "track",
        "headers": [{"key": "x-token", "value": "t"}],
    }
    assert (rec.requests[5].method, rec.requests[5].url.path) == (
        "DELETE",
        "/v2/environment/webhooks/h1",
    )


async def test_fetch_webhook_keys(make_v2: Any, rsa_key: Any) -> None:
    jwks = {"keys": [_jwk(rsa_key, "k1"), {"kty": "EC", "kid": "ec"}]}
    async with make_v2(lambda r: json_response(jwks)) as (client, rec):
        keys = await client.fetch_webhook_keys()
    assert list(keys) == ["k1"]
    assert rec.requests[0].url.path == "/jwks"


async def test_keys_from_a_foreign_url_are_fetched_without_the_api_key(
    make_v2: Any, rsa_key: Any
) -> None:
    jwks = {"keys": [_jwk(rsa_key, "k1")]}
    async with make_v2(
        lambda r: json_response(jwks), webhook_keys_url="https://keys.example.com/jwks"
    ) as (
        client,
        rec,
    ):
        await client.fetch_webhook_keys()
    assert "API-Key" not in rec.requests[0].headers


async def test_fetch_resource_checks_allow_list(make_v2: Any) -> None:
    async with make_v2(lambda r: json_response({"batch_id": "se-1"})) as (client, rec):
        ok = await client.fetch_resource(
            WebhookDelivery(
                resource_url="https://api.shipstation.com/v2/batches/se-1",
                resource_type="BATCH_PROCESSED_V2",
            )
        )
        with pytest.raises(ForeignURLError):
            await client.fetch_resource(
                WebhookDelivery(
                    resource_url="https://ssapi.shipstation.com/orders",
                    resource_type="BATCH_PROCESSED_V2",
                )
            )
    assert ok == {"batch_id": "se-1"}
    assert len(rec.requests) == 1
