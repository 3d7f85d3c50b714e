"""The operator surface: python methods and the ``/_operator/`` HTTP routes."""

from __future__ import annotations

from datetime import timedelta

import httpx

from mlconnector.clock import FakeClock
from mlconnector.sandbox.plex import LinePlan, PlexSandbox, ReleasePlan
from mlconnector.sandbox.server import serve
from mlconnector.timezones import format_utc_z


async def test_edit_release_over_http_is_seen_by_the_api(
    client: httpx.AsyncClient, sandbox: PlexSandbox, fake_clock: FakeClock
) -> None:
    release = next(r for r in sandbox.tenant().releases.values() if r.status == "Open")
    fake_clock.advance(120)
    new_date = fake_clock.now() + timedelta(days=9)
    edited = await client.post(
        f"/_operator/releases/{release.id}",
        json={"quantity": 5, "shipDate": format_utc_z(new_date)},
    )
    assert edited.status_code == 200
    api = (await client.get(f"/sales/v1/releases/{release.id}")).json()
    assert api["quantity"] == 5.0
    assert api["shipDate"] == format_utc_z(new_date)
    assert api["modifiedDate"] == format_utc_z(fake_clock.now())


async def test_cancel_order_cancels_open_releases(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    data = sandbox.tenant()
    order = next(o for o in data.orders.values() if o.status == "Open")
    response = await client.post(f"/_operator/orders/{order.id}/cancel")
    assert response.json()["status"] == "Canceled"
    statuses = {r.status for r in data.releases_of_order(order)}
    assert statuses <= {"Canceled", "Shipped"}


async def test_add_order_python_and_http(client: httpx.AsyncClient, sandbox: PlexSandbox) -> None:
    data = sandbox.tenant()
    part = next(p for p in data.parts.values() if p.status == "Active")
    ship = sandbox.clock.now() + timedelta(days=4)
    order = sandbox.add_order(lines=[LinePlan(part.id, [ReleasePlan(12, ship)])])
    releases = data.releases_of_order(order)
    assert [(r.quantity, r.ship_date) for r in releases] == [(12, ship)]
    response = await client.post(
        "/_operator/orders",
        json={
            "lines": [
                {"partId": part.id, "releases": [{"quantity": 3, "shipDate": format_utc_z(ship)}]}
            ]
        },
    )
    assert response.status_code == 200
    assert len((await client.get("/sales/v1/orders")).json()) == 42


async def test_adjust_container_changes_on_hand(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    container = next(c for c in sandbox.tenant().containers.values() if c.status == "OK")
    before = sandbox.on_hand(container.part_id)
    response = await client.post(
        f"/_operator/containers/{container.serial_no}", json={"quantity": container.quantity + 10}
    )
    assert response.status_code == 200
    on_hand = await client.get("/_operator/on-hand", params={"partId": container.part_id})
    assert on_hand.json()[0]["onHand"] == before + 10


async def test_operator_routes_are_exempt_from_faults(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    configured = await client.post("/_operator/faults", json={"error_rate": 1.0})
    assert configured.json()["error_rate"] == 1.0
    assert (await client.get("/mdm/v1/parts")).status_code == 500
    assert (await client.get("/_operator/credentials")).status_code == 200
    assert sandbox.faults.config.injected["error"] == 1


async def test_operator_errors_are_json(client: httpx.AsyncClient) -> None:
    response = await client.post("/_operator/containers/NOPE", json={"quantity": 1})
    assert response.status_code == 404
    assert response.json()["code"] == "RESOURCE_NOT_FOUND"


async def test_served_over_loopback(sandbox: PlexSandbox) -> None:
    async with (
        serve(sandbox.app) as base_url,
        httpx.AsyncClient(base_url=base_url) as http,
    ):
        credentials = (await http.get("/_operator/credentials")).json()
        response = await http.get(
            "/sales/v1/orders",
            headers={
                "X-Plex-Connect-Api-Key": credentials["consumer_key"],
                "X-Plex-Connect-Customer-Id": str(credentials["tenants"][1]["pcn"]),
            },
        )
    assert response.status_code == 200
    assert len(response.json()) == 12


async def test_hold_and_release_of_an_order_carry_over_to_releases(
    client: httpx.AsyncClient, sandbox: PlexSandbox, fake_clock: FakeClock
) -> None:
    data = sandbox.tenant()
    order = next(
        o
        for o in data.orders.values()
        if o.status == "Open" and any(r.status == "Open" for r in data.releases_of_order(o))
    )
    open_ids = {r.id for r in data.releases_of_order(order) if r.status == "Open"}
    fake_clock.advance(30)
    held = await client.post(f"/_operator/orders/{order.id}/status", json={"status": "Hold"})
    assert held.json()["status"] == "Hold"
    assert {r.status for r in data.releases_of_order(order) if r.id in open_ids} == {"Hold"}
    changed = await client.get(
        "/sales/v1/releases", params={"modifiedDateBegin": format_utc_z(fake_clock.now())}
    )
    assert {r["id"] for r in changed.json()} == open_ids
    sandbox.set_order_status(order.id, "Open")
    assert {r.status for r in data.releases_of_order(order) if r.id in open_ids} == {"Open"}


async def test_expire_tokens_over_http(anon: httpx.AsyncClient) -> None:
    token = await anon.post(
        "/oauth2/v1/token",
        data={"grant_type": "client_credentials"},
        auth=("sandbox-consumer-key", "sandbox-consumer-secret"),
    )
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert (await anon.get("/mdm/v1/tenants", headers=headers)).status_code == 200
    await anon.post("/_operator/tokens/expire")
    assert (await anon.get("/mdm/v1/tenants", headers=headers)).status_code == 401


async def test_operator_rejects_bad_input_without_crashing(client: httpx.AsyncClient) -> None:
    faults = await client.post("/_operator/faults", json={"no_such_fault": 1})
    apps = await client.post("/_operator/apps/sandbox-consumer-key", json={"permissions": None})
    assert faults.status_code == apps.status_code == 400
    assert faults.json()["code"] == "REQUEST_VALIDATION_FAILED"


async def test_raw_field_override_is_sent_everywhere_the_record_is_then_cleared(
    client: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    data = sandbox.tenant()
    release = next(r for r in data.releases.values() if r.status == "Open")
    line = data.lines[release.order_line_id]
    set_ = await client.post(
        f"/_operator/raw/{release.id}", json={"field": "quantity", "value": "lots"}
    )
    assert set_.status_code == 200
    assert set_.json() == {"id": release.id, "fields": {"quantity": "lots"}}
    one = (await client.get(f"/sales/v1/releases/{release.id}")).json()
    listed = (await client.get("/sales/v1/releases", params={"orderLineIds": line.id})).json()
    assert one["quantity"] == "lots"
    assert [r["quantity"] for r in listed if r["id"] == release.id] == ["lots"]
    assert release.quantity != "lots"  # the simulator's own state is unchanged
    refused = await client.post(f"/_operator/raw/{release.id}", json={"value": 1})
    assert refused.status_code == 400
    cleared = await client.delete(f"/_operator/raw/{release.id}")
    assert cleared.status_code == 200
    again = (await client.get(f"/sales/v1/releases/{release.id}")).json()
    assert again["quantity"] == float(release.quantity)
