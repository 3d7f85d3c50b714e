"""V2: API-Key auth, error bodies, 200/min with Retry-After, inventory, signed webhooks."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mlconnector.clock import FakeClock
from mlconnector.sandbox.shipstation import JWKS_PATH, ShipStationSandbox
from mlconnector.timezones import parse_iso_offset

from .conftest import Receiver, order_payload


def assert_v2_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"request_id", "errors"}
    (error,) = body["errors"]
    assert set(error) == {"error_source", "error_type", "error_code", "message"}
    assert error["error_code"] == code
    assert error["message"]


async def location(v2: httpx.AsyncClient) -> str:
    wh = (await v2.post("/v2/inventory_warehouses", json={"name": "Plant 1"})).json()
    loc = await v2.post(
        "/v2/inventory_locations",
        json={"name": "Bin A", "inventory_warehouse_id": wh["inventory_warehouse_id"]},
    )
    return str(loc.json()["inventory_location_id"])


async def stock(v2: httpx.AsyncClient, sku: str = "PART-1") -> list[int]:
    rows = (await v2.get("/v2/inventory", params={"sku": sku})).json()["inventory"]
    return [row["on_hand"] for row in rows]


async def test_api_key_is_required_and_v1_basic_does_not_work(v2: httpx.AsyncClient) -> None:
    assert_v2_error(await v2.get("/v2/inventory", headers={"API-Key": "nope"}), 401, "unauthorized")
    basic = "Basic " + base64.b64encode(b"sandbox-v1-key:sandbox-v1-secret").decode()
    response = await v2.get("/v2/inventory", headers={"API-Key": "", "Authorization": basic})
    assert_v2_error(response, 401, "unauthorized")
    assert (await v2.get("/v2/inventory")).status_code == 200
    assert_v2_error(await v2.get("/v2/labels"), 404, "invalid_identifier")


async def test_sliding_window_429_with_retry_after(
    v2: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    for i in range(200):
        assert (await v2.get("/v2/inventory_warehouses")).status_code == 200
        if i == 99:
            fake_clock.advance(30)
    limited = await v2.get("/v2/inventory_warehouses")
    assert_v2_error(limited, 429, "rate_limit_exceeded")
    assert limited.headers["Retry-After"] == "30"  # the first 100 leave the window at t=60
    fake_clock.advance(30)
    assert (await v2.get("/v2/inventory_warehouses")).status_code == 200


async def test_injected_storm_on_v2_has_v2_shape(
    v2: httpx.AsyncClient, sandbox: ShipStationSandbox
) -> None:
    sandbox.faults.configure(storm_requests=1, storm_retry_after=4)
    storm = await v2.get("/v2/inventory")
    assert_v2_error(storm, 429, "rate_limit_exceeded")
    assert storm.headers["Retry-After"] == "4"


async def test_increment_adjust_and_decrement_all_or_nothing(v2: httpx.AsyncClient) -> None:
    loc = await location(v2)
    base = {"sku": "PART-1", "inventory_location_id": loc}
    inc = await v2.post(
        "/v2/inventory", json={**base, "transaction_type": "increment", "quantity": 5}
    )
    assert inc.status_code == 204
    assert inc.content == b""
    assert await stock(v2) == [5]
    too_many = await v2.post(
        "/v2/inventory", json={**base, "transaction_type": "decrement", "quantity": 6}
    )
    assert_v2_error(too_many, 400, "invalid_field_value")
    assert await stock(v2) == [5]  # nothing was taken
    dec = await v2.post(
        "/v2/inventory", json={**base, "transaction_type": "decrement", "quantity": 5}
    )
    assert dec.status_code == 204
    assert await stock(v2) == [0]
    adj = await v2.post(
        "/v2/inventory", json={**base, "transaction_type": "adjust", "quantity": 42}
    )
    assert adj.status_code == 204
    assert await stock(v2) == [42]
    unknown = await v2.post(
        "/v2/inventory", json={**base, "sku": "NEW", "transaction_type": "decrement", "quantity": 1}
    )
    assert_v2_error(unknown, 400, "invalid_field_value")


async def test_modify_moves_stock_between_locations(v2: httpx.AsyncClient) -> None:
    a = await location(v2)
    b = await location(v2)
    await v2.post(
        "/v2/inventory",
        json={
            "sku": "S",
            "inventory_location_id": a,
            "transaction_type": "increment",
            "quantity": 4,
        },
    )
    moved = await v2.post(
        "/v2/inventory",
        json={
            "sku": "S",
            "inventory_location_id": a,
            "transaction_type": "modify",
            "quantity": 3,
            "new_inventory_location_id": b,
        },
    )
    assert moved.status_code == 204
    rows = (await v2.get("/v2/inventory", params={"sku": "S"})).json()["inventory"]
    assert {r["inventory_location_id"]: r["on_hand"] for r in rows} == {a: 1, b: 3}


async def test_inventory_validation(v2: httpx.AsyncClient) -> None:
    loc = await location(v2)
    for body, code in (
        ({"transaction_type": "increment", "sku": "S", "quantity": 1}, "field_value_required"),
        (
            {"transaction_type": "steal", "sku": "S", "quantity": 1, "inventory_location_id": loc},
            "invalid_field_value",
        ),
        (
            {
                "transaction_type": "increment",
                "sku": "S",
                "quantity": -1,
                "inventory_location_id": loc,
            },
            "invalid_field_value",
        ),
        (
            {
                "transaction_type": "increment",
                "sku": "S",
                "quantity": 1,
                "inventory_location_id": "se-404",
            },
            "invalid_identifier",
        ),
    ):
        assert_v2_error(await v2.post("/v2/inventory", json=body), 400, code)


async def test_inventory_list_filters_and_paging(v2: httpx.AsyncClient) -> None:
    loc = await location(v2)
    for i in range(5):
        await v2.post(
            "/v2/inventory",
            json={
                "sku": f"S{i}",
                "inventory_location_id": loc,
                "transaction_type": "adjust",
                "quantity": i,
            },
        )
    page = (await v2.get("/v2/inventory", params={"limit": 2, "page": 2})).json()
    assert [r["sku"] for r in page["inventory"]] == ["S2", "S3"]
    assert (page["total"], page["page"], page["pages"]) == (5, 2, 3)
    assert "page=3" in page["links"]["next"]["href"]
    assert "page=1" in page["links"]["prev"]["href"]
    by_loc = (await v2.get("/v2/inventory", params={"inventory_location_id": loc})).json()
    assert by_loc["total"] == 5
    none = (await v2.get("/v2/inventory", params={"inventory_location_id": "se-9"})).json()
    assert none["total"] == 0
    assert_v2_error(
        await v2.get("/v2/inventory", params={"limit": "x"}), 400, "invalid_field_value"
    )


async def test_warehouses_and_locations_have_iso_dates(v2: httpx.AsyncClient) -> None:
    loc_id = await location(v2)
    loc = (await v2.get(f"/v2/inventory_locations/{loc_id}")).json()
    assert parse_iso_offset(loc["created_at"]).isoformat() == "2026-01-15T12:00:00+00:00"
    assert loc["created_at"].endswith("Z")
    warehouses = (await v2.get("/v2/inventory_warehouses")).json()["inventory_warehouses"]
    assert [w["inventory_warehouse_id"] for w in warehouses] == [loc["inventory_warehouse_id"]]
    bad = await v2.post(
        "/v2/inventory_locations", json={"name": "X", "inventory_warehouse_id": "se-0"}
    )
    assert_v2_error(bad, 400, "invalid_identifier")


async def test_environment_webhooks_crud(v2: httpx.AsyncClient) -> None:
    made = await v2.post(
        "/v2/environment/webhooks",
        json={
            "url": "https://hooks.test/v2",
            "event": "track",
            "headers": [{"key": "x-secret", "value": "s"}],
        },
    )
    hook = made.json()
    assert hook["event"] == "track"
    assert hook["webhook_id"].startswith("se-")
    assert (await v2.get("/v2/environment/webhooks")).json() == [hook]
    conflict = await v2.post(
        "/v2/environment/webhooks", json={"url": "https://other.test", "event": "track"}
    )
    assert_v2_error(conflict, 409, "webhook_event_type_conflict")
    put = await v2.put(
        f"/v2/environment/webhooks/{hook['webhook_id']}", json={"url": "https://hooks.test/v2b"}
    )
    assert put.status_code == 204
    fetched = (await v2.get(f"/v2/environment/webhooks/{hook['webhook_id']}")).json()
    assert fetched["url"] == "https://hooks.test/v2b"
    assert (await v2.delete(f"/v2/environment/webhooks/{hook['webhook_id']}")).status_code == 204
    assert_v2_error(
        await v2.get(f"/v2/environment/webhooks/{hook['webhook_id']}"), 404, "invalid_identifier"
    )
    bad = await v2.post("/v2/environment/webhooks", json={"url": "https://a.test", "event": "x"})
    assert_v2_error(bad, 400, "invalid_field_value")


def public_key(jwks: dict[str, list[dict[str, str]]], kid: str) -> rsa.RSAPublicKey:
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == kid]

    def number(field: str) -> int:
        raw = jwk[field] + "=" * (-len(jwk[field]) % 4)
        return int.from_bytes(base64.urlsafe_b64decode(raw), "big")

    return rsa.RSAPublicNumbers(number("e"), number("n")).public_key()


async def test_v2_deliveries_are_signed_and_verifiable_with_the_served_jwks(
    v1: httpx.AsyncClient,
    v2: httpx.AsyncClient,
    sandbox: ShipStationSandbox,
    receiver: Receiver,
    fake_clock: FakeClock,
) -> None:
    await v2.post(
        "/v2/environment/webhooks",
        json={
            "url": "https://hooks.test/v2",
            "event": "label_created_v2",
            "headers": [{"key": "x-shared", "value": "tok"}],
        },
    )
    order = (await v1.post("/orders/createorder", json=order_payload())).json()
    sandbox.create_label(order["orderId"])
    (result,) = await sandbox.deliver_webhooks()
    (request,) = receiver.requests
    assert result.status == 200
    assert result.resource_type == "LABEL_CREATED_V2"
    assert request.headers["x-shared"] == "tok"
    jwks = (await v2.get(JWKS_PATH, headers={"API-Key": ""})).json()  # no key needed
    key = public_key(jwks, request.headers["x-shipengine-rsa-sha256-key-id"])
    timestamp = request.headers["x-shipengine-timestamp"]
    assert parse_iso_offset(timestamp) == fake_clock.now()
    signature = base64.b64decode(request.headers["x-shipengine-rsa-sha256-signature"])
    message = timestamp.encode() + b"." + request.content
    key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())  # raises if wrong
    with pytest.raises(InvalidSignature):
        key.verify(signature, message + b" ", padding.PKCS1v15(), hashes.SHA256())
    later = (fake_clock.now() + timedelta(minutes=10)).isoformat()
    with pytest.raises(InvalidSignature):  # the timestamp is part of what is signed
        key.verify(
            signature, later.encode() + b"." + request.content, padding.PKCS1v15(), hashes.SHA256()
        )
    body = json.loads(request.content)
    followed = (await v1.get(body["resource_url"])).json()
    assert followed["shipments"][0]["orderId"] == order["orderId"]


async def test_emit_v2_event_reaches_only_matching_subscribers(
    v2: httpx.AsyncClient, sandbox: ShipStationSandbox, receiver: Receiver
) -> None:
    await v2.post("/v2/environment/webhooks", json={"url": "https://h.test/t", "event": "track"})
    assert sandbox.emit_v2_event("batch", "https://x.test/v2/batches/se-1") == 0
    assert (
        sandbox.emit_v2_event("track", "https://x.test/v2/labels/se-1", data={"status_code": "DE"})
        == 1
    )
    (result,) = await sandbox.deliver_webhooks()
    assert json.loads(result.body)["data"] == {"status_code": "DE"}


async def test_inventory_lists_default_to_25_rows_a_page(v2: httpx.AsyncClient) -> None:
    loc = await location(v2)
    for i in range(30):
        await v2.post(
            "/v2/inventory",
            json={
                "sku": f"S{i:02d}",
                "inventory_location_id": loc,
                "transaction_type": "adjust",
                "quantity": 1,
            },
        )
    first = (await v2.get("/v2/inventory")).json()
    assert len(first["inventory"]) == 25
    assert (first["total"], first["pages"]) == (30, 2)
    rest = (await v2.get(first["links"]["next"]["href"])).json()
    assert [r["sku"] for r in rest["inventory"]] == [f"S{i}" for i in range(25, 30)]
