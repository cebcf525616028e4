"""Browser fixtures: Debian's chromium driven by playwright (sync API), axe-core from npm.

Chromium is the system one, Debian's headless shell (`/usr/bin/chromium-headless-shell`, or
`$CHROMIUM`), never a playwright download; axe-core is `node_modules/axe-core`.
`scripts/install-browser` installs both. When either is missing the browser tests are skipped
on a developer's machine and fail when CI=true, as the PostgreSQL tests do (tests/conftest.py).

While playwright's sync API is started, the main thread counts as running its event loop
(playwright marks it so after every call), so `asyncio.run()` and anyio tests cannot run there.
`browser` is therefore module-scoped: playwright stops when a browser test module ends and the
rest of the suite never sees its loop. Inside a browser test module, call nothing that runs an
event loop in the main thread; the portal and the network serve from threads and processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, sync_playwright

from tests.browser.axe import AXE_SCRIPT
from tests.browser.sizes import SIZES
from tests.portals.conftest import network, portal_url

__all__ = [
    "CHROMIUM",
    "LAUNCH_ARGS",
    "LOCALE",
    "VIEWPORT",
    "a11y_page",
    "browser",
    "network",
    "page",
    "portal_url",
]

# The old headless shell: the same engine without the browser's UI, about a third less CPU per
# test than `/usr/bin/chromium`'s headless mode (docs/testing.md "Browser tests").
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium-headless-shell"))
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]
LOCALE = "nb-NO"
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}


def _missing(what: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {what}; scripts/install-browser installs it", pytrace=False)
    pytest.skip(f"{what} (allowed outside CI; run scripts/install-browser)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless chromium for one test module."""
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"chromium is not installed at {CHROMIUM}")
    if not AXE_SCRIPT.is_file():
        _missing(f"axe-core is not installed at {AXE_SCRIPT}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _context(browser: Browser, *, bypass_csp: bool) -> BrowserContext:
    return browser.new_context(locale=LOCALE, viewport=VIEWPORT, bypass_csp=bypass_csp)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab in a context of its own, with the page's CSP enforced as for users."""
    context = _context(browser, bypass_csp=False)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def a11y_page(browser: Browser) -> Iterator[Page]:
    """A fresh tab whose context ignores CSP, so that axe-core can be injected (see axe.py)."""
    context = _context(browser, bypass_csp=True)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(params=list(SIZES))
def sized_page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[tuple[str, Page]]:
    """A fresh tab at one of the two sizes (sizes.py), in a context that lets axe-core in."""
    size = str(request.param)
    context = browser.new_context(locale=LOCALE, viewport=SIZES[size], bypass_csp=True)
    try:
        yield size, context.new_page()
    finally:
        context.close()
