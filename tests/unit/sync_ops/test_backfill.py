"""The backfill against both simulators in-process: windows, row-limit narrowing, SOAP errors,
resume after an interruption, and no duplicates with the orders flow."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mlconnector.errors import ConfigError, PermissionDeniedError, TransientError
from mlconnector.plex import DataSourceError, DataSourceResult, RowLimitExceededError
from mlconnector.sandbox.plex import RELEASE_HISTORY_ID
from mlconnector.sync.backfill import (
    FLOW,
    Backfill,
    BackfillPlan,
    BackfillState,
    HistoryReader,
    WindowDone,
    open_history,
    open_order_keys,
)
from mlconnector.sync.orders import OrdersFlow
from tests.conftest import FAKE_START
from tests.unit.sync_ops.conftest import CONNECTION, PCN, OpsEnv, close_env, make_env

SINCE = FAKE_START - timedelta(days=10)
UNTIL = FAKE_START + timedelta(days=40)


def plan(**overrides: Any) -> BackfillPlan:
    values: dict[str, Any] = {"since": SINCE, "until": UNTIL, "window": timedelta(days=10)}
    values.update(overrides)
    return BackfillPlan(**values)


class Recording:
    """A HistoryReader wrapper that remembers the windows asked for."""

    def __init__(self, inner: HistoryReader) -> None:
        self.inner = inner
        self.begins: list[str] = []

    async def execute(self, datasource_id: int, inputs: Mapping[str, Any]) -> DataSourceResult:
        self.begins.append(str(inputs["Begin_Date"]))
        return await self.inner.execute(datasource_id, inputs)


class Interrupted(Exception):
    """The operator pressed Ctrl-C (not part of the connector's error tree)."""


async def backfill(env: OpsEnv, p: BackfillPlan, **kwargs: Any) -> Any:
    rt = await env.runtime()
    async with open_history(rt, p.source, http_factory=env.http_factory) as reader:
        return await Backfill(rt, p, reader, **kwargs).run()


def expected_orders(env: OpsEnv) -> set[str]:
    """Plex order ids with an open release shipping in the period (from the simulator's state),
    excluding cancelled orders (never sent)."""
    data = env.plex.tenant(PCN)
    found = set()
    for release in data.releases.values():
        order = data.orders[data.lines[release.order_line_id].order_id]
        open_ = release.status in ("Open", "Hold") and release.quantity > release.quantity_shipped
        if open_ and SINCE <= release.ship_date <= UNTIL and order.status != "Canceled":
            found.add(order.id.lower())
    return found


def ss_plex_orders(env: OpsEnv) -> set[str]:
    return {o["advancedOptions"]["customField3"] for o in env.ss.all_orders()}


async def test_backfill_sends_every_open_order_once_and_orders_run_adds_nothing(
    env: OpsEnv,
) -> None:
    done = await backfill(env, plan())
    keys = env.ss_order_keys()
    assert done.result.failed == 0, done.result.errors
    assert done.result.created == len(keys) > 0
    assert Counter(keys).most_common(1)[0][1] == 1  # no orderKey twice
    assert ss_plex_orders(env) == expected_orders(env)
    assert done.windows == 5
    assert done.narrowed == 0

    posts_before = env.count("shipstation-v1", "/orders/create")
    again = await OrdersFlow().run(await env.runtime())
    assert again.created == 0
    assert again.failed == 0
    assert env.count("shipstation-v1", "/orders/create") == posts_before
    assert sorted(env.ss_order_keys()) == sorted(keys)


async def test_orders_run_first_then_backfill_creates_nothing(env: OpsEnv) -> None:
    first = await OrdersFlow().run(await env.runtime())
    assert first.created > 0
    keys = sorted(env.ss_order_keys())
    done = await backfill(env, plan())
    assert done.result.created == 0
    assert done.result.updated == 0
    assert done.result.unchanged > 0
    assert sorted(env.ss_order_keys()) == keys


async def test_row_limit_narrows_the_window_and_loses_nothing(tmp_path: Path) -> None:
    whole = await make_env(tmp_path / "a")
    cut = await make_env(tmp_path / "b")
    try:
        await backfill(whole, plan())
        cut.plex.set_row_limit(RELEASE_HISTORY_ID, 10)
        done = await backfill(cut, plan())
        assert done.narrowed > 0
        executes = cut.count("plex-datasource", f"/api/datasources/{RELEASE_HISTORY_ID}/execute")
        assert executes == done.windows + done.narrowed
        assert sorted(cut.ss_order_keys()) == sorted(whole.ss_order_keys())
    finally:
        await close_env(whole)
        await close_env(cut)


async def test_row_limit_below_the_minimum_window_stops_with_a_clear_error(env: OpsEnv) -> None:
    env.plex.set_row_limit(RELEASE_HISTORY_ID, 0)
    with pytest.raises(RowLimitExceededError) as caught:
        await backfill(env, plan(min_window=timedelta(days=3)))
    assert "still hits its Read Row Limit" in caught.value.message
    assert "--min-window" in (caught.value.hint or "")
    assert env.ss_order_keys() == []


async def test_soap_source_loads_the_same_orders(tmp_path: Path) -> None:
    json_env = await make_env(tmp_path / "a")
    soap_env = await make_env(tmp_path / "b")
    try:
        await backfill(json_env, plan())
        done = await backfill(soap_env, plan(source="soap"))
        assert soap_env.count("plex-soap", "/DataSource/Service.asmx") == done.windows
        assert sorted(soap_env.ss_order_keys()) == sorted(json_env.ss_order_keys())
    finally:
        await close_env(json_env)
        await close_env(soap_env)


async def test_soap_error_true_is_surfaced_and_nothing_is_written(env: OpsEnv) -> None:
    env.plex.set_datasource_grants(PCN, [])  # the web-service user may not run 18120
    with pytest.raises(DataSourceError) as caught:
        await backfill(env, plan(source="soap"))
    text = caught.value.message
    assert "Error=true" in text
    assert str(RELEASE_HISTORY_ID) in text
    assert "denied" in text.lower()
    assert env.ss_order_keys() == []
    assert await env.store.get_cursor(CONNECTION, FLOW) is None


async def test_json_access_denied_names_what_to_grant(env: OpsEnv) -> None:
    env.plex.set_datasource_grants(PCN, [])
    with pytest.raises(PermissionDeniedError) as caught:
        await backfill(env, plan())
    assert "Web Service Access" in (caught.value.hint or "")


async def test_interrupted_backfill_resumes_after_the_last_committed_window(
    env: OpsEnv,
) -> None:
    seen: list[WindowDone] = []

    def stop_after_two(event: WindowDone) -> None:
        seen.append(event)
        if len(seen) == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        await backfill(env, plan(), on_window=stop_after_two)
    stored = await env.store.get_cursor(CONNECTION, FLOW)
    assert stored is not None
    state = BackfillState.from_json(stored.value)
    assert state is not None
    assert state.done_until == SINCE + timedelta(days=20)
    created_first = len(env.ss_order_keys())

    rt = await env.runtime()
    async with open_history(rt, "json", http_factory=env.http_factory) as inner:
        reader = Recording(inner)
        done = await Backfill(rt, plan(), reader).run()
    assert done.resumed_from == SINCE + timedelta(days=20)
    assert reader.begins[0] == "2026-01-25T12:00:00.0000000Z"  # the first window not yet committed
    assert len(reader.begins) == 3
    assert done.state.complete
    keys = env.ss_order_keys()
    assert Counter(keys).most_common(1)[0][1] == 1
    assert ss_plex_orders(env) == expected_orders(env)
    assert len(keys) >= created_first


async def test_a_different_period_starts_afresh(env: OpsEnv) -> None:
    await backfill(env, plan(until=SINCE + timedelta(days=20)))
    done = await backfill(env, plan())
    assert done.resumed_from is None
    assert done.windows == 5


async def test_dry_run_writes_nothing(env: OpsEnv) -> None:
    rt = await env.runtime()
    async with open_history(rt, "json", http_factory=env.http_factory) as reader:
        done = await Backfill(rt, plan(), reader).run(dry_run=True)
    assert done.result.created > 0  # what it would create
    assert env.ss_order_keys() == []
    assert await env.store.get_cursor(CONNECTION, FLOW) is None
    assert await env.store.list_links(CONNECTION) == []


async def test_missing_web_service_user_is_a_config_error(env: OpsEnv) -> None:
    rt = await env.runtime()
    rt.config = rt.config.model_copy(
        update={"plex": rt.config.plex.model_copy(update={"web_service_user": None})}
    )
    with pytest.raises(ConfigError, match="web_service_user"):
        async with open_history(rt, "json", http_factory=env.http_factory):
            pass


def test_empty_period_is_refused() -> None:
    with pytest.raises(ConfigError, match="empty"):
        BackfillPlan(since=UNTIL, until=SINCE)


def test_open_order_keys_skips_closed_and_fully_shipped_rows() -> None:
    rows = [
        {"PO_Key": "11", "Release_Status": "Open", "Quantity": "5", "Quantity_Shipped": "0"},
        {"PO_Key": 12, "Release_Status": "Shipped", "Quantity": 5, "Quantity_Shipped": 5},
        {"PO_Key": 13, "Release_Status": "Open", "Quantity": 5, "Quantity_Shipped": 5},
        {"PO_Key": 14, "Release_Status": "Canceled", "Quantity": 5, "Quantity_Shipped": 0},
        {"PO_Key": "", "Release_Status": "Open", "Quantity": 5, "Quantity_Shipped": 0},
    ]
    assert open_order_keys(rows, "PO_Key") == {11}


async def test_a_running_orders_flow_keeps_the_backfill_out(env: OpsEnv) -> None:
    async with env.store.flow_lock(CONNECTION, "orders") as held:  # e.g. `sync orders --once`
        assert held
        with pytest.raises(TransientError, match="orders flow of connection"):
            await backfill(env, plan())
    assert env.ss_order_keys() == []
    done = await backfill(env, plan())
    assert done.result.created > 0
    # released after the run: the engine can take the orders flow again
    assert await env.store.flow_lock_free(CONNECTION, "orders")


def test_stored_state_round_trips_and_garbage_means_fresh() -> None:
    state = BackfillState(SINCE, UNTIL, SINCE + timedelta(days=7), windows=1, rows=9, orders=3)
    assert BackfillState.from_json(state.to_json()) == state
    assert BackfillState.from_json("{not json") is None
    assert BackfillState.from_json('{"since": "2026-01-01T00:00:00Z"}') is None
    assert not state.complete
    assert state.covers(plan())
    assert not state.covers(plan(until=UNTIL + timedelta(days=1)))
