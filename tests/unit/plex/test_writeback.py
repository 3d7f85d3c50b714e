"""Both write strategies against an in-memory Plex: on-hand, notes, look-before-send, reversal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mlconnector.errors import ConfigError, RetryBudgetExhaustedError, SkipRecordError
from mlconnector.plex import (
    Container,
    DataSourceStrategy,
    NeedsOperatorError,
    ReversalNotSupportedError,
    ShipmentLine,
    ShipmentWrite,
    ShipperStrategy,
)
from mlconnector.plex.writeback import pick_whole_containers
from tests.unit.plex.conftest import datasource_client, plex_client
from tests.unit.plex.fakeplex import ADDRESS, CUSTOMER, ORDER, PART, FakePlex

SHIP_DATE = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)


def shipment(quantity: float = 10, ref: str = "ss-shipment-501", **kw: object) -> ShipmentWrite:
    return ShipmentWrite(
        reference=ref,
        carrier="ups",
        service="ups_ground",
        tracking_number="1Z999",
        ship_date=SHIP_DATE,
        lines=(ShipmentLine("r1", PART, quantity),),
        order_id=ORDER,
        **kw,
    )


@pytest.fixture
def plex() -> FakePlex:
    return FakePlex().seed()


@pytest.fixture
def shipper_strategy(plex, http_factory, settings, fake_clock) -> ShipperStrategy:
    return ShipperStrategy(plex_client(http_factory(plex), settings, fake_clock))


@pytest.fixture
def ds_strategy(plex, http_factory, settings, fake_clock) -> DataSourceStrategy:
    http = http_factory(plex)
    return DataSourceStrategy(
        plex_client(http, settings, fake_clock), datasource_client(http, settings, fake_clock)
    )


async def test_shipper_strategy_ships_and_reduces_on_hand(plex, shipper_strategy) -> None:
    assert plex.on_hand() == 15
    result = await shipper_strategy.write_shipment(shipment())
    assert plex.on_hand() == 5  # containers S1 (4) + S2 (6) loaded FIFO and shipped
    shipper = plex.shippers[result.shipper_id]
    assert shipper["status"] == "Shipped"
    assert shipper["customerId"] == CUSTOMER
    assert shipper["customerAddressId"] == ADDRESS
    assert shipper["trackingNumber"] == "1Z999"
    assert "ss-shipment-501" in shipper["shipperNote"]
    assert "ups ups_ground" in shipper["shipperNote"]
    assert plex.releases["r1"]["quantityShipped"] == 10
    assert not result.already_done


async def test_shipper_strategy_twice_writes_once(plex, shipper_strategy) -> None:
    await shipper_strategy.write_shipment(shipment())
    again = await shipper_strategy.write_shipment(shipment())
    assert again.already_done
    assert len(plex.shippers) == 1
    assert plex.count("POST", "/ship") == 1
    assert plex.on_hand() == 5


async def test_shipper_crash_after_create_is_resumed_not_duplicated(plex, shipper_strategy):
    plex.crash_on = ("POST", "/load-fifo")
    with pytest.raises(RuntimeError, match="crash"):
        await shipper_strategy.write_shipment(shipment())
    assert len(plex.shippers) == 1
    assert plex.on_hand() == 15
    existing = await shipper_strategy.find_existing("ss-shipment-501")
    assert existing.shipper is not None
    result = await shipper_strategy.write_shipment(shipment())
    assert result.resumed
    assert result.shipper_id == existing.shipper.id
    assert len(plex.shippers) == 1
    assert plex.count("POST", "/schedule-releases") == 1  # the release was not scheduled twice
    assert plex.on_hand() == 5


async def test_find_existing_without_tracking_number_walks_recent_windows(plex, shipper_strategy):
    await shipper_strategy.write_shipment(shipment(ref="ss-shipment-777"))
    found = await shipper_strategy.find_existing("ss-shipment-777")
    assert found.shipper is not None
    assert (await shipper_strategy.find_existing("ss-shipment-778")).shipper is None
    windowed = [r for r in plex.requests if "createdDateBegin" in r.url.params]
    assert windowed
    assert all(r.url.params["createdDateBegin"].endswith("Z") for r in windowed)


async def test_shipper_reverse_marks_void_and_asks_for_a_person(plex, shipper_strategy):
    result = await shipper_strategy.write_shipment(shipment())
    with pytest.raises(ReversalNotSupportedError, match="cannot be un-shipped"):
        await shipper_strategy.reverse("ss-shipment-501")
    shipper = plex.shippers[result.shipper_id]
    assert "VOIDED in ShipStation: ss-shipment-501" in shipper["shipperNote"]
    assert shipper["trackingNumber"] == ""


async def test_a_replayed_reverse_after_the_un_ship_in_plex_completes(plex, shipper_strategy):
    result = await shipper_strategy.write_shipment(shipment())
    with pytest.raises(ReversalNotSupportedError):
        await shipper_strategy.reverse("ss-shipment-501")
    plex.shippers[result.shipper_id]["status"] = "Open"  # a person un-shipped it in Plex
    done = await shipper_strategy.reverse("ss-shipment-501")
    assert done.details == {"unshipped_in_plex": True}
    assert done.shipper_id == result.shipper_id


async def test_reference_length_is_checked(shipper_strategy) -> None:
    with pytest.raises(ConfigError, match=r"1\.\.50"):
        await shipper_strategy.find_existing("x" * 51)


async def test_shipper_needs_a_destination(plex, shipper_strategy) -> None:
    bare = ShipmentWrite(
        "ss-shipment-9", None, None, None, SHIP_DATE, (ShipmentLine("r1", PART, 1),)
    )
    with pytest.raises(SkipRecordError, match="customer and ship-to"):
        await shipper_strategy.write_shipment(bare)


# --- datasource strategy ------------------------------------------------------------------------
def open_shipper(plex: FakePlex) -> str:
    plex.shippers["plexS"] = {
        "id": "plexS",
        "status": "Open",
        "customerAddressId": ADDRESS,
        "shipperNote": "dock 4",
        "createdDate": plex.now,
    }
    plex.lines["plexS"] = [{"id": "L1", "shipperId": "plexS", "releaseId": "r1", "quantity": 0}]
    return "plexS"


async def test_datasource_strategy_updates_tracking_and_reduces_on_hand(plex, ds_strategy):
    open_shipper(plex)
    result = await ds_strategy.write_shipment(shipment(quantity=10))
    assert result.shipper_id == "plexS"
    assert plex.executions == [
        {
            "id": 230447,
            "Shipper_Key": 9000,
            "Tracking_No": "1Z999",
            "Shipper_Note": "dock 4\n" + shipment().note(),
        }
    ]
    inventory = plex.shipments[result.inventory_shipment_id]
    assert inventory["externalShipmentCode"] == "ss-shipment-501"
    assert inventory["shipmentStatus"] == "Shipped"
    assert sorted(inventory["containers"]) == ["S1", "S2"]
    assert plex.on_hand() == 5


async def test_datasource_strategy_does_not_write_twice(plex, ds_strategy) -> None:
    open_shipper(plex)
    await ds_strategy.write_shipment(shipment())
    again = await ds_strategy.write_shipment(shipment())
    assert again.already_done
    assert len(plex.shipments) == 1
    assert len(plex.executions) == 1
    assert plex.on_hand() == 5


async def test_datasource_crash_before_ship_resumes_the_same_shipment(plex, ds_strategy):
    open_shipper(plex)
    plex.crash_on = ("POST", "/ship")
    with pytest.raises(RuntimeError):
        await ds_strategy.write_shipment(shipment())
    assert plex.on_hand() == 5  # S1 and S2 are staged, no longer free stock
    assert len(plex.shipments) == 1
    result = await ds_strategy.write_shipment(shipment())
    assert result.resumed
    assert len(plex.shipments) == 1
    assert plex.count("POST", "/stage") == 1  # not staged again
    assert len(plex.executions) == 1  # the shipper note already carried the reference
    assert next(iter(plex.shipments.values()))["shipmentStatus"] == "Shipped"


async def test_datasource_partial_without_split_records_tracking_and_one_task(
    plex, ds_strategy
) -> None:
    with pytest.raises(NeedsOperatorError, match="no whole containers match") as raised:
        await ds_strategy.write_shipment(shipment(quantity=3))
    assert plex.on_hand() == 15
    assert plex.count("POST", "/stage") == 0
    assert plex.shipments == {}  # no inventory shipment left open
    # no shipper holds the release: the tracking goes into the release's note
    assert "ss-shipment-501" in plex.releases["r1"]["note"]
    assert "tracking 1Z999" in plex.releases["r1"]["note"]
    lines = raised.value.task["lines"]
    assert isinstance(lines, list)
    assert lines[0]["container"] == "S1"
    assert lines[0]["quantity"] == 3
    assert "split 3 off container S1" in (raised.value.hint or "")


async def test_datasource_without_shipper_still_reduces_on_hand(plex, ds_strategy) -> None:
    result = await ds_strategy.write_shipment(shipment(quantity=4))
    assert result.shipper_id is None
    assert "no Plex shipper" in str(result.details["shipper"])
    assert plex.executions == []
    assert plex.on_hand() == 11


async def test_datasource_reverse_unships_once(plex, ds_strategy) -> None:
    await ds_strategy.write_shipment(shipment(quantity=4))
    assert plex.on_hand() == 11
    reversed_ = await ds_strategy.reverse("ss-shipment-501")
    assert not reversed_.already_done
    assert plex.on_hand() == 15
    again = await ds_strategy.reverse("ss-shipment-501")
    assert again.already_done
    assert plex.on_hand() == 15
    nothing = await ds_strategy.reverse("ss-shipment-404")
    assert nothing.details == {"nothing_to_reverse": True}


async def test_partial_shipment_loads_exact_whole_containers(plex, shipper_strategy) -> None:
    result = await shipper_strategy.write_shipment(shipment(quantity=9))  # S1 (4) + S3 (5)
    assert plex.count("POST", "/load-fifo") == 0
    assert plex.count("POST", "/load-container") == 2
    assert plex.on_hand() == 6
    assert plex.releases["r1"]["quantityShipped"] == 9
    assert plex.shippers[result.shipper_id]["status"] == "Shipped"


async def test_impossible_partial_leaves_no_shipper_and_records_the_tracking(
    plex, shipper_strategy
) -> None:
    with pytest.raises(NeedsOperatorError, match="tracking, carrier, service and ship date"):
        await shipper_strategy.write_shipment(shipment(quantity=3))
    assert plex.on_hand() == 15
    assert plex.shippers == {}
    note = plex.releases["r1"]["note"]
    assert "ss-shipment-501" in note
    assert "ups ups_ground" in note
    # a replay before the operator split the container: the same task, the note not doubled
    with pytest.raises(NeedsOperatorError):
        await shipper_strategy.write_shipment(shipment(quantity=3))
    assert plex.releases["r1"]["note"] == note
    assert plex.count("PUT", "/releases/r1") == 1


async def test_impossible_partial_task_only_writes_nothing(
    plex, http_factory, settings, fake_clock
):
    strategy = ShipperStrategy(
        plex_client(http_factory(plex), settings, fake_clock), without_split="task_only"
    )
    with pytest.raises(NeedsOperatorError, match="nothing was written to Plex"):
        await strategy.write_shipment(shipment(quantity=3))
    assert [r.method for r in plex.requests if r.method != "GET"] == []


async def test_partial_is_loaded_exactly_once_the_operator_split_the_container(
    plex, shipper_strategy
) -> None:
    with pytest.raises(NeedsOperatorError):
        await shipper_strategy.write_shipment(shipment(quantity=3))
    s1 = next(c for c in plex.containers if c["serialNo"] == "S1")
    s1["quantity"] = 1  # what the operator's split leaves: S1 keeps 1, S9 holds the 3
    plex.containers.append({**s1, "serialNo": "S9", "quantity": 3})
    result = await shipper_strategy.write_shipment(shipment(quantity=3))
    assert plex.shippers[result.shipper_id]["status"] == "Shipped"
    assert plex.on_hand() == 12
    assert plex.releases["r1"]["quantityShipped"] == 3


async def test_shipping_more_than_open_is_refused_before_any_write(plex, shipper_strategy):
    with pytest.raises(SkipRecordError, match="only 10 is open"):
        await shipper_strategy.write_shipment(shipment(quantity=11))
    assert plex.shippers == {}


async def test_short_stock_of_a_full_release_creates_nothing(plex, shipper_strategy) -> None:
    plex.releases["r1"]["quantity"] = 20  # FIFO could load only 15
    with pytest.raises(NeedsOperatorError, match="needs 20 of part WIDGET, 15 available"):
        await shipper_strategy.write_shipment(shipment(quantity=20))
    assert plex.shippers == {}  # checked before anything was created
    assert [r.method for r in plex.requests if r.method != "GET"] == []


async def test_look_before_send_walks_only_since_the_ship_date(plex, shipper_strategy) -> None:
    await shipper_strategy.write_shipment(shipment(ref="ss-shipment-600"))
    walked = [r for r in plex.requests if "createdDateBegin" in r.url.params]
    # ship date 09:30 minus a 1-day window .. now (12:00): two daily windows, not 14 days.
    assert len(walked) == 2
    assert walked[-1].url.params["createdDateBegin"] == "2026-01-14T09:30:00.0000000Z"


@pytest.mark.parametrize("suffix", ["/customer-shippers", "/schedule-releases", "/ship"])
async def test_a_lost_answer_is_not_resent_blindly(plex, shipper_strategy, suffix) -> None:
    plex.lose_answer_on = ("POST", suffix)
    with pytest.raises(RetryBudgetExhaustedError):
        await shipper_strategy.write_shipment(shipment())
    assert plex.count("POST", suffix) == 1  # sent once, not retried by the HTTP layer
    result = await shipper_strategy.write_shipment(shipment())  # the outbox's later retry
    assert result.resumed or result.already_done
    assert len(plex.shippers) == 1
    assert plex.count("POST", "/schedule-releases") == 1
    assert plex.on_hand() == 5
    assert plex.releases["r1"]["quantityShipped"] == 10


async def test_a_lost_inventory_shipment_answer_is_found_again(plex, ds_strategy) -> None:
    plex.lose_answer_on = ("POST", "/inventory-shipping/shipments")
    with pytest.raises(RetryBudgetExhaustedError):
        await ds_strategy.write_shipment(shipment(quantity=4))
    assert len(plex.shipments) == 1
    result = await ds_strategy.write_shipment(shipment(quantity=4))
    assert result.resumed
    assert len(plex.shipments) == 1
    assert plex.on_hand() == 11


async def test_reads_are_still_retried(plex, shipper_strategy) -> None:
    plex.lose_answer_on = ("GET", "/sales/v1/releases")
    await shipper_strategy.write_shipment(shipment())
    assert plex.count("GET", "/sales/v1/releases") == 2
    assert plex.on_hand() == 5


def test_whole_containers_are_found_when_greedy_misses() -> None:
    def box(serial: str, qty: float, day: int) -> Container:
        return Container(serialNo=serial, quantity=qty, addDateTime=f"2026-01-0{day}T00:00:00Z")

    stock = [box("A", 5, 1), box("B", 4, 2), box("C", 4, 3), box("D", 9, 4)]
    assert pick_whole_containers(stock, 9, "P", "ref") == ["A", "B"]  # greedy, oldest first
    assert pick_whole_containers(stock, 8, "P", "ref") == ["B", "C"]  # greedy misses (5+...)
    with pytest.raises(SkipRecordError, match="on hand in shippable containers: 22"):
        pick_whole_containers(stock, 7, "P", "ref")


async def test_a_first_attempt_writes_without_looking_and_reads_nothing_back(
    plex, shipper_strategy
) -> None:
    result = await shipper_strategy.write_shipment(shipment(), first_attempt=True)
    assert plex.shippers[result.shipper_id]["status"] == "Shipped"
    assert plex.count("GET", "/customer-shippers") == 0  # no look-up by tracking or date
    assert plex.count("GET", "/lines") == 0  # new shipper: no lines to read; load-fifo answered
    assert plex.on_hand() == 5
    # any later attempt looks first and finds it: still one shipper, shipped once
    again = await shipper_strategy.write_shipment(shipment())
    assert again.already_done
    assert plex.count("POST", "/ship") == 1


async def test_releases_passed_in_are_not_read_again(plex, shipper_strategy) -> None:
    client = shipper_strategy.plex
    releases = await client.list_releases(["r1"])
    before = plex.count("GET", "/sales/v1/releases")
    await shipper_strategy.write_shipment(shipment(), first_attempt=True, releases=releases)
    assert plex.count("GET", "/sales/v1/releases") == before
    assert plex.releases["r1"]["quantityShipped"] == 10
