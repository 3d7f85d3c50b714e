"""Finding the sales order of a release through the links of groups already synced."""

from __future__ import annotations

from mlconnector.plex import Release
from mlconnector.store import Link, Store
from mlconnector.sync.orders_read import order_id_hint, orders_of_releases_by_links


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
