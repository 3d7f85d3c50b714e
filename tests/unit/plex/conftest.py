"""Fixtures of the Plex client tests: settings and clients over an ``httpx.MockTransport``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.http import RetryPolicy
from mlconnector.plex import PlexClient, PlexDataSourceClient, PlexSettings

Handler = Callable[[httpx.Request], httpx.Response]


def make_settings(**overrides: Any) -> PlexSettings:
    """Settings with an API key, a web-service user and 1-day windows, overridable by section."""
    auth: dict[str, Any] = {
        "api_key": "key-123456",
        "ws_username": "ConnectorWs@plex.com",
        "ws_password": "ws-secret-pw",
        **overrides.pop("auth", {}),
    }
    return PlexSettings.model_validate({"auth": auth, **overrides})


@pytest.fixture
def settings() -> PlexSettings:
    return make_settings()


@pytest.fixture
async def http_factory() -> AsyncIterator[Callable[[Handler], httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def build(handler: Handler) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.1)


def plex_client(
    http: httpx.AsyncClient, settings: PlexSettings, clock: FakeClock, **kwargs: Any
) -> PlexClient:
    return PlexClient(http, settings, clock=clock, retry=FAST_RETRY, **kwargs)


def datasource_client(
    http: httpx.AsyncClient, settings: PlexSettings, clock: FakeClock, **kwargs: Any
) -> PlexDataSourceClient:
    return PlexDataSourceClient(http, settings, clock=clock, retry=FAST_RETRY, **kwargs)
