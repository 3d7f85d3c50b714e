"""The orders flow works a chunk of orders at a time (bundles read together, decisions sent in
full ``createorders`` batches) and still moves its cursor only after the whole window."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mlconnector.plex import FilterIgnoredError, OrderLine
from mlconnector.sandbox.plex import LinePlan, ReleasePlan
from mlconnector.sync.orders import OrdersFlow
from tests.unit.sync_ops.conftest import CONNECTION, PCN, OpsEnv, close_env, make_env


def gets(env: OpsEnv, path: str) -> int:
    return sum(1 for s, m, p, _ in env.calls if s == "plex" and m == "GET" and p == path)


def lines_reads(env: OpsEnv) -> int:
    return sum(1 for s, m, p, _ in env.calls if s == "plex" and m == "GET" and p.endswith("/lines"))


def sent_orders(env: OpsEnv) -> dict[str, Any]:
    keep = ("orderNumber", "orderStatus", "shipByDate")
    return {
        o["orderKey"]: (
            {k: o.get(k) for k in keep},
            sorted((i["lineItemKey"], i["sku"], i["quantity"]) for i in o["items"]),
        )
        for o in env.ss.all_orders()
    }


async def test_chunked_run_reads_less_and_sends_what_one_chunk_sends(tmp_path: Path) -> None:
    chunked, whole = await make_env(tmp_path / "a"), await make_env(tmp_path / "b")
    try:
        small = await OrdersFlow(batch_size=5).run(await chunked.runtime())
        big = await OrdersFlow().run(await whole.runtime())
        assert small.created == big.created > 5
        # the same ShipStation orders, whatever the chunk size
        assert sent_orders(chunked) == sent_orders(whole)
        orders = lines_reads(chunked)
        assert orders > 5
        windows = gets(chunked, "/sales/v1/orders")
        # releases: the windowed reads, then one request per chunk of orders (not per order)
        assert gets(chunked, "/sales/v1/releases") == windows + math.ceil(orders / 5)
        assert gets(whole, "/sales/v1/releases") == windows + 1
        # parts: each id once per run (the cache), so never more requests than chunks
        assert 1 <= gets(chunked, "/mdm/v1/parts") <= math.ceil(orders / 5)
        assert gets(whole, "/mdm/v1/parts") == 1
        # full createorders batches: no more calls than ceil(created / 5)
        creates = chunked.count("shipstation-v1", "/orders/createorders")
        assert creates == math.ceil(small.created / 5)
    finally:
        await close_env(chunked)
        await close_env(whole)


async def test_cursor_waits_for_the_last_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = await make_env(tmp_path)
    try:
        rt = await env.runtime()
        flow = OrdersFlow(batch_size=3)
        real = type(rt.plex).list_order_lines
        calls: list[str] = []

        async def lines_failing_late(self: Any, order_id: str) -> list[OrderLine]:
            calls.append(order_id)
            if len(calls) == 7:  # in the third chunk, after two chunks were sent
                raise FilterIgnoredError("filter ignored (test)", record=order_id)
            return await real(self, order_id)

        monkeypatch.setattr(type(rt.plex), "list_order_lines", lines_failing_late)
        with pytest.raises(FilterIgnoredError):
            await flow.run(rt)
        assert await env.store.get_cursor(CONNECTION, "orders") is None
        early = env.ss_order_keys()
        assert early  # the first chunks were sent (idempotent: upsert by orderKey)
        monkeypatch.setattr(type(rt.plex), "list_order_lines", real)
        result = await flow.run(rt)
        assert result.cursor is not None
        assert await env.store.get_cursor(CONNECTION, "orders") is not None
        keys = env.ss_order_keys()
        assert len(keys) == len(set(keys)) > len(early)  # nothing doubled, the rest sent
        assert result.created == len(keys) - len(early)
        assert result.unchanged >= len(early)
    finally:
        await close_env(env)


async def test_a_pass_sends_window_by_window_and_moves_the_cursor_once(tmp_path: Path) -> None:
    env = await make_env(tmp_path, orders=3)
    try:
        rt = await env.runtime()
        flow = OrdersFlow(batch_size=2)
        await flow.run(rt)
        before = await env.store.get_cursor(CONNECTION, "orders")
        data = env.plex.tenant(PCN)
        customer = next(iter(data.customers))
        part = next(p.id for p in data.parts.values() if p.status == "Active")
        for n in range(6):  # one new order an hour
            env.clock.advance(3600)
            plan = ReleasePlan(float(n + 1), env.clock.now() + timedelta(days=3))
            env.plex.add_order(customer, [LinePlan(part, [plan])], tenant=PCN)
        env.clock.advance(600)
        rt.plex.settings = rt.plex.settings.model_copy(update={"window": timedelta(hours=1)})
        mark = len(env.calls)
        result = await flow.run(rt)
        assert result.created == 6
        calls = [(m, p) for _, m, p, _ in env.calls[mark:]]
        reads = [i for i, c in enumerate(calls) if c == ("GET", "/sales/v1/orders")]
        sends = [i for i, c in enumerate(calls) if c[1].endswith("/orders/createorders")]
        assert len(reads) >= 6
        assert len(sends) == 3
        # the first orders are in ShipStation before the last windows are read
        assert sends[0] < reads[-2]
        after = await env.store.get_cursor(CONNECTION, "orders")
        assert before is not None
        assert after is not None
        assert after.value != before.value
        assert result.cursor == after.value
        assert len({o["orderKey"] for o in env.ss.all_orders()}) == len(env.ss.all_orders())
    finally:
        await close_env(env)
