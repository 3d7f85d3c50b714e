"""Plex error answers reach the operator classified, naming the API product and what to grant."""

from __future__ import annotations

import httpx
import pytest

from mlconnector.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    RemoteValidationError,
    RetryBudgetExhaustedError,
)
from mlconnector.plex import product_for
from tests.unit.plex.conftest import make_settings, plex_client

UNAUTH = {"code": "REQUEST_NOT_AUTHENTICATED", "message": "The request could not be authenticated."}


def answering(status: int, body: object, seen: list[httpx.Request] | None = None):
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, json=body)

    return handler


@pytest.mark.parametrize(
    ("call", "product"),
    [
        (lambda c: c.get_order("o1"), "Sales Orders"),
        (lambda c: c.get_release("r1"), "Sales Releases"),
        (lambda c: c.list_containers(part_id="p1"), "Inventory"),
        (lambda c: c.get_shipper("s1"), "Customer Shippers"),
        (lambda c: c.get_customer("c1"), "Customers"),
    ],
)
async def test_401_names_the_product_and_the_pcn(http_factory, fake_clock, call, product) -> None:
    settings = make_settings(auth={"pcn": "340884"})
    client = plex_client(http_factory(answering(401, UNAUTH)), settings, fake_clock)
    with pytest.raises(AuthenticationError) as info:
        await call(client)
    text = str(info.value)
    assert f"'{product}' API product" in text
    assert "not be subscribed" in text
    assert "PCN 340884" in text
    assert "REQUEST_NOT_AUTHENTICATED" in text


async def test_403_names_resource_and_role(http_factory, settings, fake_clock) -> None:
    body = {"code": "FORBIDDEN", "message": "Access denied", "errors": []}
    client = plex_client(http_factory(answering(403, body)), settings, fake_clock)
    with pytest.raises(PermissionDeniedError) as info:
        await client.ship_shipper("s1")
    text = str(info.value)
    assert "Customer Shippers" in text
    assert "/shipping/v1-beta1/customer-shippers/s1/ship" in text
    assert "grant the integration user the role with Customer Shippers access" in text


async def test_400_argument_invalid_is_a_validation_error(http_factory, settings, fake_clock):
    body = {
        "code": "ARGUMENT_INVALID",
        "message": "Invalid argument",
        "errors": [{"code": "ARGUMENT_INVALID", "message": "modifiedDateBegin must be UTC"}],
    }
    seen: list[httpx.Request] = []
    client = plex_client(http_factory(answering(400, body, seen)), settings, fake_clock)
    with pytest.raises(RemoteValidationError) as info:
        await client.get_release("r1")
    assert "modifiedDateBegin must be UTC" in str(info.value)
    assert len(seen) == 1  # not retried


async def test_404_on_a_list_means_empty_but_on_a_record_is_not_found(
    http_factory, settings, fake_clock
) -> None:
    body = {"code": "RESOURCE_NOT_FOUND", "message": "Not found"}
    client = plex_client(http_factory(answering(404, body)), settings, fake_clock)
    assert await client.list_locations() == []
    with pytest.raises(NotFoundError):
        await client.get_release("r1")


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_429_and_5xx_are_retried(http_factory, settings, fake_clock, status) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) < 3:
            return httpx.Response(status, json={"code": "X", "message": "busy"})
        return httpx.Response(200, json=[{"locationId": "l1", "locationCode": "FG"}])

    client = plex_client(http_factory(handler), settings, fake_clock)
    locations = await client.list_locations()
    assert [loc.location_code for loc in locations] == ["FG"]
    assert len(seen) == 3


async def test_5xx_gives_up_after_the_budget(http_factory, settings, fake_clock) -> None:
    client = plex_client(http_factory(answering(500, {"code": "E"})), settings, fake_clock)
    with pytest.raises(RetryBudgetExhaustedError):
        await client.list_locations()


async def test_secrets_are_redacted_from_error_excerpts(http_factory, settings, fake_clock):
    body = {"code": "REQUEST_VALIDATION_FAILED", "message": "bad key key-123456"}
    client = plex_client(http_factory(answering(400, body)), settings, fake_clock)
    with pytest.raises(RemoteValidationError) as info:
        await client.get_release("r1")
    assert "key-123456" not in (info.value.body_excerpt or "")
    assert "key-123456" not in str(info.value)


def test_product_lookup() -> None:
    assert product_for("/sales/v1/orders/abc")[0] == "Sales Orders"
    assert product_for("/inventory/v1/inventory-tracking/containers")[0] == "Inventory"
    shipping = product_for("/inventory/v1-beta1/inventory-shipping/shipments/x/ship")
    assert shipping[0] == "Inventory Shipments"
    assert product_for("/unknown/v9/x")[0] == "Plex Connect"


@pytest.mark.parametrize(("headers", "waited"), [({}, 15.0), ({"Retry-After": "3"}, 3.0)])
async def test_429_without_retry_after_waits_the_configured_time(
    http_factory, settings, fake_clock, headers, waited
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(429, json={"code": "TOO_MANY_REQUESTS"}, headers=headers)
        return httpx.Response(200, json=[])

    client = plex_client(http_factory(handler), settings, fake_clock)
    await client.list_locations()
    assert fake_clock.monotonic() == waited
