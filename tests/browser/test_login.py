"""Login, roles, CSRF and the Host allow-list in a real headless Chromium."""

from __future__ import annotations

from typing import Any

import pytest

from mlconnector.passwords import hash_password
from mlconnector.store import (
    AuditQuery,
    OperationState,
    Role,
    Store,
)
from tests.browser.conftest import PASSWORD, REBOUND_HOST, PageFactory, Served

pytestmark = pytest.mark.browser

UI_PAGES = ["/", "/operations", "/runs", "/audit", "/quarantine", "/connections/acme"]


async def state_of(store: Store, op_id: int) -> OperationState:
    op = await store.get_operation(op_id)
    assert op is not None
    return op.state


async def test_every_page_asks_for_a_login_then_brings_the_operator_back(
    context: Any, served: Served, expect: Any
) -> None:
    await served.store.create_user("ana", Role.OPERATOR, hash_password(PASSWORD))
    page = await context.new_page()
    for path in UI_PAGES:
        await page.goto(served.url + path)
        await expect(page).to_have_title("Log in · ml-connector")
        await expect(page.get_by_role("link", name="Operations")).to_have_count(0)
    await page.goto(served.url + "/audit?connection=acme")
    await page.get_by_label("Name").fill("ana")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_title("Audit · ml-connector")
    assert page.url == served.url + "/audit?connection=acme"
    await expect(page.locator("header .who")).to_have_text("ana (operator)")
    # the session cookie is out of JavaScript's reach
    assert await page.evaluate("document.cookie") == ""
    cookie = next(c for c in await page.context.cookies() if c["name"] == "mlc_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"

    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_title("Log in · ml-connector")
    await page.goto(served.url + "/operations")
    await expect(page).to_have_title("Log in · ml-connector")


async def test_a_wrong_password_is_refused(context: Any, served: Served, expect: Any) -> None:
    await served.store.create_user("ana", Role.OPERATOR, hash_password(PASSWORD))
    page = await context.new_page()
    await page.goto(served.url + "/login")
    await page.get_by_label("Name").fill("ana")
    await page.get_by_label("Password").fill("not the password at all")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_have_text("Wrong name or password.")
    await expect(page).to_have_title("Log in · ml-connector")
    assert await served.store.count_sessions() == 0
    rejected = await served.store.search_audit(AuditQuery(flow="login", outcome="rejected"))
    assert [e.details["user"] for e in rejected] == ["ana"]


async def test_a_viewer_sees_operations_but_cannot_replay(
    viewer_page: PageFactory, served: Served, expect: Any
) -> None:
    page = await viewer_page(served.url, served.store)
    await page.goto(served.url + "/operations")
    row = page.locator(f"#op-{served.seeded.dead_id}")
    await expect(row.locator("td.state")).to_have_text("dead")
    await row.get_by_role("button", name="Replay").click()
    await expect(page.get_by_role("alert")).to_contain_text("is a viewer")
    await expect(page).to_have_title("Forbidden · ml-connector")
    assert await state_of(served.store, served.seeded.dead_id) is OperationState.DEAD


async def test_a_form_without_its_csrf_token_is_refused(
    operator_page: PageFactory, served: Served, expect: Any
) -> None:
    page = await operator_page(served.url, served.store)
    await page.goto(served.url + "/operations")
    row = page.locator(f"#op-{served.seeded.dead_id}")
    replay_form = row.locator("form", has=page.get_by_role("button", name="Replay"))
    await replay_form.locator("input[name=csrf_token]").evaluate("e => e.remove()")
    await row.get_by_role("button", name="Replay").click()
    await expect(page.get_by_role("alert")).to_contain_text("security token is missing")
    assert await state_of(served.store, served.seeded.dead_id) is OperationState.DEAD
    # with the token (the page as served) the same button works
    await page.goto(served.url + "/operations")
    await page.locator(f"#op-{served.seeded.dead_id}").get_by_role("button", name="Replay").click()
    await expect(page.locator("p.flash")).to_contain_text("replayed")
    assert await state_of(served.store, served.seeded.dead_id) is OperationState.PENDING


async def test_a_foreign_host_is_refused(
    context: Any, operator_page: PageFactory, served: Served, expect: Any
) -> None:
    """A DNS-rebinding page: the browser reaches 127.0.0.1 under the attacker's name."""
    port = served.url.rsplit(":", 1)[1]
    page = await operator_page(served.url, served.store)  # logged in on the real address
    rebound = await context.new_page()
    for path in ("/", "/operations", "/login"):
        response = await rebound.goto(f"http://{REBOUND_HOST}:{port}{path}")
        assert response is not None
        assert response.status == 400
        await expect(rebound.locator("body")).to_contain_text("Invalid host header")
    assert "op-" not in await rebound.content()
    # the operator's own page still works
    await page.goto(served.url + "/operations")
    await expect(page).to_have_title("Operations · ml-connector")
