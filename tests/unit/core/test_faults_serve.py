"""FaultInjector + serve: faults seen by a real httpx client over loopback HTTP."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mlconnector.clock import FakeClock
from mlconnector.errors import InvalidResponseError, RetryBudgetExhaustedError, TransientError
from mlconnector.http import ApiClient, RetryPolicy
from mlconnector.sandbox.faults import FaultInjector
from mlconnector.sandbox.server import serve


async def orders(request: Request) -> JSONResponse:
    return JSONResponse({"orders": [{"orderId": 1}], "path": request.url.path})


async def operator(request: Request) -> JSONResponse:
    return JSONResponse({"operator": True})


def toy_app() -> Starlette:
    return Starlette(
        routes=[Route("/api/orders", orders), Route("/_operator/state", operator)],
    )


@pytest.fixture
def injector(fake_clock: FakeClock) -> FaultInjector:
    return FaultInjector(toy_app(), fake_clock)


@pytest.fixture
async def http(injector: FaultInjector) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(injector) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        yield client


async def test_serve_binds_loopback_on_an_ephemeral_port_and_stops_after_the_block(
    injector: FaultInjector,
) -> None:
    async with serve(injector) as base_url:
        url = httpx.URL(base_url)
        assert url.host == "127.0.0.1"
        assert url.port is not None
        assert url.port > 0
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{base_url}/api/orders")
        assert response.json()["orders"] == [{"orderId": 1}]
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{base_url}/api/orders")


async def test_without_faults_requests_pass_through(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/orders")
    assert response.status_code == 200
    assert response.json() == {"orders": [{"orderId": 1}], "path": "/api/orders"}


async def test_a_429_storm_answers_the_next_n_requests_then_recovers(
    http: httpx.AsyncClient, injector: FaultInjector
) -> None:
    injector.configure(storm_requests=3, storm_retry_after=7)

    answers = [await http.get("/api/orders") for _ in range(4)]
    # The operator surface is never disturbed and does not use up the storm.
    during = await http.get("/_operator/state")

    assert [r.status_code for r in answers] == [429, 429, 429, 200]
    assert answers[0].headers["Retry-After"] == "7"
    assert answers[0].headers["X-Rate-Limit-Reset"] == "7"
    assert answers[0].json() == {"message": "Too Many Requests"}
    assert during.status_code == 200
    assert injector.config.injected == {"storm": 3}


async def test_storm_during_operator_calls_is_not_consumed(
    http: httpx.AsyncClient, injector: FaultInjector
) -> None:
    injector.configure(storm_requests=1)
    assert (await http.get("/_operator/state")).status_code == 200
    assert (await http.get("/api/orders")).status_code == 429
    assert (await http.get("/api/orders")).status_code == 200


async def test_error_rate_is_seeded_and_replays_exactly(
    http: httpx.AsyncClient, injector: FaultInjector
) -> None:
    injector.configure(error_rate=0.3, error_status=503, seed=42)
    first = [(await http.get("/api/orders")).status_code for _ in range(60)]
    injector.configure(error_rate=0.3, error_status=503, seed=42)
    second = [(await http.get("/api/orders")).status_code for _ in range(60)]

    # The same seed draws the same numbers: which requests fail is predictable.
    reference = random.Random(42)
    expected = [503 if reference.random() < 0.3 else 200 for _ in range(60)]
    assert first == second == expected
    assert 0 < first.count(503) < 60
    assert injector.config.injected == {"error": first.count(503)}


async def test_malformed_body_is_truncated_json_with_status_200(
    http: httpx.AsyncClient, injector: FaultInjector
) -> None:
    injector.configure(malformed_rate=1.0)
    response = await http.get("/api/orders")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert injector.config.injected == {"malformed": 1}


async def test_dropped_connection_is_a_transport_error_for_the_client(
    http: httpx.AsyncClient, injector: FaultInjector
) -> None:
    injector.configure(drop_rate=1.0)
    with pytest.raises(httpx.TransportError):
        await http.get("/api/orders")
    assert injector.config.injected == {"drop": 1}
    # The server is still up for the next, undisturbed request.
    injector.configure()
    assert (await http.get("/api/orders")).status_code == 200


async def test_dropped_connection_in_process_is_the_same_transport_error(
    injector: FaultInjector,
) -> None:
    injector.configure(drop_rate=1.0)
    transport = httpx.ASGITransport(app=injector)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/api/orders")


async def test_api_client_rides_out_injected_faults_over_loopback(
    injector: FaultInjector, fake_clock: FakeClock
) -> None:
    async with serve(injector) as base_url, httpx.AsyncClient() as http:
        client = ApiClient(
            http, base_url=base_url, clock=fake_clock, retry=RetryPolicy(max_attempts=3)
        )
        injector.configure(storm_requests=2, storm_retry_after=3)
        body = await client.request_json("GET", "api/orders")
        assert body["orders"] == [{"orderId": 1}]
        assert client.calls == 3
        assert fake_clock.monotonic() == 2 * 3  # two Retry-After waits, in virtual time

        injector.configure(drop_rate=1.0)
        with pytest.raises(RetryBudgetExhaustedError) as caught:
            await client.request_json("GET", "api/orders")
        assert isinstance(caught.value.__cause__, TransientError)
        assert injector.config.injected == {"drop": 3}

        injector.configure(malformed_rate=1.0)
        with pytest.raises(RetryBudgetExhaustedError) as caught:
            await client.request_json("GET", "api/orders")
        assert isinstance(caught.value.__cause__, InvalidResponseError)
