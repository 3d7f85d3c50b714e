"""Browser fixtures: a real headless Chromium driven by Playwright.

When Chromium or Playwright's driver is missing the tests are skipped with the reason, except
under ``CI=true``, where that is a failure (the browser tests must run in CI).

* ``operator_page(url, store)`` / ``viewer_page(url, store)``: a new page logged in through the
  login form as an operator / viewer (the account is created in ``store`` when missing);
  :func:`log_in` does the same for a page you already have.
* When a test fails, every open page is saved as a PNG under ``$MLCONNECTOR_TEST_SCREENSHOTS``
  (default ``test-results/browser/``), named after the test.
* Chromium resolves :data:`REBOUND_HOST` to 127.0.0.1, as after a DNS rebinding: a page loaded
  from it sends that name as ``Host`` to a loopback server.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlconnector.clock import FakeClock
from mlconnector.config import Config
from mlconnector.passwords import hash_password
from mlconnector.sandbox.server import serve
from mlconnector.store import Role, Store, Vault, generate_key, open_store
from mlconnector.web import create_web_app
from tests.unit.web.seed import Seeded, seed

CHROMIUM = os.environ.get("MLCONNECTOR_TEST_CHROMIUM", "/usr/bin/chromium")
#: a name Chromium resolves to 127.0.0.1 (a rebinding attacker's domain)
REBOUND_HOST = "rebound.test"
PASSWORD = "browser test password"
SCREENSHOTS = Path(
    os.environ.get("MLCONNECTOR_TEST_SCREENSHOTS")
    or Path(__file__).resolve().parents[2] / "test-results" / "browser"
)
CHROMIUM_ARGS = [
    f"--host-resolver-rules=MAP {REBOUND_HOST} 127.0.0.1",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: browser tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def chromium() -> str:
    """The Chromium executable (skips, or fails under CI=true, when it is missing)."""
    if not Path(CHROMIUM).exists():
        unavailable(f"Chromium not found at {CHROMIUM} (set MLCONNECTOR_TEST_CHROMIUM)")
    return CHROMIUM


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """Remember each phase's report on the test item (the screenshots look at it)."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


async def _screenshot_on_failure(request: pytest.FixtureRequest, browser: Any) -> None:
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed:
        return
    await asyncio.to_thread(SCREENSHOTS.mkdir, parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
    number = 0
    for context in browser.contexts:
        for page in context.pages:
            number += 1
            path = SCREENSHOTS / f"{stem}-{number}.png"
            try:
                await page.screenshot(path=str(path), full_page=True)
            except Exception as exc:  # a crashed page must not hide the test's own failure
                print(f"screenshot of {page.url} failed: {exc}")
            else:
                print(f"screenshot of the failed test's page {page.url}: {path}")


@pytest.fixture
async def browser(chromium: str, request: pytest.FixtureRequest) -> AsyncIterator[object]:
    """A launched headless Chromium (``playwright.async_api.Browser``)."""
    try:
        from playwright.async_api import Error, async_playwright
    except ImportError as exc:  # the dev dependency is missing
        unavailable(f"Playwright is not installed: {exc}")
    try:
        manager = await async_playwright().start()
    except Exception as exc:
        unavailable(f"Playwright's driver did not start: {type(exc).__name__}: {exc}")
    try:
        try:
            browser = await manager.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        except Error as exc:
            unavailable(f"Chromium at {chromium} did not launch: {exc.message.splitlines()[0]}")
        try:
            yield browser
            await _screenshot_on_failure(request, browser)
        finally:
            await browser.close()
    finally:
        await manager.stop()


async def log_in(
    page: Any,
    url: str,
    store: Store,
    *,
    name: str = "operator",
    role: Role = Role.OPERATOR,
    password: str = PASSWORD,
) -> Any:
    """Log ``page`` in at ``url`` through the login form (creating the account if missing)."""
    if await store.get_user(name) is None:
        await store.create_user(name, role, hash_password(password))
    await page.goto(url + "/login")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(re.compile(r"^(?!.*/login).*$"))
    return page


PageFactory = Callable[[str, Store], Awaitable[Any]]


@pytest.fixture
def operator_page(browser: Any) -> PageFactory:
    """``await operator_page(url, store)``: a new page logged in as the operator ``operator``."""

    async def make(url: str, store: Store) -> Any:
        return await log_in(await browser.new_page(), url, store)

    return make


@pytest.fixture
def viewer_page(browser: Any) -> PageFactory:
    """``await viewer_page(url, store)``: a new page logged in as the viewer ``viewer``."""

    async def make(url: str, store: Store) -> Any:
        page = await browser.new_page()
        return await log_in(page, url, store, name="viewer", role=Role.VIEWER)

    return make


@dataclass
class Served:
    """The web app on loopback over a store seeded by :func:`tests.unit.web.seed.seed`."""

    url: str
    store: Store
    seeded: Seeded


@pytest.fixture
async def served(tmp_path: Path, fake_clock: FakeClock) -> AsyncIterator[Served]:
    vault = Vault([generate_key()], source="a test key")
    store = await open_store(
        f"sqlite+aiosqlite:///{tmp_path / 'mlc.db'}", clock=fake_clock, vault=vault
    )
    try:
        await store.create_connection("acme", plex_pcn="79870")
        seeded = await seed(store)
        app = create_web_app(store=store, config=Config(home=tmp_path), clock=fake_clock)
        async with app.router.lifespan_context(app), serve(app) as url:
            yield Served(url, store, seeded)
    finally:
        await store.close()
