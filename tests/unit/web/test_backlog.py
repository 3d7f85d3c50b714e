"""The receiver's inbox count (``[web] inbox_max_pending``) is read from the store only when it
matters: not per delivery while far below the cap, every delivery near it, and again after the
TTL so deliveries stored by another process count."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from mlconnector.clock import FakeClock
from mlconnector.config import WebSettings
from mlconnector.store import Store
from mlconnector.web import ReceiverOptions, create_web_app
from mlconnector.web.backlog import PendingCount
from tests.unit.web.conftest import HOOK, SS_BASE, make_config


def delivery(n: int | str) -> bytes:
    return json.dumps(
        {"resource_url": f"{SS_BASE}/shipments?batchId={n}", "resource_type": "SHIP_NOTIFY"}
    ).encode()


def count_reads(store: Store) -> list[int]:
    """How many ``count(*)`` queries of the inbox the store ran."""
    reads = [0]

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "count(" in statement.lower() and "webhook_inbox" in statement:
            reads[0] += 1

    event.listen(store.engine.sync_engine, "before_cursor_execute", before)
    return reads


async def test_far_below_the_cap_the_count_is_read_once_per_ttl(
    store: Store, tmp_path: Path, fake_clock: FakeClock
) -> None:
    web = WebSettings(allowed_hosts=("testserver",), inbox_max_pending=100)
    config = make_config(tmp_path).model_copy(update={"web": web})
    app = create_web_app(
        store=store, config=config, clock=fake_clock, receiver_options=ReceiverOptions()
    )
    reads = count_reads(store)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as c,
    ):
        answers = [(await c.post(HOOK, content=delivery(n))).status_code for n in range(20)]
        assert answers == [200] * 20
        assert reads[0] == 1
        fake_clock.advance(ReceiverOptions().backlog_ttl)
        assert (await c.post(HOOK, content=delivery(20))).status_code == 200
        assert reads[0] == 2


async def test_deliveries_stored_elsewhere_count_after_the_ttl_and_near_the_cap_every_time(
    store: Store, tmp_path: Path, fake_clock: FakeClock
) -> None:
    web = WebSettings(allowed_hosts=("testserver",), inbox_max_pending=10)
    config = make_config(tmp_path).model_copy(update={"web": web})
    app = create_web_app(store=store, config=config, clock=fake_clock)
    reads = count_reads(store)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as c,
    ):
        assert (await c.post(HOOK, content=delivery("first"))).status_code == 200
        for n in range(9):  # another receiver process of the same database fills the inbox
            await store.receive_webhook("acme", delivery(f"other-{n}"), {})
        fake_clock.advance(ReceiverOptions().backlog_ttl)
        refused = await c.post(HOOK, content=delivery("late"))
        assert refused.status_code == 503
        # near the cap every delivery reads the count: one worked off is room at once
        pending = await store.pending_webhooks(connection="acme")
        await store.finish_webhook(pending[0].id, "ok")
        before = reads[0]
        assert (await c.post(HOOK, content=delivery("late"))).status_code == 200
        assert (await c.post(HOOK, content=delivery("later"))).status_code == 503
        assert reads[0] == before + 2
    assert len(await store.pending_webhooks(connection="acme", limit=100)) == 10


async def test_concurrent_deliveries_share_one_read(store: Store, fake_clock: FakeClock) -> None:
    counter = PendingCount(store, fake_clock, cap=1000)
    reads = count_reads(store)
    counts = await asyncio.gather(*(counter.pending("acme") for _ in range(10)))
    assert counts == [0] * 10
    assert reads[0] == 1
    counter.stored("acme")
    counter.stored("acme")
    assert await counter.pending("acme") == 2  # this process's own deliveries, without a read
    assert reads[0] == 1


async def test_an_estimate_in_use_is_read_again_before_it_expires(
    store: Store, fake_clock: FakeClock
) -> None:
    count = PendingCount(store, fake_clock, cap=100, ttl=1.0, refresh_after=0.5)
    assert await count.pending("acme") == 0
    # stored by another process: only a read of the store shows them
    await store.receive_webhooks([("acme", delivery(n), {}) for n in range(3)])
    fake_clock.advance(0.4)
    assert await count.pending("acme") == 0
    assert count.reads == 1  # young: no read
    fake_clock.advance(0.2)  # past half the ttl: served at once, read in the background
    assert await count.pending("acme") == 0
    await asyncio.wait_for(asyncio.gather(*count._reads.in_flight()), 10)  # the background read
    assert count.reads == 2
    fake_clock.advance(0.4)  # 1.0 s after the first read (expired), 0.4 s after the second
    assert await count.pending("acme") == 3
    assert count.reads == 2
