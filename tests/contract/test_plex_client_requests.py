"""The Plex client's requests against the public Plex Connect description in ``../shared/specs``.

The client is driven through its reads and both write strategies (against the simulator, so the
flows run to the end) while every request is recorded. Each Connect REST request must then name a
path and method of ``plex-connect.openapi.yaml``, use only query parameters that operation
declares (Plex ignores unknown ones silently, so a typo would otherwise go unnoticed), send
date-times as UTC with ``Z``, and send only body fields of the operation's request schema.
Without the spec (``<repo>/../shared`` absent) the module is skipped.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.plex import (
    DataSourceStrategy,
    PlexClient,
    PlexDataSourceClient,
    PlexSettings,
    ShipmentLine,
    ShipmentWrite,
    ShipperStrategy,
)
from mlconnector.sandbox.plex import LinePlan, PlexSandbox, ReleasePlan, create_plex_sandbox

pytestmark = pytest.mark.contract

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "plex-connect.openapi.yaml"
PLEX_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$")
BASE = "http://plex.sandbox.invalid"
NOT_CONNECT = ("/oauth2/", "/api/datasources/", "/DataSource/", "/_operator/")

if not SPEC.is_file():
    pytest.skip(f"Plex spec not found at {SPEC} (../shared is absent)", allow_module_level=True)

yaml = pytest.importorskip("yaml")


@functools.cache
def spec() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC.open(encoding="utf-8") as handle:
        return dict(yaml.load(handle, Loader=loader))


def resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = spec()["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def operation(method: str, path: str) -> dict[str, Any] | None:
    for template, item in spec()["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return dict(item[method.lower()])
    return None


class Recorder(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return await self.inner.handle_async_request(request)


@pytest.fixture
async def recorded(fake_clock: FakeClock) -> list[httpx.Request]:
    sandbox = create_plex_sandbox(fake_clock)
    recorder = Recorder(httpx.ASGITransport(sandbox.app))
    async with httpx.AsyncClient(transport=recorder) as http:
        await exercise(http, sandbox, fake_clock)
    return recorder.requests


def settings_for(sandbox: PlexSandbox) -> PlexSettings:
    creds = sandbox.credentials()
    tenant = creds["tenants"][0]
    return PlexSettings.model_validate(
        {
            "endpoints": {
                "connect_url": BASE,
                "datasource_url": BASE,
                "soap_url": f"{BASE}/DataSource/Service.asmx",
                "token_url": f"{BASE}{creds['token_path']}",
            },
            "auth": {
                "strategy": "oauth2",
                "client_id": creds["consumer_key"],
                "client_secret": creds["consumer_secret"],
                "pcn": str(tenant["pcn"]),
                "ws_username": tenant["ws_username"],
                "ws_password": tenant["ws_password"],
            },
        }
    )


async def exercise(http: httpx.AsyncClient, sandbox: PlexSandbox, clock: FakeClock) -> None:
    """Every read and write path of the client, once."""
    settings = settings_for(sandbox)
    plex = PlexClient(http, settings, clock=clock)
    datasources = PlexDataSourceClient(http, settings, clock=clock)
    end = clock.now()
    orders = [o async for o in plex.iter_orders_modified(end - timedelta(days=2), end)]
    [r async for r in plex.iter_releases_modified(end - timedelta(days=2), end)]
    order = orders[0] if orders else await plex.get_order(next(iter(sandbox.tenant().orders)))
    await plex.list_orders([order.id])
    lines = await plex.list_order_lines(order.id)
    await plex.list_releases_for_lines([line.id for line in lines])
    assert order.customer_id is not None
    await plex.get_customer(order.customer_id)
    await plex.list_addresses(order.customer_id)
    await plex.list_parts([line.part_id for line in lines if line.part_id])
    await plex.list_locations()
    part = next(iter(sandbox.tenant().parts.values())).id
    await plex.on_hand([part])
    for n, name in enumerate(["shipper", "datasource"]):
        stock = [c for c in await plex.list_containers(part_id=part) if plex.shippable(c)]
        quantity = min(stock, key=lambda c: (c.add_date_time, c.serial_no)).quantity
        added = sandbox.add_order(
            lines=[LinePlan(part, [ReleasePlan(quantity + 1, clock.now() + timedelta(days=1))])]
        )
        new_lines = await plex.list_order_lines(added.id)
        release = (await plex.list_releases_for_lines([ln.id for ln in new_lines]))[0]
        write = ShipmentWrite(
            reference=f"ss-shipment-{70 + n}",
            carrier="ups",
            service="ground",
            tracking_number=f"1Z{n}",
            ship_date=clock.now(),
            lines=(ShipmentLine(release.id, part, quantity),),
            order_id=added.id,
        )
        if name == "shipper":
            strategy: ShipperStrategy | DataSourceStrategy = ShipperStrategy(plex)
        else:
            held = await plex.create_shipper(
                {"customerId": added.customer_id, "customerAddressId": release.ship_to_address_id}
            )
            await plex.schedule_release(held.id, release.id)
            strategy = DataSourceStrategy(plex, datasources)
        await strategy.write_shipment(write)
        if name == "datasource":
            await strategy.reverse(write.reference)


def connect_requests(requests: list[httpx.Request]) -> list[httpx.Request]:
    return [r for r in requests if not r.url.path.startswith(NOT_CONNECT)]


async def test_every_request_is_a_documented_operation(recorded) -> None:
    requests = connect_requests(recorded)
    assert len(requests) > 30
    undocumented = {
        f"{r.method} {r.url.path}" for r in requests if operation(r.method, r.url.path) is None
    }
    assert undocumented == set()


async def test_query_parameters_are_declared_and_dates_carry_z(recorded) -> None:
    problems: list[str] = []
    for request in connect_requests(recorded):
        op = operation(request.method, request.url.path)
        assert op is not None
        declared = {p["name"]: p for p in op.get("parameters", []) if p.get("in") == "query"}
        for name, value in request.url.params.multi_items():
            if name not in declared:
                problems.append(f"{request.method} {request.url.path}: unknown ?{name}")
                continue
            is_date = resolve(declared[name].get("schema", {})).get("format") == "date-time"
            if is_date and not PLEX_DATETIME.match(value):
                problems.append(f"{request.url.path}: {name}={value} is not UTC with Z")
    assert problems == []


async def test_json_bodies_use_documented_fields(recorded) -> None:
    problems: list[str] = []
    for request in connect_requests(recorded):
        if not request.content:
            continue
        op = operation(request.method, request.url.path)
        assert op is not None
        schema = resolve(
            op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        )
        body = json.loads(request.content)
        if schema is None:
            problems.append(f"{request.method} {request.url.path}: body sent, none documented")
            continue
        documented = set(schema.get("properties", {}))
        unknown = set(body) - documented if isinstance(body, dict) else set()
        if unknown:
            problems.append(f"{request.method} {request.url.path}: {sorted(unknown)}")
    assert problems == []
