"""V1 models: Pacific time both ways, unknown fields kept on a round trip."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from mlconnector.shipstation import (
    CreateOrderResult,
    InventoryWarehouse,
    Order,
    Shipment,
    V1Webhook,
)
from mlconnector.sync.shipments_source import from_shipment
from mlconnector.timezones import PACIFIC


def test_v1_timestamps_become_aware_utc_in_winter_and_summer() -> None:
    order = Order.model_validate(
        {
            "orderDate": "2026-01-15T04:00:00.0000000",  # PST, UTC-8
            "modifyDate": "2026-07-01T10:00:00.123",  # PDT, UTC-7
        }
    )
    assert order.order_date == datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    assert order.modify_date == datetime(2026, 7, 1, 17, 0, 0, 123000, tzinfo=UTC)


def test_v1_timestamps_go_out_as_pacific_without_offset() -> None:
    order = Order(order_number="A-1", order_date=datetime(2026, 7, 1, 17, 0, tzinfo=UTC))
    assert order.to_v1()["orderDate"] == "2026-07-01T10:00:00.0000000"
    winter = Order(order_number="A-1", order_date=datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    assert winter.to_v1()["orderDate"] == "2026-01-15T04:00:00.0000000"


def test_fall_back_hour_reads_as_first_occurrence_and_writes_back_unchanged() -> None:
    # 2026-11-01 01:30 Pacific happens twice; the first occurrence is PDT (08:30 UTC).
    shipment = Shipment.model_validate({"shipDate": "2026-11-01T01:30:00.0000000"})
    assert shipment.ship_date == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    assert shipment.to_v1()["shipDate"] == "2026-11-01T01:30:00.0000000"
    # The second occurrence (PST, 09:30 UTC) also goes out as 01:30 wall time.
    later = Shipment(ship_date=datetime(2026, 11, 1, 9, 30, tzinfo=UTC))
    assert later.to_v1()["shipDate"] == "2026-11-01T01:30:00.0000000"


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValidationError, match="naive"):
        Order(order_date=datetime(2026, 1, 1, 12, 0))


def test_round_trip_keeps_unknown_fields_and_omits_unmentioned_ones() -> None:
    wire = {
        "orderId": 7,
        "orderNumber": "PLX-1",
        "orderKey": "plex:1",
        "orderStatus": "awaiting_shipment",
        "futureField": {"nested": [1, 2]},
        "items": [{"lineItemKey": "r1", "sku": "P-1", "quantity": 2, "itemExtra": "x"}],
        "advancedOptions": {"storeId": 5, "customField1": "PO-9", "newOption": True},
        "shipTo": {"name": "A", "country": "US", "addressExtra": 1},
    }
    order = Order.model_validate(wire)
    assert order.to_v1() == wire
    order.internal_notes = "edited"
    assert order.to_v1() == {**wire, "internalNotes": "edited"}


def test_created_order_sends_only_what_was_set() -> None:
    order = Order(order_number="N", order_key="k", order_status="awaiting_shipment")
    assert order.to_v1() == {
        "orderNumber": "N",
        "orderKey": "k",
        "orderStatus": "awaiting_shipment",
    }


def test_v1_webhook_list_entry_uses_pascal_case() -> None:
    hook = V1Webhook.model_validate({"WebHookID": 3, "HookType": "SHIP_NOTIFY", "Url": "u"})
    assert (hook.webhook_id, hook.hook_type, hook.url) == (3, "SHIP_NOTIFY", "u")


def test_createorders_result_reads_error_message() -> None:
    result = CreateOrderResult.model_validate(
        {"orderId": 1, "orderKey": "k", "success": False, "errorMessage": "bad"}
    )
    assert result.error_message == "bad"
    assert not result.success


def test_v2_timestamps_keep_offset_and_serialise_as_utc() -> None:
    warehouse = InventoryWarehouse.model_validate(
        {"inventory_warehouse_id": "w1", "created_at": "2026-01-15T04:00:00-08:00"}
    )
    assert warehouse.created_at == datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    assert warehouse.to_v2()["created_at"] == "2026-01-15T12:00:00Z"
    # an optional V2 time without its offset is never guessed: it reads as absent
    naive = InventoryWarehouse.model_validate(
        {"inventory_warehouse_id": "w1", "created_at": "2026-01-15T04:00:00"}
    )
    assert naive.created_at is None


def test_date_only_ship_date_stays_a_date_both_ways() -> None:
    shipment = Shipment.model_validate({"shipmentId": 1, "shipDate": "2026-07-04"})
    assert shipment.ship_date == date(2026, 7, 4)
    assert not isinstance(shipment.ship_date, datetime)
    assert shipment.to_v1()["shipDate"] == "2026-07-04"
    # the instant written back to Plex: that day's midnight US Pacific (PDT, UTC-7), in UTC
    shipped = from_shipment(shipment)
    assert shipped is not None
    assert shipped.ship_date == datetime(2026, 7, 4, 7, 0, tzinfo=UTC)


def test_date_only_value_of_a_timestamp_field_is_midnight_pacific() -> None:
    order = Order.model_validate({"orderDate": "2026-07-04"})
    assert order.order_date == datetime(2026, 7, 4, 7, 0, tzinfo=UTC)


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2040, 12, 31),
        timezones=st.just(UTC),
    )
)
def test_any_instant_survives_the_pacific_round_trip(instant: datetime) -> None:
    # Every instant goes out as Pacific wall time and comes back as the same UTC instant, except
    # in the repeated fall-back hour, where it may come back exactly one hour earlier (the first
    # occurrence; see mlconnector.timezones).
    wire = Order(order_date=instant).to_v1()["orderDate"]
    back = Order.model_validate({"orderDate": wire}).order_date
    assert back is not None
    assert back in (instant, instant - timedelta(hours=1))
    if back != instant:
        local = instant.astimezone(PACIFIC)
        assert local.fold == 1  # only the second occurrence of a repeated wall time
