"""Settings for the unconfirmed ShipStation facts: the JWKS URL, V2 next-link hosts and the
fulfilment pointer shape (validated; errors name the setting)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from mlconnector.config import (
    PRODUCTION_WEBHOOK_KEYS_URL,
    ShipStationSettings,
    parse_config,
)
from mlconnector.errors import ConfigError, ForeignURLError
from mlconnector.shipstation import WebhookDelivery
from tests.unit.shipstation.conftest import V2_KEY, json_response
from tests.unit.shipstation.test_webhooks import _jwk

FILE = Path("/etc/mlconnector.toml")


def _settings(text: str) -> ShipStationSettings:
    text = '[connections.acme.plex]\npcn = "1"\n[connections.acme.shipstation]\n' + text
    config = parse_config(text, FILE, {"HOME": "/u"})
    return config.connection("acme").shipstation


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        _settings(text)
    return str(info.value)


# --- the webhook signing keys ------------------------------------------------------------------
def test_keys_url_defaults_to_shipengine_in_production_and_base_jwks_elsewhere() -> None:
    assert _settings("").effective_webhook_keys_url == PRODUCTION_WEBHOOK_KEYS_URL
    sandbox = _settings('v2_base_url = "http://127.0.0.1:8701"')
    assert sandbox.effective_webhook_keys_url == "http://127.0.0.1:8701/jwks"
    chosen = _settings('webhook_keys_url = "https://keys.example.com/v2/jwks"')
    assert chosen.effective_webhook_keys_url == "https://keys.example.com/v2/jwks"


@pytest.mark.parametrize(
    "url", ["http://keys.example.com/jwks", "ftp://keys.example.com/jwks", "keys.example.com"]
)
def test_keys_url_must_be_https_and_the_error_names_the_setting(url: str) -> None:
    message = _error(f'webhook_keys_url = "{url}"')
    assert "connections.acme.shipstation.webhook_keys_url" in message
    assert url in message


@pytest.mark.parametrize("host", ["127.0.0.1:9", "localhost", "[::1]:8080"])
def test_keys_url_may_be_plain_http_to_loopback(host: str) -> None:
    url = f"http://{host}/jwks"
    assert _settings(f'webhook_keys_url = "{url}"').webhook_keys_url == url


async def test_v2_client_fetches_keys_from_the_production_default_without_the_key(
    make_v2: Any, rsa_key: Any
) -> None:
    jwks = {"keys": [_jwk(rsa_key, "k1")]}
    async with make_v2(lambda r: json_response(jwks)) as (client, rec):
        keys = await client.fetch_webhook_keys()
    assert list(keys) == ["k1"]
    assert str(rec.requests[0].url) == PRODUCTION_WEBHOOK_KEYS_URL
    assert "API-Key" not in rec.requests[0].headers


async def test_v2_client_fetches_sandbox_keys_from_its_base_with_the_key(
    make_v2: Any, rsa_key: Any
) -> None:
    jwks = {"keys": [_jwk(rsa_key, "k1")]}
    async with make_v2(lambda r: json_response(jwks), base_url="http://127.0.0.1:8701") as (
        client,
        rec,
    ):
        await client.fetch_webhook_keys()
    assert str(rec.requests[0].url) == "http://127.0.0.1:8701/jwks"
    assert rec.requests[0].headers["API-Key"] == V2_KEY


# --- V2 next links -----------------------------------------------------------------------------
def _two_pages(next_href: str) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "2":
            return json_response({"inventory": [{"sku": "S2", "on_hand": 2}], "links": {}})
        return json_response(
            {"inventory": [{"sku": "S1", "on_hand": 1}], "links": {"next": {"href": next_href}}}
        )

    return handler


async def test_next_link_to_another_host_is_refused_naming_the_setting(make_v2: Any) -> None:
    handler = _two_pages("https://gateway.example.com/ss/v2/inventory?page=2")
    async with make_v2(handler, connection="acme") as (client, rec):
        with pytest.raises(ForeignURLError) as info:
            _ = [lvl async for lvl in client.list_inventory()]
    assert len(rec.requests) == 1  # nothing went to the gateway
    assert "gateway.example.com" in info.value.message
    assert "connections.acme.shipstation.v2_next_link_bases" in (info.value.hint or "")


async def test_next_link_on_a_configured_base_is_followed_with_the_key(make_v2: Any) -> None:
    handler = _two_pages("https://gateway.example.com/ss/v2/inventory?page=2")
    async with make_v2(handler, next_link_bases=["https://gateway.example.com/ss"]) as (
        client,
        rec,
    ):
        skus = [lvl.sku async for lvl in client.list_inventory()]
    assert skus == ["S1", "S2"]
    assert rec.requests[1].url.host == "gateway.example.com"
    assert rec.requests[1].headers["API-Key"] == V2_KEY


async def test_next_link_outside_the_configured_path_prefix_is_refused(make_v2: Any) -> None:
    handler = _two_pages("https://gateway.example.com/other/v2/inventory?page=2")
    async with make_v2(handler, next_link_bases=["https://gateway.example.com/ss"]) as (
        client,
        rec,
    ):
        with pytest.raises(ForeignURLError):
            _ = [lvl async for lvl in client.list_inventory()]
    assert len(rec.requests) == 1


def test_next_link_bases_are_validated_https() -> None:
    message = _error('v2_next_link_bases = ["http://gateway.example.com"]')
    assert "connections.acme.shipstation.v2_next_link_bases" in message
    ok = _settings('v2_next_link_bases = ["https://gateway.example.com/ss/"]')
    assert ok.v2_next_link_bases == ("https://gateway.example.com/ss",)


# --- the fulfilment pointer shape --------------------------------------------------------------
def _fulfilments(request: httpx.Request) -> httpx.Response:
    return json_response({"fulfillments": [], "total": 0, "page": 1, "pages": 0})


async def test_default_fulfilment_shape_follows_a_fulfillments_pointer(make_v1: Any) -> None:
    url = "https://ssapi.shipstation.com/fulfillments?fulfillmentId=7"
    async with make_v1(_fulfilments) as (client, rec):
        batch = await client.follow(
            WebhookDelivery(resource_url=url, resource_type="FULFILLMENT_SHIPPED")
        )
    assert batch.fulfillments == []
    assert rec.requests[0].url.path == "/fulfillments"


async def test_other_fulfilment_shape_is_refused_naming_the_setting(make_v1: Any) -> None:
    url = "https://ssapi.shipstation.com/orders/fulfillment/7"
    async with make_v1(_fulfilments, connection="acme") as (client, rec):
        with pytest.raises(ForeignURLError) as info:
            await client.follow(
                WebhookDelivery(resource_url=url, resource_type="FULFILLMENT_SHIPPED")
            )
    assert rec.requests == []
    assert "connections.acme.shipstation.fulfillment_webhook_path" in info.value.message
    assert "poll" in (info.value.hint or "")


async def test_configured_fulfilment_shape_is_followed(make_v1: Any) -> None:
    url = "https://ssapi.shipstation.com/orders/fulfillment/7"
    async with make_v1(_fulfilments, fulfillment_webhook_path=r"/orders/fulfillment/\d+") as (
        client,
        rec,
    ):
        await client.follow(WebhookDelivery(resource_url=url, resource_type="FULFILLMENT_SHIPPED"))
    assert rec.requests[0].url.path == "/orders/fulfillment/7"


def test_fulfilment_shape_must_be_a_regular_expression() -> None:
    message = _error('fulfillment_webhook_path = "(/fulfillments"')
    assert "connections.acme.shipstation.fulfillment_webhook_path" in message
    assert "regular expression" in message
