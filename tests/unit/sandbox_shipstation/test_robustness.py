"""Whatever JSON a client sends, the simulator answers like the service: a 4xx or per-order
errors, never a 500 (hypothesis)."""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlconnector.clock import FakeClock
from mlconnector.sandbox.shipstation import create_shipstation_sandbox

from .conftest import BASE, V1_AUTH, order_payload

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = st.sampled_from(
    [
        "orderNumber",
        "orderKey",
        "orderId",
        "orderDate",
        "orderStatus",
        "items",
        "shipTo",
        "advancedOptions",
        "weight",
        "paymentDate",
        "shipByDate",
        "internationalOptions",
        "advancedOptions.storeId",
        "advancedOptions.warehouseId",
        "items.0.lineItemKey",
        "items.0.quantity",
        "items.0.sku",
        "items.1",
    ]
)


@st.composite
def mangled_orders(draw: st.DrawFn) -> Any:
    """A valid order with a few fields replaced by arbitrary JSON, or arbitrary JSON."""
    if draw(st.booleans()):
        return draw(JSON)
    body = order_payload(key=draw(st.sampled_from(["k1", "k2", None])))
    for field in draw(st.lists(FIELDS, max_size=3)):
        *path, last = field.split(".")
        target: Any = body
        for part in path:
            if isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            elif isinstance(target, dict):
                target = target.setdefault(part, {})
        if isinstance(target, list) and last.isdigit() and int(last) < len(target):
            target[int(last)] = draw(JSON)
        elif isinstance(target, dict):
            target[last] = draw(JSON)
    return body


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mangled_orders(), max_size=4))
async def test_createorders_never_fails_with_a_server_error(bodies: list[Any]) -> None:
    sandbox = create_shipstation_sandbox(FakeClock(), public_url=BASE)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(sandbox.app),
        base_url=BASE,
        headers={"Authorization": V1_AUTH},
    ) as client:
        response = await client.post("/orders/createorders", json=bodies)
        assert response.status_code == 200
        results = response.json()["results"]
        assert len(results) == len(bodies)
        for result in results:
            assert result["success"] == (result["errorMessage"] is None)
            if result["success"]:
                order = await client.get(f"/orders/{result['orderId']}")
                assert order.status_code == 200
        single = await client.post("/orders/createorder", json=bodies[0] if bodies else None)
        assert single.status_code in (200, 400)
        listed = await client.get("/orders")
        assert listed.status_code == 200


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "transaction_type",
                "sku",
                "quantity",
                "cost",
                "new_cost",
                "condition",
                "new_inventory_location_id",
            ]
        ),
        JSON,
    )
)
async def test_inventory_transactions_never_fail_with_a_server_error(
    changes: dict[str, Any],
) -> None:
    sandbox = create_shipstation_sandbox(FakeClock(), public_url=BASE)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(sandbox.app),
        base_url=BASE,
        headers={"API-Key": "sandbox-v2-key"},
    ) as client:
        wid = (await client.post("/v2/inventory_warehouses", json={"name": "W"})).json()[
            "inventory_warehouse_id"
        ]
        lid = (
            await client.post(
                "/v2/inventory_locations", json={"name": "L", "inventory_warehouse_id": wid}
            )
        ).json()["inventory_location_id"]
        body = {
            "transaction_type": "increment",
            "sku": "S",
            "quantity": 1,
            "inventory_location_id": lid,
            **changes,
        }
        response = await client.post("/v2/inventory", json=body)
        assert response.status_code in (204, 400)
        listed = await client.get("/v2/inventory")
        assert listed.status_code == 200
        if response.status_code == 400:  # all or nothing: a refused transaction changed nothing
            assert all(row["on_hand"] == 0 for row in listed.json()["inventory"])
