"""Finding the sales order of a release through the links of groups already synced, and
loading a chunk of orders in full (shared release and part requests, per-order failures)."""

from __future__ import annotations

import httpx
import pytest

from mlconnector.errors import NotFoundError
from mlconnector.plex import FilterIgnoredError, Release, SalesOrder
from mlconnector.store import Link, Store
from mlconnector.sync.mapping import OrderBundle
from mlconnector.sync.orders_read import (
    Changes,
    load_bundle,
    load_bundles,
    order_id_hint,
    orders_of_releases_by_links,
)
from tests.unit.plex.conftest import make_settings, plex_client


async def test_releases_map_to_orders_through_links_across_pages(store: Store) -> None:
    for n in range(5):
        await store.save_link(
            Link(
                connection="acme",
                order_key=f"k{n}",
                plex_order_id=f"order-{n}",
                group_key="g",
                release_ids=[f"R{n}a", f"r{n}b"],
            )
        )
    found = await orders_of_releases_by_links(store, "acme", ["r1A", "r4b", "nope"], page=2)
    assert found == {"r1a": "order-1", "r4b": "order-4"}


def test_order_id_hint_uses_what_plex_sends() -> None:
    assert order_id_hint(Release(id="r", orderId="ABC")) == "abc"
    assert order_id_hint(Release(id="r")) is None


class BundleServer:
    """Plex lines, releases (by ``orderLineIds``), parts (by ``id``) and customers; remembers
    every request. ``extra_release`` is answered whatever the filter (an ignored filter)."""

    def __init__(self, *, missing_customer: str = "", extra_release: bool = False) -> None:
        self.requests: list[httpx.Request] = []
        self.missing_customer = missing_customer
        self.extra_release = extra_release

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.endswith("/lines"):
            order_id = path.split("/")[-2]
            lines = [{"id": f"{order_id}-l{n}", "partId": f"p{n}"} for n in (1, 2)]
            return httpx.Response(200, json=lines)
        if path == "/sales/v1/releases":
            wanted = request.url.params.get_list("orderLineIds")
            found = [{"id": f"r-{line}", "orderLineId": line, "quantity": 1} for line in wanted]
            if self.extra_release:
                found.append({"id": "r-x", "orderLineId": "someone-else", "quantity": 1})
            return httpx.Response(200, json=found)
        if path == "/mdm/v1/parts":
            return httpx.Response(200, json=[{"id": i} for i in request.url.params.get_list("id")])
        if path.endswith("/addresses"):
            return httpx.Response(200, json=[])
        customer = path.split("/")[-1]
        if customer == self.missing_customer:
            return httpx.Response(404, json={"message": "not found"})
        return httpx.Response(200, json={"id": customer, "name": customer})

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r.url.path == path)


def sales_order(oid: str, customer: str = "c1") -> SalesOrder:
    return SalesOrder(id=oid, customerId=customer)


async def test_bundles_of_a_chunk_share_release_and_part_requests(fake_clock) -> None:
    server = BundleServer()
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as http:
        client = plex_client(http, make_settings(), fake_clock)
        orders = [sales_order(f"o{n}") for n in range(30)]
        bundles = await load_bundles(client, orders)
        # lines: one per order; releases: 60 lines in chunks of 50; parts: 2 ids, once
        assert server.count("/sales/v1/releases") == 2
        assert server.count("/mdm/v1/parts") == 1
        for order in orders:
            bundle = bundles[order.id]
            assert isinstance(bundle, OrderBundle)
            assert [r.id for r in bundle.releases] == [f"r-{order.id}-l1", f"r-{order.id}-l2"]
            assert set(bundle.parts) == {"p1", "p2"}
        # the next chunk asks for no part it already has
        await load_bundles(client, [sales_order("o99")])
        assert server.count("/mdm/v1/parts") == 1
        assert (await load_bundle(client, sales_order("o98"))).releases[0].id == "r-o98-l1"


async def test_an_unreadable_order_is_reported_and_the_others_load(fake_clock) -> None:
    server = BundleServer(missing_customer="gone")
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as http:
        client = plex_client(http, make_settings(), fake_clock)
        bundles = await load_bundles(client, [sales_order("a"), sales_order("b", "gone")])
        assert isinstance(bundles["a"], OrderBundle)
        assert isinstance(bundles["b"], NotFoundError)
        with pytest.raises(NotFoundError):
            await load_bundle(client, sales_order("c", "gone"))


async def test_a_chunk_still_refuses_an_ignored_release_filter(fake_clock) -> None:
    server = BundleServer(extra_release=True)
    async with httpx.AsyncClient(transport=httpx.MockTransport(server)) as http:
        client = plex_client(http, make_settings(), fake_clock)
        with pytest.raises(FilterIgnoredError, match="not requested"):
            await load_bundles(client, [sales_order("a"), sales_order("b")])


async def test_parts_are_cached_per_run_including_missing_ones(fake_clock) -> None:
    asked: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ids = request.url.params.get_list("id")
        asked.append(ids)
        return httpx.Response(200, json=[{"id": i.upper()} for i in ids if i != "nope"])

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = plex_client(http, make_settings(), fake_clock)
        assert set(await client.parts_by_id(["p1", "nope"])) == {"p1"}
        assert set(await client.parts_by_id(["P1", "p2", "nope"])) == {"p1", "p2"}
        assert asked == [["nope", "p1"], ["p2"]]
        client.forget_cached()
        await client.parts_by_id(["p1"])
        assert asked[-1] == ["p1"]


def test_a_window_keeps_orders_compact_and_gives_them_back_equal() -> None:
    order = SalesOrder.model_validate(
        {
            "id": "AB-1",
            "customerId": "c1",
            "orderNumber": "SO-1",
            "modifiedDate": "2026-01-15T08:13:12.5440000Z",
            "orderDate": "2026-01-14T00:00:00Z",
            "buildingCode": "B1",
            "nested": {"x": [1, 2]},
        }
    )
    changes = Changes(orders={"ab-1": order.model_dump_json(by_alias=True).encode()})
    again = changes.take_order("AB-1")
    assert again == order
    assert again is not None
    assert again.model_extra == order.model_extra
    assert changes.take_order("ab-1") is None  # handed out once, then forgotten
