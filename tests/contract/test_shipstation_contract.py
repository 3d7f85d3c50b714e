"""The ShipStation simulator against the public API descriptions in ``../shared/specs``.

* **V2** responses are validated with ``jsonschema`` (draft 2020-12, as OpenAPI 3.1 uses) against
  the response schemas of ``shipstation-v2.openapi.yaml``, ``$ref``s resolved inside the document.
  One generator quirk of that file is repaired before use: ``additionalProperties: false`` next to
  an ``allOf`` with no sibling ``properties`` (``create_webhook_response_body``,
  ``get_webhook_by_id_response_body``) would reject *every* property under JSON Schema rules, so it
  is dropped there (the ``webhook`` schema inside the ``allOf`` still forbids extra keys).
* **V1**: ``shipstation-v1.swagger.yaml`` has empty ``definitions``, so each response is checked
  against the documented *example* response: every key of the example is present, and where both
  values are non-null their JSON types agree (recursively, list items against the first example
  item). Documented query filters must be accepted, documented createorder body properties must
  come back, and every V1 timestamp must be naive Pacific with 7 fractional digits.

The specs live outside the repository (``<repo>/../shared/specs``); without them the module is
skipped. YAML is parsed once per session (module-level cache).
"""

from __future__ import annotations

import base64
import copy
import functools
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.sandbox.shipstation import ShipStationSandbox, create_shipstation_sandbox

pytestmark = pytest.mark.contract

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs"
V1_SPEC = SPECS / "shipstation-v1.swagger.yaml"
V2_SPEC = SPECS / "shipstation-v2.openapi.yaml"
BASE = "http://ssapi.contract.test"
V1_AUTH = "Basic " + base64.b64encode(b"sandbox-v1-key:sandbox-v1-secret").decode()
V1_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}$")
V1_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

if not (V1_SPEC.is_file() and V2_SPEC.is_file()):
    pytest.skip(f"ShipStation specs not found under {SPECS}", allow_module_level=True)

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")


@functools.cache
def load_spec(path: Path) -> dict[str, Any]:
    """Parse a spec once per session (C loader when available: the files are large)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as handle:
        return dict(yaml.load(handle, Loader=loader))


def _repair(node: Any) -> Any:
    if isinstance(node, dict):
        fixed = {key: _repair(value) for key, value in node.items()}
        if (
            fixed.get("additionalProperties") is False
            and "allOf" in fixed
            and "properties" not in fixed
        ):
            del fixed["additionalProperties"]
        return fixed
    if isinstance(node, list):
        return [_repair(item) for item in node]
    return node


@functools.cache
def v2_registry() -> Any:
    """The V2 document as a ``referencing`` resource at ``urn:shipstation-v2``."""
    from referencing.jsonschema import DRAFT202012

    document = _repair(load_spec(V2_SPEC))
    return referencing.Registry().with_resource(
        "urn:shipstation-v2", DRAFT202012.create_resource(document)
    )


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def validate_v2(instance: Any, *pointer: str) -> None:
    """Validate against the schema at a JSON pointer inside the V2 document."""
    schema = {"$ref": f"urn:shipstation-v2#/{_pointer(*pointer)}"}
    validator = jsonschema.Draft202012Validator(schema, registry=v2_registry())
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def validate_v2_response(instance: Any, path: str, method: str, status: str) -> None:
    """Validate a response body against ``paths[path][method].responses[status]``."""
    spec = load_spec(V2_SPEC)
    response = spec["paths"][path][method]["responses"][status]
    base: tuple[str, ...] = ("paths", path, method, "responses", status)
    if "$ref" in response:  # a shared response under components/responses
        base = tuple(response["$ref"].removeprefix("#/").split("/"))
    validate_v2(instance, *base, "content", "application/json", "schema")


def validate_v2_error(response: httpx.Response) -> None:
    """Every V2 error body is the spec's ``error_response_body``."""
    validate_v2(response.json(), "components", "schemas", "error_response_body")


# ----------------------------------------------------------------------------- V1 helpers


def v1_example(path: str, method: str = "get", status: str = "200") -> Any:
    """The documented example response of a V1 operation."""
    operation = load_spec(V1_SPEC)["paths"][path][method]
    return operation["responses"][status]["examples"]["application/json"]


def v1_filters(prefix: str) -> list[str]:
    """The query filters the V1 swagger folds into a path key starting with ``prefix?``."""
    for key in load_spec(V1_SPEC)["paths"]:
        if key.startswith(prefix + "?"):
            return [name for name, _ in parse_qsl(urlsplit(key).query)]
    raise AssertionError(f"no documented filters for {prefix}")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def assert_like_example(actual: Any, example: Any, where: str = "$") -> None:
    """Every example key is present; non-null values have the example's JSON type."""
    if example is None or actual is None:
        return
    assert _json_type(actual) == _json_type(example), f"{where}: {actual!r} vs example {example!r}"
    if isinstance(example, dict):
        missing = sorted(set(example) - set(actual))
        assert not missing, f"{where}: missing keys {missing}"
        for key, value in example.items():
            assert_like_example(actual[key], value, f"{where}.{key}")
    elif isinstance(example, list) and example:
        for index, item in enumerate(actual):
            assert_like_example(item, example[0], f"{where}[{index}]")


def assert_v1_times(node: Any, where: str = "$") -> None:
    """Every ``...Date`` value is a 7-digit naive Pacific timestamp or a bare date."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("Date") and isinstance(value, str):
                assert V1_TIMESTAMP.match(value) or V1_DATE.match(value), f"{where}.{key}={value}"
            assert_v1_times(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            assert_v1_times(item, f"{where}[{index}]")


def check_v1(response: httpx.Response, path: str, method: str = "get") -> Any:
    """200, rate-limit headers, example-shaped body, V1 time formats."""
    assert response.status_code == 200, response.text
    for header in ("X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"):
        assert response.headers[header].isdigit()
    body = response.json()
    assert_like_example(body, v1_example(path, method))
    assert_v1_times(body)
    return body


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def sandbox() -> ShipStationSandbox:
    # many requests per test: lift the V1 budget so contract checks are not rate limited
    sb = create_shipstation_sandbox(
        FakeClock(),
        public_url=BASE,
        webhook_transport=httpx.MockTransport(lambda r: httpx.Response(200)),
    )
    sb.v1_limiter.limit = 10_000
    return sb


@pytest.fixture
async def client(sandbox: ShipStationSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(sandbox.app),
        base_url=BASE,
        headers={"Authorization": V1_AUTH, "API-Key": "sandbox-v2-key"},
    ) as c:
        yield c


def example_order_request() -> dict[str, Any]:
    """The documented createorder example, minus server-assigned fields, re-pointed at the
    simulator's store and warehouse."""
    order = copy.deepcopy(v1_example("/orders/createorder", "post"))
    for field in ("orderId", "createDate", "modifyDate", "shipDate", "externallyFulfilled"):
        order.pop(field, None)
    for item in order["items"]:
        for field in ("orderItemId", "createDate", "modifyDate", "productId"):
            item.pop(field, None)
    order["advancedOptions"].update({"storeId": 101, "warehouseId": 200})
    for field in ("mergedIds", "mergedOrSplit", "parentId"):
        order["advancedOptions"].pop(field, None)
    order.setdefault("orderKey", "contract-key-1")
    return order


async def seed(client: httpx.AsyncClient, sandbox: ShipStationSandbox) -> dict[str, Any]:
    """One order from the documented example, one label, one fulfilment, one webhook."""
    order = (await client.post("/orders/createorder", json=example_order_request())).json()
    other = dict(example_order_request(), orderKey="contract-key-2", orderNumber="CONTRACT-2")
    second = (await client.post("/orders/createorder", json=other)).json()
    sandbox.create_label(order["orderId"])
    await client.post(
        "/orders/markasshipped",
        json={"orderId": second["orderId"], "carrierCode": "ups", "trackingNumber": "1Z1"},
    )
    await client.post(
        "/webhooks/subscribe",
        json={
            "target_url": "https://hooks.test/x",
            "event": "SHIP_NOTIFY",
            "store_id": 101,
            "friendly_name": "Contract",
        },
    )
    return order


# ----------------------------------------------------------------------------- V1 tests


async def test_v1_createorder_accepts_the_documented_example_and_echoes_it(
    client: httpx.AsyncClient,
) -> None:
    request = example_order_request()
    response = await client.post("/orders/createorder", json=request)
    body = check_v1(response, "/orders/createorder", "post")
    documented = load_spec(V1_SPEC)["paths"]["/orders/createorder"]["post"]["parameters"][0]
    for name in documented["schema"]["properties"]:
        assert name in body, f"createorder body property {name} is not part of the order"
    for name in (
        "orderNumber",
        "orderKey",
        "orderStatus",
        "orderDate",
        "paymentDate",
        "shipByDate",
        "internalNotes",
        "customerEmail",
        "amountPaid",
        "gift",
    ):
        assert body[name] == request[name], name
    assert [i["lineItemKey"] for i in body["items"]] == [
        i.get("lineItemKey") for i in request["items"]
    ]


async def test_v1_createorders_result_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/orders/createorders", json=[example_order_request()])
    body = check_v1(response, "/orders/createorders", "post")
    assert set(body["results"][0]) >= {
        "orderId",
        "orderNumber",
        "orderKey",
        "success",
        "errorMessage",
    }


async def test_v1_order_reads(client: httpx.AsyncClient, sandbox: ShipStationSandbox) -> None:
    order = await seed(client, sandbox)
    check_v1(await client.get("/orders"), "/orders")
    check_v1(await client.get(f"/orders/{order['orderId']}"), "/orders/{orderId}")
    delete = await client.delete(f"/orders/{order['orderId']}")
    assert delete.status_code == 200


async def test_v1_documented_order_filters_are_accepted(client: httpx.AsyncClient) -> None:
    values = {
        "orderStatus": "awaiting_shipment",
        "sortBy": "OrderDate",
        "sortDir": "ASC",
        "storeId": "101",
        "page": "1",
        "pageSize": "50",
    }
    for name in v1_filters("/orders"):
        value = values.get(name, "2026-01-15 00:00:00" if name.endswith(("Start", "End")) else "x")
        response = await client.get("/orders", params={name: value})
        assert response.status_code == 200, (name, response.text)


async def test_v1_shipments_and_their_filters(
    client: httpx.AsyncClient, sandbox: ShipStationSandbox
) -> None:
    await seed(client, sandbox)
    body = check_v1(await client.get("/shipments?includeShipmentItems=true"), "/shipments")
    assert body["shipments"][0]["shipmentItems"]
    values = {
        "orderId": "1",
        "includeShipmentItems": "false",
        "sortBy": "ShipDate",
        "sortDir": "DESC",
        "page": "1",
        "pageSize": "500",
    }
    for name in v1_filters("/shipments"):
        value = values.get(name, "2026-01-15 00:00:00" if name.endswith(("Start", "End")) else "x")
        response = await client.get("/shipments", params={name: value})
        assert response.status_code == 200, (name, response.text)


async def test_v1_fulfillments_and_their_filters(
    client: httpx.AsyncClient, sandbox: ShipStationSandbox
) -> None:
    await seed(client, sandbox)
    check_v1(await client.get("/fulfillments"), "/fulfillments")
    values = {
        "fulfillmentId": "1",
        "orderId": "1",
        "sortBy": "ShipDate",
        "sortDir": "ASC",
        "page": "1",
        "pageSize": "100",
    }
    for name in v1_filters("/fulfillments"):
        value = values.get(name, "2026-01-15 00:00:00" if name.endswith(("Start", "End")) else "x")
        response = await client.get("/fulfillments", params={name: value})
        assert response.status_code == 200, (name, response.text)


async def test_v1_reference_data(client: httpx.AsyncClient, sandbox: ShipStationSandbox) -> None:
    await seed(client, sandbox)
    check_v1(await client.get("/warehouses"), "/warehouses")
    check_v1(
        await client.get("/stores"),
        "/stores?showInactive={showInactive}&marketplaceId={marketplaceId}",
    )
    check_v1(await client.get("/products"), "/products")
    for name in v1_filters("/products"):
        value = {"showInactive": "true", "page": "1", "pageSize": "10"}.get(name, "x")
        if name in (
            "startDate",
            "endDate",
            "productCategoryId",
            "productTypeId",
            "tagId",
            "sortBy",
            "sortDir",
        ):
            continue  # documented but not simulated (the connector does not use them)
        assert (await client.get("/products", params={name: value})).status_code == 200, name


async def test_v1_webhooks(client: httpx.AsyncClient, sandbox: ShipStationSandbox) -> None:
    created = await client.post(
        "/webhooks/subscribe", json={"target_url": "https://hooks.test/o", "event": "ORDER_NOTIFY"}
    )
    check_v1(created, "/webhooks/subscribe", "post")
    check_v1(await client.get("/webhooks"), "/webhooks")
    assert (await client.delete(f"/webhooks/{created.json()['id']}")).status_code == 200


async def test_v1_markasshipped(client: httpx.AsyncClient) -> None:
    order = (await client.post("/orders/createorder", json=example_order_request())).json()
    response = await client.post(
        "/orders/markasshipped",
        json={
            "orderId": order["orderId"],
            "carrierCode": "fedex",
            "shipDate": "2026-01-15",
            "trackingNumber": "1",
            "notifyCustomer": False,
            "notifySalesChannel": False,
        },
    )
    check_v1(response, "/orders/markasshipped", "post")


# ----------------------------------------------------------------------------- V2 tests


async def test_v2_inventory_warehouses_and_locations(client: httpx.AsyncClient) -> None:
    warehouse = await client.post("/v2/inventory_warehouses", json={"name": "Plant"})
    validate_v2_response(warehouse.json(), "/v2/inventory_warehouses", "post", "200")
    wid = warehouse.json()["inventory_warehouse_id"]
    listed = await client.get("/v2/inventory_warehouses")
    validate_v2_response(listed.json(), "/v2/inventory_warehouses", "get", "200")
    one = await client.get(f"/v2/inventory_warehouses/{wid}")
    validate_v2_response(
        one.json(), "/v2/inventory_warehouses/{inventory_warehouse_id}", "get", "200"
    )
    location = await client.post(
        "/v2/inventory_locations", json={"name": "Bin", "inventory_warehouse_id": wid}
    )
    validate_v2_response(location.json(), "/v2/inventory_locations", "post", "200")
    lid = location.json()["inventory_location_id"]
    validate_v2_response(
        (await client.get("/v2/inventory_locations")).json(),
        "/v2/inventory_locations",
        "get",
        "200",
    )
    validate_v2_response(
        (await client.get(f"/v2/inventory_locations/{lid}")).json(),
        "/v2/inventory_locations/{inventory_location_id}",
        "get",
        "200",
    )
    validate_v2_error(await client.post("/v2/inventory_locations", json={"name": "x"}))


async def test_v2_inventory_levels(client: httpx.AsyncClient) -> None:
    wid = (await client.post("/v2/inventory_warehouses", json={"name": "P"})).json()[
        "inventory_warehouse_id"
    ]
    lid = (
        await client.post(
            "/v2/inventory_locations", json={"name": "B", "inventory_warehouse_id": wid}
        )
    ).json()["inventory_location_id"]
    for kind, qty in (("increment", 5), ("adjust", 9), ("decrement", 2)):
        request = {
            "transaction_type": kind,
            "sku": "PART-1",
            "quantity": qty,
            "inventory_location_id": lid,
            "reason": "contract",
        }
        validate_v2(
            request,
            "paths",
            "/v2/inventory",
            "post",
            "requestBody",
            "content",
            "application/json",
            "schema",
        )
        response = await client.post("/v2/inventory", json=request)
        assert response.status_code == 204
    for params in ({}, {"sku": "PART-1"}, {"group_by": "warehouse"}, {"limit": "1"}):
        body = (await client.get("/v2/inventory", params=params)).json()
        validate_v2_response(body, "/v2/inventory", "get", "200")
        assert body["inventory"][0]["on_hand"] == 7
    refused = await client.post(
        "/v2/inventory",
        json={
            "transaction_type": "decrement",
            "sku": "PART-1",
            "quantity": 99,
            "inventory_location_id": lid,
        },
    )
    assert refused.status_code == 400
    validate_v2_error(refused)


async def test_v2_environment_webhooks(client: httpx.AsyncClient) -> None:
    request = {
        "url": "https://hooks.test/v2",
        "event": "track",
        "headers": [{"key": "x-k", "value": "v"}],
    }
    validate_v2(request, "components", "schemas", "create_webhook_request_body")
    created = await client.post("/v2/environment/webhooks", json=request)
    validate_v2_response(created.json(), "/v2/environment/webhooks", "post", "200")
    hook_id = created.json()["webhook_id"]
    validate_v2_response(
        (await client.get("/v2/environment/webhooks")).json(),
        "/v2/environment/webhooks",
        "get",
        "200",
    )
    path = "/v2/environment/webhooks/{webhook_id}"
    validate_v2_response(
        (await client.get(f"/v2/environment/webhooks/{hook_id}")).json(), path, "get", "200"
    )
    update = {"url": "https://hooks.test/v2b"}
    validate_v2(update, "components", "schemas", "update_webhook_request_body")
    assert (await client.put(f"/v2/environment/webhooks/{hook_id}", json=update)).status_code == 204
    conflict = await client.post("/v2/environment/webhooks", json=request)
    assert conflict.status_code == 409
    validate_v2_response(conflict.json(), "/v2/environment/webhooks", "post", "409")
    deleted = await client.delete(f"/v2/environment/webhooks/{hook_id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    missing = await client.get(f"/v2/environment/webhooks/{hook_id}")
    validate_v2_response(missing.json(), path, "get", "404")


async def test_v2_auth_and_rate_limit_errors(
    client: httpx.AsyncClient, sandbox: ShipStationSandbox
) -> None:
    unauthorized = await client.get("/v2/inventory", headers={"API-Key": "wrong"})
    assert unauthorized.status_code == 401
    validate_v2_error(unauthorized)
    sandbox.v2_limiter.limit = 1
    await client.get("/v2/inventory")
    limited = await client.get("/v2/inventory")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"].isdigit()
    validate_v2_error(limited)
    sandbox.faults.configure(storm_requests=1)
    storm = await client.get("/v2/inventory_locations")
    validate_v2_error(storm)
