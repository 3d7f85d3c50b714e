"""The ORDER date sent to ShipStation around a DST change, end to end over real loopback HTTP.

Plex gives ``orderDate`` in UTC; ShipStation V1 takes it as naive US Pacific wall time
(``mlconnector.timezones.format_pacific``). A Plex order is added at a chosen virtual instant (the
Plex simulator dates it ``clock.now()``), the orders flow sends it, and the test checks three
things: the raw string on the wire (``createorders`` body), what the ShipStation simulator stored
and renders, and the date read back through the connector's V1 client (converted to UTC).

Spring forward (2026-03-08, 02:00 PST → 03:00 PDT): every real instant has exactly one Pacific
wall time, so the round trip is exact.

Fall back (2026-11-01, 02:00 PDT → 01:00 PST): 08:30Z (01:30 PDT) and 09:30Z (01:30 PST) have the
same Pacific wall time and V1 carries no offset, so ShipStation cannot tell them apart. The
product's documented choice (``mlconnector.timezones`` module doc) is that a naive time in the
repeated hour is the *first* occurrence (PDT, ``fold=0``): the 09:30Z order is read back one hour
early, never late. The tests pin that choice, and that the ambiguity does not make the flow
re-send the order on every run (its change detection hashes what it sent, not what it reads).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlconnector.sandbox.plex.model import Order as PlexOrder
from mlconnector.sync import ConnectionRuntime
from mlconnector.sync.orders import OrdersFlow
from mlconnector.timezones import PACIFIC
from tests.e2e.shipping_env import CONNECTION, PCN, ShipEnv, ship_env

HOUR = timedelta(hours=1)


def _sent_order_dates(env: ShipEnv) -> dict[str, list[str]]:
    """orderKey → every ``orderDate`` string sent for it to createorder(s), in order."""
    sent: dict[str, list[str]] = {}
    for method, path, _, body in env.ss_rec.calls:
        if method == "POST" and path in ("/orders/createorders", "/orders/createorder"):
            payload = json.loads(body)
            for order in payload if isinstance(payload, list) else [payload]:
                sent.setdefault(order["orderKey"], []).append(order["orderDate"])
    return sent


async def _add_orders_at(env: ShipEnv, instants: Sequence[datetime]) -> list[PlexOrder]:
    """One Plex order dated at each instant (the Plex simulator dates an order ``now``)."""
    orders = []
    for when in instants:
        env.set_time(when)
        orders.append(env.plex.add_order(tenant=PCN))
    return orders


async def _send(env: ShipEnv, rt: ConnectionRuntime) -> dict[str, str]:
    """Run the orders flow once (clock past the safety lag); Plex order id → orderKey."""
    env.step()
    result = await OrdersFlow().run(rt)
    assert result.failed == 0, result.errors
    links = await env.store.list_links(CONNECTION)
    return {lk.plex_order_id: lk.order_key for lk in links if lk.ss_order_id}


async def _observed(
    env: ShipEnv, rt: ConnectionRuntime, order: PlexOrder, keys: dict[str, str]
) -> dict[str, Any]:
    """What each side holds for one Plex order."""
    key = keys[order.id.lower()]
    rendered = env.ss.order_by_key(key)
    assert rendered is not None
    stored = env.ss.state.orders[int(rendered["orderId"])].dates["orderDate"]
    read_back = (await rt.ss_v1.get_order(int(rendered["orderId"]))).order_date
    return {
        "plex": env.plex.tenant(PCN).orders[order.id].order_date,
        "sent": _sent_order_dates(env)[key],
        "rendered": rendered["orderDate"],
        "stored": stored,
        "read_back": read_back,
    }


async def test_spring_forward_day_order_dates_round_trip_exactly(tmp_path: Path) -> None:
    instants = (
        datetime(2026, 3, 8, 9, 59, tzinfo=UTC),  # 01:59 PST, the last minute before the gap
        datetime(2026, 3, 8, 10, 0, tzinfo=UTC),  # 03:00 PDT (02:00-02:59 never happens)
        datetime(2026, 3, 8, 10, 30, tzinfo=UTC),  # 03:30 PDT
    )
    walls = (
        "2026-03-08T01:59:00.0000000",
        "2026-03-08T03:00:00.0000000",
        "2026-03-08T03:30:00.0000000",
    )
    async with ship_env(tmp_path, datetime(2026, 3, 8, 6, 0, tzinfo=UTC)) as env:
        rt = await env.runtime()
        orders = await _add_orders_at(env, instants)
        keys = await _send(env, rt)
        for order, instant, wall in zip(orders, instants, walls, strict=True):
            seen = await _observed(env, rt, order, keys)
            assert seen["plex"] == instant
            assert seen["sent"] == [wall]  # Pacific wall time, 7 digits, no offset
            assert seen["rendered"] == wall
            assert seen["stored"] == instant
            assert seen["read_back"] == instant  # exact, in UTC
            assert seen["read_back"].tzinfo is not None
            assert seen["read_back"].utcoffset() == timedelta(0)


async def test_fall_back_hour_order_dates_follow_the_documented_first_occurrence(
    tmp_path: Path,
) -> None:
    pdt = datetime(2026, 11, 1, 8, 30, tzinfo=UTC)  # 01:30 PDT, first pass of the hour
    pst = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)  # 01:30 PST, second pass, an hour later
    after = datetime(2026, 11, 1, 10, 30, tzinfo=UTC)  # 02:30 PST, after the repeated hour
    # the premise: two instants, one wall time
    assert pdt.astimezone(PACIFIC).replace(tzinfo=None) == pst.astimezone(PACIFIC).replace(
        tzinfo=None
    )
    async with ship_env(tmp_path, datetime(2026, 10, 31, 20, 0, tzinfo=UTC)) as env:
        rt = await env.runtime()
        first, second, third = await _add_orders_at(env, (pdt, pst, after))
        keys = await _send(env, rt)
        a = await _observed(env, rt, first, keys)
        b = await _observed(env, rt, second, keys)
        c = await _observed(env, rt, third, keys)
        assert (a["plex"], b["plex"], c["plex"]) == (pdt, pst, after)
        # on the wire the two 01:30s are the same string: V1 has no way to say which one
        assert a["sent"] == b["sent"] == ["2026-11-01T01:30:00.0000000"]
        assert c["sent"] == ["2026-11-01T02:30:00.0000000"]
        # the first pass round-trips exactly
        assert a["stored"] == a["read_back"] == pdt
        assert a["rendered"] == "2026-11-01T01:30:00.0000000"
        # the second pass is read as the first occurrence (documented: up to an hour early,
        # never late), by ShipStation and by the connector alike
        assert b["stored"] == b["read_back"] == pst - HOUR == pdt
        assert b["rendered"] == "2026-11-01T01:30:00.0000000"
        # after the hour, exact again
        assert c["stored"] == c["read_back"] == after
        assert c["rendered"] == "2026-11-01T02:30:00.0000000"

        # the ambiguity does not make the flow see a change: a later run sends nothing
        creates = env.ss_rec.count("POST", "/orders/createorders")
        env.step()
        again = await OrdersFlow().run(rt)
        assert again.failed == 0, again.errors
        assert again.created == again.updated == 0
        assert env.ss_rec.count("POST", "/orders/createorders") == creates
