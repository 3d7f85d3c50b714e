"""A quiet source does not make every run walk from its last record: a run that read its whole
window moves the cursor to the window end minus the overlap (DESIGN §1 rule 2, ``sync/cursor``),
and a record modified just before that end is still read by the next run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from mlconnector.plex import PlexClient
from mlconnector.sync import ConnectionRuntime, LogAlertSink, build_runtime
from mlconnector.sync.cursor import DEFAULT_OVERLAP, DEFAULT_SAFETY_LAG, CursorState
from mlconnector.sync.order_status import OrderStatusFlow
from mlconnector.sync.orders import OrdersFlow
from mlconnector.sync.shipments import ShipmentsFlow
from mlconnector.sync.shipments_source import POLLS, PollCursors
from tests.unit.sync_ops.conftest import CONNECTION, OpsEnv, close_env, make_env

WINDOWED = ("/sales/v1/orders", "/sales/v1/releases")


async def day_window_runtime(env: OpsEnv) -> ConnectionRuntime:
    """A runtime reading Plex in one-day windows (the default: 60 windows per list for the
    60-day initial lookback)."""
    config = env.config()
    conn = config.connections[CONNECTION]
    plex = conn.plex.model_copy(update={"read_window_hours": 24.0})
    config = config.model_copy(
        update={"connections": {CONNECTION: conn.model_copy(update={"plex": plex})}}
    )
    rt = await build_runtime(
        config, CONNECTION, env.store, env.clock, env.http_factory, alerts=LogAlertSink()
    )
    env.runtimes.append(rt)
    return rt


def plex_reads(env: OpsEnv, since: int = 0) -> tuple[int, int]:
    """(windowed order/release reads, every Plex request) from ``env.calls[since:]``."""
    calls = [c for c in env.calls[since:] if c[0].startswith("plex")]
    windowed = sum(1 for _, m, p, _ in calls if m == "GET" and p in WINDOWED)
    return windowed, len(calls)


async def cursor_of(env: OpsEnv, flow: str) -> CursorState:
    stored = await env.store.get_cursor(CONNECTION, flow)
    return CursorState.from_json(stored.value if stored else None)


@pytest.fixture
async def empty(tmp_path: Path) -> AsyncIterator[OpsEnv]:
    env = await make_env(tmp_path, orders=0)
    yield env
    await close_env(env)


async def test_an_empty_tenants_next_runs_read_two_windows(empty: OpsEnv) -> None:
    env = empty
    rt = await day_window_runtime(env)
    flow = OrdersFlow()
    first = await flow.run(rt)
    assert first.errors == []
    assert first.read == 0
    windowed, _ = plex_reads(env)
    assert windowed >= 120  # the first run walks the 60-day lookback, a day at a time
    end = env.clock.now() - DEFAULT_SAFETY_LAG
    assert (await cursor_of(env, "orders")).since == end - DEFAULT_OVERLAP
    # two days of runs every 5 minutes: each reads one window per list, whatever the time
    writes, most_reads, most_requests = 0, 0, 0
    for _ in range(2 * 24 * 12):
        env.clock.advance(300)
        before = len(env.calls)
        result = await flow.run(rt)
        assert result.errors == []
        windowed, requests = plex_reads(env, before)
        most_reads, most_requests = max(most_reads, windowed), max(most_requests, requests)
        writes += result.cursor is not None
    assert most_reads == 2  # was ~120 per run: the cursor never moved without a record
    assert most_requests <= 3  # the two lists, and a token refresh at most
    assert 20 <= writes <= 25  # one cursor step per 2 h overlap, not one write per run
    state = await cursor_of(env, "orders")
    assert env.clock.now() - state.since <= 2 * DEFAULT_OVERLAP + DEFAULT_SAFETY_LAG  # type: ignore[operator]


async def test_an_order_modified_just_before_the_window_end_is_read_next_run(
    empty: OpsEnv,
) -> None:
    env = empty
    rt = await day_window_runtime(env)
    flow = OrdersFlow()
    await flow.run(rt)
    window_end = env.clock.now() - DEFAULT_SAFETY_LAG
    assert (await cursor_of(env, "orders")).since is not None  # moved without a record
    env.clock.advance(300)
    # committed late: stamped a minute before the end of the window the last run read
    order = env.plex.add_order()
    stamp = window_end - timedelta(minutes=1)
    _backdate_plex_order(env, order.id, stamp)
    assert env.ss.all_orders() == []
    second = await flow.run(rt)
    assert second.created == 1, second.plan
    assert [o["orderNumber"].split("-")[0] for o in env.ss.all_orders()] == [order.order_number]
    # and the run after it re-reads it in the overlap without sending it again
    env.clock.advance(300)
    third = await flow.run(rt)
    assert third.created == third.updated == 0
    assert len(env.ss.all_orders()) == 1


def _backdate_plex_order(env: OpsEnv, order_id: str, stamp: datetime) -> None:
    data = env.plex.tenant()
    order = data.orders[order_id]
    order.modified = order.created = stamp
    for line in data.lines.values():
        if line.order_id == order_id:
            for release in data.releases.values():
                if release.order_line_id == line.id:
                    release.modified = release.created = stamp


async def test_a_failed_read_does_not_move_the_cursor(
    empty: OpsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = empty
    rt = await day_window_runtime(env)
    flow = OrdersFlow()
    await flow.run(rt)
    before = (await env.store.get_cursor(CONNECTION, "orders")).value  # type: ignore[union-attr]
    env.clock.advance(5 * 3600)  # far enough for a step
    real = PlexClient.get_list

    async def failing(self: PlexClient, path: str, *args: object, **kwargs: object) -> object:
        if path == "sales/v1/releases":
            raise httpx.ConnectError("plex went away (test)")
        return await real(self, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(PlexClient, "get_list", failing)
    with pytest.raises(httpx.ConnectError):
        await flow.run(rt)
    after = (await env.store.get_cursor(CONNECTION, "orders")).value  # type: ignore[union-attr]
    assert after == before


async def test_the_server_clock_caps_the_step(tmp_path: Path) -> None:
    """Our clock five hours ahead of Plex's: the cursor steps to Plex's time, not ours."""
    env = await make_env(tmp_path, orders=0)
    behind = timedelta(hours=5)
    plain = env.http_factory

    def dated(service: str, base_url: str) -> httpx.AsyncClient:
        client = plain(service, base_url)

        async def stamp(response: httpx.Response) -> None:
            response.headers["Date"] = format_datetime(env.clock.now() - behind, usegmt=True)

        client.event_hooks["response"] = [stamp]
        return client

    env.http_factory = dated  # type: ignore[method-assign]
    try:
        rt = await day_window_runtime(env)
        await OrdersFlow().run(rt)
        server_now = env.clock.now() - behind
        state = await cursor_of(env, "orders")
        assert state.since == server_now - DEFAULT_SAFETY_LAG - DEFAULT_OVERLAP
        # an order stamped by Plex's clock just before its now is read by the next run
        env.clock.advance(300)
        order = env.plex.add_order()
        _backdate_plex_order(env, order.id, server_now - timedelta(minutes=1))
        assert (await OrdersFlow().run(rt)).created == 1
    finally:
        await close_env(env)


# --- the ShipStation polls: order status and shipments ------------------------------------------
@pytest.fixture
async def linked(tmp_path: Path) -> AsyncIterator[OpsEnv]:
    """Two Plex orders sent to ShipStation (so the ShipStation polls find records of ours)."""
    env = await make_env(tmp_path, orders=2)
    rt = await env.runtime()
    assert (await OrdersFlow().run(rt)).created >= 2
    yield env
    await close_env(env)


async def test_order_status_steps_past_a_quiet_account_and_reads_a_late_change(
    linked: OpsEnv,
) -> None:
    env = linked
    rt = await env.runtime()
    flow = OrderStatusFlow()
    await flow.run(rt)
    created_at = env.clock.now()
    assert (await cursor_of(env, "order_status")).since <= created_at  # type: ignore[operator]
    env.clock.advance(5 * 3600)  # nothing changes in ShipStation for five hours
    quiet = await flow.run(rt)
    assert quiet.errors == []
    assert quiet.cursor is not None
    window_end = env.clock.now() - DEFAULT_SAFETY_LAG
    assert (await cursor_of(env, "order_status")).since > created_at  # type: ignore[operator]
    # an order shipped and stamped a minute before that window's end (committed late)
    env.clock.advance(300)
    ss_order = env.ss.all_orders()[0]
    env.ss.mark_shipped(ss_order["orderId"])
    env.ss.state.orders[ss_order["orderId"]].modify_date = window_end - timedelta(minutes=1)
    late = await flow.run(rt)
    assert late.frozen == 1, late.plan
    link = await env.store.get_link(CONNECTION, ss_order["orderKey"])
    assert link is not None
    assert link.ss_status == "shipped"


async def test_order_status_does_not_step_past_a_record_it_cannot_find_again(
    linked: OpsEnv,
) -> None:
    env = linked
    rt = await env.runtime()
    flow = OrderStatusFlow()
    env.clock.advance(300)  # the orders sent are inside the window
    await flow.run(rt)
    since = (await cursor_of(env, "order_status")).since
    assert since is not None
    assert since > env.clock.now() - DEFAULT_OVERLAP
    # a record whose id cannot be read: only a later window brings it again
    ss_order = env.ss.all_orders()[0]
    env.ss.set_raw_field("orders", ss_order["orderId"], "orderId", "not-a-number")
    env.clock.advance(5 * 3600)
    held = await flow.run(rt)
    assert held.quarantined == 1
    assert (await cursor_of(env, "order_status")).since == since
    # read again (corrected in ShipStation): the next whole read steps
    env.ss.clear_raw_fields("orders", ss_order["orderId"])
    env.clock.advance(300)
    await flow.run(rt)
    window_end = env.clock.now() - DEFAULT_SAFETY_LAG
    assert (await cursor_of(env, "order_status")).since == window_end - DEFAULT_OVERLAP


async def test_shipments_polls_move_without_a_record_and_read_a_late_label(
    linked: OpsEnv,
) -> None:
    env = linked
    rt = await env.runtime()
    flow = ShipmentsFlow()
    first = await flow.run(rt)
    assert first.errors == []
    assert first.read == 0
    window_end = env.clock.now() - DEFAULT_SAFETY_LAG
    stored = await env.store.get_cursor(CONNECTION, "shipments")
    cursors = PollCursors.from_json(stored.value if stored else None)
    for poll in POLLS:  # no shipment in 60 days: every poll moved without a record
        assert cursors.get(poll).since is not None
    env.clock.advance(300)
    ss_order = env.ss.all_orders()[0]
    label = env.ss.create_label(ss_order["orderId"])
    env.ss.state.shipments[label.shipment_id].create_date = window_end - timedelta(minutes=1)
    second = await flow.run(rt)
    assert second.read >= 1
    assert any(item.key == f"ss-shipment-{label.shipment_id}" for item in second.plan), second.plan
    # five quiet hours later, every poll steps to the end of what was read minus the overlap
    env.clock.advance(5 * 3600)
    assert (await flow.run(rt)).errors == []
    window_end = env.clock.now() - DEFAULT_SAFETY_LAG
    stored = await env.store.get_cursor(CONNECTION, "shipments")
    cursors = PollCursors.from_json(stored.value if stored else None)
    assert [cursors.get(p).since for p in POLLS] == [window_end - DEFAULT_OVERLAP] * len(POLLS)
