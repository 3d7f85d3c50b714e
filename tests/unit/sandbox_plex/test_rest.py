"""REST shapes and quirks: bare arrays, ignored unknown filters, strict UTC-Z datetimes."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from mlconnector.clock import FakeClock
from mlconnector.sandbox.plex import PlexSandbox
from mlconnector.timezones import format_utc_z


async def test_lists_are_bare_arrays_without_pagination(client: httpx.AsyncClient) -> None:
    response = await client.get("/mdm/v1/parts", params={"limit": 1, "offset": 5, "page": 2})
    body = response.json()
    assert isinstance(body, list)
    assert len(body) == 200  # limit/offset/page are not Plex parameters: ignored


async def test_misspelled_filter_returns_the_whole_table(client: httpx.AsyncClient) -> None:
    everything = await client.get("/sales/v1/orders")
    misspelled = await client.get(
        "/sales/v1/orders", params={"modifiedDateBegin": "2099-01-01T00:00:00Z"}
    )
    correct = await client.get(
        "/sales/v1/orders", params={"modifiedByDateBegin": "2099-01-01T00:00:00Z"}
    )
    assert misspelled.status_code == 200
    assert len(misspelled.json()) == len(everything.json()) == 40
    assert correct.json() == []


async def test_unknown_parameter_with_garbage_is_still_ignored(client: httpx.AsyncClient) -> None:
    response = await client.get("/sales/v1/releases", params={"updatedAfter": "yesterday"})
    assert response.status_code == 200
    assert len(response.json()) == 227


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-10",
        "2026-01-10T00:00:00",
        "2026-01-10T00:00:00+00:00",
        "2026-01-10T00:00Z",
        "2026-02-30T00:00:00Z",
    ],
)
async def test_datetime_filter_without_z_is_400(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get("/sales/v1/orders", params={"modifiedByDateBegin": value})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "ARGUMENT_INVALID"
    assert body["errors"][0]["message"].startswith("modifiedByDateBegin")


async def test_seven_fraction_digits_are_accepted(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/sales/v1/releases", params={"modifiedDateBegin": "2026-01-01T00:00:00.0000000Z"}
    )
    assert response.status_code == 200


async def test_invalid_uuid_filter_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/sales/v1/orders", params={"customerId": "ACME"})
    assert response.status_code == 400
    assert response.json()["code"] == "ARGUMENT_INVALID"


async def test_modified_by_date_window_filters_orders(
    client: httpx.AsyncClient, sandbox: PlexSandbox, fake_clock: FakeClock
) -> None:
    now = fake_clock.now()
    begin, end = now - timedelta(days=5), now
    response = await client.get(
        "/sales/v1/orders",
        params={"modifiedByDateBegin": format_utc_z(begin), "modifiedByDateEnd": format_utc_z(end)},
    )
    expected = {o.id for o in sandbox.tenant().orders.values() if begin <= o.modified <= end}
    assert 0 < len(expected) < 40
    assert {o["id"] for o in response.json()} == expected


async def test_order_array_filters_repeat_the_parameter(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    ids = list(sandbox.tenant().orders)[:3]
    response = await client.get("/sales/v1/orders", params=[("id", i) for i in ids])
    assert sorted(o["id"] for o in response.json()) == sorted(ids)
    held = await client.get("/sales/v1/orders", params=[("status", "Hold"), ("status", "Canceled")])
    assert {o["status"] for o in held.json()} == {"Hold", "Canceled"}


async def test_order_lines_and_releases_link_up(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    order = next(o for o in sandbox.tenant().orders.values() if o.status == "Open")
    lines = (await client.get(f"/sales/v1/orders/{order.id}/lines")).json()
    assert lines
    assert all(line["orderId"] == order.id for line in lines)
    releases = await client.get(
        "/sales/v1/releases", params=[("orderLineIds", line["id"]) for line in lines]
    )
    assert releases.json()
    assert {r["orderLineId"] for r in releases.json()} <= {line["id"] for line in lines}
    first = releases.json()[0]
    assert set(first) >= {"quantity", "quantityShipped", "shipDate", "dueDate", "status"}
    assert first["shipDate"].endswith("Z")


async def test_release_filters(client: httpx.AsyncClient, sandbox: PlexSandbox) -> None:
    data = sandbox.tenant()
    release = next(iter(data.releases.values()))
    by_id = await client.get("/sales/v1/releases", params={"id": release.id})
    assert [r["id"] for r in by_id.json()] == [release.id]
    window = await client.get(
        "/sales/v1/releases",
        params={
            "shipDateBegin": format_utc_z(release.ship_date),
            "shipDateEnd": format_utc_z(release.ship_date),
            "status": release.status,
        },
    )
    expected = {
        r.id
        for r in data.releases.values()
        if r.ship_date == release.ship_date and r.status == release.status
    }
    assert {r["id"] for r in window.json()} == expected


async def test_put_release_bumps_release_and_order_modified(
    client: httpx.AsyncClient, sandbox: PlexSandbox, fake_clock: FakeClock
) -> None:
    data = sandbox.tenant()
    release = next(r for r in data.releases.values() if r.status == "Open")
    order = data.order_of_release(release)
    fake_clock.advance(3600)
    response = await client.put(
        f"/sales/v1/releases/{release.id}",
        json={"quantity": 77, "shipDate": "2026-02-01T14:00:00Z"},
    )
    assert response.status_code == 200
    assert response.json()["quantity"] == 77.0
    assert release.modified == order.modified == fake_clock.now()
    window = {"modifiedByDateBegin": format_utc_z(fake_clock.now())}
    changed = await client.get("/sales/v1/orders", params=window)
    assert [o["id"] for o in changed.json()] == [order.id]


async def test_put_release_rejects_non_z_datetime(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    release_id = next(iter(sandbox.tenant().releases))
    response = await client.put(
        f"/sales/v1/releases/{release_id}", json={"shipDate": "2026-02-01T14:00:00"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "ARGUMENT_INVALID"


async def test_unknown_ids_are_404_and_bad_ids_400(client: httpx.AsyncClient) -> None:
    missing = await client.get("/sales/v1/orders/00000000-0000-4000-8000-000000000000")
    bad = await client.get("/sales/v1/orders/12345")
    assert missing.status_code == 404
    assert missing.json()["code"] == "RESOURCE_NOT_FOUND"
    assert bad.status_code == 400


async def test_customers_have_ship_to_and_bill_to_addresses(
    client: httpx.AsyncClient,
) -> None:
    customers = (await client.get("/mdm/v1/customers")).json()
    assert len(customers) == 12
    countries, states = set(), set()
    for customer in customers:
        addresses = (await client.get(f"/mdm/v1/customers/{customer['id']}/addresses")).json()
        assert any(a["billTo"] for a in addresses)
        assert any(a["shipTo"] for a in addresses)
        countries |= {a["country"] for a in addresses}
        states |= {a["state"] for a in addresses}
    assert "Canada" in countries
    assert len(states) > 5
    ship_only = await client.get(
        f"/mdm/v1/customers/{customers[0]['id']}/addresses", params={"shipTo": "true"}
    )
    assert all(a["shipTo"] for a in ship_only.json())


async def test_inventory_parts_updated_window(
    client: httpx.AsyncClient, sandbox: PlexSandbox, fake_clock: FakeClock
) -> None:
    begin = fake_clock.now() - timedelta(days=30)
    response = await client.get(
        "/inventory/v1/inventory-definitions/parts",
        params={"beginUpdatedDateTime": format_utc_z(begin)},
    )
    expected = {p.id for p in sandbox.tenant().parts.values() if p.modified >= begin}
    assert 0 < len(expected) < 200
    assert {p["partId"] for p in response.json()} == expected


async def test_containers_filter_by_part_and_sum_to_on_hand(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    data = sandbox.tenant()
    container = next(c for c in data.containers.values() if c.status == "OK")
    response = await client.get(
        "/inventory/v1/inventory-tracking/containers", params={"partId": container.part_id}
    )
    rows = response.json()
    assert rows
    assert all(r["partId"] == container.part_id for r in rows)
    on_hand = sum(r["quantity"] for r in rows if r["containerStatus"] == "OK")
    assert on_hand == sandbox.on_hand(container.part_id)
    locations = (await client.get("/inventory/v1/inventory-definitions/locations")).json()
    assert {loc["buildingCode"] for loc in locations} == {"DET", "TOL", "LON"}


async def test_seed_is_deterministic(fake_clock: FakeClock) -> None:
    from mlconnector.sandbox.plex import create_plex_sandbox

    one = create_plex_sandbox(FakeClock(fake_clock.now()), seed=7).tenant()
    two = create_plex_sandbox(FakeClock(fake_clock.now()), seed=7).tenant()
    other = create_plex_sandbox(FakeClock(fake_clock.now()), seed=8).tenant()
    as_json = [one.release_json(r) for r in one.releases.values()]
    assert as_json == [two.release_json(r) for r in two.releases.values()]
    assert set(one.orders) != set(other.orders)


async def test_empty_list_can_answer_404_like_plex_sometimes_does(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    future = {"modifiedByDateBegin": "2099-01-01T00:00:00Z"}
    assert (await client.get("/sales/v1/orders", params=future)).json() == []
    sandbox.set_empty_list_not_found()
    response = await client.get("/sales/v1/orders", params=future)
    assert response.status_code == 404
    assert response.json()["code"] == "RESOURCE_NOT_FOUND"
    assert (await client.get("/sales/v1/orders")).status_code == 200
