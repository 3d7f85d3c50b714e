"""Browser fixtures: a real headless Chromium driven by Playwright.

When Chromium or Playwright's driver is missing the tests are skipped with the reason, except
under ``CI=true``, where that is a failure (the browser tests must run in CI).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("MLCONNECTOR_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
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


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[object]:
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
        finally:
            await browser.close()
    finally:
        await manager.stop()
