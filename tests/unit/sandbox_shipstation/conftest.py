"""Fixtures for the ShipStation simulator tests: a sandbox on a FakeClock and clients for it."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.sandbox.shipstation import ShipStationSandbox, create_shipstation_sandbox

BASE = "http://ss.test"
V1_AUTH = "Basic " + base64.b64encode(b"sandbox-v1-key:sandbox-v1-secret").decode()
V2_HEADERS = {"API-Key": "sandbox-v2-key"}


class Receiver:
    """A webhook receiver: records every POST and answers 200 (or ``status``)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def sandbox(fake_clock: FakeClock, receiver: Receiver) -> ShipStationSandbox:
    return create_shipstation_sandbox(
        fake_clock, public_url=BASE, webhook_transport=httpx.MockTransport(receiver)
    )


@pytest.fixture
async def v1(sandbox: ShipStationSandbox) -> AsyncIterator[httpx.AsyncClient]:
    """A V1 client with valid Basic credentials."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(sandbox.app),
        base_url=BASE,
        headers={"Authorization": V1_AUTH},
    ) as client:
        yield client


@pytest.fixture
async def v2(sandbox: ShipStationSandbox) -> AsyncIterator[httpx.AsyncClient]:
    """A V2 client with a valid API-Key."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(sandbox.app), base_url=BASE, headers=V2_HEADERS
    ) as client:
        yield client


def order_payload(number: str = "SO-1", key: str | None = "key-1", **extra: Any) -> dict[str, Any]:
    """A valid V1 createorder body."""
    body: dict[str, Any] = {
        "orderNumber": number,
        "orderDate": "2026-01-15 08:00:00",
        "orderStatus": "awaiting_shipment",
        "shipTo": {
            "name": "Ada",
            "street1": "1 Main St",
            "city": "Austin",
            "state": "TX",
            "postalCode": "78701",
            "country": "US",
        },
        "billTo": {"name": "Ada"},
        "items": [
            {
                "lineItemKey": "L1",
                "sku": "PART-1",
                "name": "Widget",
                "quantity": 3,
                "unitPrice": 2.5,
            },
            {
                "lineItemKey": "L2",
                "sku": "PART-2",
                "name": "Gadget",
                "quantity": 1,
                "unitPrice": 9.0,
            },
        ],
        "internalNotes": "note",
    }
    if key is not None:
        body["orderKey"] = key
    body.update(extra)
    return body
