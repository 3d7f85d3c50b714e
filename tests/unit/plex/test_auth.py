"""Plex authentication: API-key header, routing headers, the OAuth2 token cache and 401 handling."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic import ValidationError

from mlconnector.clock import FakeClock
from mlconnector.errors import AuthenticationError, ForeignURLError
from mlconnector.http import RateLimiterRegistry, Redactor
from mlconnector.plex.auth import TokenClient
from tests.unit.plex.conftest import make_settings, plex_client

TOKEN_URL = "https://auth.example-plex.test/oauth/token"


def oauth_settings(**auth: object) -> object:
    return make_settings(
        endpoints={"token_url": TOKEN_URL},
        auth={
            "strategy": "oauth2",
            "client_id": "cid",
            "client_secret": "client-secret-xyz",
            **auth,
        },
    )


class TokenServer:
    """Issues numbered tokens; the API accepts only the tokens listed in ``valid``."""

    def __init__(self, *, lifetime: int = 3600, accept: bool = True) -> None:
        self.lifetime = lifetime
        self.issued = 0
        self.accept = accept
        self.api_calls: list[httpx.Request] = []
        self.token_calls: list[httpx.Request] = []
        self.revoked: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example-plex.test":
            self.token_calls.append(request)
            self.issued += 1
            return httpx.Response(
                200, json={"access_token": f"tok-{self.issued}", "expires_in": self.lifetime}
            )
        self.api_calls.append(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not self.accept or token in self.revoked:
            return httpx.Response(
                401, json={"code": "REQUEST_NOT_AUTHENTICATED", "message": "not authenticated"}
            )
        return httpx.Response(200, json=[])


async def test_api_key_header_is_sent_and_no_bearer(http_factory, settings, fake_clock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    client = plex_client(http_factory(handler), settings, fake_clock)
    await client.list_locations()
    assert seen[0].headers["X-Plex-Connect-Api-Key"] == "key-123456"
    assert "Authorization" not in seen[0].headers
    assert "X-Plex-Connect-Api-Secret" not in seen[0].headers
    assert "X-Plex-Connect-Customer-Id" not in seen[0].headers


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        ({"pcn": "340884"}, "X-Plex-Connect-Customer-Id", "340884"),
        (
            {"tenant_id": "0b0e2f5e-1111-4e3a-9c3c-000000000001"},
            "X-Plex-Connect-Tenant-Id",
            "0b0e2f5e-1111-4e3a-9c3c-000000000001",
        ),
        (
            {"api_secret": "sec-98765", "send_api_secret_header": True},
            "X-Plex-Connect-Api-Secret",
            "sec-98765",
        ),
        ({"pcn": "77", "customer_id_header": "X-Custom-Pcn"}, "X-Custom-Pcn", "77"),
        ({"api_key_header": "X-Other-Key"}, "X-Other-Key", "key-123456"),
    ],
)
async def test_routing_and_optional_headers(http_factory, fake_clock, auth, header, value) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    client = plex_client(http_factory(handler), make_settings(auth=auth), fake_clock)
    await client.list_locations()
    assert seen[0].headers[header] == value


def test_pcn_and_tenant_are_exclusive() -> None:
    with pytest.raises(ValidationError, match="either"):
        make_settings(auth={"pcn": "1", "tenant_id": "t"})


def test_oauth2_needs_a_token_url() -> None:
    with pytest.raises(ValidationError, match="token_url"):
        make_settings(auth={"strategy": "oauth2", "client_id": "c", "client_secret": "s"})


async def test_token_is_cached_until_shortly_before_expiry(http_factory, fake_clock) -> None:
    server = TokenServer(lifetime=600)
    client = plex_client(http_factory(server), oauth_settings(token_refresh_margin=60), fake_clock)
    for _ in range(3):
        await client.list_locations()
    assert len(server.token_calls) == 1
    assert {r.headers["Authorization"] for r in server.api_calls} == {"Bearer tok-1"}
    fake_clock.advance(530)  # 10 s before the 60 s margin: still valid
    await client.list_locations()
    assert len(server.token_calls) == 1
    fake_clock.advance(15)  # inside the margin: renewed before use
    await client.list_locations()
    assert len(server.token_calls) == 2
    assert server.api_calls[-1].headers["Authorization"] == "Bearer tok-2"


async def test_token_request_is_a_client_credentials_form(http_factory, fake_clock) -> None:
    server = TokenServer()
    client = plex_client(http_factory(server), oauth_settings(oauth_scope="plex.read"), fake_clock)
    await client.list_locations()
    form = dict(httpx.QueryParams(server.token_calls[0].content.decode()))
    assert form == {
        "grant_type": "client_credentials",
        "client_id": "cid",
        "client_secret": "client-secret-xyz",
        "scope": "plex.read",
    }
    assert server.token_calls[0].headers["Content-Type"] == "application/x-www-form-urlencoded"
    # The client secret never travels to the Connect host.
    for request in server.api_calls:
        assert b"client-secret-xyz" not in request.content
        assert "client-secret-xyz" not in str(request.headers)


async def test_one_refresh_on_401_then_success(http_factory, fake_clock) -> None:
    server = TokenServer()
    client = plex_client(http_factory(server), oauth_settings(), fake_clock)
    await client.list_locations()
    server.revoked.add("tok-1")  # the server forgot the token early
    await client.list_locations()
    assert len(server.token_calls) == 2
    assert server.api_calls[-1].headers["Authorization"] == "Bearer tok-2"


async def test_second_401_after_refresh_is_fatal(http_factory, fake_clock) -> None:
    server = TokenServer(accept=False)
    client = plex_client(http_factory(server), oauth_settings(), fake_clock)
    with pytest.raises(AuthenticationError) as info:
        await client.list_locations()
    assert len(server.token_calls) == 2  # the first token, one refresh, no more
    assert len(server.api_calls) == 2
    assert "Inventory" in str(info.value)


async def test_api_key_401_is_not_retried(http_factory, settings, fake_clock) -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(401, json={"code": "REQUEST_NOT_AUTHENTICATED", "message": "no"})

    client = plex_client(http_factory(handler), settings, fake_clock)
    with pytest.raises(AuthenticationError):
        await client.list_locations()
    assert len(calls) == 1


async def test_token_client_refuses_another_host(http_factory, fake_clock) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"access_token": "x"})

    settings = oauth_settings()
    token_client = TokenClient(
        http_factory(handler),
        token_url=TOKEN_URL,
        auth=settings.auth,
        clock=fake_clock,
        redactor=Redactor(),
    )
    token_client.token_url = "https://evil.example.com/token"
    with pytest.raises(ForeignURLError):
        await token_client.fetch()
    assert sent == []


async def test_token_endpoint_refusal_is_fatal(http_factory, fake_clock) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "invalid_client"})

    client = plex_client(http_factory(handler), oauth_settings(), fake_clock)
    with pytest.raises(AuthenticationError, match="client credentials"):
        await client.list_locations()


async def test_rate_limiter_paces_to_200_per_minute(http_factory, settings) -> None:
    clock = FakeClock()
    registry = RateLimiterRegistry(clock)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[])

    client = plex_client(http_factory(handler), settings, clock, limiters=registry)
    for _ in range(201):
        await client.list_locations()
    assert client.limiter is not None
    assert client.limiter.limit == 200
    assert clock.monotonic() >= 60  # the 201st request waited for the sliding window
    # The same key shares one budget across clients.
    other = plex_client(http_factory(handler), settings, clock, limiters=registry)
    assert other.limiter is client.limiter


async def test_concurrent_requests_share_one_token_fetch(http_factory, fake_clock) -> None:
    server = TokenServer()

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)  # let the other requests run while this one is in flight
        return server(request)

    client = plex_client(http_factory(slow), oauth_settings(), fake_clock)
    await asyncio.gather(*(client.list_locations() for _ in range(10)))
    assert len(server.token_calls) == 1
    assert len(server.api_calls) == 10
