"""The simulated ``Container_Split`` datasource: a new serial for the split-off part, the
remainder keeps its serial, strict inputs, refusals as ``Result_Error``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from mlconnector.sandbox.plex import CONTAINER_SPLIT_ID, PlexSandbox
from mlconnector.sandbox.plex.errors import PlexApiError
from mlconnector.sandbox.plex.model import Container


def _container(sandbox: PlexSandbox, quantity: float = 100) -> Container:
    data = sandbox.tenant()
    part = next(iter(data.parts))
    location = next(iter(data.locations))
    return data.add_container(part, location, quantity)


async def _split(anon: httpx.AsyncClient, auth: httpx.BasicAuth, inputs: Any) -> httpx.Response:
    return await anon.post(
        f"/api/datasources/{CONTAINER_SPLIT_ID}/execute",
        json=inputs,
        auth=auth,
        params={"format": "2"},
    )


async def test_split_moves_the_quantity_into_a_new_serial(
    anon: httpx.AsyncClient, ws_auth: httpx.BasicAuth, sandbox: PlexSandbox
) -> None:
    source = _container(sandbox)
    on_hand = sandbox.on_hand(source.part_id)
    response = await _split(anon, ws_auth, {"Serial_No": source.serial_no, "Split_Quantity": 5})
    assert response.status_code == 200
    outputs = response.json()["outputs"]
    assert outputs["Result_Error"] is False
    new = sandbox.tenant().containers[outputs["New_Serial_No"]]
    assert new.serial_no != source.serial_no
    assert (new.quantity, source.quantity) == (5, 95)
    assert (new.part_id, new.location_id, new.status) == (
        source.part_id,
        source.location_id,
        source.status,
    )
    assert sandbox.on_hand(source.part_id) == on_hand  # a split moves stock, never adds any


async def test_split_accepts_a_decimal_as_text(
    anon: httpx.AsyncClient, ws_auth: httpx.BasicAuth, sandbox: PlexSandbox
) -> None:
    source = _container(sandbox, 10)
    response = await _split(anon, ws_auth, {"Serial_No": source.serial_no, "Split_Quantity": "2.5"})
    assert response.json()["outputs"]["Result_Error"] is False
    assert source.quantity == 7.5


async def test_split_refusals_name_the_reason_and_change_nothing(
    anon: httpx.AsyncClient, ws_auth: httpx.BasicAuth, sandbox: PlexSandbox
) -> None:
    source = _container(sandbox, 10)
    before = dict(sandbox.tenant().containers)
    for inputs, reason in (
        ({"Serial_No": source.serial_no, "Split_Quantity": 10}, "must leave a remainder"),
        ({"Serial_No": source.serial_no, "Split_Quantity": 0}, "must be positive"),
        ({"Serial_No": "NOPE", "Split_Quantity": 1}, "is not active"),
        ({"Serial_No": " ", "Split_Quantity": 1}, "must not be empty"),
    ):
        outputs = (await _split(anon, ws_auth, inputs)).json()["outputs"]
        assert outputs["Result_Error"] is True, inputs
        assert reason in outputs["Result_Message"]
        assert outputs["New_Serial_No"] is None
    assert sandbox.tenant().containers == before
    assert source.quantity == 10


async def test_split_inputs_are_validated_strictly(
    anon: httpx.AsyncClient, ws_auth: httpx.BasicAuth, sandbox: PlexSandbox
) -> None:
    source = _container(sandbox, 10)
    cases = (
        ({"Serial_No": source.serial_no}, "DATA_SOURCE_INPUT_REQUIRED"),
        ({"Serial_No": source.serial_no, "Split_Quantity": True}, "INPUT_TYPE_MISMATCH"),
        ({"Serial_No": source.serial_no, "Split_Quantity": "five"}, "INPUT_TYPE_MISMATCH"),
        ({"Serial_No": source.serial_no, "Quantity": 5}, "DATA_SOURCE_INPUT_NOT_FOUND"),
    )
    for inputs, code in cases:
        response = await _split(anon, ws_auth, inputs)
        assert response.status_code == 400, inputs
        assert code in response.text
    assert source.quantity == 10


async def test_stock_loaded_on_an_open_shipper_is_not_split(sandbox: PlexSandbox) -> None:
    data = sandbox.tenant()
    release = next(r for r in data.releases.values() if r.status in ("Open", "Scheduled"))
    order = data.order_of_release(release)
    customer = data.customers[order.customer_id]
    address = next(a for a in customer.addresses if a.ship_to)
    part = data.part_of_release(release)
    source = data.add_container(part.id, next(iter(data.locations)), 1000)
    for other in list(data.containers.values()):
        if other.part_id == part.id and other is not source:
            other.quantity = 0  # only the big container can serve the line
    shipper = data.create_shipper(customer.id, address.id, {})
    line = data.schedule_release(shipper, release.id, False)
    data.load_fifo(shipper, line.id)
    free = source.quantity - data.reserved_quantity(source.serial_no)
    assert 0 < free < source.quantity
    with pytest.raises(PlexApiError) as refused:
        data.split_container(source.serial_no, free + 1)
    assert "loaded on an open shipper" in refused.value.errors[0]["message"]
    assert data.split_container(source.serial_no, free).quantity == free
