"""Browser fixtures: a real headless Chromium driven by Playwright.

When Chromium or Playwright's driver is missing the tests are skipped with the reason, except
under ``CI=true``, where that is a failure (the browser tests must run in CI).

* One Chromium process serves the whole test session (``browser``, session-scoped); each test
  gets a fresh ``context`` (its own cookies, storage and pages), closed when the test ends.
  The browser tests therefore run on pytest-asyncio's *session* event loop (Playwright's objects
  belong to the loop that started it): :func:`pytest_collection_modifyitems` marks every async
  test under ``tests/browser`` with ``asyncio(loop_scope="session")``, and every async fixture
  here and in the test files is declared with ``@pytest_asyncio.fixture(loop_scope="session")``
  (a fixture left on the default function loop fails with "attached to a different loop").
* ``operator_page(url, store)`` / ``viewer_page(url, store)``: a new page in the test's context
  logged in through the login form as an operator / viewer (the account is created in ``store``
  when missing); :func:`log_in` does the same for a page you already have.
* ``expect``: Playwright's auto-waiting assertions.
* When a test fails, every page of its context is saved as a PNG under
  ``$MLCONNECTOR_TEST_SCREENSHOTS`` (default ``test-results/browser/``), named after the test.
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
import pytest_asyncio

from mlconnector.clock import FakeClock
from mlconnector.config import Config
from mlconnector.sandbox.server import serve
from mlconnector.store import Role, Store, Vault, generate_key, open_store
from mlconnector.web import create_web_app
from tests.accounts import account_hash
from tests.dbutil import migrated_sqlite
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


#: the browser tests' own directory (their async tests run on the session loop)
BROWSER_TESTS = Path(__file__).resolve().parent
SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run every async browser test on the session event loop, where the shared Chromium lives."""
    for item in items:
        if pytest_asyncio.is_async_test(item) and BROWSER_TESTS in item.path.parents:
            item.add_marker(SESSION_LOOP, append=False)


@pytest.fixture(scope="session")
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


async def _screenshot_on_failure(request: pytest.FixtureRequest, context: Any) -> None:
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed:
        return
    await asyncio.to_thread(SCREENSHOTS.mkdir, parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
    for number, page in enumerate(context.pages, start=1):
        path = SCREENSHOTS / f"{stem}-{number}.png"
        try:
            await page.screenshot(path=str(path), full_page=True)
        except Exception as exc:  # a crashed page must not hide the test's own failure
            print(f"screenshot of {page.url} failed: {exc}")
        else:
            print(f"screenshot of the failed test's page {page.url}: {path}")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(chromium: str) -> AsyncIterator[Any]:
    """The session's one headless Chromium (``playwright.async_api.Browser``). Tests open pages
    through ``context`` (or ``operator_page`` / ``viewer_page``), never on this directly."""
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
        finally:
            await browser.close()
    finally:
        await manager.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Any, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A fresh ``BrowserContext`` of the shared Chromium for one test: no cookie, storage or page
    of another test; its pages are screenshotted when the test failed, then it is closed."""
    context = await browser.new_context()
    try:
        yield context
        await _screenshot_on_failure(request, context)
    finally:
        await context.close()


@pytest.fixture
def expect(browser: Any) -> Any:
    """Playwright's auto-waiting assertions (imported once ``browser`` proved Playwright works)."""
    from playwright.async_api import expect

    return expect


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
        await store.create_user(name, role, account_hash(password))
    await page.goto(url + "/login")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(re.compile(r"^(?!.*/login).*$"))
    return page


PageFactory = Callable[[str, Store], Awaitable[Any]]


@pytest.fixture
def operator_page(context: Any) -> PageFactory:
    """``await operator_page(url, store)``: a new page logged in as the operator ``operator``."""

    async def make(url: str, store: Store) -> Any:
        return await log_in(await context.new_page(), url, store)

    return make


@pytest.fixture
def viewer_page(context: Any) -> PageFactory:
    """``await viewer_page(url, store)``: a new page logged in as the viewer ``viewer``."""

    async def make(url: str, store: Store) -> Any:
        page = await context.new_page()
        return await log_in(page, url, store, name="viewer", role=Role.VIEWER)

    return make


@dataclass
class Served:
    """The web app on loopback over a store seeded by :func:`tests.unit.web.seed.seed`."""

    url: str
    store: Store
    seeded: Seeded


@pytest_asyncio.fixture(loop_scope="session")
async def served(tmp_path: Path, fake_clock: FakeClock) -> AsyncIterator[Served]:
    vault = Vault([generate_key()], source="a test key")
    store = await open_store(migrated_sqlite(tmp_path / "mlc.db"), clock=fake_clock, vault=vault)
    try:
        await store.create_connection("acme", plex_pcn="79870")
        seeded = await seed(store)
        app = create_web_app(store=store, config=Config(home=tmp_path), clock=fake_clock)
        async with app.router.lifespan_context(app), serve(app) as url:
            yield Served(url, store, seeded)
    finally:
        await store.close()
