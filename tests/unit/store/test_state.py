"""Connections, cursors, links, the inventory snapshot and shipment write-backs."""

from __future__ import annotations

import pytest

from mlconnector.clock import FakeClock
from mlconnector.store import Cursor, Link, Store, StoreError, UnknownConnectionError


async def test_connection_crud(store: Store, fake_clock: FakeClock) -> None:
    created = await store.create_connection(
        "acme", plex_tenant="t-1", plex_pcn="79870", settings={"grouping": "order"}
    )
    assert created.settings == {"grouping": "order"}
    assert created.enabled is True
    assert created.created_at == fake_clock.now()
    with pytest.raises(StoreError, match="already exists"):
        await store.create_connection("acme")
    fake_clock.advance(5)
    updated = await store.update_connection("acme", enabled=False, shipstation_account="ss")
    assert (updated.enabled, updated.shipstation_account, updated.plex_pcn) == (
        False,
        "ss",
        "79870",
    )
    assert updated.updated_at == fake_clock.now()
    assert updated.created_at == created.created_at
    await store.create_connection("beta")
    assert [c.name for c in await store.list_connections()] == ["acme", "beta"]
    assert [c.name for c in await store.list_connections(enabled_only=True)] == ["beta"]
    with pytest.raises(UnknownConnectionError):
        await store.update_connection("nope", enabled=True)
    assert await store.get_connection("nope") is None


async def test_delete_connection_cascades(store: Store, acme: str) -> None:
    await store.set_cursor(acme, "orders", "2026-01-01T00:00:00Z")
    await store.enqueue(acme, "orders", "create", "k", {})
    await store.set_credential(acme, "ss_v1_key", "a-key-value")
    assert await store.delete_connection(acme) is True
    assert await store.delete_connection(acme) is False
    await store.create_connection(acme)
    assert await store.get_cursor(acme, "orders") is None
    assert await store.get_operation_by_key("k") is None
    assert await store.get_credential(acme, "ss_v1_key") is None


async def test_cursors(store: Store, acme: str, fake_clock: FakeClock) -> None:
    assert await store.get_cursor(acme, "orders") is None
    await store.set_cursor(acme, "orders", '{"modified": "2026-01-15T10:00:00Z"}')
    fake_clock.advance(30)
    saved = await store.set_cursor(acme, "orders", '{"modified": "2026-01-15T11:00:00Z"}')
    assert saved == Cursor(acme, "orders", '{"modified": "2026-01-15T11:00:00Z"}', fake_clock.now())
    assert await store.get_cursor(acme, "orders") == saved
    await store.set_cursor(acme, "inventory", "x")
    assert [c.flow for c in await store.list_cursors(acme)] == ["inventory", "orders"]
    with pytest.raises(UnknownConnectionError):
        await store.set_cursor("ghost", "orders", "x")


async def test_links(store: Store, acme: str, fake_clock: FakeClock) -> None:
    link = Link(acme, "79870-100-a", "100", "a", release_ids=["r1", "r2"])
    saved = await store.save_link(link)
    assert saved.updated_at == fake_clock.now()
    assert saved.release_ids == ["r1", "r2"]
    assert saved.ss_order_id is None
    fake_clock.advance(1)
    resaved = await store.save_link(
        Link(
            acme,
            "79870-100-a",
            "100",
            "a",
            ss_order_id="9001",
            content_hash="h1",
            release_ids=["r1"],
        )
    )
    assert (resaved.ss_order_id, resaved.content_hash, resaved.release_ids) == (
        "9001",
        "h1",
        ["r1"],
    )
    await store.save_link(Link(acme, "79870-100-b", "100", "b"))
    await store.save_link(Link(acme, "79870-200-a", "200", "a", ss_order_id="9002"))

    assert await store.get_link(acme, "79870-100-a") == resaved
    assert await store.get_link(acme, "missing") is None
    by_order = await store.find_links(acme, plex_order_id="100")
    assert [lk.order_key for lk in by_order] == ["79870-100-a", "79870-100-b"]
    assert [lk.order_key for lk in await store.find_links(acme, ss_order_id="9002")] == [
        "79870-200-a"
    ]
    frozen = await store.set_link_status(acme, "79870-100-a", "shipped", frozen_reason="shipped")
    assert frozen is not None
    assert (frozen.ss_status, frozen.frozen_reason) == ("shipped", "shipped")
    assert await store.set_link_status(acme, "missing", "shipped") is None
    assert [lk.order_key for lk in await store.list_links(acme, frozen=True)] == ["79870-100-a"]
    unfrozen = await store.list_links(acme, frozen=False)
    assert [lk.order_key for lk in unfrozen] == ["79870-100-b", "79870-200-a"]
    page = await store.list_links(acme, after_order_key="79870-100-a", limit=1)
    assert [lk.order_key for lk in page] == ["79870-100-b"]


async def test_link_order_key_unique_per_connection(store: Store, acme: str) -> None:
    await store.create_connection("beta")
    await store.save_link(Link(acme, "same", "1", "g"))
    await store.save_link(Link("beta", "same", "2", "g"))
    assert (await store.get_link(acme, "same")).plex_order_id == "1"  # type: ignore[union-attr]
    assert (await store.get_link("beta", "same")).plex_order_id == "2"  # type: ignore[union-attr]
    assert len(await store.find_links(acme)) == 1


async def test_inventory_snapshot(store: Store, acme: str) -> None:
    assert await store.get_inventory_snapshot(acme) == {}
    await store.record_inventory_pushed(acme, {("P-1", "MAIN"): 10, ("P-2", "MAIN"): 0})
    await store.record_inventory_pushed(acme, {("P-1", "MAIN"): 7, ("P-1", "EAST"): 3})
    await store.record_inventory_pushed(acme, {})
    assert await store.get_inventory_snapshot(acme) == {
        ("P-1", "MAIN"): 7,
        ("P-2", "MAIN"): 0,
        ("P-1", "EAST"): 3,
    }


async def test_shipment_line_written_back_exactly_once(
    store: Store, acme: str, fake_clock: FakeClock
) -> None:
    line = await store.record_shipment_line(acme, "ss-shipment-1", "r1", 5, sku="P-1")
    assert (line.quantity, line.written_back_at, line.reversed_at) == (5, None, None)
    # Recording the same line again (duplicate webhook, replay) returns the first record.
    again = await store.record_shipment_line(acme, "ss-shipment-1", "r1", 99, sku="P-1")
    assert again == line
    await store.record_shipment_line(acme, "ss-shipment-1", "r2", 2, sku="P-2")
    await store.record_shipment_line(acme, "ss-shipment-2", "r3", 1)  # no SKU: not counted
    assert await store.unwritten_quantities(acme) == {"P-1": 5, "P-2": 2}

    assert await store.mark_line_reversed(acme, "ss-shipment-1", "r1") is False  # not written yet
    assert await store.mark_line_written_back(acme, "ss-shipment-1", "r1") is True
    assert await store.mark_line_written_back(acme, "ss-shipment-1", "r1") is False
    assert await store.unwritten_quantities(acme) == {"P-2": 2}
    fake_clock.advance(60)
    assert await store.mark_line_reversed(acme, "ss-shipment-1", "r1") is True
    assert await store.mark_line_reversed(acme, "ss-shipment-1", "r1") is False
    lines = await store.get_shipment_lines(acme, "ss-shipment-1")
    assert [ln.line_key for ln in lines] == ["r1", "r2"]
    assert lines[0].reversed_at == fake_clock.now()
    assert await store.mark_line_written_back(acme, "nope", "r1") is False
