"""Reads in bounded windows, the filter-took-effect check, Z formatting, models and on-hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mlconnector.plex import FilterIgnoredError, Release, SalesOrder
from mlconnector.plex.windows import windows
from mlconnector.timezones import parse_utc_z
from tests.unit.plex.conftest import make_settings, plex_client

START = datetime(2026, 1, 10, tzinfo=UTC)


def order(oid: str, modified: str) -> dict[str, object]:
    return {"id": oid, "orderNumber": f"SO-{oid}", "modifiedDate": modified, "futureField": 1}


class WindowedServer:
    """Answers orders filtered by modifiedByDateBegin/End (or ignores the filter if told to)."""

    def __init__(self, records: list[dict[str, object]], *, ignore_filter: bool = False) -> None:
        self.records = records
        self.ignore_filter = ignore_filter
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.ignore_filter:
            return httpx.Response(200, json=self.records)
        low = parse_utc_z(request.url.params["modifiedByDateBegin"])
        high = parse_utc_z(request.url.params["modifiedByDateEnd"])
        chosen = [r for r in self.records if low <= parse_utc_z(str(r["modifiedDate"])) <= high]
        return httpx.Response(200, json=chosen)


async def collect(iterator) -> list:
    return [item async for item in iterator]


async def test_orders_are_read_in_one_day_windows_with_z_dates(http_factory, settings, fake_clock):
    server = WindowedServer(
        [
            order("a", "2026-01-10T05:00:00.0000000Z"),
            order("b", "2026-01-11T00:00:00.0000000Z"),  # exactly on the window edge
            order("c", "2026-01-12T23:59:59.1234567Z"),
        ]
    )
    client = plex_client(http_factory(server), settings, fake_clock)
    found = await collect(client.iter_orders_modified(START, START + timedelta(days=3)))
    assert [o.id for o in found] == ["a", "b", "c"]  # the edge record only once
    assert len(server.requests) == 3
    params = server.requests[0].url.params
    assert params["modifiedByDateBegin"] == "2026-01-10T00:00:00.0000000Z"
    assert params["modifiedByDateEnd"] == "2026-01-11T00:00:00.0000000Z"
    assert found[2].modified_date == datetime(2026, 1, 12, 23, 59, 59, 123457, tzinfo=UTC)


async def test_window_size_is_configurable(http_factory, fake_clock) -> None:
    server = WindowedServer([])
    client = plex_client(http_factory(server), make_settings(window=timedelta(hours=6)), fake_clock)
    await collect(client.iter_orders_modified(START, START + timedelta(days=1)))
    assert len(server.requests) == 4


async def test_an_ignored_filter_is_refused(http_factory, settings, fake_clock) -> None:
    server = WindowedServer(
        [order("a", "2026-01-10T05:00:00.0000000Z"), order("old", "2019-03-01T00:00:00.0000000Z")],
        ignore_filter=True,
    )
    client = plex_client(http_factory(server), settings, fake_clock)
    with pytest.raises(FilterIgnoredError) as info:
        await collect(client.iter_orders_modified(START, START + timedelta(days=1)))
    assert "filter ignored: Plex returned records outside the window" in str(info.value)
    assert "refusing a silent full-table sync" in str(info.value)
    assert info.value.record == "old"


async def test_releases_use_modified_date_filter(http_factory, settings, fake_clock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json=[
                {
                    "id": "r1",
                    "quantity": 10,
                    "quantityShipped": 4,
                    "modifiedDate": "2026-01-10T01:00:00.0000000Z",
                }
            ],
        )

    client = plex_client(http_factory(handler), settings, fake_clock)
    found = await collect(client.iter_releases_modified(START, START + timedelta(hours=5)))
    assert seen[0].url.path == "/sales/v1/releases"
    assert set(seen[0].url.params) == {"modifiedDateBegin", "modifiedDateEnd"}
    assert found[0].open_quantity == 6


async def test_releases_by_lines_refuse_foreign_lines(http_factory, settings, fake_clock):
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params.get_list("orderLineIds") == ["l1", "l2"]
        return httpx.Response(
            200, json=[{"id": "r1", "orderLineId": "l1"}, {"id": "r9", "orderLineId": "l9"}]
        )

    client = plex_client(http_factory(handler), settings, fake_clock)
    with pytest.raises(FilterIgnoredError, match="not requested"):
        await client.list_releases_for_lines(["l2", "l1"])


async def test_ids_are_chunked_and_checked(http_factory, settings, fake_clock) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[{"id": i} for i in request.url.params.get_list("id")])

    client = plex_client(http_factory(handler), settings, fake_clock)
    parts = await client.list_parts([f"p{i:03d}" for i in range(120)])
    assert len(parts) == 120
    assert [len(r.url.params.get_list("id")) for r in seen] == [50, 50, 20]


async def test_customers_and_addresses_are_cached(http_factory, settings, fake_clock) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("/addresses"):
            return httpx.Response(200, json=[{"id": "A1", "city": "Troy", "shipTo": True}])
        return httpx.Response(200, json={"id": "c1", "name": "Acme"})

    client = plex_client(http_factory(handler), settings, fake_clock)
    for _ in range(3):
        assert (await client.get_customer("c1")).name == "Acme"
        assert (await client.get_address("c1", "a1")).city == "Troy"
    assert seen == ["/mdm/v1/customers/c1", "/mdm/v1/customers/c1/addresses"]
    client.forget_cached()
    await client.get_customer("c1")
    assert len(seen) == 3


async def test_the_caches_keep_the_most_recent_cache_entries(http_factory, fake_clock) -> None:
    """A pass over many customers and parts keeps ``cache_entries`` of each, not every one."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("/addresses"):
            return httpx.Response(200, json=[{"id": "A1", "city": "Troy", "shipTo": True}])
        if request.url.path == "/mdm/v1/parts":
            return httpx.Response(200, json=[{"id": i} for i in request.url.params.get_list("id")])
        return httpx.Response(200, json={"id": request.url.path.rsplit("/", 1)[-1], "name": "A"})

    client = plex_client(http_factory(handler), make_settings(cache_entries=3), fake_clock)
    for n in range(50):
        await client.get_customer(f"c{n}")
        await client.list_addresses(f"c{n}")
    assert len(client._customers) == 3
    assert len(client._addresses) == 3
    del seen[:]
    await client.get_customer("c49")  # among the 3 most recent: cached
    await client.get_customer("c0")  # evicted: read again
    assert seen == ["/mdm/v1/customers/c0"]
    # more parts in one call than the cache holds: every one is still answered
    parts = await client.parts_by_id([f"p{i}" for i in range(10)])
    assert sorted(parts) == sorted(f"p{i}" for i in range(10))
    assert len(client._parts) == 3


async def test_on_hand_sums_shippable_containers_per_part_and_location(http_factory, fake_clock):
    containers = [
        {
            "serialNo": "1",
            "partId": "P",
            "locationId": "L1",
            "quantity": 4,
            "containerStatus": "OK",
        },
        {
            "serialNo": "2",
            "partId": "P",
            "locationId": "L1",
            "quantity": 6,
            "containerStatus": "ok",
        },
        {
            "serialNo": "3",
            "partId": "P",
            "locationId": "L2",
            "quantity": 5,
            "containerStatus": "OK",
        },
        {
            "serialNo": "4",
            "partId": "P",
            "locationId": "L1",
            "quantity": 9,
            "containerStatus": "Hold",
        },
        {
            "serialNo": "5",
            "partId": "P",
            "locationId": "L2",
            "quantity": 2,
            "containerStatus": "Quarantine",
        },
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["partId"] == "P"
        return httpx.Response(200, json=containers)

    settings = make_settings(shippable_statuses=("OK", "Quarantine"))
    client = plex_client(http_factory(handler), settings, fake_clock)
    totals = {(h.part_id, h.location_id): h.quantity for h in await client.on_hand(["P"])}
    assert totals == {("P", "L1"): 10, ("P", "L2"): 7}


async def test_containers_of_another_part_are_refused(http_factory, settings, fake_clock):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[{"serialNo": "1", "partId": "OTHER", "quantity": 1}])

    client = plex_client(http_factory(handler), settings, fake_clock)
    with pytest.raises(FilterIgnoredError):
        await client.on_hand(["P"])


def test_models_keep_unknown_fields_and_refuse_naive_times() -> None:
    parsed = SalesOrder.model_validate(order("x", "2026-01-10T05:00:00.1234567Z"))
    assert parsed.model_extra == {"futureField": 1}
    assert parsed.modified_date is not None
    assert parsed.modified_date.tzinfo is not None
    dumped = parsed.model_dump(by_alias=True, mode="json")
    assert dumped["modifiedDate"] == "2026-01-10T05:00:00.1234570Z"
    # a naive time is never guessed into an instant: the optional value reads as absent
    assert (
        Release.model_validate({"id": "r", "modifiedDate": "2026-01-10T05:00:00"}).modified_date
        is None
    )


def test_windows_cover_the_range_exactly() -> None:
    spans = list(windows(START, START + timedelta(hours=30), timedelta(days=1)))
    assert spans == [
        (START, START + timedelta(days=1)),
        (START + timedelta(days=1), START + timedelta(hours=30)),
    ]
    with pytest.raises(ValueError, match="aware"):
        list(windows(datetime(2026, 1, 1), START, timedelta(days=1)))
