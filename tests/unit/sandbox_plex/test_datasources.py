"""JSON Data Source API: formats, row limits, error codes, key/id mapping."""

from __future__ import annotations

from typing import Any

import httpx

from mlconnector.sandbox.plex import (
    DEFAULT_WS_PASSWORD,
    RELEASE_HISTORY_ID,
    SHIPPERS_GET_ID,
    TRACKING_UPDATE_ID,
    PlexSandbox,
)
from mlconnector.sandbox.plex.model import Shipper
from mlconnector.sandbox.plex.state import TenantData


def _shipper(data: TenantData, note: str) -> Shipper:
    customer = next(iter(data.customers.values()))
    address = next(a for a in customer.addresses if a.ship_to)
    return data.create_shipper(customer.id, address.id, {"shipper_note": note})


async def _execute(
    anon: httpx.AsyncClient, auth: httpx.BasicAuth, ds_id: int, body: Any, *, flat: bool = False
) -> httpx.Response:
    params = {"format": "2"} if flat else None
    return await anon.post(f"/api/datasources/{ds_id}/execute", json=body, auth=auth, params=params)


async def test_tracking_update_by_integer_key(
    anon: httpx.AsyncClient, ws_auth: httpx.BasicAuth, sandbox: PlexSandbox
) -> None:
    shipper = _shipper(sandbox.tenant(), "old note")
    response = await _execute(
        anon,
        ws_auth,
        TRACKING_UPDATE_ID,
        {"inputs": {"Shipper_Key": shipper.key, "Tracking_No": "1Z1", "Shipper_Note": "ss-1"}},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["outputs"] == {"Result_Error": False, "Result_Message": "Shipper updated."}
    assert body["tables"] == []
    assert body["transactionNo"]
    assert (shipper.tracking_number, shipper.shipper_note) == ("1Z1", "ss-1")


async def test_update_datasource_nulls_inputs_left_out(
    anon: httpx.AsyncClient, ws_auth: httpx.BasicAuth, sandbox: PlexSandbox
) -> None:
    shipper = _shipper(sandbox.tenant(), "keep me?")
    await _execute(
        anon,
        ws_auth,
        TRACKING_UPDATE_ID,
        {"Shipper_Key": shipper.key, "Tracking_No": "1Z2"},
        flat=True,
    )
    assert shipper.tracking_number == "1Z2"
    assert shipper.shipper_note is None


async def test_unknown_shipper_key_is_result_error_not_http_error(
    anon: httpx.AsyncClient, ws_auth: httpx.BasicAuth
) -> None:
    response = await _execute(anon, ws_auth, TRACKING_UPDATE_ID, {"Shipper_Key": 1}, flat=True)
    assert response.status_code == 200
    assert response.json()["outputs"]["Result_Error"] is True


async def test_shipper_lookup_by_note_format_2(
    anon: httpx.AsyncClient, ws_auth: httpx.BasicAuth, sandbox: PlexSandbox
) -> None:
    data = sandbox.tenant()
    wanted = _shipper(data, "ShipStation ss-shipment-555")
    _shipper(data, "something else")
    response = await _execute(
        anon, ws_auth, SHIPPERS_GET_ID, {"Shipper_Note": "ss-shipment-555"}, flat=True
    )
    body = response.json()
    assert body["rowLimitExceeded"] is False
    assert [row["Shipper_Key"] for row in body["rows"]] == [wanted.key]
    assert body["rows"][0]["Shipper_Note"] == "ShipStation ss-shipment-555"


async def test_release_history_default_format_and_row_limit(
    anon: httpx.AsyncClient, ws_auth: httpx.BasicAuth, sandbox: PlexSandbox
) -> None:
    inputs = {"Begin_Date": "2025-01-01T00:00:00Z", "End_Date": "2027-01-01T00:00:00Z"}
    full = (await _execute(anon, ws_auth, RELEASE_HISTORY_ID, {"inputs": inputs})).json()
    (table,) = full["tables"]
    assert len(table["rows"]) == len(sandbox.tenant().releases)
    assert table["rowLimitExceeded"] is False
    assert "Release_Key" in table["columns"]

    sandbox.set_row_limit(RELEASE_HISTORY_ID, 10)
    cut = (await _execute(anon, ws_auth, RELEASE_HISTORY_ID, {"inputs": inputs})).json()
    assert len(cut["tables"][0]["rows"]) == 10
    assert cut["tables"][0]["rowLimitExceeded"] is True
    flat = (await _execute(anon, ws_auth, RELEASE_HISTORY_ID, inputs, flat=True)).json()
    assert len(flat["rows"]) == 10
    assert flat["rowLimitExceeded"] is True


async def test_datasource_error_codes(
    anon: httpx.AsyncClient, ws_auth: httpx.BasicAuth, sandbox: PlexSandbox
) -> None:
    async def code(ds: int, body: Any, flat: bool = True) -> tuple[int, str]:
        response = await _execute(anon, ws_auth, ds, body, flat=flat)
        payload = response.json()
        assert payload["transactionNo"]
        return response.status_code, payload["errors"][0]["code"]

    assert await code(424242, {}) == (404, "DATA_SOURCE_NOT_FOUND")
    assert await code(RELEASE_HISTORY_ID, {"Begin_Date": "2026-01-01T00:00:00Z"}) == (
        400,
        "DATA_SOURCE_INPUT_REQUIRED",
    )
    assert await code(TRACKING_UPDATE_ID, {"shipper_key": 1}) == (
        400,
        "DATA_SOURCE_INPUT_NOT_FOUND",
    )
    assert await code(TRACKING_UPDATE_ID, {"Shipper_Key": "abc"}) == (
        400,
        "DATA_SOURCE_INPUT_TYPE_MISMATCH",
    )
    assert await code(
        RELEASE_HISTORY_ID, {"Begin_Date": "2026-01-01", "End_Date": "2026-02-01T00:00:00Z"}
    ) == (400, "DATA_SOURCE_INPUT_FORMAT_INVALID")
    assert await code(
        RELEASE_HISTORY_ID,
        {"Begin_Date": "2026-02-30T00:00:00Z", "End_Date": "2026-03-01T00:00:00Z"},
    ) == (400, "DATA_SOURCE_INPUT_FORMAT_INVALID")
    sandbox.set_datasource_grants(sandbox.tenant().tenant.pcn, [SHIPPERS_GET_ID])
    assert await code(TRACKING_UPDATE_ID, {"Shipper_Key": 1}) == (
        403,
        "DATA_SOURCE_ACCESS_DENIED",
    )


async def test_bad_credentials_and_wrong_method(
    anon: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    bad = await anon.post(
        f"/api/datasources/{SHIPPERS_GET_ID}/execute",
        json={},
        auth=("nobody@plex.com", DEFAULT_WS_PASSWORD),
    )
    assert bad.status_code == 401
    assert bad.json()["errors"][0]["code"] == "USER_ACCESS_DENIED"
    get = await anon.get(f"/api/datasources/{SHIPPERS_GET_ID}/execute")
    assert get.status_code == 405
    assert get.json()["errors"][0]["code"] == "METHOD_NOT_ALLOWED"


async def test_ws_user_is_scoped_to_its_tenant(
    anon: httpx.AsyncClient, sandbox: PlexSandbox
) -> None:
    second = sandbox.tenant("mlautoca")
    auth = httpx.BasicAuth(sandbox.ws_username(second.tenant.pcn), DEFAULT_WS_PASSWORD)
    inputs = {"Begin_Date": "2025-01-01T00:00:00Z", "End_Date": "2027-01-01T00:00:00Z"}
    rows = (await _execute(anon, auth, RELEASE_HISTORY_ID, inputs, flat=True)).json()["rows"]
    assert {row["Release_Key"] for row in rows} == {r.key for r in second.releases.values()}


async def test_identity_mapping_round_trip(client: httpx.AsyncClient, sandbox: PlexSandbox) -> None:
    shipper = _shipper(sandbox.tenant(), "map me")
    to_keys = await client.post(
        "/platform/identity-mappings/v1/ids-to-keys",
        json={"standardObjectName": "Shipper", "ids": [shipper.id]},
    )
    assert to_keys.json()["recordIdentifiers"] == [{"Shipper_Key": shipper.key, "Id": shipper.id}]
    to_ids = await client.post(
        "/platform/identity-mappings/v1/keys-to-ids",
        json={"standardObjectName": "Shipper", "recordIdentifiers": [{"Shipper_Key": shipper.key}]},
    )
    assert to_ids.json()["recordIdentifiers"][0]["Id"] == shipper.id
