"""The operator console at volume in a real headless Chromium: paging through 5,000 operations,
filters, grouped errors with bulk replay (checked in the store) and the run-history chart."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from mlconnector.clock import FakeClock
from mlconnector.config import Config
from mlconnector.sandbox.server import serve
from mlconnector.store import OperationState, Store, Vault, generate_key, open_store
from mlconnector.store.schema import operations
from mlconnector.web import create_web_app
from tests.browser.conftest import PageFactory

pytestmark = pytest.mark.browser

TOTAL = 5_000
#: the first 60 operations fail, in two causes; the rest are confirmed
TIMEOUTS = range(1, 41)  # failed or dead: "timeout after N s"
REFUSED = range(41, 61)  # dead: "Plex 403 for release N"


@dataclass
class Console:
    url: str
    store: Store
    clock: FakeClock


async def _seed(store: Store, clock: FakeClock) -> None:
    """5,000 operations written straight into the table (one INSERT), like a busy outbox."""
    now = clock.now()
    rows = []
    for n in range(1, TOTAL + 1):
        kind = "ss.inventory.adjust" if n % 5 == 0 else "ss.order.upsert"
        state, error = OperationState.CONFIRMED, None
        if n in TIMEOUTS:
            state = OperationState.DEAD if n % 2 else OperationState.FAILED
            error = f"timeout after {20 + n} s talking to ShipStation"
        elif n in REFUSED:
            state, error = OperationState.DEAD, f"Plex 403 for release {9000 + n}: missing role"
        rows.append(
            {
                "id": n,
                "connection": "acme",
                "flow": "inventory" if kind == "ss.inventory.adjust" else "orders",
                "kind": kind,
                "idempotency_key": f"{kind}:acme:{n}",
                "payload": {"order_key": f"plex-79870-{n}", "sku": f"SKU-{n}"},
                "state": state.value,
                "attempts": 1,
                "next_attempt_at": None,
                "last_error": error,
                "remote_ref": None,
                "created_at": now + timedelta(seconds=n),
                "updated_at": now + timedelta(seconds=n),
            }
        )
    async with store.engine.begin() as conn:
        await conn.execute(operations.insert(), rows)


@pytest_asyncio.fixture(loop_scope="session")
async def console(tmp_path: Path, fake_clock: FakeClock) -> AsyncIterator[Console]:
    vault = Vault([generate_key()], source="a test key")
    store = await open_store(
        f"sqlite+aiosqlite:///{tmp_path / 'mlc.db'}", clock=fake_clock, vault=vault
    )
    try:
        await store.create_connection("acme", plex_pcn="79870")
        await _seed(store, fake_clock)
        app = create_web_app(store=store, config=Config(home=tmp_path), clock=fake_clock)
        async with app.router.lifespan_context(app), serve(app) as url:
            yield Console(url, store, fake_clock)
    finally:
        await store.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(operator_page: PageFactory, console: Console) -> AsyncIterator[Any]:
    """A page logged in as an operator, whose console must stay clean (the conftest saves a
    screenshot when a test fails)."""
    page = await operator_page(console.url, console.store)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        yield page
        assert errors == []
    finally:
        await page.close()


async def _ids(page: Any) -> list[int]:
    return [int(t) for t in await page.locator("table.ops tbody td:first-child").all_inner_texts()]


async def test_paging_through_5000_operations(console: Console, page: Any, expect: Any) -> None:
    await page.goto(console.url + "/operations")
    assert await _ids(page) == list(range(TOTAL, TOTAL - 50, -1))  # 50 a page by default
    await page.get_by_label("Per page").select_option("200")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**/operations?*per_page=200*")
    seen = await _ids(page)
    assert seen[0] == TOTAL
    await expect(page.get_by_role("link", name="← Newer")).to_have_count(0)
    pages = 1
    while await page.get_by_role("link", name="Older →").count():
        await page.get_by_role("link", name="Older →").click()
        await page.wait_for_load_state()
        seen += await _ids(page)
        pages += 1
    assert seen == list(range(TOTAL, 0, -1))  # every operation once, newest first
    assert pages == TOTAL // 200
    assert "per_page=200" in page.url  # the page size (like any filter) is kept by the links
    # and back one page from the last
    await page.get_by_role("link", name="← Newer").click()
    await page.wait_for_load_state()
    assert await _ids(page) == list(range(400, 200, -1))


async def test_filters(console: Console, page: Any, expect: Any) -> None:
    rows = page.locator("table.ops tbody tr")
    await page.goto(console.url + "/operations")
    await page.get_by_label("Kind").select_option("ss.inventory.adjust")
    await page.get_by_label("State").select_option("dead")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**/operations?*kind=ss.inventory.adjust*")
    # dead inventory adjusts: multiples of 5 among the odd timeouts and all of REFUSED
    expected = [n for n in range(60, 0, -1) if n % 5 == 0 and (n in REFUSED or n % 2)]
    assert await _ids(page) == expected
    await expect(rows.locator("td.state")).to_have_text(["dead"] * len(expected))

    await page.get_by_label("Kind").select_option("")
    await page.get_by_label("State").select_option("")
    await page.get_by_label("Search").fill("release 9050")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**/operations?*q=release+9050*")
    assert await _ids(page) == [50]

    await page.get_by_label("Search").fill("")
    tomorrow = (console.clock.now() + timedelta(days=1)).date().isoformat()
    await page.get_by_label("Changed from").fill(tomorrow)
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_text("No operations match.")).to_be_visible()


async def test_grouped_errors_and_bulk_replay(console: Console, page: Any, expect: Any) -> None:
    store = console.store
    await page.goto(console.url + "/operations")
    groups = page.locator("table.groups tbody tr")
    await expect(groups.locator(".cause")).to_have_text(
        ["timeout after # s talking to ShipStation", "Plex 403 for release #: missing role"]
    )
    await expect(groups.locator("td.failed-count")).to_have_text(["20", "0"])
    await expect(groups.locator("td.dead-count")).to_have_text(["20", "20"])

    refused = groups.filter(has_text="Plex 403")
    await refused.get_by_role("button", name="Replay all in this group (20)").click()
    await expect(page.locator("p.flash")).to_have_text(
        "Replayed 20 operation(s) failing with: Plex 403 for release #: missing role"
    )
    for n in REFUSED:
        op = await store.get_operation(n)
        assert op is not None
        assert op.state is OperationState.PENDING
    for n in TIMEOUTS:  # the other group is left alone
        op = await store.get_operation(n)
        assert op is not None
        assert op.state in (OperationState.FAILED, OperationState.DEAD)
    await expect(groups.locator(".cause")).to_have_text(
        ["timeout after # s talking to ShipStation"]
    )

    # the dead of the other group are dismissed with a reason, the failed ones stay
    await groups.get_by_label("Reason to dismiss the dead of this group").fill("carrier outage")
    await groups.get_by_role("button", name="Dismiss dead (20)").click()
    await expect(page.locator("p.flash")).to_contain_text("Dismissed 20 dead operation(s)")
    counts = await store.count_operations(connection="acme")
    assert (counts[OperationState.DEAD], counts[OperationState.DISMISSED]) == (0, 20)
    assert counts[OperationState.FAILED] == 20
    await expect(groups.locator("td.dead-count")).to_have_text(["0"])


async def test_the_run_history_chart_renders_the_runs(
    console: Console, page: Any, expect: Any
) -> None:
    store, start = console.store, console.clock.now()
    outcomes = ["ok"] * 30 + ["partial"] * 8 + ["failed"] * 4
    for n, outcome in enumerate(outcomes):
        begun = start + timedelta(minutes=10 * n)
        await store.add_run(
            "acme",
            "orders",
            started_at=begun,
            finished_at=begun + timedelta(seconds=1 + n % 9),
            outcome=outcome,
            counts={"created": n % 4, "failed": int(outcome != "ok")},
            error="Plex 401" if outcome == "failed" else None,
            owner="worker-1",
        )
    await page.goto(console.url + "/runs")
    chart = page.locator("figure.chart svg.runs-chart")
    await expect(chart).to_be_visible()
    await expect(chart.locator("rect.run")).to_have_count(len(outcomes))
    await expect(chart.locator("rect.run-ok")).to_have_count(30)
    await expect(chart.locator("rect.run-partial")).to_have_count(8)
    await expect(chart.locator("rect.run-failed")).to_have_count(4)
    await expect(chart.locator("circle.changed")).to_have_count(len(outcomes))
    # the longest run is the tallest bar; colours come from the stylesheet
    heights = [
        float(h)
        for h in await chart.locator("rect.run").evaluate_all(
            "rs => rs.map(r => r.getAttribute('height'))"
        )
    ]
    assert max(heights) == heights[8]  # 1 + 8 s
    fill = await chart.locator("rect.run-failed").first.evaluate("e => getComputedStyle(e).fill")
    assert fill == "rgb(208, 69, 58)"
    title = await chart.locator("rect.run").last.locator("title").text_content()
    assert re.search(r"failed · \d\.\d s · created=\d failed=1 · Plex 401$", title or "")
    # the table: all 42 runs fit on one page, newest first
    await expect(page.locator("table.runs tbody tr")).to_have_count(len(outcomes))
    await expect(page.locator("table.runs tbody tr").first.locator("td").nth(1)).to_have_text(
        "failed"
    )
