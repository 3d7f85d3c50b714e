"""Fixtures for the ShipStation client tests: a recording mock transport and client factories."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from mlconnector.clock import FakeClock
from mlconnector.http import RetryPolicy
from mlconnector.shipstation import ShipStationV1Client, ShipStationV2Client

V1_KEY = "v1-key-ShipStation"
V1_SECRET = "v1-secret-Rocks-123"
V2_KEY = "v2-api-key-abcdef"

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Recorder:
    """A MockTransport handler that records every request it receives."""

    handler: Handler
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


def json_response(body: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


@pytest.fixture
def make_v1(
    fake_clock: FakeClock,
) -> Callable[..., Any]:
    """Build a V1 client over a recording MockTransport (``async with make_v1(h) as (c, r)``)."""

    @contextlib.asynccontextmanager
    async def factory(
        handler: Handler, **kwargs: Any
    ) -> AsyncIterator[tuple[ShipStationV1Client, Recorder]]:
        recorder = Recorder(handler)
        kwargs.setdefault("base_url", "https://ssapi.shipstation.com")
        kwargs.setdefault("retry", RetryPolicy(max_attempts=3, base_delay=1.0))
        async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as http:
            client = ShipStationV1Client(
                http, api_key=V1_KEY, api_secret=V1_SECRET, clock=fake_clock, **kwargs
            )
            yield client, recorder

    return factory


@pytest.fixture
def make_v2(fake_clock: FakeClock) -> Callable[..., Any]:
    """Build a V2 client over a recording MockTransport."""

    @contextlib.asynccontextmanager
    async def factory(
        handler: Handler, **kwargs: Any
    ) -> AsyncIterator[tuple[ShipStationV2Client, Recorder]]:
        recorder = Recorder(handler)
        kwargs.setdefault("retry", RetryPolicy(max_attempts=3, base_delay=1.0))
        async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as http:
            client = ShipStationV2Client(http, api_key=V2_KEY, clock=fake_clock, **kwargs)
            yield client, recorder

    return factory


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
