"""The operator UI in a real headless Chromium, against the app served on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlconnector.store import OperationState
from tests.browser.conftest import PageFactory, Served

pytestmark = pytest.mark.browser


async def test_replay_a_dead_operation_and_search_the_audit(
    operator_page: PageFactory, served: Served, tmp_path: Path
) -> None:
    page = await operator_page(served.url, served.store)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    dead = served.seeded.dead_id

    await page.goto(served.url + "/")
    assert await page.title() == "Dashboard · ml-connector"
    assert await page.locator("section.card h2 a").inner_text() == "acme"
    # the stylesheet loaded (the Content-Security-Policy allows our own origin)
    header_bg = await page.locator("header").evaluate("e => getComputedStyle(e).backgroundColor")
    assert header_bg == "rgb(29, 35, 48)"

    await page.get_by_role("link", name="Operations").click()
    await page.wait_for_url("**/operations")
    row = page.locator(f"#op-{dead}")
    assert await row.locator("td.state").inner_text() == "dead"
    assert "<script>" in await row.locator("td.error").inner_text()  # shown as text, not run

    await row.get_by_role("button", name="Replay").click()
    await page.wait_for_load_state()
    flash = page.locator("p.flash")
    assert await flash.inner_text() == f"Operation {dead} replayed: it is pending again."
    assert await page.locator(f"#op-{dead} td.state").inner_text() == "pending"
    op = await served.store.get_operation(dead)
    assert op is not None
    assert op.state is OperationState.PENDING
    await page.screenshot(path=str(tmp_path / "operations.png"), full_page=True)

    await page.get_by_role("link", name="Audit").click()
    await page.get_by_label("Plex order id").fill("PO-2002")
    await page.get_by_role("button", name="Search").click()
    await page.wait_for_url("**/audit?*plex_order_id=PO-2002*")
    rows = page.locator("table.audit tbody tr")
    assert await rows.count() == 1
    assert "shipment 77001" in await rows.first.locator("td.refs").inner_text()

    await page.get_by_label("Plex order id").fill("PO-1001")
    await page.get_by_role("button", name="Search").click()
    await page.wait_for_url("**/audit?*plex_order_id=PO-1001*")
    assert "alert" in await page.locator("table.audit td.details").inner_text()
    assert dialogs == []  # the script in the audit details never ran
    assert console_errors == []  # no CSP violation, no failed resource
    await page.close()
