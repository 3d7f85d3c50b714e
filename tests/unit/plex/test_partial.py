"""Partial quantities: which containers a shipment takes, when it splits, and what a refused or
unanswered split falls back to."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mlconnector.plex import (
    Container,
    ContainerSplitter,
    NeedsOperatorError,
    PlexContainerSplit,
    ShipmentLine,
    ShipmentWrite,
    ShipperStrategy,
)
from mlconnector.plex.partial import Short, plan_pick, short_of_stock, with_split
from tests.unit.plex.conftest import datasource_client, plex_client
from tests.unit.plex.fakeplex import ORDER, PART, FakePlex

SPLIT_ID = 990001


def stock(*quantities: float) -> list[Container]:
    return [
        Container(
            serial_no=f"C{i}",
            quantity=q,
            add_date_time=datetime(2026, 1, 1 + i, tzinfo=UTC),
            location="FG",
        )
        for i, q in enumerate(quantities)
    ]


def test_whole_containers_are_preferred_to_a_split() -> None:
    pick = plan_pick(stock(100, 5), PART, 5, can_split=True)
    assert pick is not None
    assert (pick.serials, pick.split) == (["C1"], None)


def test_one_split_of_the_oldest_container_holding_more() -> None:
    pick = plan_pick(stock(100, 40), PART, 5, can_split=True)
    assert pick is not None
    assert pick.serials == []
    assert pick.split is not None
    assert (pick.split.serial_no, pick.split.quantity, pick.split.holds) == ("C0", 5, 100)


def test_whole_containers_that_fit_then_a_split_for_the_rest() -> None:
    pick = with_split(stock(3, 100, 4), 12)
    assert pick is not None
    assert pick.serials == ["C0", "C2"]  # 3 + 4 whole, oldest first
    assert pick.split is not None
    assert (pick.split.serial_no, pick.split.quantity) == ("C1", 5)


def test_without_a_split_no_pick() -> None:
    assert plan_pick(stock(100), PART, 5, can_split=False) is None
    assert with_split(stock(3, 1), 5) is None


def test_short_stock_is_an_operator_task_naming_need_and_stock_per_location() -> None:
    held = [*stock(3), Container(serial_no="X", quantity=1, location="QA")]
    error = short_of_stock(
        "ss-shipment-1", [Short("R-7", "WIDGET", 5, 4, held)], operation_hint="replay it"
    )
    assert isinstance(error, NeedsOperatorError)
    assert "release R-7 needs 5 of part WIDGET, 4 available" in error.message
    assert "FG: 3, QA: 1" in error.message
    assert "nothing was written to Plex" in error.message
    assert "put 1 more of part WIDGET into shippable containers" in (error.hint or "")
    assert "replay it" in (error.hint or "")
    assert error.task == {
        "task": "short_stock",
        "lines": [
            {
                "release": "R-7",
                "part": "WIDGET",
                "quantity": 5,
                "available": 4,
                "available_by_location": {"FG": 3, "QA": 1},
            }
        ],
    }


def shipment(quantity: float) -> ShipmentWrite:
    return ShipmentWrite(
        reference="ss-shipment-77",
        carrier="ups",
        service="ground",
        tracking_number="1Z77",
        ship_date=datetime(2026, 1, 15, 9, tzinfo=UTC),
        lines=(ShipmentLine("r1", PART, quantity),),
        order_id=ORDER,
    )


async def test_a_split_that_answers_no_new_serial_falls_back_to_the_task(
    http_factory, settings, fake_clock
) -> None:
    plex = FakePlex().seed()  # its datasource answers no New_Serial_No
    http = http_factory(plex)
    splitter = ContainerSplitter(
        datasource_client(http, settings, fake_clock),
        PlexContainerSplit(datasource_id=SPLIT_ID),
    )
    strategy = ShipperStrategy(plex_client(http, settings, fake_clock), splitter=splitter)
    with pytest.raises(NeedsOperatorError, match="answered no 'New_Serial_No'") as raised:
        await strategy.write_shipment(shipment(3))
    assert [e["id"] for e in plex.executions] == [SPLIT_ID]
    assert plex.executions[0]["Serial_No"] == "S1"  # the oldest container holding more than 3
    assert plex.executions[0]["Split_Quantity"] == 3
    assert plex.shippers == {}  # nothing created, nothing left open
    assert "ss-shipment-77" in plex.releases["r1"]["note"]
    assert raised.value.task["tracking_recorded"] == "note of release r1"


async def test_the_split_inputs_and_output_are_settings(http_factory, settings, fake_clock):
    plex = FakePlex().seed()
    http = http_factory(plex)
    names = PlexContainerSplit(
        datasource_id=4242, serial_input="Serial", quantity_input="Qty", new_serial_output="Out"
    )
    splitter = ContainerSplitter(datasource_client(http, settings, fake_clock), names)
    strategy = ShipperStrategy(
        plex_client(http, settings, fake_clock), splitter=splitter, without_split="task_only"
    )
    with pytest.raises(NeedsOperatorError, match="answered no 'Out'"):
        await strategy.write_shipment(shipment(3))
    assert plex.executions == [{"id": 4242, "Serial": "S1", "Qty": 3}]
    assert "note" not in plex.releases["r1"]  # task_only: no tracking note either
