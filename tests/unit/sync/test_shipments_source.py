"""The shipments flow's records and cursors: ship instants across DST, item keys, cursor JSON."""

from __future__ import annotations

from datetime import UTC, datetime

from mlconnector.shipstation import Fulfillment, Shipment
from mlconnector.sync.cursor import CursorState
from mlconnector.sync.shipments_source import (
    PollCursors,
    from_fulfillment,
    from_shipment,
    shipped_records,
)


def _shipment(create: str, ship: str, **extra: object) -> Shipment:
    return Shipment.model_validate(
        {"shipmentId": 5, "orderKey": "k", "createDate": create, "shipDate": ship, **extra}
    )


def test_same_day_label_ships_at_its_creation_instant() -> None:
    rec = from_shipment(_shipment("2026-03-08T03:00:00.0000000", "2026-03-08"))
    assert rec is not None
    # 03:00 PDT on the spring-forward day is 10:00 UTC
    assert rec.ship_instant(datetime(2000, 1, 1, tzinfo=UTC)) == datetime(
        2026, 3, 8, 10, 0, tzinfo=UTC
    )


def test_label_dated_ahead_ships_at_the_pacific_midnight_of_its_ship_date() -> None:
    rec = from_shipment(_shipment("2026-11-01T23:30:00.0000000", "2026-11-02"))
    assert rec is not None
    # midnight PST (after the fall-back) is 08:00 UTC
    assert rec.ship_instant(datetime(2000, 1, 1, tzinfo=UTC)) == datetime(
        2026, 11, 2, 8, 0, tzinfo=UTC
    )


def test_missing_dates_fall_back() -> None:
    rec = from_shipment(Shipment.model_validate({"shipmentId": 1}))
    fallback = datetime(2026, 1, 1, tzinfo=UTC)
    assert rec is not None
    assert rec.ship_instant(fallback) == fallback


def test_items_keys_are_lower_case_and_absent_items_stay_unknown() -> None:
    with_items = from_shipment(
        _shipment(
            "2026-01-15T03:00:00",
            "2026-01-15",
            shipmentItems=[{"lineItemKey": " ABC-1 ", "sku": "S", "quantity": 2}],
        )
    )
    assert with_items is not None
    assert with_items.items is not None
    assert [(i.line_item_key, i.quantity) for i in with_items.items] == [("abc-1", 2)]
    without = from_shipment(_shipment("2026-01-15T03:00:00", "2026-01-15"))
    assert without is not None
    assert without.items is None
    assert (without.source_id, without.void_id) == ("ss-shipment-5", "ss-void-5")


def test_fulfilments_have_their_own_references_and_no_items() -> None:
    rec = from_fulfillment(Fulfillment.model_validate({"fulfillmentId": 9, "orderId": 3}))
    assert rec is not None
    assert (rec.source_id, rec.void_id, rec.items) == (
        "ss-fulfillment-9",
        "ss-void-fulfillment-9",
        None,
    )
    no_id = [Shipment.model_validate({"orderKey": "x"})]
    assert shipped_records(no_id, []) == []


def test_poll_cursors_round_trip() -> None:
    state = CursorState(
        since=datetime(2026, 11, 1, 9, 30, tzinfo=UTC),
        seen=frozenset({("7", "2026-11-01T09:30:00.0000000Z")}),
    )
    cursors = PollCursors().with_state("voided", state)
    back = PollCursors.from_json(cursors.to_json())
    assert back.get("voided") == state
    assert back.get("created") == CursorState()
    assert PollCursors.from_json(None) == PollCursors()
