"""The operator's pages in a real headless Chromium: the dashboard, filtering and bulk-replaying
operations, a connection's page (masked secrets, webhook URL) and the security headers.

Everything is reached the way an operator does it: links, selects and buttons.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from mlconnector.clock import FakeClock
from mlconnector.config import Config, ConnectionConfig, PlexSettings, ShipStationSettings
from mlconnector.sandbox.server import serve
from mlconnector.store import CredentialKind, OperationState, Store, Vault, generate_key, open_store
from mlconnector.sync.runs import LastRun, last_run_cursor
from mlconnector.web import create_web_app
from tests.browser.conftest import PageFactory
from tests.unit.web.seed import XSS, Seeded, seed

pytestmark = pytest.mark.browser

PUBLIC_BASE = "https://connector.example"
#: every secret stored for ``acme``; none may reach a page
ACME_SECRETS = {
    CredentialKind.WEBHOOK_TOKEN: "tok-3f9a0c1d2e4b5a69788",
    CredentialKind.SS_V1_KEY: "abcdefghijklmnop-v1key",  # the value seed() stores
    CredentialKind.SS_V1_SECRET: "ss1-secret-0f1e2d3c4b5a6978",
    CredentialKind.SS_V2_KEY: "TEST_v2_9a8b7c6d5e4f3a2b1c0d",
    CredentialKind.PLEX_CLIENT_SECRET: "plx-cs-77aa88bb99cc00dd",
    CredentialKind.PLEX_WS_PASSWORD: "hunter2-pw",  # short: shown as bullets only
}
SECURITY = {
    "content-security-policy": (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


@dataclass
class Site:
    url: str
    store: Store
    clock: FakeClock
    acme: Seeded
    beta: Seeded
    acme_extra_dead: int


@dataclass
class Watched:
    """A page plus what it reported: console errors and JavaScript dialogs."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest_asyncio.fixture(loop_scope="session")
async def site(tmp_path: Path, fake_clock: FakeClock) -> AsyncIterator[Site]:
    """Two connections on loopback: ``acme`` (configured, every credential, two dead operations,
    two pending webhooks) and ``beta`` (not in the configuration file, different last runs)."""
    vault = Vault([generate_key()], source="a test key")
    store = await open_store(
        f"sqlite+aiosqlite:///{tmp_path / 'mlc.db'}", clock=fake_clock, vault=vault
    )
    try:
        now = fake_clock.now()
        await store.create_connection("acme", plex_pcn="79870")
        acme = await seed(store, "acme")
        for kind, secret in ACME_SECRETS.items():
            await store.set_credential("acme", kind, secret)
        extra = await store.enqueue("acme", "shipments", "write_back", "acme-ship-9", {"s": 9})
        await store.fail(
            extra.operation.id,
            "Plex 403 REQUEST_NOT_AUTHORIZED",
            next_attempt_at=now + timedelta(minutes=5),
            max_attempts=1,
        )
        await store.receive_webhook(
            "acme",
            b'{"resource_url": "http://ss.test/shipments?batchId=2", "resource_type": "ITEM_SHIP"}',
            {"content-type": "application/json"},
        )

        await store.create_connection("beta", plex_pcn="11111")
        beta = await seed(store, "beta")
        await store.set_cursor("beta", "orders", "2026-01-14T08:30:00Z")
        for run in (
            LastRun("orders", now, False, 2.0, "worker-9@host", error="ShipStation 401 for beta"),
            LastRun("shipments", now, True, 3.5, "worker-9@host", "shipments@beta: written=3"),
        ):
            await store.set_cursor("beta", last_run_cursor(run.flow), run.to_json())

        async def flow_states(connection: str) -> dict[str, str]:
            # what the engine reports: acme's orders running, beta's inventory queued
            return {"acme": {"orders": "doing"}, "beta": {"inventory": "queued"}}[connection]

        config = Config(
            home=tmp_path,
            connections={
                "acme": ConnectionConfig(
                    plex=PlexSettings(pcn="79870"),
                    shipstation=ShipStationSettings(
                        v1_base_url="http://ss.test", v2_base_url="http://ss.test"
                    ),
                )
            },
            public_base_url=PUBLIC_BASE,
        )
        app = create_web_app(store=store, config=config, clock=fake_clock, flow_states=flow_states)
        async with app.router.lifespan_context(app), serve(app) as url:
            yield Site(url, store, fake_clock, acme, beta, extra.operation.id)
    finally:
        await store.close()


@pytest_asyncio.fixture(loop_scope="session")
async def watched(operator_page: PageFactory, site: Site) -> AsyncIterator[Watched]:
    page = await operator_page(site.url, site.store)
    seen = Watched(page)
    page.on("dialog", lambda d: seen.dialogs.append(d.message))
    page.on("console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None)
    try:
        yield seen
    finally:
        await page.close()


async def state_of(store: Store, op_id: int) -> OperationState:
    op = await store.get_operation(op_id)
    assert op is not None
    return op.state


def card(page: Any, connection: str) -> Any:
    """The dashboard's section for one connection."""
    return page.locator("section.card").filter(
        has=page.get_by_role("heading", name=connection, exact=True)
    )


def flow_row(section: Any, flow: str) -> Any:
    return section.locator("tbody tr").filter(
        has=section.page.locator("td:first-child", has_text=re.compile(f"^{flow}$"))
    )


async def test_dashboard_shows_each_connection_its_flows_counts_and_backlog(
    site: Site, watched: Watched, expect: Any
) -> None:
    page = watched.page
    await page.goto(site.url + "/")
    await expect(page).to_have_title("Dashboard · ml-connector")
    await expect(page.locator("section.card h2 a")).to_have_text(["acme", "beta"])

    acme, beta = card(page, "acme"), card(page, "beta")
    # operation counts per state (pending, sent, confirmed, failed, dead, dismissed) and the
    # inbox backlog
    await expect(acme.locator("table.counts thead th")).to_have_text(
        ["pending", "sent", "confirmed", "failed", "dead", "dismissed", "inbox backlog"]
    )
    await expect(acme.locator("table.counts tbody td")).to_have_text(
        ["1", "0", "1", "1", "2", "0", re.compile(r"^2 \(oldest 2026-01-15 12:00:00 UTC\)$")]
    )
    await expect(beta.locator("table.counts tbody td")).to_have_text(
        ["1", "0", "1", "1", "1", "0", re.compile(r"^1 \(oldest 2026-01-15 12:00:00 UTC\)$")]
    )

    # acme: orders ran fine, with its cursor, and is running now; shipments failed, error as text
    await expect(acme.locator("table:not(.counts) tbody tr td:first-child")).to_have_text(
        ["orders", "shipments"]
    )
    orders = flow_row(acme, "orders")
    await expect(orders.locator("td.last-run .outcome-ok")).to_have_text("ok")
    await expect(orders.locator("td.last-run")).to_contain_text("(1.2 s, worker-1@host)")
    await expect(orders.locator("td.last-run")).to_contain_text("orders@acme: created=2")
    await expect(orders.locator("td.cursor .summary")).to_have_text("2026-01-15T11:00:00Z")
    await expect(orders.locator("td.job")).to_have_text("doing")
    shipments = flow_row(acme, "shipments")
    await expect(shipments.locator("td.last-run .outcome-failed")).to_have_text("failed")
    await expect(shipments.locator("td.last-run div.error")).to_have_text(f"Plex refused {XSS}")
    await expect(shipments.locator("td").nth(2)).to_have_text("—")  # no cursor of its own

    # beta: its own values, not acme's; a flow known only to the engine (queued) never ran
    await expect(beta.locator("table:not(.counts) tbody tr td:first-child")).to_have_text(
        ["inventory", "orders", "shipments"]
    )
    await expect(flow_row(beta, "inventory").locator("td.last-run")).to_have_text("never")
    await expect(flow_row(beta, "inventory").locator("td.job")).to_have_text("queued")
    beta_orders = flow_row(beta, "orders")
    await expect(beta_orders.locator("td.last-run .outcome-failed")).to_have_text("failed")
    await expect(beta_orders.locator("td.last-run div.error")).to_have_text(
        "ShipStation 401 for beta"
    )
    await expect(beta_orders.locator("td.cursor .summary")).to_have_text("2026-01-14T08:30:00Z")
    await expect(flow_row(beta, "shipments").locator("td.last-run")).to_contain_text(
        "shipments@beta: written=3"
    )

    await expect(flow_row(acme, "shipments").locator("td.job")).to_have_text("—")

    # a count is a link to the matching operations
    await card(page, "acme").locator("td.state-dead a").click()
    await page.wait_for_url("**/operations?connection=acme&state=dead")
    await expect(page.get_by_label("Connection")).to_have_value("acme")
    await expect(page.get_by_label("State")).to_have_value("dead")
    await expect(page.locator("table.ops tbody tr")).to_have_count(2)
    assert watched.dialogs == []  # the <script> in the error text never ran
    assert watched.console_errors == []


async def test_operations_filters_and_replay_all_dead(
    site: Site, watched: Watched, expect: Any
) -> None:
    page, store = watched.page, site.store
    rows = page.locator("table.ops tbody tr")
    await page.goto(site.url + "/")
    await page.get_by_role("link", name="Operations").click()
    await page.wait_for_url("**/operations")
    await expect(rows).to_have_count(9)

    # by connection
    await page.get_by_label("Connection").select_option("beta")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**/operations?connection=beta&state=&*")
    await expect(rows).to_have_count(4)
    await expect(rows.locator("td:nth-child(2)")).to_have_text(["beta"] * 4)
    await expect(page.get_by_role("button", name="Replay all dead of beta")).to_be_visible()

    # by state, across connections
    await page.get_by_label("Connection").select_option("")
    await page.get_by_label("State").select_option("dead")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**/operations?connection=&state=dead&*")
    await expect(rows).to_have_count(3)
    await expect(rows.locator("td.state")).to_have_text(["dead"] * 3)

    # both: acme's two dead operations
    await page.get_by_label("Connection").select_option("acme")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**/operations?connection=acme&state=dead&*")
    ids = {site.acme.dead_id, site.acme_extra_dead}
    await expect(rows).to_have_count(2)
    assert {int(t) for t in await rows.locator("td:first-child").all_inner_texts()} == ids

    await page.get_by_role("button", name="Replay all dead of acme").click()
    await expect(page.locator("p.flash")).to_have_text("Replayed 2 dead operation(s) of acme.")
    assert "/operations?connection=acme&state=dead&" in page.url  # back where it was
    await expect(page.get_by_text("No operations match.")).to_be_visible()
    for op_id in ids:
        assert await state_of(store, op_id) is OperationState.PENDING
    assert await state_of(store, site.beta.dead_id) is OperationState.DEAD  # other connection
    assert await state_of(store, site.acme.failed_id) is OperationState.FAILED  # other state

    # every connection: only beta's dead one is left
    await page.get_by_label("Connection").select_option("")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**/operations?connection=&state=dead&*")
    await expect(rows).to_have_count(1)
    await page.get_by_role("button", name="Replay all dead", exact=True).click()
    await expect(page.locator("p.flash")).to_have_text("Replayed 1 dead operation(s).")
    await expect(page.get_by_text("No operations match.")).to_be_visible()
    assert await state_of(store, site.beta.dead_id) is OperationState.PENDING
    assert await state_of(store, site.beta.failed_id) is OperationState.FAILED

    # the flash is shown once; the replayed operations are listed as pending
    await page.get_by_label("State").select_option("pending")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**/operations?connection=&state=pending&*")
    await expect(page.locator("p.flash")).to_have_count(0)
    await expect(rows).to_have_count(5)  # 2 seeded pending + 3 replayed
    for op_id in (*ids, site.beta.dead_id):
        await expect(page.locator(f"#op-{op_id} td.state")).to_have_text("pending")

    # nothing dead left: no "Replay all dead" button to press
    await expect(page.get_by_role("button", name=re.compile("^Replay all dead"))).to_have_count(0)
    assert watched.dialogs == []
    assert watched.console_errors == []


async def test_connection_page_masks_every_secret_and_the_webhook_token(
    site: Site, watched: Watched, expect: Any
) -> None:
    page = watched.page
    await page.goto(site.url + "/")
    async with page.expect_response(re.compile(r"/connections/acme$")) as answer:
        await page.get_by_role("link", name="acme", exact=True).click()
    response = await answer.value
    assert response.status == 200
    await expect(page).to_have_title("Connection acme · ml-connector")

    served_html = await response.text()  # the bytes the server sent
    rendered_html = await page.content()  # the document as the browser holds it
    for kind, secret in ACME_SECRETS.items():
        assert secret not in served_html, kind
        assert secret not in rendered_html, kind

    # each credential by kind, at most its last four characters shown
    rows = page.locator("section.card", has_text="Credentials").locator("tbody tr")
    await expect(rows.locator("td:first-child")).to_have_text(sorted(ACME_SECRETS))
    for kind, secret in ACME_SECRETS.items():
        shown = "••••" + secret[-4:] if len(secret) >= 16 else "••••"
        await expect(rows.filter(has_text=kind).locator("td").nth(1)).to_have_text(shown)

    # the webhook URL: the public base, the connection, and the token's segment masked
    url = page.locator("dt:text-is('Webhook URL') + dd code")
    await expect(url).to_have_text(f"{PUBLIC_BASE}/webhooks/shipstation/acme/…")
    await expect(page.locator("dt:text-is('Webhook URL') + dd")).to_contain_text(
        "the last segment is the connection's webhook token"
    )
    # the configured settings, the pending deliveries and the link are there
    await expect(page.locator("dt:text-is('ShipStation V1') + dd")).to_have_text("http://ss.test")
    deliveries = page.locator("table.webhooks tbody tr")
    await expect(deliveries).to_have_count(2)
    await expect(deliveries.locator("td:nth-child(5)")).to_have_text(["pending", "pending"])
    await page.get_by_role("link", name="plex-79870-1001-2026-01-15").click()
    await page.wait_for_url("**/audit?connection=acme&order_key=plex-79870-1001-2026-01-15")
    # the link searches this connection's trail only: beta's event with the same orderKey
    # (a shared PCN) is not listed
    rows = page.locator("table.audit tbody tr")
    acme_events = rows.filter(has=page.locator("td:nth-child(2)", has_text=re.compile("^acme$")))
    await expect(acme_events).to_have_count(1)
    await expect(rows).to_have_count(1)
    await expect(acme_events.locator("td.refs")).to_contain_text(
        "orderKey plex-79870-1001-2026-01-15"
    )

    # a connection that is not in the configuration file says so (defaults apply)
    await page.goto(site.url + "/")
    await page.get_by_role("link", name="beta", exact=True).click()
    await page.wait_for_url("**/connections/beta")
    await expect(
        page.get_by_text("Not in the configuration file (defaults apply).")
    ).to_be_visible()
    assert ACME_SECRETS[CredentialKind.SS_V1_KEY] not in await page.content()
    assert watched.dialogs == []
    assert watched.console_errors == []


@pytest.mark.parametrize("path", ["/", "/operations?state=dead", "/connections/acme", "/nope"])
async def test_security_headers_reach_the_browser(site: Site, watched: Watched, path: str) -> None:
    response = await watched.page.goto(site.url + path)
    assert response is not None
    headers = await response.all_headers()
    for name, value in SECURITY.items():
        assert headers.get(name) == value, name


async def test_a_foreign_page_cannot_frame_the_ui(
    site: Site, watched: Watched, expect: Any
) -> None:
    """frame-ancestors 'none' / X-Frame-Options DENY, enforced by Chromium itself."""
    page = watched.page
    target = site.url + "/operations"
    async with page.expect_response(target) as answer:
        await page.set_content(f'<iframe id="ui" src="{target}"></iframe>')
    response = await answer.value
    assert response.status == 200  # the server answered; the browser refused to show it
    frame = response.frame
    await expect(page.locator("#ui")).to_be_attached()
    # the framed document is Chromium's error page, not the UI: no Replay form to click into
    assert await frame.locator("form").count() == 0
    assert "Operations" not in await frame.content()
    assert any("frame-ancestors" in e or "X-Frame-Options" in e for e in watched.console_errors)
