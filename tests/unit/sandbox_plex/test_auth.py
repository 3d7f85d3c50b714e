"""Credentials, tokens, tenants, products, permissions and the rate limit of the Plex simulator."""

from __future__ import annotations

import httpx

from mlconnector.clock import FakeClock
from mlconnector.sandbox.plex import (
    DEFAULT_CONSUMER_KEY,
    DEFAULT_CONSUMER_SECRET,
    DEFAULT_TOKEN_PATH,
    PlexSandbox,
    create_plex_sandbox,
)

NOT_AUTHENTICATED = {
    "code": "REQUEST_NOT_AUTHENTICATED",
    "message": "The request could not be authenticated.",
}


async def _token(anon: httpx.AsyncClient, path: str = DEFAULT_TOKEN_PATH) -> dict[str, object]:
    response = await anon.post(
        path,
        data={
            "grant_type": "client_credentials",
            "client_id": DEFAULT_CONSUMER_KEY,
            "client_secret": DEFAULT_CONSUMER_SECRET,
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_api_key_header_authenticates(client: httpx.AsyncClient) -> None:
    response = await client.get("/mdm/v1/tenants")
    assert response.status_code == 200
    assert {t["code"] for t in response.json()} == {"mlauto", "mlautoca"}


async def test_missing_or_wrong_key_is_401_with_plex_body(anon: httpx.AsyncClient) -> None:
    missing = await anon.get("/sales/v1/orders")
    wrong = await anon.get("/sales/v1/orders", headers={"X-Plex-Connect-Api-Key": "nope"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.json() == wrong.json() == NOT_AUTHENTICATED


async def test_key_in_query_string_is_not_accepted(anon: httpx.AsyncClient) -> None:
    response = await anon.get("/sales/v1/orders", params={"apiKey": DEFAULT_CONSUMER_KEY})
    assert response.status_code == 401


async def test_oauth2_client_credentials_token_in_body(anon: httpx.AsyncClient) -> None:
    token = await _token(anon)
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    response = await anon.get(
        "/sales/v1/orders", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert response.status_code == 200
    assert len(response.json()) == 40


async def test_oauth2_client_credentials_with_basic_auth(anon: httpx.AsyncClient) -> None:
    response = await anon.post(
        DEFAULT_TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        auth=(DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET),
    )
    assert response.status_code == 200
    assert response.json()["access_token"]


async def test_token_endpoint_rejects_bad_secret_and_grant(anon: httpx.AsyncClient) -> None:
    bad_secret = await anon.post(
        DEFAULT_TOKEN_PATH,
        data={
            "grant_type": "client_credentials",
            "client_id": DEFAULT_CONSUMER_KEY,
            "client_secret": "wrong",
        },
    )
    bad_grant = await anon.post(
        DEFAULT_TOKEN_PATH,
        data={"grant_type": "password"},
        auth=(DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET),
    )
    as_json = await anon.post(
        DEFAULT_TOKEN_PATH,
        json={"grant_type": "client_credentials"},
        auth=(DEFAULT_CONSUMER_KEY, DEFAULT_CONSUMER_SECRET),
    )
    assert (bad_secret.status_code, bad_secret.json()["error"]) == (401, "invalid_client")
    assert (bad_grant.status_code, bad_grant.json()["error"]) == (400, "unsupported_grant_type")
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")


async def test_token_expires_with_the_clock(anon: httpx.AsyncClient, fake_clock: FakeClock) -> None:
    token = await _token(anon)
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    fake_clock.advance(3599)
    assert (await anon.get("/mdm/v1/parts", headers=headers)).status_code == 200
    fake_clock.advance(1)
    expired = await anon.get("/mdm/v1/parts", headers=headers)
    assert expired.status_code == 401
    assert expired.json() == NOT_AUTHENTICATED


async def test_wrong_bearer_token_is_401_even_with_a_valid_key(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/mdm/v1/parts", headers={"Authorization": "Bearer forged"})
    assert response.status_code == 401


async def test_token_path_is_configurable(fake_clock: FakeClock) -> None:
    sandbox = create_plex_sandbox(fake_clock, token_path="/identity/connect/token")
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://x.test") as anon:
        assert (await _token(anon, "/identity/connect/token"))["access_token"]
        default = await anon.post(DEFAULT_TOKEN_PATH, data={"grant_type": "client_credentials"})
        assert default.status_code == 404


async def test_tenants_are_isolated_by_pcn_header(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    first, second = sandbox.tenant(), sandbox.tenant("mlautoca")
    default = await client.get("/sales/v1/orders")
    by_pcn = await client.get(
        "/sales/v1/orders", headers={"X-Plex-Connect-Customer-Id": str(second.tenant.pcn)}
    )
    by_tenant_id = await client.get(
        "/sales/v1/orders", headers={"X-Plex-Connect-Tenant-Id": second.tenant.id}
    )
    assert {o["id"] for o in default.json()} == set(first.orders)
    assert {o["id"] for o in by_pcn.json()} == set(second.orders)
    assert by_tenant_id.json() == by_pcn.json()
    assert not set(first.orders) & set(second.orders)
    # a record of one tenant is not reachable through the other
    some_order = next(iter(first.orders))
    cross = await client.get(
        f"/sales/v1/orders/{some_order}",
        headers={"X-Plex-Connect-Customer-Id": str(second.tenant.pcn)},
    )
    assert cross.status_code == 404


async def test_pcn_the_app_may_not_use_is_401(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    second = sandbox.tenant("mlautoca")
    sandbox.add_app("narrow-key", "narrow-secret", tenants=["mlauto"])
    unknown = await client.get("/sales/v1/orders", headers={"X-Plex-Connect-Customer-Id": "999"})
    foreign = await client.get(
        "/sales/v1/orders",
        headers={
            "X-Plex-Connect-Api-Key": "narrow-key",
            "X-Plex-Connect-Customer-Id": str(second.tenant.pcn),
        },
    )
    assert unknown.status_code == foreign.status_code == 401
    assert foreign.json() == NOT_AUTHENTICATED
    tenants = await client.get("/mdm/v1/tenants", headers={"X-Plex-Connect-Api-Key": "narrow-key"})
    assert [t["code"] for t in tenants.json()] == ["mlauto"]


async def test_unsubscribed_product_is_401_not_403(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    sandbox.unsubscribe("Customer Shippers")
    shippers = await client.get("/shipping/v1/customer-shippers")
    orders = await client.get("/sales/v1/orders")
    assert shippers.status_code == 401
    assert shippers.json() == NOT_AUTHENTICATED
    assert orders.status_code == 200
    sandbox.subscribe("Customer Shippers")
    assert (await client.get("/shipping/v1/customer-shippers")).status_code == 200


async def test_missing_permission_is_403_with_a_code(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    sandbox.revoke_permission("sales.releases.write")
    release_id = next(iter(sandbox.tenant().releases))
    read = await client.get(f"/sales/v1/releases/{release_id}")
    write = await client.put(f"/sales/v1/releases/{release_id}", json={"note": "x"})
    assert read.status_code == 200
    assert write.status_code == 403
    body = write.json()
    assert body["code"] == "REQUEST_NOT_AUTHORIZED"
    assert "sales.releases.write" in body["errors"][0]["message"]
    assert sandbox.release(release_id).note is None


async def test_rate_limit_200_per_minute_then_429(
    client: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    for _ in range(200):
        assert (await client.get("/mdm/v1/tenants")).status_code == 200
    limited = await client.get("/mdm/v1/tenants")
    assert limited.status_code == 429
    assert limited.json()["code"] == "TOO_MANY_REQUESTS"
    assert "retry-after" not in limited.headers  # Plex documents no rate headers
    fake_clock.advance(60)
    assert (await client.get("/mdm/v1/tenants")).status_code == 200


async def test_rate_limit_is_per_app(client: httpx.AsyncClient, sandbox: PlexSandbox) -> None:
    sandbox.set_rate_limit(3)
    sandbox.add_app("other-key", "other-secret")
    for _ in range(3):
        await client.get("/mdm/v1/tenants")
    assert (await client.get("/mdm/v1/tenants")).status_code == 429
    other = await client.get("/mdm/v1/tenants", headers={"X-Plex-Connect-Api-Key": "other-key"})
    assert other.status_code == 200


async def test_injected_storm_answers_plex_shaped_429(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    sandbox.faults.configure(storm_requests=1)
    response = await client.get("/mdm/v1/tenants")
    assert response.status_code == 429
    assert response.json()["code"] == "TOO_MANY_REQUESTS"
    assert (await client.get("/mdm/v1/tenants")).status_code == 200


async def test_unknown_path_is_plex_shaped_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/sales/v1/sales-orders")
    assert response.status_code == 404
    assert response.json()["code"] == "RESOURCE_NOT_FOUND"


async def test_token_endpoint_survives_undecodable_form(anon: httpx.AsyncClient) -> None:
    response = await anon.post(
        DEFAULT_TOKEN_PATH,
        content=b"\xff\xfe",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
