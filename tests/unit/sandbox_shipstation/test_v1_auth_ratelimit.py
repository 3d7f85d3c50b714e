"""V1 authentication and the 40/min per-key budget with its headers."""

from __future__ import annotations

import base64

import httpx

from mlconnector.clock import FakeClock
from mlconnector.sandbox.shipstation import (
    ShipStationAccount,
    ShipStationSandbox,
    create_shipstation_sandbox,
)

from .conftest import BASE, V1_AUTH


def basic(key: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


async def test_missing_wrong_and_v2_credentials_are_401(v1: httpx.AsyncClient) -> None:
    for headers in (
        {"Authorization": ""},
        {"Authorization": basic("sandbox-v1-key", "wrong")},
        {"Authorization": basic("sandbox-v2-key", "")},  # a V2 key does not work on V1
        {"Authorization": "Bearer sandbox-v1-key"},
        {"Authorization": "Basic !!notbase64"},
    ):
        response = await v1.get("/orders", headers=headers)
        assert response.status_code == 401, headers
        assert "message" in response.json()
    assert (await v1.get("/orders")).status_code == 200


async def test_v2_api_key_header_is_not_v1_auth(v1: httpx.AsyncClient) -> None:
    response = await v1.get("/orders", headers={"Authorization": "", "API-Key": "sandbox-v2-key"})
    assert response.status_code == 401


async def test_every_response_carries_rate_limit_headers(v1: httpx.AsyncClient) -> None:
    ok = await v1.get("/orders")
    bad = await v1.get("/orders?pageSize=501")
    missing = await v1.get("/orders/424242")
    for response, remaining in ((ok, "39"), (bad, "38"), (missing, "37")):
        assert response.headers["X-Rate-Limit-Limit"] == "40"
        assert response.headers["X-Rate-Limit-Remaining"] == remaining
        assert response.headers["X-Rate-Limit-Reset"] == "60"
    assert bad.status_code == 400
    assert missing.status_code == 404


async def test_41st_request_in_a_window_is_429_until_reset(
    v1: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    for _ in range(40):
        assert (await v1.get("/stores")).status_code == 200
    fake_clock.advance(20.4)
    limited = await v1.get("/stores")
    assert limited.status_code == 429
    assert limited.json() == {"message": "Too Many Requests"}
    assert limited.headers["X-Rate-Limit-Remaining"] == "0"
    assert limited.headers["X-Rate-Limit-Reset"] == "40"  # whole seconds, rounded up
    fake_clock.advance(39.6)  # window started at the first request: 60 s later it resets
    fresh = await v1.get("/stores")
    assert fresh.status_code == 200
    assert fresh.headers["X-Rate-Limit-Remaining"] == "39"
    assert fresh.headers["X-Rate-Limit-Reset"] == "60"


async def test_budget_is_per_key(fake_clock: FakeClock) -> None:
    other = ShipStationAccount("key-b", "secret-b", None)
    sandbox = create_shipstation_sandbox(fake_clock, accounts=[ShipStationAccount(), other])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sandbox.app), base_url=BASE) as c:
        for _ in range(40):
            await c.get("/stores", headers={"Authorization": V1_AUTH})
        assert (await c.get("/stores", headers={"Authorization": V1_AUTH})).status_code == 429
        second = await c.get("/stores", headers={"Authorization": basic("key-b", "secret-b")})
        assert second.status_code == 200
        assert second.headers["X-Rate-Limit-Remaining"] == "39"


async def test_injected_429_storm_looks_like_the_real_v1_limit(
    sandbox: ShipStationSandbox, v1: httpx.AsyncClient
) -> None:
    sandbox.faults.configure(storm_requests=1, storm_retry_after=7)
    storm = await v1.get("/orders")
    assert storm.status_code == 429
    assert storm.json() == {"message": "Too Many Requests"}
    assert storm.headers["X-Rate-Limit-Remaining"] == "0"
    assert storm.headers["X-Rate-Limit-Reset"] == "7"
    assert storm.headers["X-Rate-Limit-Limit"] == "40"
    assert (await v1.get("/orders")).status_code == 200
    # the operator surface is never disturbed by faults
    sandbox.faults.configure(storm_requests=5)
    assert (await v1.get("/_operator/counts")).status_code == 200


async def test_unknown_v1_paths_are_authenticated_json_404s(v1: httpx.AsyncClient) -> None:
    response = await v1.get("/customers/1")
    assert response.status_code == 404
    assert "message" in response.json()
    assert response.headers["X-Rate-Limit-Remaining"] == "39"
    assert (await v1.get("/customers/1", headers={"Authorization": ""})).status_code == 401
