"""The Plex simulator against the public Plex Connect description in ``../shared/specs``.

Every REST path the simulator serves is called, and the answer is validated with ``jsonschema``
(draft 2020-12 semantics, which cover the OpenAPI 3.0 keywords the file uses) against the response
schema of ``plex-connect.openapi.yaml`` for that path, method and status, ``$ref``s resolved inside
the document. Two adjustments, both applied to the whole document once:

* the scrape records **no nullability at all** (no ``nullable`` anywhere), while the simulator
  sends ``null`` for unset optional fields as a real service does; every property therefore also
  accepts ``null``, but a non-null value must have the documented type and format;
* every object schema with documented properties gets ``additionalProperties: false``, so a field
  name the simulator invented (or misspelled) fails the contract.

Date-time values must also be Plex's UTC form with ``Z``. The spec lives outside the repository
(``<repo>/../shared/specs``); without it the module is skipped. YAML is parsed once per session.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.sandbox.plex import DEFAULT_CONSUMER_KEY, PlexSandbox, create_plex_sandbox

pytestmark = pytest.mark.contract

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "plex-connect.openapi.yaml"
PLEX_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?Z$")

if not SPEC.is_file():
    pytest.skip(f"Plex spec not found at {SPEC} (../shared is absent)", allow_module_level=True)

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")

URN = "urn:plex-connect"


def _adjust(node: Any) -> Any:
    """Allow ``null`` on every property and forbid undocumented properties (see module doc)."""
    if isinstance(node, list):
        return [_adjust(item) for item in node]
    if not isinstance(node, dict):
        return node
    fixed = {key: _adjust(value) for key, value in node.items() if key != "example"}
    properties = fixed.get("properties")
    if isinstance(properties, dict) and properties:
        fixed["properties"] = {
            name: {"anyOf": [schema, {"type": "null"}]} for name, schema in properties.items()
        }
        fixed["additionalProperties"] = False
    return fixed


@functools.cache
def spec() -> dict[str, Any]:
    """The spec, parsed once (C loader when available: the file is 2.8 MB)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC.open(encoding="utf-8") as handle:
        return dict(yaml.load(handle, Loader=loader))


@functools.cache
def registry() -> Any:
    from referencing.jsonschema import DRAFT202012

    document = {"components": _adjust(spec()["components"])}
    return referencing.Registry().with_resource(URN, DRAFT202012.create_resource(document))


def response_schema(path: str, method: str, status: int) -> dict[str, Any]:
    operation = spec()["paths"][path][method]
    response = operation["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    return {"$id": f"{URN}-response", **_rebase(_adjust(schema))}


def _rebase(node: Any) -> Any:
    """Point local ``#/components`` references at the registered document."""
    if isinstance(node, list):
        return [_rebase(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: (f"{URN}{value}" if key == "$ref" and value.startswith("#/") else _rebase(value))
        for key, value in node.items()
    }


def _datetimes(node: Any, where: str = "$") -> list[str]:
    """Paths of date-time-looking string values that are not UTC-with-Z."""
    bad: list[str] = []
    if isinstance(node, list):
        for index, item in enumerate(node):
            bad += _datetimes(item, f"{where}[{index}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and (key.endswith(("Date", "DateTime", "Time"))):
                if not PLEX_DATETIME.match(value):
                    bad.append(f"{where}.{key}={value!r}")
            else:
                bad += _datetimes(value, f"{where}.{key}")
    return bad


def assert_conforms(path: str, method: str, response: httpx.Response) -> None:
    schema = response_schema(path, method, response.status_code)
    validator = jsonschema.Draft202012Validator(
        schema, registry=registry(), format_checker=jsonschema.FormatChecker()
    )
    body = response.json()
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])
    assert not _datetimes(body), _datetimes(body)


@dataclass
class World:
    sandbox: PlexSandbox
    http: httpx.AsyncClient
    ids: dict[str, str]


@pytest.fixture
async def world() -> AsyncIterator[World]:
    """A sandbox with one shipped customer shipper and one staged inventory shipment."""
    sandbox = create_plex_sandbox(FakeClock(), seed=42)
    transport = httpx.ASGITransport(app=sandbox.app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="https://connect.plex.test",
        headers={"X-Plex-Connect-Api-Key": DEFAULT_CONSUMER_KEY},
    ) as http:
        data = sandbox.tenant()
        release = next(
            r
            for r in data.releases.values()
            if r.status == "Open"
            and data.order_of_release(r).status == "Open"
            and r.quantity_shipped == 0
            and sandbox.on_hand(data.part_of_release(r).id) >= r.quantity
        )
        order = data.order_of_release(release)
        shipper = data.create_shipper(order.customer_id, release.ship_to_address_id, {})
        line = data.schedule_release(shipper, release.id, False)
        data.load_fifo(shipper, line.id)
        container = next(c for c in data.containers.values() if c.status == "OK")
        shipment = data.create_inventory_shipment("contract-1")
        ids = {
            "order": order.id,
            "release": release.id,
            "customer": order.customer_id,
            "address": release.ship_to_address_id,
            "tenant": data.tenant.id,
            "serial": container.serial_no,
            "shipper": shipper.id,
            "line": line.id,
            "shipment": shipment.id,
            "part": data.part_of_release(release).id,
            "order_line": release.order_line_id,
        }
        # a second, open shipper with an unloaded line for the write calls
        open_release = next(
            r
            for r in data.releases.values()
            if r.status == "Open"
            and r.id != release.id
            and data.order_of_release(r).status == "Open"
            and data.order_of_release(r).customer_id == order.customer_id
            and sandbox.on_hand(data.part_of_release(r).id) >= r.quantity + release.quantity
        )
        ids["open_release"] = open_release.id
        yield World(sandbox, http, ids)


Call = Callable[[World], Awaitable[httpx.Response]]


def get(url: str, **params: Any) -> Call:
    async def call(w: World) -> httpx.Response:
        return await w.http.get(url.format(**w.ids), params=params or None)

    return call


def send(method: str, url: str, body: Any = None) -> Call:
    async def call(w: World) -> httpx.Response:
        payload = body(w) if callable(body) else body
        return await w.http.request(method, url.format(**w.ids), json=payload)

    return call


async def _new_shipper_line(w: World) -> tuple[str, str]:
    created = await w.http.post(
        "/shipping/v1-beta1/customer-shippers",
        json={"customerId": w.ids["customer"], "customerAddressId": w.ids["address"]},
    )
    shipper_id = created.json()["id"]
    scheduled = await w.http.post(
        f"/shipping/v1-beta1/customer-shippers/{shipper_id}/schedule-releases",
        json={"releaseId": w.ids["open_release"]},
    )
    return shipper_id, scheduled.json()[0]["shipperLineId"]


async def _load_fifo(w: World) -> httpx.Response:
    shipper_id, line_id = await _new_shipper_line(w)
    return await w.http.post(
        f"/shipping/v1-beta1/customer-shippers/{shipper_id}/lines/{line_id}/load-fifo"
    )


async def _load_container(w: World) -> httpx.Response:
    shipper_id, line_id = await _new_shipper_line(w)
    data = w.sandbox.tenant()
    part_id = data.part_of_release(data.release(w.ids["open_release"])).id
    serial = next(
        c.serial_no
        for c in data.containers.values()
        if c.part_id == part_id
        and c.status == "OK"
        and data.reserved_quantity(c.serial_no) < c.quantity
    )
    return await w.http.post(
        f"/shipping/v1-beta1/customer-shippers/{shipper_id}/lines/{line_id}/load-container",
        json={"serialNo": serial},
    )


async def _stage(w: World) -> httpx.Response:
    return await w.http.post(
        "/inventory/v1-beta1/inventory-shipping/shipments/{shipment}/stage".format(**w.ids),
        json={"serialNos": [w.ids["serial"]]},
    )


async def _ship_inventory(w: World) -> httpx.Response:
    await _stage(w)
    return await w.http.post(
        "/inventory/v1-beta1/inventory-shipping/shipments/{shipment}/ship".format(**w.ids)
    )


async def _unship(w: World) -> httpx.Response:
    await _ship_inventory(w)
    return await w.http.post(
        "/inventory/v1-beta1/inventory-shipping/shipments/{shipment}/unship".format(**w.ids)
    )


async def _unstage(w: World) -> httpx.Response:
    await _stage(w)
    return await w.http.post(
        "/inventory/v1-beta1/inventory-shipping/shipments/{shipment}/unstage".format(**w.ids),
        json={"serialNos": [w.ids["serial"]]},
    )


CASES: list[tuple[str, str, int, Call]] = [
    ("/sales/v1/orders", "get", 200, get("/sales/v1/orders")),
    ("/sales/v1/orders", "get", 200, get("/sales/v1/orders", status="Open")),
    ("/sales/v1/orders/{id}", "get", 200, get("/sales/v1/orders/{order}")),
    ("/sales/v1/orders/{id}/lines", "get", 200, get("/sales/v1/orders/{order}/lines")),
    (
        "/sales/v1/orders/{id}/lines/{lineId}",
        "get",
        200,
        get("/sales/v1/orders/{order}/lines/{order_line}"),
    ),
    ("/sales/v1/releases", "get", 200, get("/sales/v1/releases")),
    ("/sales/v1/releases/{id}", "get", 200, get("/sales/v1/releases/{release}")),
    (
        "/sales/v1/releases/{id}",
        "put",
        200,
        send("PUT", "/sales/v1/releases/{release}", {"note": "contract", "quantity": 60}),
    ),
    (
        "/sales/v1/releases/{id}",
        "put",
        400,
        send("PUT", "/sales/v1/releases/{release}", {"shipDate": "2026-01-01"}),
    ),
    ("/mdm/v1/customers", "get", 200, get("/mdm/v1/customers")),
    ("/mdm/v1/customers/{id}", "get", 200, get("/mdm/v1/customers/{customer}")),
    (
        "/mdm/v1/customers/{customerId}/addresses",
        "get",
        200,
        get("/mdm/v1/customers/{customer}/addresses"),
    ),
    ("/mdm/v1/parts", "get", 200, get("/mdm/v1/parts")),
    ("/mdm/v1/parts/{id}", "get", 200, get("/mdm/v1/parts/{part}")),
    ("/mdm/v1/tenants", "get", 200, get("/mdm/v1/tenants")),
    ("/mdm/v1/tenants/{id}", "get", 200, get("/mdm/v1/tenants/{tenant}")),
    (
        "/inventory/v1/inventory-definitions/parts",
        "get",
        200,
        get("/inventory/v1/inventory-definitions/parts"),
    ),
    (
        "/inventory/v1/inventory-definitions/locations",
        "get",
        200,
        get("/inventory/v1/inventory-definitions/locations"),
    ),
    (
        "/inventory/v1/inventory-tracking/containers",
        "get",
        200,
        get("/inventory/v1/inventory-tracking/containers"),
    ),
    (
        "/inventory/v1/inventory-tracking/containers/{serialNo}",
        "get",
        200,
        get("/inventory/v1/inventory-tracking/containers/{serial}"),
    ),
    ("/shipping/v1/customer-shippers", "get", 200, get("/shipping/v1/customer-shippers")),
    (
        "/shipping/v1/customer-shippers/{id}",
        "get",
        200,
        get("/shipping/v1/customer-shippers/{shipper}"),
    ),
    (
        "/shipping/v1/customer-shippers/{shipperId}/lines",
        "get",
        200,
        get("/shipping/v1/customer-shippers/{shipper}/lines"),
    ),
    (
        "/shipping/v1/customer-shippers/{shipperId}/lines/{lineId}",
        "get",
        200,
        get("/shipping/v1/customer-shippers/{shipper}/lines/{line}"),
    ),
    (
        "/shipping/v1/customer-shippers/{id}/lines/{lineId}/containers",
        "get",
        200,
        get("/shipping/v1/customer-shippers/{shipper}/lines/{line}/containers"),
    ),
    (
        "/shipping/v1-beta1/customer-shippers",
        "post",
        201,
        send(
            "POST",
            "/shipping/v1-beta1/customer-shippers",
            lambda w: {
                "customerId": w.ids["customer"],
                "customerAddressId": w.ids["address"],
                "trackingNumber": "1Z",
                "scheduledShipDate": "2026-01-20T14:00:00Z",
            },
        ),
    ),
    (
        "/shipping/v1-beta1/customer-shippers",
        "post",
        400,
        send("POST", "/shipping/v1-beta1/customer-shippers", {"customerId": None}),
    ),
    (
        "/shipping/v1-beta1/customer-shippers/{id}/schedule-releases",
        "post",
        200,
        send(
            "POST",
            "/shipping/v1-beta1/customer-shippers/{shipper}/schedule-releases",
            lambda w: {"releaseId": w.ids["release"]},
        ),
    ),
    (
        "/shipping/v1-beta1/customer-shippers/{shipperId}/lines/{lineId}/load-fifo",
        "post",
        200,
        _load_fifo,
    ),
    (
        "/shipping/v1-beta1/customer-shippers/{shipperId}/lines/{lineId}/load-container",
        "post",
        200,
        _load_container,
    ),
    (
        "/shipping/v1-beta1/customer-shippers/{shipperId}/ship",
        "post",
        200,
        send("POST", "/shipping/v1-beta1/customer-shippers/{shipper}/ship"),
    ),
    (
        "/shipping/v1-beta1/customer-shippers/{id}",
        "put",
        200,
        send(
            "PUT",
            "/shipping/v1-beta1/customer-shippers/{shipper}",
            {"trackingNumber": "1Z999", "shipperNote": "ss-shipment-1"},
        ),
    ),
    (
        "/inventory/v1/inventory-shipping/shipments",
        "get",
        200,
        get("/inventory/v1/inventory-shipping/shipments"),
    ),
    (
        "/inventory/v1/inventory-shipping/shipments/{id}",
        "get",
        200,
        get("/inventory/v1/inventory-shipping/shipments/{shipment}"),
    ),
    (
        "/inventory/v1/inventory-shipping/shipments",
        "post",
        201,
        send("POST", "/inventory/v1/inventory-shipping/shipments", {"externalShipmentCode": "x"}),
    ),
    ("/inventory/v1-beta1/inventory-shipping/shipments/{id}/stage", "post", 202, _stage),
    ("/inventory/v1-beta1/inventory-shipping/shipments/{id}/ship", "post", 202, _ship_inventory),
    ("/inventory/v1-beta1/inventory-shipping/shipments/{id}/unship", "post", 202, _unship),
    ("/inventory/v1-beta1/inventory-shipping/shipments/{id}/unstage", "post", 202, _unstage),
    (
        "/platform/identity-mappings/v1/ids-to-keys",
        "post",
        200,
        send(
            "POST",
            "/platform/identity-mappings/v1/ids-to-keys",
            lambda w: {"standardObjectName": "Shipper", "ids": [w.ids["shipper"]]},
        ),
    ),
    (
        "/platform/identity-mappings/v1/keys-to-ids",
        "post",
        200,
        send(
            "POST",
            "/platform/identity-mappings/v1/keys-to-ids",
            lambda w: {
                "standardObjectName": "Part",
                "recordIdentifiers": [
                    {"Part_Key": p.key} for p in w.sandbox.tenant().parts.values()
                ][:3],
            },
        ),
    ),
]


@pytest.mark.parametrize(
    ("path", "method", "status", "call"),
    CASES,
    ids=[f"{m.upper()} {p} {s}" for p, m, s, _ in CASES],
)
async def test_response_matches_spec(
    world: World, path: str, method: str, status: int, call: Call
) -> None:
    response = await call(world)
    assert response.status_code == status, response.text
    assert_conforms(path, method, response)


def test_every_simulated_rest_route_is_in_the_spec() -> None:
    """The simulator invents no REST path or method (operator, token and datasource aside)."""
    from starlette.routing import Route

    sandbox = create_plex_sandbox(FakeClock(), seed=1)
    inner = sandbox.faults.app
    served = {
        (route.path, method.lower())
        for route in inner.routes  # type: ignore[attr-defined]
        if isinstance(route, Route) and route.methods
        for method in route.methods
        if method not in ("HEAD",)
    }
    exempt = ("/_operator", "/api/datasources", "/DataSource", sandbox.token_path)
    documented = {(p, m) for p, ops in spec()["paths"].items() for m in ops}
    invented = {(p, m) for p, m in served if not p.startswith(exempt) and (p, m) not in documented}
    assert not invented
    tested = {(p, m) for p, m, _, _ in CASES}
    untested = {(p, m) for p, m in served if not p.startswith(exempt)} - tested
    assert not untested


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda o: o.update(orderNumbr="x"), id="invented field"),
        pytest.param(lambda o: o.update(id="not-a-uuid"), id="bad uuid"),
        pytest.param(lambda o: o.update(multiplePOPerShipper="no"), id="wrong type"),
        pytest.param(
            lambda o: o.update(modifiedDate="2026-01-15T12:00:00"), id="datetime without Z"
        ),
    ],
)
def test_the_contract_check_can_fail(mutate: Callable[[dict[str, Any]], None]) -> None:
    """A guard on the checker itself: each defect of a sales order is caught."""
    sandbox = create_plex_sandbox(FakeClock(), seed=3)
    order = next(iter(sandbox.tenant().orders.values())).to_json()
    mutate(order)
    request = httpx.Request("GET", "https://x.test/sales/v1/orders")
    response = httpx.Response(200, json=[order], request=request)
    with pytest.raises(AssertionError):
        assert_conforms("/sales/v1/orders", "get", response)
