"""Fixtures for the Plex simulator tests: a seeded sandbox on a fake clock, mounted in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.sandbox.plex import (
    DEFAULT_CONSUMER_KEY,
    DEFAULT_WS_PASSWORD,
    PlexSandbox,
    create_plex_sandbox,
)

BASE_URL = "https://connect.plex.test"
KEY_HEADERS = {"X-Plex-Connect-Api-Key": DEFAULT_CONSUMER_KEY}


@pytest.fixture
def sandbox(fake_clock: FakeClock) -> PlexSandbox:
    return create_plex_sandbox(fake_clock, seed=42)


@pytest.fixture
async def client(sandbox: PlexSandbox) -> AsyncIterator[httpx.AsyncClient]:
    """An API client authenticated with the API-key header (default tenant)."""
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE_URL, headers=KEY_HEADERS
    ) as http:
        yield http


@pytest.fixture
async def anon(sandbox: PlexSandbox) -> AsyncIterator[httpx.AsyncClient]:
    """A client without credentials."""
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.fixture
def ws_auth(sandbox: PlexSandbox) -> httpx.BasicAuth:
    """Basic auth of the first tenant's web-service user."""
    pcn = sandbox.tenant().tenant.pcn
    return httpx.BasicAuth(sandbox.ws_username(pcn), DEFAULT_WS_PASSWORD)
