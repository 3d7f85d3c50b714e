"""V1 lists: filters in Pacific time (incl. DST), prefix orderNumber, sorting, pagination."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from mlconnector.clock import FakeClock
from mlconnector.sandbox.shipstation import ShipStationSandbox

from .conftest import order_payload


async def test_order_number_filter_is_a_prefix_match(v1: httpx.AsyncClient) -> None:
    for number in ("1001", "10010", "1002", "X1001"):
        await v1.post("/orders/createorder", json=order_payload(number, f"k-{number}"))
    found = (await v1.get("/orders", params={"orderNumber": "1001"})).json()
    assert sorted(o["orderNumber"] for o in found["orders"]) == ["1001", "10010"]


async def test_pagination_total_pages_and_page_size_limits(v1: httpx.AsyncClient) -> None:
    bodies = [order_payload(f"N-{i:03d}", f"k-{i}") for i in range(7)]
    await v1.post("/orders/createorders", json=bodies)
    page2 = (await v1.get("/orders", params={"pageSize": 3, "page": 2})).json()
    assert (page2["total"], page2["page"], page2["pages"]) == (7, 2, 3)
    assert [o["orderNumber"] for o in page2["orders"]] == ["N-003", "N-004", "N-005"]
    page3 = (await v1.get("/orders", params={"pageSize": 3, "page": 3})).json()
    assert [o["orderNumber"] for o in page3["orders"]] == ["N-006"]
    beyond = (await v1.get("/orders", params={"pageSize": 3, "page": 9})).json()
    assert beyond["orders"] == []
    assert beyond["total"] == 7
    assert (await v1.get("/orders", params={"pageSize": 500})).status_code == 200
    for bad in ({"pageSize": 501}, {"pageSize": 0}, {"page": 0}, {"page": "x"}):
        assert (await v1.get("/orders", params=bad)).status_code == 400, bad


async def test_sort_by_modify_date_desc(v1: httpx.AsyncClient, fake_clock: FakeClock) -> None:
    for i in range(3):
        await v1.post("/orders/createorder", json=order_payload(f"S-{i}", f"k-{i}"))
        fake_clock.advance(5)
    await v1.post("/orders/createorder", json=order_payload("S-0", "k-0", internalNotes="x"))
    listed = (await v1.get("/orders", params={"sortBy": "ModifyDate", "sortDir": "DESC"})).json()
    assert [o["orderNumber"] for o in listed["orders"]] == ["S-0", "S-2", "S-1"]
    assert (await v1.get("/orders", params={"sortBy": "Nope"})).status_code == 400
    assert (await v1.get("/orders", params={"sortDir": "UP"})).status_code == 400


async def test_modify_date_filter_is_pacific_and_inclusive(
    v1: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    await v1.post("/orders/createorder", json=order_payload("A", "a"))  # 04:00:00 PST
    fake_clock.advance(3600)
    await v1.post("/orders/createorder", json=order_payload("B", "b"))  # 05:00:00 PST

    async def numbers(**params: str) -> list[str]:
        body = (await v1.get("/orders", params=params)).json()
        return [o["orderNumber"] for o in body["orders"]]

    assert await numbers(modifyDateStart="2026-01-15 05:00:00") == ["B"]
    assert await numbers(modifyDateEnd="2026-01-15 04:00:00") == ["A"]
    # the same instants read as UTC would select nothing: the filter really is Pacific
    assert await numbers(modifyDateStart="2026-01-15 12:00:00") == []
    assert await numbers(modifyDateStart="2026-01-15T04:30:00.000") == ["B"]
    assert await numbers(createDateStart="2026-01-15", createDateEnd="2026-01-15 04:59:59") == ["A"]
    assert await numbers(orderDateStart="2026-01-15 08:00:00", orderDateEnd="2026-01-15 08:00:00")
    for bad in ("2026-13-01 00:00:00", "yesterday", "15/01/2026 10:00:00"):
        response = await v1.get("/orders", params={"modifyDateStart": bad})
        assert response.status_code == 400, bad
        assert "modifyDateStart" in response.json()["message"]


async def test_timestamps_follow_pacific_daylight_time_in_summer(
    sandbox: ShipStationSandbox, v1: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    fake_clock.set(datetime(2026, 7, 4, 19, 30, 15, 123456, tzinfo=UTC))  # 12:30:15 PDT
    order = (await v1.post("/orders/createorder", json=order_payload())).json()
    assert order["createDate"] == "2026-07-04T12:30:15.1234560"
    # the summer instant is selected by its PDT wall time (UTC-7), not by PST (UTC-8)
    hit = await v1.get("/orders", params={"createDateStart": "2026-07-04 12:30:15"})
    miss = await v1.get("/orders", params={"createDateStart": "2026-07-04 12:30:16"})
    assert hit.json()["total"] == 1
    assert miss.json()["total"] == 0
    # an order date sent as PDT wall time is stored and shown unchanged
    assert order["orderDate"] == "2026-01-15T08:00:00.0000000"


async def test_order_status_and_store_filters(v1: httpx.AsyncClient) -> None:
    await v1.post("/orders/createorder", json=order_payload("A", "a", orderStatus="on_hold"))
    await v1.post(
        "/orders/createorder", json=order_payload("B", "b", advancedOptions={"storeId": 101})
    )
    held = (await v1.get("/orders", params={"orderStatus": "on_hold"})).json()
    assert [o["orderNumber"] for o in held["orders"]] == ["A"]
    store = (await v1.get("/orders", params={"storeId": 101})).json()
    assert [o["orderNumber"] for o in store["orders"]] == ["B"]
    assert (await v1.get("/orders", params={"orderStatus": "bogus"})).status_code == 400


async def test_reference_lists(v1: httpx.AsyncClient) -> None:
    await v1.post("/orders/createorder", json=order_payload())
    stores = (await v1.get("/stores")).json()
    assert isinstance(stores, list)
    assert stores[0]["marketplaceId"] == 0
    warehouses = (await v1.get("/warehouses")).json()
    assert any(w["isDefault"] for w in warehouses)
    products = (await v1.get("/products")).json()
    assert sorted(p["sku"] for p in products["products"]) == ["PART-1", "PART-2"]
    only = (await v1.get("/products", params={"sku": "PART-2"})).json()
    assert [p["sku"] for p in only["products"]] == ["PART-2"]


async def test_fall_back_hour_repeats_wall_times_and_the_filter_keeps_both(
    v1: httpx.AsyncClient, fake_clock: FakeClock
) -> None:
    fake_clock.set(datetime(2026, 11, 1, 8, 30, tzinfo=UTC))  # 01:30 PDT (first 01:30)
    await v1.post("/orders/createorder", json=order_payload("FIRST", "first"))
    fake_clock.advance(3600)  # 09:30 UTC = 01:30 PST (the repeated hour)
    await v1.post("/orders/createorder", json=order_payload("SECOND", "second"))
    orders = (await v1.get("/orders")).json()["orders"]
    assert [o["createDate"] for o in orders] == ["2026-11-01T01:30:00.0000000"] * 2
    # an ambiguous filter reads as the first occurrence, so the window only widens
    since = await v1.get("/orders", params={"createDateStart": "2026-11-01 01:30:00"})
    assert [o["orderNumber"] for o in since.json()["orders"]] == ["FIRST", "SECOND"]
    after = await v1.get("/orders", params={"createDateStart": "2026-11-01 01:31:00"})
    assert [o["orderNumber"] for o in after.json()["orders"]] == ["SECOND"]
